"""`floatseat analyze` end to end: inputs, outputs and errors, through the real CLI."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from floatseat.analysis.export import STABLE_KEYS
from floatseat.cli import app

runner = CliRunner()

JIRA = (
    '10.0.0.1 1x1x1 {user} [{day}/Mar/2026:{time} +0000] "GET {target} HTTP/1.1" 200 5 4 "-" '
    '"Mozilla/5.0" "s1"'
)


def jira(user: str, time: str, target: str = "/browse/A-1", day: str = "02") -> str:
    return JIRA.format(user=user, time=time, target=target, day=day)


def run(*args: str, input: str | bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    write(
        tmp_path / "node1" / "access_log.2026-03-02",
        [
            jira("ann", "10:00:00"),
            jira("bob", "10:10:00"),
            jira("-", "10:11:00"),
            jira("ann", "10:20:00", "/rest/quickreload/latest/1?since=2"),
        ],
    )
    write(tmp_path / "node2" / "access_log.2026-03-02", [jira("carl", "10:05:00")])
    # Lies beside the logs and must not be read as one.
    write(tmp_path / "node1" / "atlassian-jira.log", ["2026-03-02 10:00:00,000 INFO [main] x"])
    return tmp_path


def test_json_on_stdout_holds_the_json_alone_with_the_stable_keys(logs: Path) -> None:
    status, out, err = run("analyze", str(logs), "--json", "-", "--idle-timeout", "30m")
    assert status == 0, err
    report = json.loads(out)
    assert set(STABLE_KEYS) <= set(report)
    assert report["peak"] == 3
    assert report["peak_at"] == "2026-03-02T10:10:00+00:00"
    assert report["lines"] == 5
    assert report["malformed_lines"] == 0
    assert report["requests_counted"] == 3
    assert report["users_active"] == 3
    assert report["sessions"] == 3
    assert report["idle_timeout_s"] == 1800
    assert report["first_request_at"] == "2026-03-02T10:00:00+00:00"
    assert report["last_request_at"] == "2026-03-02T10:10:00+00:00"
    assert report["daily"] == [{"date": "2026-03-02", "active_users": 3, "peak": 3}]
    assert report["recommended_tier"] == 500
    assert "Peak of concurrent users" in err  # the summary went to stderr


def test_the_terminal_summary_shows_peak_tier_and_timeouts(logs: Path) -> None:
    status, out, _ = run("analyze", str(logs), "--registered", "30")
    assert status == 0
    assert "Peak of concurrent users: 3" in out
    assert "10.0% of 30 registered users" in out
    assert "Recommended tier: 500" in out
    for label in ("15m", "30m", "1h", "2h"):
        assert label in out


def test_tz_moves_days_and_times(logs: Path) -> None:
    status, out, _ = run("analyze", str(logs), "--json", "-", "--tz", "Asia/Tokyo")
    assert status == 0
    report = json.loads(out)
    assert report["peak_at"] == "2026-03-02T19:10:00+09:00"
    assert report["daily"][0]["date"] == "2026-03-02"


def test_csv_timeline_has_every_minute_with_its_maximum(logs: Path, tmp_path: Path) -> None:
    target = tmp_path / "timeline.csv"
    status, _, err = run("analyze", str(logs), "--csv", str(target), "--idle-timeout", "10m")
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert rows[0] == {"minute": "2026-03-02T10:00:00+00:00", "concurrent": "1"}
    by_minute = {r["minute"][11:16]: int(r["concurrent"]) for r in rows}
    # ann 10:00-10:10, carl 10:05-10:15, bob 10:10-10:20: at 10:10 ann has just left.
    assert by_minute["10:05"] == 2
    assert by_minute["10:10"] == 2
    assert by_minute["10:19"] == 1
    assert rows[-1]["minute"] == "2026-03-02T10:19:00+00:00"
    assert len(rows) == 20  # zero minutes would be included too


def test_tier_headroom_fixed_seats_and_saving(logs: Path) -> None:
    status, out, _ = run(
        "analyze", str(logs), "--json", "-", "--tiers", "2,4,6,10", "--headroom", "10%",
        "--fixed", "2", "--current-tier", "10", "--price-per-tier", "6=600,10=1000",
    )  # fmt: skip
    assert status == 0
    report = json.loads(out)
    # ceil(3 x 1.1) + 2 = 6, exactly (no float rounding up to 7).
    assert report["tier"]["required_seats"] == 6
    assert report["recommended_tier"] == 6
    assert report["tier"]["yearly_saving"] == 400


def test_a_peak_above_the_largest_tier_says_so(logs: Path) -> None:
    status, out, err = run("analyze", str(logs), "--json", "-", "--tiers", "1,2")
    assert status == 0
    assert json.loads(out)["recommended_tier"] is None
    assert "above the largest tier" in err


def test_gzip_is_detected_by_its_magic_bytes_not_its_name(logs: Path, tmp_path: Path) -> None:
    plain = logs / "node2" / "access_log.2026-03-02"
    packed = tmp_path / "other" / "access_log.2026-03-03"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    status, out, _ = run("analyze", str(packed), "--json", "-")
    assert status == 0
    assert json.loads(out)["users_active"] == 1


def test_a_file_reached_twice_is_read_once(logs: Path) -> None:
    again = logs / "node1" / "access_log.2026-03-02"
    status, out, _ = run("analyze", str(logs), str(again), "--json", "-")
    assert status == 0
    assert json.loads(out)["lines"] == 5


def test_standard_input_is_read_with_a_dash(logs: Path) -> None:
    data = (logs / "node1" / "access_log.2026-03-02").read_bytes()
    status, out, _ = run("analyze", "-", "--json", "-", input=data)
    assert status == 0
    assert json.loads(out)["users_active"] == 2


def test_globs_and_include_widen_what_folders_yield(logs: Path) -> None:
    write(logs / "custom" / "my-jira-access.txt", [jira("dora", "11:00:00")])
    status, out, _ = run("analyze", str(logs), "--include", "my-jira-*", "--json", "-")
    assert json.loads(out)["users_active"] == 4
    status, out, _ = run("analyze", str(logs / "node*" / "access_log.*"), "--json", "-")
    assert status == 0
    assert json.loads(out)["users_active"] == 3


def test_malformed_lines_are_counted_and_shown_with_file_and_line(tmp_path: Path) -> None:
    log = write(
        tmp_path / "access_log.1",
        [jira("ann", "10:00:00"), jira("bob", "10:01:00")[:40], "", jira("carl", "10:02:00")],
    )
    status, out, err = run("analyze", str(log), "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert (report["lines"], report["malformed_lines"]) == (3, 1)
    assert report["malformed_examples"] == [f"{log}:2"]
    assert f"{log}:2" in err


def test_bytes_that_are_not_utf8_do_not_stop_the_run(tmp_path: Path) -> None:
    log = tmp_path / "access_log.1"
    log.write_bytes(
        (jira("ann", "10:00:00") + "\n").encode()
        + jira("b\xffob", "10:01:00").encode("latin-1")
        + b"\n"
        + (jira("carl", "10:02:00") + "\n").encode()
    )
    status, out, _ = run("analyze", str(log), "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert report["lines"] == 3
    assert report["users_active"] == 3


def test_no_parseable_line_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    log = write(tmp_path / "access_log.1", ["this is not an access log", "nor is this"])
    status, _, err = run("analyze", str(log))
    assert status == 2
    assert "format was not recognised" in err
    forced = run("analyze", str(log), "--format", "jira")
    assert forced[0] == 2
    assert "no parseable access-log line" in forced[2]


def test_parseable_lines_of_which_none_counts_give_peak_0_and_null_times(tmp_path: Path) -> None:
    log = write(tmp_path / "access_log.1", [jira("-", "10:00:00"), jira("-", "10:01:00")])
    status, out, _ = run("analyze", str(log), "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert report["peak"] == 0
    assert report["peak_at"] is None and report["first_request_at"] is None
    assert report["daily"] == []


def test_an_unreadable_file_gets_its_own_message(logs: Path) -> None:
    # Root reads any file despite its mode; the kernel still refuses to read this one.
    status, _, err = run("analyze", str(logs), "/proc/self/mem", "--json", "-")
    assert status == 0
    assert "/proc/self/mem: cannot read it" in err
    missing = run("analyze", str(logs / "nope.log"))
    assert missing[0] == 2
    assert "no such file or folder" in missing[2]


def test_exclusions_polling_options_and_context_path(tmp_path: Path) -> None:
    log = write(
        tmp_path / "access_log.1",
        [
            jira("ann", "10:00:00", "/jira/browse/A-1"),
            jira("svc", "10:00:00", "/jira/rest/api/2/search"),
            jira("bob", "10:00:00", "/jira/rest/quickreload/latest/5"),
            jira("carl", "10:00:00", "/jira/custom/poll?x=1"),
            jira("dora", "10:00:00", "/jira/other/thing"),
        ],
    )
    status, out, _ = run(
        "analyze", str(log), "--json", "-", "--context-path", "/jira", "--exclude-user", "SVC",
        "--polling-path", "/custom/poll", "--polling-regex", "^/other/",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["users_active"] == 1
    status, out, _ = run("analyze", str(log), "--json", "-", "--no-default-polling")
    assert json.loads(out)["users_active"] == 5
    status, out, _ = run("analyze", str(log), "--json", "-", "--exclude-user-agent", "^Mozilla")
    assert json.loads(out)["users_active"] == 0


def test_a_pattern_or_server_xml_reads_any_valve(tmp_path: Path) -> None:
    log = write(
        tmp_path / "custom.log",
        ['10.0.0.1 - ann [02/Mar/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 12 "-" "curl/8"'],
    )
    status, out, _ = run("analyze", str(log), "--json", "-", "--pattern", "combined")
    assert status == 0
    assert json.loads(out)["users_active"] == 1
    xml = tmp_path / "server.xml"
    xml.write_text(
        '<Server><Valve className="org.apache.catalina.valves.AccessLogValve" '
        'pattern="%h %l %u %t &quot;%r&quot; %s %b &quot;%{Referer}i&quot; '
        '&quot;%{User-Agent}i&quot;"/></Server>'
    )
    status, out, _ = run("analyze", str(log), "--json", "-", "--server-xml", str(xml))
    assert status == 0
    assert json.loads(out)["users_active"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--idle-timeout", "soon"], "is not a duration"),
        (["--format", "nginx"], "unknown format"),
        (["--pattern", "%h %t %r"], "logs no user"),
        (["--headroom", "lots"], "is not a share"),
        (["--tz", "Mars/Olympus"], "Mars/Olympus"),
    ],
)
def test_bad_options_exit_2_with_a_reason(logs: Path, args: list[str], message: str) -> None:
    status, _, err = run("analyze", str(logs), *args)
    assert status == 2
    assert message in err


def test_the_real_samples_analyse_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    shutil.copytree(data_dir, copy)
    status, out, _ = run("analyze", str(copy / "jira-real"), "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert report["lines"] == 7068 + 7274 + 8099
    assert report["malformed_lines"] == 0
    assert [d["date"] for d in report["daily"]] == ["2015-11-12", "2015-11-24", "2015-11-25"]
    assert report["peak"] >= 1


@pytest.mark.parametrize("product", ["jira", "confluence"])
def test_generated_logs_analyse_with_exact_malformed_counts(product: str, tmp_path: Path) -> None:
    out = tmp_path / "logs"
    status, _, err = run(
        "generate-logs", str(out), "--product", product, "--users", "30", "--days", "3",
        "--nodes", "2", "--seed", "5", "--malformed-every", "700",
    )  # fmt: skip
    assert status == 0, err
    files = sorted(p for p in out.rglob("*") if p.is_file())
    per_file = [len(p.read_bytes().splitlines()) for p in files]
    status, out_json, err = run("analyze", str(out), "--json", "-")
    assert status == 0, err
    report = json.loads(out_json)
    assert report["lines"] == sum(per_file)
    assert report["malformed_lines"] == sum(n // 700 for n in per_file)
    assert all(int(e.rsplit(":", 1)[1]) % 700 == 0 for e in report["malformed_examples"])
    assert "svc-reporting" in report["service_accounts"]
    assert 0 < report["peak"] <= report["users_active"] <= 31


def test_an_empty_file_is_named_as_such_and_crlf_lines_parse(tmp_path: Path) -> None:
    (tmp_path / "access_log.empty").write_bytes(b"")
    crlf = tmp_path / "access_log.crlf"
    crlf.write_bytes((jira("ann", "10:00:00") + "\r\n" + jira("bob", "10:01:00") + "\r\n").encode())
    status, out, err = run("analyze", str(tmp_path), "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert (report["lines"], report["malformed_lines"], report["users_active"]) == (2, 0, 2)
    assert "access_log.empty: the file is empty" in err
