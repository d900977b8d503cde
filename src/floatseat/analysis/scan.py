"""Bulk reading of access logs: raw lines in, counted (user, second) pairs out.

Each file is read once, in blocks of whole lines, two blocks in flight at a time. One
streaming pass over a block classifies every line: malformed (the whole compiled pattern
does not match, a DFA test), blank, polling (a DFA test on the raw line where the pattern
allows), anonymous, or counted. Only lines still in the running are
captured, and only their user and time. Counted requests are reduced at once to distinct
(user, second) pairs with their request counts, so memory follows the number of distinct
pairs, not the number of lines.

Two engines do this. The Polars path below is the reference. Where the C extension is built
(`fastscan`, `_linescan.c`), it runs the same regexes on each block with the GIL released
and hands the lines it cannot decide with certainty to the Polars path, so that the figures
are the reference's, line for line (tests/test_native_scan.py holds the two equal).
"""

from __future__ import annotations

import array
import io
import mmap
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import polars as pl

from floatseat.analysis import fastscan
from floatseat.domain.activity import CountingRules
from floatseat.logs.escapes import unescape
from floatseat.logs.pattern import CompiledPattern, canonical_user

CHUNK_BYTES = 128 << 20  # files go to Polars in blocks of this many bytes
SCAN_THREADS = 2  # blocks in flight at once
MALFORMED_EXAMPLES = 5
GZIP_MAGIC = b"\x1f\x8b"

# Columns of the pairs frame: one row per distinct (user, second) with a counted request.
PAIRS_SCHEMA = {"user": pl.String, "ts": pl.Int64, "n": pl.UInt32}


@dataclass
class FileScan:
    """What one file held."""

    name: str
    rows: int = 0  # lines read, blank ones included
    lines: int = 0  # non-blank lines
    malformed: int = 0
    malformed_rows: list[int] = field(default_factory=list)  # 1-based line numbers
    pair_frames: list[pl.DataFrame] = field(default_factory=list)

    @property
    def pairs(self) -> pl.DataFrame:
        """Counted (user, ts, n); a (user, ts) may repeat across blocks."""
        if not self.pair_frames:
            return pl.DataFrame(schema=PAIRS_SCHEMA)
        return pl.concat(self.pair_frames)


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
    """Blocks of whole lines (the last block may lack its final newline).

    Reads into one reused buffer, so that each byte is copied once on its way to Polars.
    """
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    filled = 0
    while True:
        if filled == len(buffer):  # one line longer than the buffer: grow it
            grown = bytearray(2 * len(buffer))
            grown[:filled] = view[:filled]
            view.release()
            buffer, view = grown, memoryview(grown)
        read = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not read:
            if filled:
                yield bytes(view[:filled])
            return
        filled += read
        cut = buffer.rfind(b"\n", 0, filled) + 1
        if cut == 0:
            continue
        yield bytes(view[:cut])
        view[: filled - cut] = view[cut:filled]
        filled -= cut


def scan_file(
    name: str,
    path: Path | None,
    pattern: CompiledPattern,
    rules: CountingRules,
    *,
    chunks: Iterable[bytes] | None = None,
) -> FileScan:
    """Read one file and reduce it to counted (user, second) pairs.

    Plain files, gzip (detected by its magic bytes) and standard input (`path` None, with
    its blocks in `chunks`) all go in blocks of whole lines.
    """
    plan = fastscan.compile_plan(pattern, rules)
    if chunks is not None:
        return _scan_blocks(name, chunks, pattern, rules, plan)
    with open_binary(path) as stream:
        if plan is None:
            return _scan_blocks(name, read_chunks(stream, CHUNK_BYTES), pattern, rules, plan)
        if _is_regular_file(stream) and _settled(stream):
            # A plain file: the C scanner reads the page cache itself, with no copy at all.
            return _scan_blocks(name, read_mapped(stream, CHUNK_BYTES), pattern, rules, plan)
        # The C scanner reads the buffers in place: no copy, no fresh pages per block.
        pooled = read_pooled(stream, CHUNK_BYTES, SCAN_THREADS + 1)
        return _scan_blocks(name, pooled, pattern, rules, plan)


SETTLED_S = 300  # a file unchanged this long is mapped; a live one is read


