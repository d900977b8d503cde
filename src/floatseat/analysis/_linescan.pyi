"""Typing of the C extension `_linescan.c`."""

from typing import Any

from typing_extensions import Buffer

ABI: int

class Column:
    """A primitive column in C memory, exported once to Polars through the Arrow C interface."""

    @property
    def length(self) -> int: ...
    def __arrow_c_array__(
        self, requested_schema: object | None = None
    ) -> tuple[object, object]: ...

def scan(
    block: Buffer,
    code: bytes,
    sets: bytes,
    lits: bytes,
    validate: int,
    polling: int,
    extract: int,
    poll_mode: int,
    target_slot: int,
    prefixes: tuple[bytes, ...],
    context: bytes | None,
    fused: bool,
    poll_slot: int,
    poll_prefixes: tuple[bytes, ...],
    /,
) -> dict[str, Any]: ...
def match(
    line: Buffer, code: bytes, sets: bytes, lits: bytes, entry: int, /
) -> tuple[int, tuple[int, int, int, int, int, int, int, int, int, int]]: ...
