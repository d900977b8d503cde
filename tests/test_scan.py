"""Block reading for gzip and standard input: whole lines, nothing lost or repeated."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

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