def _settled(stream: BinaryIO) -> bool:
    """Whether the file has not been written for `SETTLED_S`: a live log may be truncated
    (copytruncate rotation) while it is read, and a memory map of it would then fault
    (SIGBUS) and kill the process, where a plain read just sees the file end sooner."""
    return time.time() - os.fstat(stream.fileno()).st_mtime > SETTLED_S


def _is_regular_file(stream: BinaryIO) -> bool:
    """An uncompressed regular file (not gzip, a pipe or a terminal): it can be mapped."""
    raw = getattr(stream, "raw", None)
    return isinstance(raw, io.FileIO) and stat.S_ISREG(os.fstat(raw.fileno()).st_mode)


def read_mapped(stream: BinaryIO, chunk_bytes: int) -> Iterator[memoryview]:
    """A regular file's blocks of whole lines, as views of read-only memory maps.

    Each block is mapped on its own (pages populated by the reader, not the scanner) and
    unmapped once its last view is gone, so memory stays bounded by the blocks in flight,
    as with `read_pooled`, without copying 128 MiB per block out of the page cache. Reads
    the file as long as it was when the scan began; a file cut shorter while it is mapped
    would fault (SIGBUS), as for any reader of a memory map.
    """
    fd = stream.fileno()
    size = os.fstat(fd).st_size
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    start = 0
    while start < size:
        base = start - start % mmap.ALLOCATIONGRANULARITY
        want = chunk_bytes
        while True:
            end = min(start + want, size)
            mapped = mmap.mmap(fd, end - base, flags=flags, prot=mmap.PROT_READ, offset=base)
            if end == size:
                cut = end - base
                break
            cut = mapped.rfind(b"\n", start - base, end - base) + 1
            if cut > 0:
                break
            mapped.close()  # no line ends in the block: map a bigger one
            want *= 2
        yield memoryview(mapped)[start - base : cut]
        start = base + cut


def read_pooled(stream: BinaryIO, chunk_bytes: int, buffers: int) -> Iterator[memoryview]:
    """Blocks of whole lines, as views of `buffers` buffers used in turn.

    A view stays valid until `buffers - 1` more blocks have been taken: the consumer must
    be done with it by then (`_scan_blocks` holds SCAN_THREADS while the next one is read).
    """
    pool = [bytearray(chunk_bytes) for _ in range(buffers)]
    turn = 0
    carry = b""
    while True:
        buffer = pool[turn]
        if len(carry) >= len(buffer):  # one line longer than a buffer: grow this one
            buffer = pool[turn] = bytearray(2 * len(carry))
        view = memoryview(buffer)
        view[: len(carry)] = carry
        filled = len(carry)
        while filled < len(buffer):
            read = stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not read:
                break
            filled += read
        if filled == 0:
            return
        if filled < len(buffer):  # the end of the input
            yield view[:filled]
            return
        cut = buffer.rfind(b"\n", 0, filled) + 1
        if cut == 0:  # no line ends in the whole buffer: carry it all into a bigger one
            carry = bytes(view[:filled])
            continue
        carry = bytes(view[cut:filled])
        yield view[:cut]
        turn = (turn + 1) % buffers


def _scan_blocks(
    name: str,
    blocks: Iterable[bytes | memoryview],
    pattern: CompiledPattern,
    rules: CountingRules,
    plan: fastscan.Plan | None,
) -> FileScan:
    """Scan blocks SCAN_THREADS at a time and merge them in file order.

    Polars releases the GIL, so two blocks in flight keep both cores busy where one query
    alone leaves one idle part of the time; line numbers are fixed up when merging.
    """
    result = FileScan(name)
    with ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
        pending: deque[Future[FileScan]] = deque()
        for block in blocks:
            pending.append(pool.submit(_scan_block, name, block, pattern, rules, plan))
            if len(pending) > SCAN_THREADS:  # bounds the blocks held in memory
                _merge(result, pending.popleft().result())
        while pending:
            _merge(result, pending.popleft().result())
    return result


def _scan_block(
    name: str,
    block: bytes | memoryview,
    pattern: CompiledPattern,
    rules: CountingRules,
    plan: fastscan.Plan | None = None,
) -> FileScan:
    if plan is not None:
        return _scan_block_native(name, block, pattern, rules, plan)
    return _scan_block_polars(name, bytes(block), pattern, rules)


