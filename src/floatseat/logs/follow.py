"""Follow growing log files the way `tail -F` does, and resume after a restart.

`LogFollower` watches the files that match some glob patterns (a node's access logs, its
security log) and hands out every complete line once:

- **Growth**: new bytes are read from where the last poll stopped; a line without its
  newline yet waits for the next poll, so a line is never cut in two.
- **Rotation by rename** (Log4j's `atlassian-jira-security.log` → `.1`): the follower keeps
  the old file open, drains what was written to it before the rename, then reads the new
  file from its start.
- **Gone** (deleted by retention, or renamed to a name no pattern matches) before it was
  read to its end, say while the agent's spool was full: the open handle still reaches
  every byte, so the file stays open and is read to its end, one bounded chunk a poll as
  any file, before it is let go. Its position is never saved: a deleted file's inode may
  come back as another file, and its unread rest cannot be reached after a restart anyway.
- **Truncation** (`copytruncate`): a file shorter than the position read so far is read
  again from its start.
- **New files** (Tomcat's daily `access_log.YYYY-MM-DD`): read from their start, wherever
  they appear after the follower started.
- **Restart**: `positions()` is what a caller saves once it has acted on the lines; given
  back to a new follower, reading goes on exactly there. A file is recognised by its device,
  inode and the hash of its first bytes (inodes are reused), also under a new name after a
  rotation during the downtime, so nothing is replayed or skipped.

It polls (no inotify): `poll()` costs one `stat` per file, and the caller decides how often
to call it. A file that cannot be read is reported by `unreadable`, not raised, so one
broken node never stops the others.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["FilePosition", "FollowedLine", "LogFollower"]

_HEAD_BYTES = 256  # enough to tell two log files apart: their first line carries a time
_MAX_READ = 8 << 20  # per file per poll, so one huge backlog cannot starve the others


@dataclass(frozen=True)
class FilePosition:
    """How far a file has been read: saved by the caller, given back after a restart."""

    path: str
    device: int
    inode: int
    offset: int  # bytes consumed: always the end of a complete line
    line: int  # lines consumed, for file:line in messages
    head: str  # sha256 of the file's first `head_length` bytes
    head_length: int

    def to_json(self) -> dict[str, str | int]:
        return {
            "path": self.path,
            "device": self.device,
            "inode": self.inode,
            "offset": self.offset,
            "line": self.line,
            "head": self.head,
            "head_length": self.head_length,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FilePosition:
        def number(key: str) -> int:
            value = data.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"saved log position: {key} must be a non-negative integer")
            return value

        path, head = data.get("path"), data.get("head")
        if not isinstance(path, str) or not isinstance(head, str):
            raise ValueError("saved log position: path and head must be strings")
        return cls(
            path,
            number("device"),
            number("inode"),
            number("offset"),
            number("line"),
            head,
            number("head_length"),
        )


@dataclass(frozen=True)
class FollowedLine:
    """One complete line, without its line ending, and where it came from."""

    path: str
    line: int  # 1-based line number in that file
    text: str  # decoded as UTF-8; bytes that are not UTF-8 are replaced, never fatal


@dataclass
class _Followed:
    path: str  # the name it had when it was opened
    handle: BinaryIO
    device: int
    inode: int
    offset: int
    line: int
    head: str
    head_length: int
    pending: bytes = b""  # read but not yet a complete line
    at_end: bool = False  # the last read reached the end of the file (or failed)

    def position(self) -> FilePosition:
        return FilePosition(
            self.path, self.device, self.inode, self.offset, self.line, self.head, self.head_length
        )


class LogFollower:
    """Follow every file matching `patterns` (globs, `**` allowed).

    `positions` are those a previous follower saved; given any, this is a resume, and a
    file without a saved position appeared during the downtime, so it is read from its
    start. On a first start (no positions), files already there are read from their
    start when `from_start`, else from their current end: what was written before
    floatseat ran is history, for `floatseat analyze`. Files that appear later are always
    read from their start.

    A fully read file that has not been written for `dormant_after_s` (by file times, not
    a clock: older than the newest followed file by that much), such as yesterday's
    access log, is closed and only `stat`ed until it changes.
    """

    def __init__(
        self,
        patterns: Iterable[str],
        positions: Iterable[FilePosition] = (),
        *,
        from_start: bool = False,
        dormant_after_s: float = 3600.0,
    ) -> None:
        self.patterns = tuple(str(p) for p in patterns)
        self.unreadable: dict[str, str] = {}  # path -> why, while it cannot be read
        self._saved = {(p.device, p.inode): p for p in positions}
        self._resuming = bool(self._saved)
        self._from_start = from_start
        self._dormant_after_s = dormant_after_s
        self._files: dict[str, _Followed] = {}  # open, by current path
        self._dormant: dict[str, FilePosition] = {}  # closed, fully read, by path
        # Open, no longer under their name (deleted, renamed away), not yet read to the end:
        # oldest first. Never in positions().
        self._draining: list[_Followed] = []
        self._started = False

    def close(self) -> None:
        for followed in [*self._draining, *self._files.values()]:
            followed.handle.close()
        self._files.clear()
        self._draining.clear()

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def positions(self) -> list[FilePosition]:
        """Where each followed file stands: save these after acting on the lines."""
        if not self._started:  # nothing read yet: what was given still holds
            return sorted(self._saved.values(), key=lambda p: p.path)
        return sorted(
            [*self._dormant.values(), *(f.position() for f in self._files.values())],
            key=lambda p: p.path,
        )

    def poll(self) -> list[FollowedLine]:
        """Every complete line written since the last poll, file by file.

        Within a file, lines come in file order. What a file received before it was
        rotated away comes before its successor's lines; files first seen together come
        oldest (by modification time) first.
        """
        first = not self._started
        self._started = True
        lines: list[FollowedLine] = []
        present = self._matching()
        for path in list(self._files):
            if path not in present:  # deleted, or renamed to a name no pattern matches
                self._draining.append(self._files.pop(path))
        for path in [p for p in self._dormant if p not in present]:
            del self._dormant[path]
        stats: dict[str, os.stat_result] = {}
        for path in present:
            try:
                stats[path] = os.stat(path)
            except OSError as error:
                self.unreadable[path] = str(error)
        for path, stat in stats.items():
            followed = self._files.get(path)
            if followed is not None and (followed.device, followed.inode) != (
                stat.st_dev,
                stat.st_ino,
            ):
                self._draining.append(self._files.pop(path))
        # Rotations first: every file no longer under its name gives a chunk before any
        # other file is read. One found under a name a pattern matches (a rotation) is read
        # on under that name from where it stands; one gone is kept open until its end.
        here = {(stat.st_dev, stat.st_ino) for stat in stats.values()}
        draining, self._draining = self._draining, []
        for followed in draining:
            lines.extend(self._read(followed))
            if followed.at_end or (followed.device, followed.inode) in here:
                self._retire(followed)
            else:
                self._draining.append(followed)
        # Oldest first, so that a first read of several files keeps their order.
        for path, stat in sorted(stats.items(), key=lambda item: (item[1].st_mtime_ns, item[0])):
            lines.extend(self._poll_path(path, stat, first))
        self._put_to_sleep(stats)
        return lines

    # -- internals -------------------------------------------------------------------------

    def _matching(self) -> set[str]:
        found: set[str] = set()
        for pattern in self.patterns:
            found.update(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        return found

    def _poll_path(self, path: str, stat: os.stat_result, first: bool) -> list[FollowedLine]:
        followed = self._files.get(path)
        if followed is None:
            dormant = self._dormant.get(path)
            if dormant is not None:
                unchanged = (dormant.device, dormant.inode) == (stat.st_dev, stat.st_ino)
                if unchanged and stat.st_size == dormant.offset:
                    return []
                del self._dormant[path]
                self._saved[(dormant.device, dormant.inode)] = dormant
            followed = self._open(path, stat, first)
            if followed is None:
                return []
            self._files[path] = followed
        elif stat.st_size < followed.handle.tell():  # truncated in place: start again
            followed.handle.seek(0)
            followed.offset = followed.line = 0
            followed.pending = b""
            followed.head, followed.head_length = _head(followed.handle)
        return self._read(followed)

    def _open(self, path: str, stat: os.stat_result, first: bool) -> _Followed | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open to survive a rename
        except OSError as error:
            self.unreadable[path] = str(error)
            return None
        identity = (stat.st_dev, stat.st_ino)
        saved = self._saved.get(identity)
        try:
            if (
                saved is not None
                and saved.offset <= stat.st_size
                and _starts_with(handle, saved.head, saved.head_length)
            ):
                offset, line = saved.offset, saved.line
            elif first and not self._resuming and not self._from_start:
                offset, line = _end_of_last_line(handle, stat.st_size)
            else:
                offset, line = 0, 0
            head, head_length = _head(handle)
            handle.seek(offset)
        except OSError as error:  # tried again next poll, the saved position still kept
            handle.close()
            self.unreadable[path] = str(error)
            return None
        self.unreadable.pop(path, None)
        self._saved.pop(identity, None)
        return _Followed(path, handle, stat.st_dev, stat.st_ino, offset, line, head, head_length)

    def _read(self, followed: _Followed) -> list[FollowedLine]:
        try:
            chunk = followed.handle.read(_MAX_READ)
        except OSError as error:
            self.unreadable[followed.path] = str(error)
            followed.at_end = True
            return []
        followed.at_end = len(chunk) < _MAX_READ
        if chunk and followed.head_length < _HEAD_BYTES:  # a young file: widen its head
            with contextlib.suppress(OSError):  # else the narrower head serves a while longer
                followed.head, followed.head_length = _head(followed.handle)
        data = followed.pending + chunk
        end = data.rfind(b"\n")
        if end < 0:
            followed.pending = data
            return []
        followed.pending = data[end + 1 :]
        out: list[FollowedLine] = []
        for raw in data[:end].split(b"\n"):
            followed.line += 1
            followed.offset += len(raw) + 1
            text = raw[:-1] if raw.endswith(b"\r") else raw
            out.append(FollowedLine(followed.path, followed.line, text.decode("utf-8", "replace")))
        return out

    def _retire(self, followed: _Followed) -> None:
        """Close a file that was renamed away; should a pattern match its new name, reading
        goes on from here instead of from its start. A deleted file is forgotten: its inode
        may come back as another file, whose lines a saved position would skip."""
        try:
            deleted = os.fstat(followed.handle.fileno()).st_nlink == 0
        except OSError:
            deleted = True
        followed.handle.close()
        if not deleted:
            self._saved[(followed.device, followed.inode)] = followed.position()

    def _put_to_sleep(self, stats: Mapping[str, os.stat_result]) -> None:
        if not self._files:
            return
        newest = max(s.st_mtime for s in stats.values())
        for path, followed in list(self._files.items()):
            stat = stats.get(path)
            if (
                stat is not None
                and not followed.pending
                and followed.offset == stat.st_size
                and newest - stat.st_mtime > self._dormant_after_s
            ):
                self._dormant[path] = followed.position()
                followed.handle.close()
                del self._files[path]


def _head(handle: BinaryIO) -> tuple[str, int]:
    """The hash of the file's first bytes (at most `_HEAD_BYTES`), and how many there were.

    Read with `pread`, which leaves the handle where it is even when it fails: a failed
    seek back would make the next read start at the top, and its lines come twice."""
    data = os.pread(handle.fileno(), _HEAD_BYTES, 0)
    return hashlib.sha256(data).hexdigest(), len(data)


def _starts_with(handle: BinaryIO, head: str, length: int) -> bool:
    """Whether the file's first `length` bytes still hash to `head`: the same file."""
    data = os.pread(handle.fileno(), length, 0)
    return len(data) == length and hashlib.sha256(data).hexdigest() == head


def _end_of_last_line(handle: BinaryIO, size: int) -> tuple[int, int]:
    """The offset just after the file's last complete line, and the lines up to there.

    A half-written last line is left for the next poll, so it is read whole.
    """
    handle.seek(0)
    lines = 0
    offset = 0
    consumed = 0
    while consumed < size:
        block = handle.read(min(size - consumed, 1 << 20))
        if not block:
            break
        newlines = block.count(b"\n")
        if newlines:
            lines += newlines
            offset = consumed + block.rfind(b"\n") + 1
        consumed += len(block)
    return offset, lines


def following(paths: Iterable[str | Path], names: Iterable[str]) -> list[str]:
    """Glob patterns for the files called `names*` under each of `paths` (recursively)."""
    return [str(Path(p) / "**" / f"{n}*") for p in paths for n in names]
