"""`LogFollower`: tail -F semantics and exact resumption, on real files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_operations)
def test_every_complete_line_is_handed_out_once_in_order(operations: list[tuple]) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as folder:
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
        try:
            for kind, lines, finish in operations:
                if kind == "write":
                    texts = []
                    for text in lines:  # each line unique, to check order per file
                        counter += 1
                        texts.append(f"{counter}:{text}")
                    counter += 1
                    tail = "" if finish else f"{counter}-"
                    _append(log, "".join(f"{text}\n" for text in texts) + tail)
                    for text in texts:
                        written.append((generation, partial + text))
                        partial = ""
                    partial += tail
                elif kind == "poll":
                    seen += _texts(follower.poll())
                elif kind == "rotate":
                    if partial:  # Log4j finishes its line before it rolls the file
                        _append(log, "\n")
                        written.append((generation, partial))
                        partial = ""
                    generation += 1
                    log.rename(base / f"atlassian-jira-security.log.{generation}")
                    log.write_text("")
                else:
                    saved = follower.positions()
                    follower.close()
                    follower = LogFollower(patterns, saved, from_start=True)
            seen += _texts(follower.poll())
        finally:
            follower.close()
        # Each line once, and in file order within each file. (Files first read together
        # may come in either order when their modification times tie.)
        assert sorted(seen) == sorted(text for _, text in written)
        for g in range(generation + 1):
            mine = [text for gen, text in written if gen == g]
            assert [text for text in seen if text in set(mine)] == mine
