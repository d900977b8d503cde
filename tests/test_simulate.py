"""`floatseat simulate`: the replay over real and generated logs, and the command end to end."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.pipeline import AnalysisRequest, analyze, read_requests
from floatseat.analysis.simulate import (
    STABLE_RUN_KEYS,
    SimulationInput,
    SimulationOptions,
    format_wait,
    parse_seat_range,
    prepare_input,
    simulate,
)
from floatseat.cli import app
from floatseat.domain.activity import CountingRules
from floatseat.domain.policy import PolicySettings
from floatseat.domain.replay import ReplayResult
from floatseat.logs.generate import generate_logs

DATA = Path(__file__).parent / "data"
JIRA_REAL = DATA / "jira-real"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run_json(*args: str) -> dict[str, Any]:
    status, out, err = run("simulate", *args, "--json", "-", "-q")
    assert status == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days of a two-node Jira used by 60 people, the nodes in different UTC offsets."""
    out = tmp_path_factory.mktemp("generated")
    generate_logs(
        out, product="jira", users=60, days=3, nodes=2, seed=5, utc_offset=("+0100", "-0500")
    )
    return out


@pytest.fixture(scope="module")
def sources(generated: Path) -> dict[str, Path]:
    return {"jira-real": JIRA_REAL, "generated": generated}


_loaded: dict[tuple[str, int], tuple[SimulationInput, int]] = {}


def load(sources: dict[str, Path], name: str, idle_timeout_s: int) -> tuple[SimulationInput, int]:
    """The replay input, and the peak `floatseat analyze` reports, at one idle timeout."""
    key = (name, idle_timeout_s)
    if key not in _loaded:
        request = AnalysisRequest(
            arguments=(str(sources[name]),),
            rules=CountingRules(),
            report=ReportOptions(idle_timeout_s=idle_timeout_s),
        )
        data = prepare_input(read_requests(request), idle_timeout_s)
        _loaded[key] = (data, analyze(request).peak)
    return _loaded[key]


def replay_seats(data: SimulationInput, seats: int, **settings: Any) -> ReplayResult:
    base: dict[str, Any] = {"reserve": 0, "idle_timeout_s": data.idle_timeout_s}
    base.update(settings)
    options = SimulationOptions(settings=PolicySettings(**base))
    return simulate(data, [seats], options).runs[0]


CASES = [
    pytest.param(name, timeout, id=f"{name}-{timeout // 60}m")
    for name in ("jira-real", "generated")
    for timeout in (600, 1800, 3600)
]


# -- the replay against the analyzer's peak ------------------------------------------------------


@pytest.mark.parametrize(("name", "timeout"), CASES)
@pytest.mark.parametrize("preempt", [True, False])
def test_with_seats_at_the_analyzers_peak_nobody_waits(
    sources: dict[str, Path], name: str, timeout: int, preempt: bool
) -> None:
    data, peak = load(sources, name, timeout)
    assert data.peak == peak > 1
    for seats, min_hold in ((peak, 300), (peak, 0), (peak + 3, 300)):
        result = replay_seats(data, seats, preempt=preempt, min_hold_s=min(min_hold, timeout))
        assert result.waits == 0, (seats, min_hold)
        assert result.preemptions == 0  # an expired holder is always there to make room
        assert result.max_seats_held == peak if seats == peak else result.max_seats_held <= seats


@pytest.mark.parametrize(("name", "timeout"), CASES)
def test_without_preemption_one_seat_fewer_than_the_peak_makes_someone_wait(
    sources: dict[str, Path], name: str, timeout: int
) -> None:
    data, peak = load(sources, name, timeout)
    assert replay_seats(data, peak - 1, preempt=False).waits > 0