def _scan_block_native(
    name: str,
    block: bytes | memoryview,
    pattern: CompiledPattern,
    rules: CountingRules,
    plan: fastscan.Plan,
) -> FileScan:
    """The C scanner reads what it can decide; the lines it cannot go the Polars way."""
    found = fastscan.scan_native(block, plan)
    part = FileScan(name)
    part.rows = found["rows"]
    part.lines = found["rows"] - found["blank"]
    part.malformed = found["malformed"]
    part.malformed_rows = list(found["malformed_rows"])
    if found["uid"].length:
        # Users come as logged (ASCII, escapes kept); canonical as in _to_pairs.
        canonical = [canonical_user(unescape(raw)) for raw in found["users"]]
        pairs = pl.DataFrame(
            [pl.Series(found[c]).alias(c) for c in ("uid", "ts", "n")]  # zero-copy, via Arrow
        )
        excluded = [i for i, user in enumerate(canonical) if user in rules.excluded_users]
        if excluded:
            pairs = pairs.filter(~pl.col("uid").is_in(excluded))
        users = pl.Series("user", canonical, dtype=pl.String)
        pairs = pairs.select(users.gather(pairs["uid"]), "ts", "n")
        if len(set(canonical)) < len(canonical):  # 'Ann' and 'ann' in one block
            pairs = pairs.group_by("user", "ts").agg(pl.col("n").sum())
        part.pair_frames.append(pairs)
    if found["undecided"]:
        rows = array.array("I")
        rows.frombytes(found["undecided_rows"])
        rest = _scan_block_polars(name, found["undecided"], pattern, rules)
        assert rest.rows == len(rows), (rest.rows, len(rows))
        part.lines += rest.lines - rest.rows  # those lines were counted as non-blank
        part.malformed += rest.malformed
        mapped = [rows[r - 1] + 1 for r in rest.malformed_rows]
        part.malformed_rows = sorted(part.malformed_rows + mapped)[:MALFORMED_EXAMPLES]
        part.pair_frames.extend(rest.pair_frames)
    return part


def _scan_block_polars(
    name: str, block: bytes, pattern: CompiledPattern, rules: CountingRules
) -> FileScan:
    part = FileScan(name)
    try:
        part.rows = _add(part, _lines(block), pattern, rules)
    except pl.exceptions.ComputeError as error:
        if "utf8" not in str(error).lower().replace("-", ""):
            raise
        # Invalid bytes become U+FFFD; the line stays, so nothing is lost or shifted.
        part = FileScan(name)
        repaired = block.decode("utf-8", "replace").encode("utf-8")
        part.rows = _add(part, _lines(repaired), pattern, rules)
    return part


def _merge(result: FileScan, part: FileScan) -> None:
    """Add a block's figures to the file's; its line numbers start after the earlier blocks."""
    room = MALFORMED_EXAMPLES - len(result.malformed_rows)
    result.malformed_rows.extend(row + result.rows for row in part.malformed_rows[:room])
    result.rows += part.rows
    result.lines += part.lines
    result.malformed += part.malformed
    result.pair_frames.extend(part.pair_frames)


def _lines(block: bytes) -> pl.LazyFrame:
    return pl.scan_lines(block, row_index_name="row")


