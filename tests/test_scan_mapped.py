"""Plain files are scanned from memory maps: the blocks are those `read_pooled` promises."""

from __future__ import annotations

import mmap
import os
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from floatseat.analysis import scan


def _mapped_blocks(data: bytes, chunk_bytes: int) -> list[bytes]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "access_log"
        path.write_bytes(data)
        with path.open("rb") as stream:
            assert scan._is_regular_file(stream)
            return [bytes(view) for view in scan.read_mapped(stream, chunk_bytes)]


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=50),
    final_newline=st.booleans(),
    chunk_bytes=st.integers(1, 64),
)
def test_mapped_blocks_hold_whole_lines_and_join_to_the_input(
    lines: list[bytes], final_newline: bool, chunk_bytes: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    blocks = _mapped_blocks(data, chunk_bytes)
    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    assert all(block for block in blocks)


def test_blocks_start_anywhere_past_the_map_granularity() -> None:
    line = b"x" * 99 + b"\n"
    data = line * (3 * mmap.ALLOCATIONGRANULARITY // len(line) + 7)
    blocks = _mapped_blocks(data, mmap.ALLOCATIONGRANULARITY + 1234)
    assert b"".join(blocks) == data
    assert len(blocks) > 2
    assert all(len(block) % len(line) == 0 for block in blocks)


def test_a_line_longer_than_a_block_grows_the_block() -> None:
    data = b"short\n" + b"y" * 5000 + b"\nend\n"
    blocks = _mapped_blocks(data, 64)
    assert b"".join(blocks) == data
    assert any(len(block) > 5000 for block in blocks)


def test_gzip_and_empty_files_are_not_mapped(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "access_log.gz"
    packed.write_bytes(gzip.compress(b"line\n"))
    with scan.open_binary(packed) as stream:
        assert not scan._is_regular_file(stream)
    assert _mapped_blocks(b"", 64) == []


def test_only_files_that_stopped_changing_are_memory_mapped(tmp_path: Path) -> None:
    # A live log may be truncated under a map, which would kill the process (SIGBUS).
    log = tmp_path / "access_log"
    log.write_bytes(b"line\n")
    with log.open("rb") as stream:
        assert not scan._settled(stream)
    old = time.time() - scan.SETTLED_S - 60
    os.utime(log, (old, old))
    with log.open("rb") as stream:
        assert scan._settled(stream)
