"""The agent's spool: numbered batches on disk until the service has them, and its state.

Layout of the spool folder (`--spool`, default /var/lib/floatseat-agent)::

    state.json              agent_id, next_seq, the followers' positions
    spool/000000000041.json one batch each, named by its sequence number
    lock                    held (flock) while an agent runs on this folder

The protocol, and why it loses nothing and counts nothing twice:

1. **Read.** The followers hand out the lines written since the positions in `state.json`.
2. **Spool.** The sightings are cut into batches numbered `next_seq`, `next_seq + 1`, ...
   Each is written to `spool/<seq>.json` (a temporary file, fsync, rename); then the folder
   is fsynced.
3. **Commit.** `state.json` is replaced (temporary file, fsync, rename, fsync of the folder)
   with `next_seq` past those batches and the followers' positions after the lines that
   made them. Only this step makes the batches real.
4. **Send.** Spooled batches go out oldest first, one at a time; a file is deleted only
   after a 2xx answer. The service stores a batch and its number in one transaction and
   answers a number it has seen already with `duplicate: true` (also a 2xx): so a batch
   sent again because its answer was lost is counted once. A batch is never sent before
   every lower one was answered, so the service's "last number" only moves forward.

A crash between 2 and 3 leaves files numbered `next_seq` or more: at the next start they
are deleted (never sent: step 4 comes after 3), the followers resume from the committed
positions, and the same lines make the same batches again. A crash between 3 and 4, or
during 4, leaves committed files, sent at the next start. Positions move on without a batch
only past lines that made no sighting (anonymous, polling), which are safe to skip.

The spool is bounded (`max_bytes`): when it is full, the agent stops reading the logs (the
followers' positions keep the place, the logs themselves are the buffer) until batches have
been delivered; nothing is dropped. (The service leaves out the sightings that are more
than a week old when their batch finally reaches it: they no longer matter to any seat.)

A write that fails (a full disk) is not a crash: the agent reloads the spool's committed
state, its followers go back to the committed positions, and reading waits a while.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from floatseat.agent.batches import Batch

__all__ = ["AgentState", "Spool", "SpoolLocked", "batch_file_name", "seq_of_file"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
BATCHES_DIR = "spool"
LOCK_FILE = "lock"
_TMP_PREFIX = ".tmp-"
_SEQ_DIGITS = 12


class SpoolLocked(RuntimeError):
    """Another agent runs on this spool folder."""


def batch_file_name(seq: int) -> str:
    """`000000000041.json`: names sort in sequence order."""
    if seq < 1:
        raise ValueError("sequence numbers start at 1")
    return f"{seq:0{_SEQ_DIGITS}d}.json"


def seq_of_file(name: str) -> int | None:
    """The sequence number a batch file's name carries, or None for any other name."""
    stem, dot, suffix = name.partition(".")
    if dot != "." or suffix != "json" or len(stem) < _SEQ_DIGITS or not stem.isdigit():
        return None
    seq = int(stem)
    return seq if seq >= 1 else None


@dataclass
class AgentState:
    """What `state.json` holds: committed with the batches it numbers (step 3 above)."""

    agent_id: str
    next_seq: int = 1
    positions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls) -> AgentState:
        return cls(agent_id=secrets.token_hex(12))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "agent_id": self.agent_id,
            "next_seq": self.next_seq,
            "positions": self.positions,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentState:
        agent_id, next_seq, positions = (
            data.get("agent_id"),
            data.get("next_seq"),
            data.get("positions"),
        )
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError("agent_id must be a string")
        if not isinstance(next_seq, int) or isinstance(next_seq, bool) or next_seq < 1:
            raise ValueError("next_seq must be a positive integer")
        if not isinstance(positions, dict):
            raise ValueError("positions must be an object")
        return cls(agent_id, next_seq, positions)