def _add(
    result: FileScan, lines: pl.LazyFrame, pattern: CompiledPattern, rules: CountingRules
) -> int:
    """One pass over `lines`: classify each, reduce the counted ones to (user, time) groups.

    Returns how many lines (blank ones included) were read.
    """
    grouped = _classified(lines, pattern, rules).collect(engine="streaming")
    counted = grouped.filter(pl.col("kind") == "counted")
    summary = dict(
        grouped.filter(pl.col("kind") != "counted")
        .group_by("kind")
        .agg(pl.col("n").sum(), pl.col("row").min())
        .select("kind", pl.struct("n", "row"))
        .iter_rows()
    )
    malformed = int(summary.get("malformed", {}).get("n", 0))
    read = int(grouped["n"].sum())
    result.lines += read - int(summary.get("blank", {}).get("n", 0))
    result.malformed += malformed
    if malformed == 1:
        result.malformed_rows.append(int(summary["malformed"]["row"]) + 1)
    elif malformed > 1 and len(result.malformed_rows) < MALFORMED_EXAMPLES:
        # A second pass, only when there are several examples to show.
        line = pl.col("line")
        rows = (
            lines.filter(~line.str.contains(pattern.regex) & ~line.str.contains(BLANK))
            .select("row")
            .head(MALFORMED_EXAMPLES)
            .collect()
        )
        result.malformed_rows.extend(int(r) + 1 for r in rows["row"])
    needs_agent = "agent" in counted.columns
    pairs, bad_time_rows = _to_pairs(counted, rules, needs_agent)
    if bad_time_rows:
        # A time that matched the pattern but is no real instant (29 Feb 2025): malformed too.
        result.malformed += int(bad_time_rows[0])
        result.malformed_rows.extend(bad_time_rows[1])
        result.malformed_rows.sort()  # the first line numbers, whichever way they failed
    result.pair_frames.append(pairs)
    del result.malformed_rows[MALFORMED_EXAMPLES:]
    return read


BLANK = r"^\s*$"


def _classified(
    lines: pl.LazyFrame, pattern: CompiledPattern, rules: CountingRules
) -> pl.LazyFrame:
    """Group every line by kind: counted (by user and time), polling, anonymous, blank, malformed.

    Counted groups carry the request count `n` and their first `row`; the others one group
    each. Fields are extracted only from lines still in the running for 'counted'.
    """
    line, kind = pl.col("line"), pl.col("kind")
    needs_agent = rules.excluded_agent_regex is not None and pattern.has_agent
    polling_line = None
    if rules.context_path in (None, "/") and not rules.polling_regexes:
        polling_line = pattern.polling_line_regex(rules.polling_prefixes)

    valid_kind: pl.Expr = pl.lit("counted")
    if polling_line is not None:
        # Polling told from the raw line by a DFA: the (long) target is never extracted.
        valid_kind = pl.when(line.str.contains(polling_line)).then(pl.lit("polling"))
        valid_kind = valid_kind.otherwise(pl.lit("counted"))
        regex = pattern.regex if needs_agent else pattern.user_time_regex
    else:
        regex = pattern.regex if needs_agent else pattern.extract_regex
    invalid_kind = pl.when(line.str.contains(BLANK)).then(pl.lit("blank"))
    classified = lines.with_columns(
        kind=pl.when(line.str.contains(pattern.regex))
        .then(valid_kind)
        .otherwise(invalid_kind.otherwise(pl.lit("malformed")))
    ).select(
        "row",
        "kind",
        pl.when(kind == "counted").then(line).str.extract_groups(regex).alias("f"),
    )
    fields = classified.unnest("f")
    if polling_line is None:
        targets = [pl.col(g).fill_null("") for g in pattern.target_groups]
        fields = fields.with_columns(
            kind=pl.when((kind == "counted") & _is_polling(pl.concat_str(targets), rules))
            .then(pl.lit("polling"))
            .otherwise(kind)
        )
    anonymous = (kind == "counted") & pl.col("user").is_in(["-", ""])
    keys = ["user", "time", "agent"] if needs_agent else ["user", "time"]
    return (
        fields.with_columns(kind=pl.when(anonymous).then(pl.lit("anonymous")).otherwise(kind))
        .with_columns(pl.when(kind == "counted").then(pl.col(k)).alias(k) for k in keys)
        .group_by(["kind", *keys])
        .agg(n=pl.len(), row=pl.col("row").min())
    )


def _is_polling(target: pl.Expr, rules: CountingRules) -> pl.Expr:
    """`CountingRules.is_polling` as an expression."""
    if rules.context_path not in (None, "/"):
        prefix = rules.context_path or ""
        stripped = target.str.strip_prefix(prefix)
        has_prefix = target.str.starts_with(prefix) & (
            stripped.str.starts_with("/") | stripped.str.starts_with("?") | (stripped == "")
        )
        slash = pl.when(stripped.str.starts_with("/")).then(stripped).otherwise("/" + stripped)
        target = pl.when(has_prefix).then(slash).otherwise(target)
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
