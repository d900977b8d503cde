"""`LogFollower`: tail -F semantics and exact resumption, on real files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from faults import failing_first
from hypothesis import example, given, settings
from hypothesis import strategies as st

from floatseat.logs import follow
from floatseat.logs.follow import FilePosition, FollowedLine, LogFollower, following


def _texts(lines: list[FollowedLine]) -> list[str]:
    return [line.text for line in lines]


def _append(path: Path, data: str) -> None:
    with path.open("ab") as handle:
        handle.write(data.encode())


def test_growth_hands_out_complete_lines_once(tmp_path: Path) -> None:
    log = tmp_path / "access_log.2026-11-30"
    log.write_text("")
    with LogFollower([str(tmp_path / "access_log*")]) as follower:
        assert follower.poll() == []
        _append(log, "one\ntw")
        assert _texts(follower.poll()) == ["one"]
        _append(log, "o\r\nthree\n")
        lines = follower.poll()
        assert _texts(lines) == ["two", "three"]
        assert [line.line for line in lines] == [2, 3]
        assert follower.poll() == []


def test_first_start_skips_history_but_not_a_half_written_line(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text("old 1\nold 2\nhalf")
    with LogFollower([str(log)]) as follower:
        assert follower.poll() == []
        _append(log, " done\nnew\n")
        lines = follower.poll()
        assert _texts(lines) == ["half done", "new"]
        assert [line.line for line in lines] == [3, 4]


def test_from_start_reads_history(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text("old 1\nold 2\n")
    with LogFollower([str(log)], from_start=True) as follower:
        assert _texts(follower.poll()) == ["old 1", "old 2"]


def test_rotation_by_rename_drains_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "atlassian-jira-security.log"
    log.write_text("")
    with LogFollower(following([tmp_path], ["atlassian-jira-security.log"])) as follower:
        follower.poll()
        _append(log, "a\n")
        assert _texts(follower.poll()) == ["a"]
        _append(log, "b\n")
        log.rename(tmp_path / "atlassian-jira-security.log.1")
        log.write_text("c\n")
        assert _texts(follower.poll()) == ["b", "c"]
        assert follower.poll() == []  # the rotated file is not read again under its new name


def test_rotation_to_a_name_no_pattern_matches(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        _append(log, "a\n")
        log.rename(tmp_path / "old.txt")
        log.write_text("b\n")
        assert _texts(follower.poll()) == ["a", "b"]


_CHUNK = 64  # bytes per file per poll in the tests below: a backlog of a few hundred bytes


@pytest.mark.parametrize("away", ["deleted", "renamed", "replaced"])
def test_a_file_gone_while_behind_is_read_to_its_end_then_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, away: str
) -> None:
    # Retention deletes the old file (or renames it to a name no pattern matches, or rolls
    # it away and starts a new one) while the follower is behind, say while the agent's
    # spool was full: the open handle still reaches every byte, so every line comes out.
    monkeypatch.setattr(follow, "_MAX_READ", _CHUNK)
    log = tmp_path / "access_log.2026-11-29"
    log.write_text("")
    written = [f"line {n:04d}" for n in range(100)]  # 1,000 bytes: 16 chunks
    with LogFollower([str(tmp_path / "access_log*")]) as follower:
        follower.poll()
        _append(log, "".join(f"{text}\n" for text in written))
        polls = [follower.poll()]  # a little
        assert 0 < len(polls[0]) < len(written)
        if away == "deleted":
            log.unlink()
        else:
            log.rename(tmp_path / "archived-access.txt")
            if away == "replaced":
                log.write_text("new 1\nnew 2\n")
        polls += [follower.poll() for _ in range(30)]
        lines = [line for poll in polls for line in poll]
        old = [line for line in lines if line.text.startswith("line")]
        assert _texts(old) == written  # each once, in order
        assert [line.line for line in old] == list(range(1, 101))
        assert all(line.path == str(log) for line in old)
        for poll in polls:  # still one bounded chunk a poll: 64 bytes, 10 a line
            assert len([line for line in poll if line.text.startswith("line")]) <= 7
        if away == "replaced":
            assert [line.text for line in lines if line.text.startswith("new")] == [
                "new 1",
                "new 2",
            ]
        assert not follower._draining  # let go once read to its end
        assert [p.path for p in follower.positions()] == ([str(log)] if away == "replaced" else [])


def test_a_file_renamed_away_and_back_while_behind_goes_on_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow, "_MAX_READ", _CHUNK)
    log = tmp_path / "access_log"
    log.write_text("")
    written = [f"line {n:04d}" for n in range(40)]
    with LogFollower([str(tmp_path / "access_log*")]) as follower:
        follower.poll()
        _append(log, "".join(f"{text}\n" for text in written))
        seen = follower.poll()
        log.rename(tmp_path / "elsewhere")
        seen += follower.poll()
        assert follower._draining  # gone, not read to its end: still open
        (tmp_path / "elsewhere").rename(tmp_path / "access_log.1")
        for _ in range(20):
            seen += follower.poll()
        assert _texts(seen) == written
        assert not follower._draining


def test_a_gone_file_is_never_offered_for_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deleted file's inode is free for the next file: a saved position for it could skip
    # that file's lines. Its unread rest cannot be read after a restart anyway.
    monkeypatch.setattr(follow, "_MAX_READ", _CHUNK)
    log = tmp_path / "access_log"
    log.write_text("")
    with LogFollower([str(tmp_path / "access_log*")]) as follower:
        follower.poll()
        _append(log, "".join(f"line {n:04d}\n" for n in range(40)))
        follower.poll()
        log.unlink()
        follower.poll()
        assert follower._draining and follower.positions() == []
        for _ in range(20):
            follower.poll()
        assert not follower._draining and follower.positions() == []
        assert not follower._saved  # nor kept to resume a file that reuses its inode


def test_truncation_reads_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text("")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        _append(log, "first long line\n")
        assert _texts(follower.poll()) == ["first long line"]
        log.write_text("x\n")  # truncated and rewritten in place (copytruncate)
        assert _texts(follower.poll()) == ["x"]


def test_new_files_are_read_from_their_start(tmp_path: Path) -> None:
    node = tmp_path / "node1"
    node.mkdir()
    (node / "access_log.2026-11-29").write_text("yesterday\n")
    with LogFollower(following([tmp_path], ["access_log"])) as follower:
        assert follower.poll() == []
        (node / "access_log.2026-11-30").write_text("today 1\ntoday 2\n")
        (tmp_path / "node2").mkdir()
        (tmp_path / "node2" / "access_log.2026-11-30").write_text("other node\n")
        assert sorted(_texts(follower.poll())) == ["other node", "today 1", "today 2"]


def test_resume_goes_on_exactly_where_the_saved_positions_say(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text("")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        _append(log, "a\nb\npart")
        assert _texts(follower.poll()) == ["a", "b"]
        saved = [FilePosition.from_json(p.to_json()) for p in follower.positions()]
    _append(log, "ial\nc\n")
    with LogFollower([str(log)], saved) as follower:
        lines = follower.poll()
        assert _texts(lines) == ["partial", "c"]
        assert [line.line for line in lines] == [3, 4]


def test_a_read_error_while_resuming_keeps_the_saved_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "access_log"
    log.write_text("")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        _append(log, "a\n")
        follower.poll()
        saved = follower.positions()
    _append(log, "b\nc\n")
    broken = failing_first(follow._starts_with, OSError(5, "Input/output error"))
    monkeypatch.setattr(follow, "_starts_with", broken)
    with LogFollower([str(log)], saved) as follower:
        assert follower.poll() == [] and str(log) in follower.unreadable
        lines = follower.poll()  # not from the start, nor from the end: where it stood
        assert _texts(lines) == ["b", "c"] and [line.line for line in lines] == [2, 3]
        assert follower.unreadable == {}


def test_a_read_error_while_widening_a_young_files_head_loses_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "access_log"
    log.write_text("")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        broken = failing_first(follow._head, OSError(5, "Input/output error"))
        monkeypatch.setattr(follow, "_head", broken)
        _append(log, "a\nb\n")
        assert _texts(follower.poll()) == ["a", "b"]
        _append(log, "c\n")
        assert _texts(follower.poll()) == ["c"]  # not "a", "b" again from the top


def test_resume_after_a_rotation_during_the_downtime(tmp_path: Path) -> None:
    log = tmp_path / "atlassian-confluence.log"
    log.write_text("")
    patterns = following([tmp_path], ["atlassian-confluence.log"])
    with LogFollower(patterns) as follower:
        follower.poll()
        _append(log, "a\n")
        follower.poll()
        saved = follower.positions()
    _append(log, "b\n")
    log.rename(tmp_path / "atlassian-confluence.log.1")
    log.write_text("c\n")
    with LogFollower(patterns, saved) as follower:
        assert sorted(_texts(follower.poll())) == ["b", "c"]


def test_a_different_file_under_a_saved_inode_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_text("first file, line 1\n")
    with LogFollower([str(log)], from_start=True) as follower:
        follower.poll()
        saved = follower.positions()
    log.write_text("another file with longer content\nand more\n")  # same inode, new content
    with LogFollower([str(log)], saved) as follower:
        assert _texts(follower.poll()) == ["another file with longer content", "and more"]


def test_old_files_are_closed_and_woken_when_they_grow(tmp_path: Path) -> None:
    old = tmp_path / "access_log.2026-11-28"
    new = tmp_path / "access_log.2026-11-30"
    old.write_text("")
    new.write_text("")
    os.utime(old, (1_000_000, 1_000_000))
    with LogFollower([str(tmp_path / "access_log*")], dormant_after_s=60) as follower:
        follower.poll()
        assert len(follower._files) == 1  # the old one sleeps
        assert {p.path for p in follower.positions()} == {str(old), str(new)}
        _append(old, "late line\n")
        assert _texts(follower.poll()) == ["late line"]


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "access_log"
    log.write_bytes(b"")
    with LogFollower([str(log)]) as follower:
        follower.poll()
        with log.open("ab") as handle:
            handle.write(b"caf\xe9\n")
        assert _texts(follower.poll()) == ["caf\ufffd"]


def test_a_saved_position_must_be_well_formed() -> None:
    good = FilePosition("a", 1, 2, 3, 4, "h", 5).to_json()
    for key, value in [("offset", -1), ("line", "3"), ("path", 7), ("head_length", True)]:
        broken = {**good, key: value}
        try:
            FilePosition.from_json(broken)
        except ValueError as error:
            assert key in str(error) or "path" in str(error)
        else:
            raise AssertionError(f"{key}={value!r} accepted")


# -- every line once, whatever happens between polls ---------------------------------------

_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.lists(st.text("abc", max_size=3), max_size=4), st.booleans()
        ),
        st.tuples(st.just("poll"), st.none(), st.none()),
        st.tuples(st.just("rotate"), st.none(), st.none()),
        st.tuples(st.just("restart"), st.none(), st.none()),
        # Retention: the oldest rotated file deleted (True) or renamed to a name no pattern
        # matches (False), however far behind the follower is.
        st.tuples(st.just("remove"), st.none(), st.booleans()),
    ),
    max_size=25,
)


# Bytes read per file per poll: mostly small, so that the follower falls behind.
_max_reads = st.sampled_from([1, 3, 8, follow._MAX_READ])


_BEHIND = [("write", ["a", "b"], True), ("poll", None, None), ("rotate", None, None)]


@settings(max_examples=150, deadline=None)
@given(_operations, _max_reads)
@example([*_BEHIND, ("remove", None, True)], 1)  # deleted while behind
@example([*_BEHIND, ("poll", None, None), ("remove", None, False)], 1)  # renamed away
def test_every_complete_line_is_handed_out_once_in_order(
    operations: list[tuple],  # type: ignore[type-arg]
    max_read: int,
) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(follow, "_MAX_READ", max_read)  # small: the follower falls behind
        base = Path(folder)
        log = base / "atlassian-jira-security.log"
        log.write_text("")
        patterns = following([base], ["atlassian-jira-security.log"])
        follower = LogFollower(patterns, from_start=True)
        written: list[tuple[int, str]] = []  # (file generation, line), as completed
        partial = ""
        generation = 0
        counter = 0
        seen: list[str] = []
        opened: set[int] = set()  # generations the running follower has had open
        removed: list[int] = []  # generations deleted or renamed away, oldest first
        whole: set[int] = set()  # removed while open, no restart since: read to the end
        try:
            for kind, lines, flag in operations:
                if kind == "write":
                    texts = []
                    for text in lines:  # each line unique, to check order per file
                        counter += 1
                        texts.append(f"{counter}:{text}")
                    counter += 1
                    tail = "" if flag else f"{counter}-"
                    _append(log, "".join(f"{text}\n" for text in texts) + tail)
                    for text in texts:
                        written.append((generation, partial + text))
                        partial = ""
                    partial += tail
                elif kind == "poll":
                    seen += _texts(follower.poll())
                    opened |= set(range(len(removed), generation + 1))
                elif kind == "rotate":
                    if partial:  # Log4j finishes its line before it rolls the file
                        _append(log, "\n")
                        written.append((generation, partial))
                        partial = ""
                    generation += 1
                    log.rename(base / f"atlassian-jira-security.log.{generation}")
                    log.write_text("")
                elif kind == "remove":
                    oldest = len(removed)
                    if oldest < generation:  # the live file is never removed
                        rotated = base / f"atlassian-jira-security.log.{oldest + 1}"
                        if flag:
                            rotated.unlink()
                        else:
                            rotated.rename(base / f"archived-{oldest}")
                        removed.append(oldest)
                        if oldest in opened:
                            whole.add(oldest)
                else:
                    saved = follower.positions()
                    follower.close()
                    follower = LogFollower(patterns, saved, from_start=True)
                    opened.clear()
                    whole.clear()  # a removed file's unread rest is out of reach now
            # Poll until nothing is left: a line of n bytes takes at most n / max_read polls.
            longest = max((len(text) for _, text in written), default=0)
            quiet = 0
            while quiet <= (longest + 1) // max_read + 1:
                got = _texts(follower.poll())
                seen += got
                quiet = 0 if got else quiet + 1
        finally:
            follower.close()
        # Each line once, and in file order within each file. (Files first read together
        # may come in either order when their modification times tie.) A removed file is
        # read to its end unless a restart came before that end.
        assert len(seen) == len(set(seen))
        assert set(seen) <= {text for _, text in written}
        for g in range(generation + 1):
            mine = [text for gen, text in written if gen == g]
            got = [text for text in seen if text in set(mine)]
            if g in removed and g not in whole:
                assert got == mine[: len(got)]
            else:
                assert got == mine
