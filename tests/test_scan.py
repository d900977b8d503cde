"""Block reading for gzip and standard input: whole lines, nothing lost or repeated."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floatseat.analysis.scan import open_binary, read_chunks


@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=50),
    final_newline=st.booleans(),
    chunk_bytes=st.integers(1, 64),
)
def test_blocks_hold_whole_lines_and_join_to_the_input(
    lines: list[bytes], final_newline: bool, chunk_bytes: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    blocks = list(read_chunks(io.BytesIO(data), chunk_bytes))
    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    assert all(block for block in blocks)


def test_gzip_is_recognised_by_its_first_bytes(tmp_path: Path) -> None:
    packed = tmp_path / "access_log.2026-01-01"  # no .gz in the name
    packed.write_bytes(gzip.compress(b"line one\nline two\n"))
    with open_binary(packed) as stream:
        assert stream.read() == b"line one\nline two\n"


def test_line_numbers_and_counts_hold_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from floatseat.analysis import scan
    from floatseat.domain.activity import CountingRules
    from floatseat.logs.formats import FORMATS_BY_NAME

    good = (
        '10.0.0.1 1x1x1 ann [02/Mar/2026:10:00:00 +0000] "GET /browse/A-1 HTTP/1.1" 200 5 4 '
        '"-" "Mozilla/5.0" "s1"'
    )
    lines = [good] * 40
    for bad in (3, 17, 18, 33):
        lines[bad - 1] = good[:30]
    lines[9] = ""  # a blank line is read but neither counted nor malformed
    log = tmp_path / "access_log.1"
    log.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(scan, "CHUNK_BYTES", 300)  # a handful of lines per block
    result = scan.scan_file("x", log, FORMATS_BY_NAME["jira"].compiled(), CountingRules())
    assert (result.rows, result.lines, result.malformed) == (40, 39, 4)
    assert result.malformed_rows == [3, 17, 18, 33]
    assert int(result.pairs["n"].sum()) == 35
