"""Bulk reading of access logs with Polars: raw lines in, counted (user, second) pairs out.

Each file is read once in a columnar pass. A line is validated against the whole compiled
pattern (a DFA match, cheap) and the fields floatseat needs are then extracted with a prefix
expression that stops after the last of them. Requests are reduced at once to distinct
(user, second) pairs with their request counts, so memory follows the number of distinct
pairs, not the number of lines.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from floatseat.domain.activity import CountingRules
from floatseat.logs.escapes import unescape
from floatseat.logs.pattern import CompiledPattern, canonical_user

CHUNK_BYTES = 64 << 20
MALFORMED_EXAMPLES = 5
GZIP_MAGIC = b"\x1f\x8b"

# Columns of the pairs frame: one row per distinct (user, second) with a counted request.
PAIRS_SCHEMA = {"user": pl.String, "ts": pl.Int64, "n": pl.UInt32}


@dataclass
class FileScan:
    """What one file held."""

    name: str
    lines: int = 0
    malformed: int = 0
    malformed_rows: list[int] = field(default_factory=list)  # 1-based line numbers
    pairs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PAIRS_SCHEMA))


def open_binary(path: Path | None) -> BinaryIO:
    """A file (or standard input for None) as bytes, gunzipped when it starts like gzip."""
    from isal import igzip_threaded

    if path is None:
        raw = sys.stdin.buffer
        # Test runners hand over a stream without peek(); buffering adds it.
        stdin = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
        if stdin.peek(2)[:2] == GZIP_MAGIC:
            return igzip_threaded.open(stdin, "rb")  # type: ignore[no-untyped-call,no-any-return]
        return stdin
    if is_gzip(path):
        return igzip_threaded.open(path, "rb")  # type: ignore[no-untyped-call,no-any-return]
    return open(path, "rb")


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def read_chunks(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Blocks of whole lines (the last block may lack its final newline)."""
    rest = b""
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        rest = block[cut:]
        yield block[:cut]


def scan_file(
    name: str,
    path: Path | None,
    pattern: CompiledPattern,
    rules: CountingRules,
    *,
    chunks: Iterable[bytes] | None = None,
) -> FileScan:
    """Read one file and reduce it to counted (user, second) pairs.

    A plain file is scanned by Polars directly; gzip (detected by its magic bytes), standard
    input (`path` None, with its blocks in `chunks`) and files with bytes that are not UTF-8
    go block by block.
    """
    result = FileScan(name)
    if chunks is None and path is not None and not is_gzip(path):
        try:
            _add(result, pl.scan_lines(path, row_index_name="row"), pattern, rules)
            return result
        except pl.exceptions.ComputeError as error:
            if "utf8" not in str(error).lower().replace("-", ""):
                raise
            result = FileScan(name)  # bytes that are not UTF-8: read it again, block by block
    if chunks is not None:
        _add_chunks(result, chunks, pattern, rules)
    else:
        with open_binary(path) as stream:
            _add_chunks(result, read_chunks(stream), pattern, rules)
    return result


def _add_chunks(
    result: FileScan, chunks: Iterable[bytes], pattern: CompiledPattern, rules: CountingRules
) -> None:
    offset = 0
    for chunk in chunks:
        lines = pl.scan_lines(_valid_utf8(chunk), row_index_name="row", row_index_offset=offset)
        _add(result, lines, pattern, rules)
        offset += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def _valid_utf8(chunk: bytes) -> bytes:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        # Invalid bytes become U+FFFD; the line stays, so nothing is lost or shifted.
        return chunk.decode("utf-8", "replace").encode("utf-8")
    return chunk


