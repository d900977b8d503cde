"""The analysis use case: arguments in, report out. Reads files; decides nothing itself."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from floatseat.analysis.analyze import EncodedPairs, ReportOptions, build_report, encode_frames
from floatseat.analysis.report import AnalysisReport, FileSummary
from floatseat.analysis.scan import PAIRS_SCHEMA, FileScan, open_binary, read_chunks, scan_file
from floatseat.domain.activity import CountingRules
from floatseat.logs.discovery import Source, discover
from floatseat.logs.formats import FORMATS_BY_NAME, LogFormat, detect_format
from floatseat.logs.pattern import CompiledPattern, compile_pattern

DETECTION_BYTES = 256 << 10
EMPTY = "<empty>"  # what _scan_source names the format of a file with no line at all


class InputError(Exception):
    """The input cannot be analysed at all (exit status 2); the message says why."""


@dataclass(frozen=True)
class AnalysisRequest:
    arguments: tuple[str, ...]
    rules: CountingRules
    report: ReportOptions
    includes: tuple[str, ...] = ()
    format_name: str | None = None  # a KNOWN_FORMATS name; None detects per file
    pattern: str | None = None  # an AccessLogValve pattern applied to every file
    user_field: str | None = None


@dataclass(frozen=True)
class Progress:
    """Callbacks for long work; the default does nothing."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[str], None] = lambda name: None


@dataclass(frozen=True)
class Requests:
    """Every counted request of the input, reduced to (user, ts, n), and what was read."""

    encoded: EncodedPairs  # the pairs with users numbered, as the report reads them
    files: list[FileSummary]
    malformed_examples: list[str]
    warnings: list[str]

    @functools.cached_property
    def pairs(self) -> pl.DataFrame:
        """user (canonical), ts (UTC seconds), n: one row per (user, ts), by user then ts."""
        return self.encoded.decoded()


def analyze(request: AnalysisRequest, progress: Progress | None = None) -> AnalysisReport:
    """Read the input and report its concurrency."""
    found = read_requests(request, progress)
    return build_report(
        found.encoded,
        request.report,
        files=found.files,
        malformed_examples=found.malformed_examples,
        warnings=found.warnings,
    )


def read_requests(request: AnalysisRequest, progress: Progress | None = None) -> Requests:
    """Read every input once; the counted requests as (user, second) pairs.

    Raises InputError when nothing can be read or no line parses.
    """
    progress = progress or Progress()
    found = discover(request.arguments, request.includes)
    warnings = list(found.problems)
    if not found.sources:
        raise InputError("nothing to read: " + "; ".join(found.problems))
    forced: CompiledPattern | None = None
    if request.pattern is not None:
        forced = compile_pattern(request.pattern, user_field=request.user_field)
    elif request.format_name is not None:
        forced = FORMATS_BY_NAME[request.format_name].compiled()

    progress.start(len(found.sources))
    files: list[FileSummary] = []
    examples: list[str] = []
    pair_frames: list[pl.DataFrame] = []
    for source in found.sources:
        try:
            scan, format_name = _scan_source(source, forced, request)
        except OSError as error:
            reason = error.strerror or str(error)
            warnings.append(f"{source.name}: cannot read it ({reason}); skipped")
            files.append(FileSummary(source.name, None, 0, 0))
            progress.advance(source.name)
            continue
        progress.advance(source.name)
        if scan is None:
            if format_name == EMPTY:
                warnings.append(f"{source.name}: the file is empty; skipped")
            else:
                warnings.append(
                    f"{source.name}: the log format was not recognised; skipped "
                    "(name it with --format, --pattern or --server-xml)"
                )
            files.append(FileSummary(source.name, None, 0, 0))
            continue
        files.append(FileSummary(source.name, format_name, scan.lines, scan.malformed))
        examples.extend(f"{source.name}:{row}" for row in scan.malformed_rows)
        pair_frames.extend(scan.pair_frames)

    lines = sum(f.lines for f in files)
    malformed = sum(f.malformed_lines for f in files)
    if lines - malformed <= 0:
        detail = "; ".join(warnings) if warnings else f"{lines} lines, all malformed"
        raise InputError(f"no parseable access-log line in the input ({detail})")
    encoded = encode_frames(pair_frames or [pl.DataFrame(schema=PAIRS_SCHEMA)])
    return Requests(encoded, files, examples[:10], warnings)


def _scan_source(
    source: Source, forced: CompiledPattern | None, request: AnalysisRequest
) -> tuple[FileScan | None, str]:
    """Scan one source with the forced pattern or the format detected from its first lines."""
    if source.path is None:
        chunks = read_chunks(open_binary(None))
        head = next(chunks, b"")
        pattern, name = _pattern_for(head, forced, request)
        if pattern is None:
            return None, "" if head.strip() else EMPTY
        blocks = itertools.chain([head], chunks)
        return scan_file(source.name, None, pattern, request.rules, chunks=blocks), name
    with open_binary(source.path) as stream:
        head = stream.read(DETECTION_BYTES)
    pattern, name = _pattern_for(head, forced, request)
    if pattern is None:
        return None, "" if head.strip() else EMPTY
    return scan_file(source.name, source.path, pattern, request.rules), name


def _pattern_for(
    head: bytes, forced: CompiledPattern | None, request: AnalysisRequest
) -> tuple[CompiledPattern | None, str]:
    if forced is not None:
        return forced, request.format_name or "pattern"
    lines = head.decode("utf-8", "replace").splitlines()
    if len(head) >= DETECTION_BYTES and lines:
        lines.pop()  # the last line may be cut
    detected: LogFormat | None = detect_format(lines)
    if detected is None:
        return None, ""
    return detected.compiled(), detected.name
