"""The simulator's logs: floatseat's own analyzer reads them; refusals have the exact lines."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from simulator import running_simulator

from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.pipeline import AnalysisRequest, analyze
from floatseat.domain.activity import CountingRules
from floatseat.logs.formats import FORMATS_BY_NAME
from floatseat.logs.security import parse_refused_login
from floatseat.sim import SimConfig, Simulator

CONFLUENCE_REFUSAL = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} WARN \[http-nio-8090-exec-\d+\] "
    r"\[atlassian\.seraph\.auth\.DefaultAuthenticator\] login login : '(?P<user>[^']+)' tried "
    r"to login but they do not have USE permission or weren't found\. Deleting remember me "
    r"cookie\.$"
)
JIRA_REFUSAL = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}\+0000 http-nio-8080-exec-\d+ anonymous "
    r"\d+x\d+x\d+ \S+ \S+ \S+ login : '(?P<user>[^']+)' tried to login but they do not have "
    r"USE permission or weren't found\. Deleting remember me cookie\.$"
)


def _analyze(folder: Path) -> tuple[int, int, int]:
    report = analyze(
        AnalysisRequest(
            arguments=(str(folder),), rules=CountingRules(), report=ReportOptions(tiers=(10, 50))
        )
    )
    return report.lines, report.malformed_lines, report.users_active


@pytest.mark.parametrize("product", ["confluence", "jira"])
def test_a_simulated_day_of_logs_parses_with_the_analyzer(product: str, tmp_path: Path) -> None:
    sim = Simulator(SimConfig(product=product, users=30, tier=40, log_dir=tmp_path, nodes=2))
    made = sim.advance(14 * 3600)
    assert made > 500
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*access_log*"))
    assert {f.split("/")[0] for f in files} == {"node1", "node2"}
    expected_name = (
        "conf_access_log.2026-01-05.log" if product == "confluence" else "access_log.2026-01-05"
    )
    assert all(f.endswith(expected_name) for f in files)
    pattern = FORMATS_BY_NAME[product].compiled().compiled()
    for path in tmp_path.rglob("*access_log*"):
        for line in path.read_text(encoding="utf-8").splitlines():
            assert pattern.match(line), line
    lines, malformed, users = _analyze(tmp_path)
    assert lines == made and malformed == 0
    assert 20 <= users <= 30  # most of the 30 people work on a Monday


def test_non_ascii_usernames_are_logged_escaped(tmp_path: Path) -> None:
    sim = Simulator(SimConfig(users=25, tier=40, log_dir=tmp_path))
    sim.advance(14 * 3600)
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("conf_access_log*"))
    assert "j\\u00fcrgen.m\\u00fcller" in text and "jürgen" not in text


@pytest.mark.parametrize("product", ["confluence", "jira"])
def test_unlicensed_people_are_refused_logged_as_dash_and_the_refusal_parses(
    product: str, tmp_path: Path
) -> None:
    sim = Simulator(SimConfig(product=product, users=4, tier=10, log_dir=tmp_path, nodes=1))
    sim.set_licence(can_use=["nobody-group"])  # only the admin keeps (Confluence) access
    sim.advance(10 * 3600)
    if product == "confluence":
        security = tmp_path / "node1" / "home" / "logs" / "atlassian-confluence.log"
        regex = CONFLUENCE_REFUSAL
    else:
        security = tmp_path / "node1" / "home" / "log" / "atlassian-jira-security.log"
        regex = JIRA_REFUSAL
    refusals = [line for line in security.read_text("utf-8").splitlines() if "tried to" in line]
    assert refusals
    for line in refusals:
        assert regex.match(line), line
        parsed = parse_refused_login(line)
        assert parsed is not None and parsed.raw_user in {p.name for p in sim.people.people}
    access = "".join(p.read_text("utf-8") for p in tmp_path.rglob("*access_log*"))
    for person in sim.people.people:
        assert f" {person.name} " not in access  # never named: their requests show as `-`
    assert sim.people.summary()["logins"] == 0


def test_rest_calls_are_logged_with_the_caller_and_bad_logins_as_dash(tmp_path: Path) -> None:
    with running_simulator(users=1, log_dir=tmp_path, nodes=1, active_people=False) as sim:
        with sim.http() as http:
            http.get("/rest/api/group?limit=5")
        httpx.get(sim.base_url + "/rest/api/group", auth=("admin", "wrong"))
    lines = next(tmp_path.rglob("conf_access_log*")).read_text("utf-8").splitlines()
    assert len(lines) == 2
    assert " admin http-nio-8090-exec-" in lines[0]
    assert " GET /rest/api/group?limit=5 HTTP/1.1 200 " in lines[0]
    assert lines[1].split()[2] == "-" and " 401 " in lines[1]


def test_a_licensed_rest_user_refused_for_want_of_access_is_logged(tmp_path: Path) -> None:
    with running_simulator(product="jira", users=1, log_dir=tmp_path, nodes=1) as sim:
        sim.set_licence(can_use=[])  # no application access for anyone
        with httpx.Client(base_url=sim.base_url) as http:
            r = http.get("/rest/api/2/myself", auth=(sim.users[0], "password"))
        assert r.status_code == 401
    security = next(tmp_path.rglob("atlassian-jira-security.log")).read_text("utf-8")
    assert f"login : '{sim.users[0]}' tried to login" in security


def test_virtual_users_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    def run(folder: Path, seed: int) -> str:
        sim = Simulator(SimConfig(users=8, log_dir=folder, seed=seed, nodes=1))
        for _ in range(12):  # the same clock readings, in steps
            sim.advance(3600)
        return "".join(p.read_text("utf-8") for p in sorted(folder.rglob("*access_log*")))

    first = run(tmp_path / "a", 1)
    assert first == run(tmp_path / "b", 1)
    assert first != run(tmp_path / "c", 2)


def test_sim_serve_is_registered_on_the_command_line() -> None:
    from typer.testing import CliRunner

    from floatseat.cli import app

    result = CliRunner().invoke(app, ["sim", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--product", "--port", "--users", "--tier", "--log-dir", "--speed"):
        assert option in result.output
    bad = CliRunner().invoke(app, ["sim", "serve", "--product", "bamboo"])
    assert bad.exit_code != 0