class Spool:
    """The spool folder: batch files, their total size, and `state.json`.

    Only one process may use a folder: `open()` takes its lock (and raises `SpoolLocked`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batches_dir = root / BATCHES_DIR
        self._lock: BinaryIO | None = None
        self._pending: dict[int, int] = {}  # seq -> file size, for the committed batches
        self.size_bytes = 0

    # -- life ------------------------------------------------------------------------------

    def open(self) -> AgentState:
        """Lock the folder, load the state (a fresh one on a first start), and delete the
        batches that state never committed (seq >= next_seq) and left-over temporary files."""
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.root / LOCK_FILE).open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise SpoolLocked(f"another floatseat agent runs on {self.root}") from None
        self._lock = lock
        try:
            return self._recover()
        except BaseException:
            self.close()
            raise

    def reload(self) -> AgentState:
        """After a failed write: the state as committed on disk, and only its batches."""
        assert self._lock is not None, "open() first"
        return self._recover()

    def _recover(self) -> AgentState:
        state = self._load_state()
        self._pending.clear()
        self.size_bytes = 0
        uncommitted = 0
        for entry in os.scandir(self.batches_dir):
            if entry.name.startswith(_TMP_PREFIX):
                os.unlink(entry.path)
                continue
            seq = seq_of_file(entry.name)
            if seq is None:
                continue
            if seq >= state.next_seq:
                os.unlink(entry.path)  # spooled, never committed: the lines are read again
                uncommitted += 1
                continue
            size = entry.stat().st_size
            self._pending[seq] = size
            self.size_bytes += size
        if uncommitted:
            _fsync_dir(self.batches_dir)
            log.info(
                "spool: %d uncommitted batches deleted; their lines are read again", uncommitted
            )
        return state

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batches ---------------------------------------------------------------------------

    def pending(self) -> list[int]:
        """The committed batches not yet delivered, oldest first."""
        return sorted(self._pending)

    def spool(self, batches: list[Batch], state: AgentState) -> None:
        """Steps 2 and 3: write `batches`, then commit `state` (whose `next_seq` is past them).

        The files count as pending once the state is committed."""
        if not batches:
            self.save_state(state)
            return
        if any(b.seq >= state.next_seq for b in batches):
            raise ValueError("the state to commit must number past its batches")
        sizes = {}
        for batch in batches:
            raw = batch.encode()
            _write_atomically(self.batches_dir / batch_file_name(batch.seq), raw, sync_dir=False)
            sizes[batch.seq] = len(raw)
        _fsync_dir(self.batches_dir)
        self.save_state(state)
        self._pending.update(sizes)
        self.size_bytes += sum(sizes.values())

    def read(self, seq: int) -> Batch:
        """A committed batch; ValueError if its file is damaged, OSError if unreadable."""
        return Batch.decode((self.batches_dir / batch_file_name(seq)).read_bytes())

    def delivered(self, seq: int) -> None:
        """The service has the batch (step 4): forget it."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.batches_dir / batch_file_name(seq))
        self.size_bytes -= self._pending.pop(seq, 0)

    def set_aside(self, seq: int) -> Path:
        """Move a damaged batch file out of the way (kept for a human), so the rest can go."""
        path = self.batches_dir / batch_file_name(seq)
        aside = path.with_name(path.name + ".damaged")
        os.replace(path, aside)
        self.size_bytes -= self._pending.pop(seq, 0)
        return aside

    # -- state -----------------------------------------------------------------------------

    def save_state(self, state: AgentState) -> None:
        raw = json.dumps(state.to_json(), separators=(",", ":")).encode()
        _write_atomically(self.root / STATE_FILE, raw, sync_dir=True)

    def _load_state(self) -> AgentState:
        path = self.root / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return AgentState.fresh()
        try:
            return AgentState.from_json(json.loads(raw))
        except (ValueError, AttributeError) as error:
            # Written atomically, so only a damaged disk or a human gets here: refuse to
            # guess, since a new identity would send the same activity again.
            raise ValueError(f"{path} is damaged ({error}); move it away to start afresh") from None


def _write_atomically(path: Path, data: bytes, *, sync_dir: bool) -> None:
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    if sync_dir:
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def iter_batch_files(root: Path) -> Iterator[Path]:
    """The batch files in a spool folder, oldest first (for tools and tests)."""
    folder = root / BATCHES_DIR
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if seq_of_file(p.name) is not None)