@pytest.mark.parametrize(("name", "timeout"), CASES)
@pytest.mark.parametrize("preempt", [True, False])
def test_with_fewer_seats_than_the_peak_every_seat_is_held(
    sources: dict[str, Path], name: str, timeout: int, preempt: bool
) -> None:
    data, peak = load(sources, name, timeout)
    for seats in sorted({peak - 1, peak // 2, 1}):
        assert replay_seats(data, seats, preempt=preempt).max_seats_held == seats


@pytest.mark.parametrize(("name", "timeout"), CASES)
@pytest.mark.parametrize("preempt", [True, False])
def test_far_fewer_seats_give_more_waits_than_one_fewer(
    sources: dict[str, Path], name: str, timeout: int, preempt: bool
) -> None:
    data, peak = load(sources, name, timeout)
    one_fewer = replay_seats(data, peak - 1, preempt=preempt)
    far_fewer = replay_seats(data, max(1, peak // 3), preempt=preempt)
    assert far_fewer.waits > one_fewer.waits
    assert far_fewer.queued >= one_fewer.queued


# -- the command ---------------------------------------------------------------------------------


def test_json_on_stdout_holds_the_json_alone_with_the_stable_keys() -> None:
    status, out, err = run("simulate", str(JIRA_REAL), "--seats", "3", "--json", "-")
    assert status == 0, err
    report = json.loads(out)  # nothing but the JSON
    for key in STABLE_RUN_KEYS:
        assert key in report, key
    assert report["seats"] == 3
    assert report["max_seats_held"] == 3
    assert report["revokes"] >= report["preemptions"] > 0
    assert report["waits"] >= report["queued"] > 0
    assert report["peak"] == 5
    assert set(report["daily"][0]) == {"date", "grants", "waits", "wait_seconds_total", "denied"}
    assert "floatseat simulate" in err  # the summary went to stderr


def test_the_daily_rows_sum_to_the_totals_and_follow_tz(generated: Path) -> None:
    zone = "Pacific/Auckland"
    report = run_json(str(generated), "--sweep-seats", "5:45:10", "--tz", zone)
    first = datetime.fromisoformat(report["first_request_at"])
    assert first.utcoffset() == ZoneInfo(zone).utcoffset(first.replace(tzinfo=None))
    for result in report["runs"]:
        days = result["daily"]
        assert days[0]["date"] == first.date().isoformat()
        dates = [datetime.fromisoformat(d["date"]).date() for d in days]
        assert [(b - a).days for a, b in zip(dates, dates[1:], strict=False)] == [1] * (
            len(dates) - 1
        )
        for key in ("grants", "waits", "wait_seconds_total", "denied"):
            assert sum(d[key] for d in days) == result[key], key


def test_the_sweep_replays_each_count_as_a_single_run_would() -> None:
    sweep = run_json(str(JIRA_REAL), "--sweep-seats", "2:4:2", "--no-preempt")
    assert [r["seats"] for r in sweep["runs"]] == [2, 4]
    for result in sweep["runs"]:
        single = run_json(str(JIRA_REAL), "--seats", str(result["seats"]), "--no-preempt")
        assert {k: single[k] for k in result} == result


def test_the_sweep_recommends_the_fewest_seats_within_the_p95_limit_with_nobody_denied() -> None:
    report = run_json(str(JIRA_REAL), "--sweep-seats", "1:6")
    runs = {r["seats"]: r for r in report["runs"]}
    assert list(runs) == [1, 2, 3, 4, 5, 6]
    # On these logs (peak 5) every count below the peak makes someone wait minutes.
    assert all(runs[s]["wait_seconds_p95"] > 60 for s in (1, 2, 3, 4))
    assert report["recommended_seats"] == 5
    assert report["recommended_tier"] == 500
    assert report["max_wait_p95_s"] == 60

    # A limit of 16 minutes lets 4 seats through (one wait of 927 s), and tiers move along.
    report = run_json(
        str(JIRA_REAL), "--sweep-seats", "1:6", "--max-wait-p95", "16m", "--tiers", "4,8,16"
    )
    assert runs[4]["wait_seconds_p95"] <= 960 < runs[3]["wait_seconds_p95"]
    assert (report["recommended_seats"], report["recommended_tier"]) == (4, 4)
    report = run_json(
        str(JIRA_REAL), "--sweep-seats", "1:6", "--max-wait-p95", "16m", "--tiers", "4,8,16",
        "--fixed", "1",
    )  # fmt: skip
    assert (report["recommended_seats"], report["recommended_tier"]) == (4, 8)


def test_a_count_whose_entries_are_all_denied_is_not_recommended() -> None:
    # Without pre-emption one seat serves nobody from the queue: p95 over served entries is 0,
    # yet every waiter gave up after the queue timeout.
    report = run_json(str(JIRA_REAL), "--sweep-seats", "1:6", "--no-preempt")
    one = report["runs"][0]
    assert (one["wait_seconds_p95"], one["denied"]) == (0, one["waits"])
    assert one["waits"] > 0
    assert report["recommended_seats"] == 5


def test_a_sweep_that_never_gets_there_recommends_nothing_and_says_why() -> None:
    status, out, err = run("simulate", str(JIRA_REAL), "--sweep-seats", "1:2", "--json", "-")
    assert status == 0
    report = json.loads(out)
    assert (report["recommended_seats"], report["recommended_tier"]) == (None, None)
    assert any("no seat count" in w for w in report["warnings"])
    assert "No seat count keeps the p95 wait" in err


def test_the_analyzers_input_options_work_for_simulate() -> None:
    plain = run_json(str(JIRA_REAL), "--seats", "5")
    assert (plain["users"], plain["peak"], plain["waits"]) == (8, 5, 0)
    busiest = "radim"
    fewer = run_json(str(JIRA_REAL), "--seats", "5", "--exclude-user", busiest.upper())
    assert fewer["users"] == 7
    assert fewer["requests"] < plain["requests"]
    polling = run_json(str(JIRA_REAL), "--seats", "5", "--polling-path", "/rest/")
    assert polling["requests"] < plain["requests"]
    forced = run_json(str(JIRA_REAL), "--seats", "5", "--format", "jira")
    assert forced["requests"] == plain["requests"]
    status, _, err = run("simulate", str(JIRA_REAL), "--seats", "5", "--format", "confluence")
    assert status == 2
    assert "no parseable access-log line" in err


def test_pinned_users_hold_a_seat_of_their_own_and_never_wait() -> None:
    report = run_json(str(JIRA_REAL), "--seats", "5", "--pin", "Radim", "--pin", "nobody")
    assert report["settings"]["pinned"] == ["nobody", "radim"]
    assert report["capacity"] == 3
    assert report["max_seats_held"] <= 5


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([], "give either --seats N or --sweep-seats"),
        (["--seats", "3", "--sweep-seats", "1:4"], "give either --seats N or --sweep-seats"),
        (["--sweep-seats", "5:1"], "FIRST <= LAST"),
        (["--sweep-seats", "1:x:2"], "FIRST:LAST:STEP"),
        (["--sweep-seats", "1:9:0"], "step must be 1 or more"),
        (["--seats", "0"], "greater than or equal to 1"),
        (["--seats", "3", "--min-hold", "40m"], "min_hold_s must not exceed idle_timeout_s"),
        (["--seats", "3", "--idle-timeout", "0"], "idle timeout must be positive"),
        (["--seats", "3", "--sweep-interval", "0s"], "sweep interval must be positive"),
        (["--seats", "3", "--queue-timeout", "soon"], "is not a duration"),
        (["--seats", "3", "--tz", "Mars/Olympus"], "Mars/Olympus"),
        (["--seats", "3", "--format", "nginx"], "unknown format 'nginx'"),
        (["--seats", "3", "--reserve", "-1"], "greater than or equal to 0"),
        (["--seats", "2", "--pin", "ann", "--pin", "bob", "--reserve", "1"], "cannot hold"),
        (["--seats", "3", "--max-wait-p95", "fast"], "is not a duration"),
        (["--seats", "3", "--tiers", "big"], "comma-separated"),
    ],
)
def test_bad_options_exit_2_with_a_reason(args: list[str], reason: str) -> None:
    status, out, err = run("simulate", str(JIRA_REAL), *args, "--json", "-")
    assert status == 2, (out, err)
    assert out == ""
    assert reason in err, err


def test_missing_input_exits_2_with_a_reason(tmp_path: Path) -> None:
    status, _, err = run("simulate", str(tmp_path / "nothing-here"), "--seats", "3")
    assert status == 2
    assert "nothing to read" in err


def test_the_terminal_summary_and_the_reports_written(tmp_path: Path) -> None:
    json_path, html_path = tmp_path / "sim.json", tmp_path / "sim.html"
    status, out, err = run(
        "simulate", str(JIRA_REAL), "--seats", "9", "--json", str(json_path),
        "--html", str(html_path),
    )  # fmt: skip
    assert status == 0, err
    assert "nobody would have waited" in out
    assert "JSON report:" in out and "HTML report:" in out
    assert json.loads(json_path.read_text())["waits"] == 0
    assert html_path.read_text().startswith("<!DOCTYPE html>")

    status, out, _ = run("simulate", str(JIRA_REAL), "--sweep-seats", "3:6")
    assert status == 0
    assert "Recommended: 5 seats" in out
    assert "Licence tier: 500 users" in out


def test_an_input_without_counted_requests_replays_to_nothing(tmp_path: Path) -> None:
    log = tmp_path / "access_log.2026-03-02"
    log.write_text(
        '10.0.0.1 1x1x1 - [02/Mar/2026:10:00:00 +0000] "GET /status HTTP/1.1" 200 5 4 "-" '
        '"curl" "-"\n',
        encoding="utf-8",
    )
    report = run_json(str(log), "--sweep-seats", "1:3")
    assert [r["waits"] for r in report["runs"]] == [0, 0, 0]
    assert report["recommended_seats"] == 1
    assert report["requests"] == 0 and report["runs"][0]["daily"] == []


# -- small pieces --------------------------------------------------------------------------------


def test_a_seat_range_is_inclusive_and_its_step_optional() -> None:
    assert parse_seat_range("100:130:10") == [100, 110, 120, 130]
    assert parse_seat_range("3:5") == [3, 4, 5]
    assert parse_seat_range("7:7:5") == [7]
    assert parse_seat_range("1:10:4") == [1, 5, 9]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (130, "2 min 10 s"), (11_100, "3 h 05 min")],
)
def test_waits_read_as_people_say_them(seconds: int, text: str) -> None:
    assert format_wait(seconds) == text