def _add(
    result: FileScan, lines: pl.LazyFrame, pattern: CompiledPattern, rules: CountingRules
) -> None:
    line = pl.col("line")
    base = lines.with_columns(
        ok=line.str.contains(pattern.regex),
        blank=line.str.contains(r"^\s*$"),
    )
    stats = base.select(
        lines=(~pl.col("blank")).sum(),
        malformed=(~pl.col("blank") & ~pl.col("ok")).sum(),
    )
    examples = base.filter(~pl.col("blank") & ~pl.col("ok")).select("row").head(MALFORMED_EXAMPLES)
    needs_agent = rules.excluded_agent_regex is not None and pattern.has_agent
    regex = pattern.regex if needs_agent else pattern.extract_regex
    fields = (
        base.filter(pl.col("ok"))
        .select("row", line.str.extract_groups(regex).alias("f"))
        .unnest("f")
        .filter((pl.col("user") != "-") & (pl.col("user") != ""))
        .with_columns(
            target=pl.concat_str([pl.col(g).fill_null("") for g in pattern.target_groups])
        )
        .filter(~_is_polling(pl.col("target"), rules))
    )
    keys = ["user", "time", "agent"] if needs_agent else ["user", "time"]
    grouped = fields.group_by(keys).agg(n=pl.len(), row=pl.col("row").min())
    stats_df, examples_df, grouped_df = pl.collect_all([stats, examples, grouped])

    result.lines += int(stats_df["lines"][0] or 0)
    result.malformed += int(stats_df["malformed"][0] or 0)
    result.malformed_rows.extend(int(r) + 1 for r in examples_df["row"])
    pairs, bad_time_rows = _to_pairs(grouped_df, rules, needs_agent)
    if bad_time_rows:
        # A time that matched the pattern but is no real instant (say 31/Feb): malformed too.
        result.malformed += int(bad_time_rows[0])
        result.malformed_rows.extend(bad_time_rows[1])
    result.pairs = pl.concat([result.pairs, pairs])
    del result.malformed_rows[MALFORMED_EXAMPLES:]


def _is_polling(target: pl.Expr, rules: CountingRules) -> pl.Expr:
    if rules.context_path not in (None, "/"):
        prefix = rules.context_path or ""
        stripped = target.str.strip_prefix(prefix)
        has_prefix = target.str.starts_with(prefix) & (
            stripped.str.starts_with("/") | stripped.str.starts_with("?") | (stripped == "")
        )
        target = pl.when(has_prefix).then(stripped).otherwise(target)
        target = (
            pl.when(target.str.starts_with("?") | (target == ""))
            .then(pl.lit("/") + target)
            .otherwise(target)
        )
    polling = pl.lit(False)
    for prefix in rules.polling_prefixes:
        polling = polling | target.str.starts_with(prefix)
    for regex in rules.polling_regexes:
        polling = polling | target.str.contains(regex)
    return polling


def _to_pairs(
    grouped: pl.DataFrame, rules: CountingRules, needs_agent: bool
) -> tuple[pl.DataFrame, tuple[int, list[int]] | None]:
    """Canonical users, UTC seconds and request counts; exclusions applied."""
    if needs_agent:
        agents = grouped["agent"].unique().to_list()
        kept = [a for a in agents if not rules.is_excluded_agent(unescape(a))]
        grouped = grouped.filter(pl.col("agent").is_in(kept))
    raw_users = grouped["user"].unique().to_list()
    canonical = {raw: canonical_user(unescape(raw)) for raw in raw_users}
    canonical = {raw: user for raw, user in canonical.items() if user not in rules.excluded_users}
    grouped = grouped.filter(pl.col("user").is_in(list(canonical)))
    timed = grouped.with_columns(
        user=pl.col("user").replace_strict(canonical, return_dtype=pl.String),
        ts=pl.col("time")
        .str.strptime(pl.Datetime("ms", "UTC"), "%d/%b/%Y:%H:%M:%S %z", strict=False)
        .dt.epoch("s"),
    )
    bad = timed.filter(pl.col("ts").is_null())
    bad_rows = None
    if bad.height:
        rows = sorted(int(r) + 1 for r in bad["row"])[:MALFORMED_EXAMPLES]
        bad_rows = (int(bad["n"].sum()), rows)
        timed = timed.filter(pl.col("ts").is_not_null())
    pairs = timed.group_by("user", "ts").agg(n=pl.col("n").sum().cast(pl.UInt32))
    return pairs.select(list(PAIRS_SCHEMA)), bad_rows
