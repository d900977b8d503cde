"""Which files an analysis reads: paths, folders (recursive), globs and standard input."""

from __future__ import annotations

import fnmatch
import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# File names the products give their access logs (shared/reference/atlassian.md section 6).
ACCESS_LOG_PREFIXES = ("access_log", "conf_access_log", "confluence_access")


@dataclass(frozen=True)
class Source:
    """One input: a file, or standard input when `path` is None."""

    name: str
    path: Path | None


@dataclass(frozen=True)
class Discovery:
    sources: list[Source]
    problems: list[str]  # arguments that name nothing readable


def is_access_log_name(name: str, includes: Sequence[str]) -> bool:
    return name.startswith(ACCESS_LOG_PREFIXES) or any(
        fnmatch.fnmatch(name, pattern) for pattern in includes
    )


def discover(arguments: Iterable[str], includes: Sequence[str] = ()) -> Discovery:
    """Expand the command line's arguments into sources, each real file once.

    A file named on the command line is always read; in folders only access-log names (and
    `includes` globs) are, so that an atlassian-jira.log lying beside them is left alone.
    """
    sources: list[Source] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            sources.append(Source(str(path), path))

    for argument in arguments:
        if argument == "-":
            sources.append(Source("<stdin>", None))
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and is_access_log_name(p.name, includes)
            )
            if not found:
                problems.append(f"{argument}: no access logs in this folder")
            for p in found:
                add(p)
        elif path.is_file():
            add(path)
        elif path.exists():
            problems.append(f"{argument}: not a regular file")
        else:
            matches = sorted(glob.glob(argument, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                problems.append(f"{argument}: no such file or folder")
            for p in files:
                add(p)
    return Discovery(sources, problems)
