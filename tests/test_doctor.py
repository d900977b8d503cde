"""`floatseat doctor` against files: server.xml samples, patterns, log folders; the pure
checks of clocks, rate limiting, access and seats."""

from __future__ import annotations

import json
import os
import time
from email.utils import formatdate
from pathlib import Path

from typer.testing import CliRunner

from floatseat.cli import app
from floatseat.directory.port import ApplicationAccess, Licence, PoolGroups
from floatseat.doctor import (
    DoctorOptions,
    Finding,
    Level,
    check_access,
    check_date_header,
    check_rate_limit,
    check_seats,
    check_server_xml,
    run_doctor,
)
from floatseat.service.settings import load_settings

CONFLUENCE_VALVE = (
    '<Valve className="org.apache.catalina.valves.AccessLogValve" directory="logs" '
    'maxDays="30" pattern="%t %{{X-AUSERNAME}}o %I %h %r %s %Dms %b %{{Referer}}i '
    '%{{User-Agent}}i" prefix="conf_access_log" requestAttributesEnabled="true" '
    'rotatable="true" suffix=".log"{extra}/>'
)


def server_xml(valve: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<Server port="8000" shutdown="SHUTDOWN">'
        '<Service name="Tomcat-Standalone"><Engine name="Standalone" defaultHost="localhost">'
        f'<Host name="localhost" appBase="webapps">{valve}</Host></Engine></Service></Server>'
    )


def levels(findings: list[Finding] | tuple[Finding, ...], check: str) -> list[Level]:
    return [f.level for f in findings if f.check == check]


def test_the_shipped_confluence_valve_is_readable_but_buffers() -> None:
    found = check_server_xml(server_xml(CONFLUENCE_VALVE.format(extra="")), "server.xml")
    assert levels(found, "valve") == [Level.OK]
    [buffered] = [f for f in found if f.check == "buffered"]
    assert buffered.level is Level.WARN
    assert "buffers by default" in buffered.message or "true is the default" in buffered.message
    assert 'buffered="false"' in buffered.fix


def test_an_unbuffered_valve_passes() -> None:
    xml = server_xml(CONFLUENCE_VALVE.format(extra=' buffered="false"'))
    found = check_server_xml(xml, "server.xml")
    assert {f.level for f in found} == {Level.OK}


def test_buffered_true_is_named() -> None:
    xml = server_xml(CONFLUENCE_VALVE.format(extra=' buffered="true"'))
    [buffered] = [f for f in check_server_xml(xml, "x") if f.check == "buffered"]
    assert buffered.level is Level.WARN and 'buffered="true"' in buffered.message


def test_a_pattern_without_a_user_field_fails_with_the_field_to_add() -> None:
    valve = (
        '<Valve className="org.apache.catalina.valves.AccessLogValve" '
        'pattern="%h %t &quot;%r&quot; %s %b" buffered="false"/>'
    )
    [valve_finding] = [f for f in check_server_xml(server_xml(valve), "x") if f.check == "valve"]
    assert valve_finding.level is Level.FAIL
    assert "X-AUSERNAME" in valve_finding.message


def test_no_valve_and_broken_xml_fail() -> None:
    assert levels(check_server_xml(server_xml(""), "x"), "valve") == [Level.FAIL]
    assert levels(check_server_xml("<Server>", "x"), "valve") == [Level.FAIL]


def test_the_command_checks_server_xml_files_with_json_and_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_text(server_xml(CONFLUENCE_VALVE.format(extra=' buffered="false"')))
    buffered = tmp_path / "buffered.xml"
    buffered.write_text(server_xml(CONFLUENCE_VALVE.format(extra="")))
    runner = CliRunner()
    ok = runner.invoke(app, ["doctor", "--server-xml", str(good), "--json"], env={})
    assert ok.exit_code == 0, ok.output
    assert {f["level"] for f in json.loads(ok.stdout)["findings"]} == {"ok"}
    warned = runner.invoke(app, ["doctor", "--server-xml", str(buffered)], env={})
    assert warned.exit_code == 1
    assert "buffered" in warned.stdout and "WARN" in warned.stdout
    missing = runner.invoke(app, ["doctor", "--server-xml", str(tmp_path / "nope.xml")], env={})
    assert missing.exit_code == 2


def clf(at: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(at))


def confluence_line(at: float, user: str = "alice") -> str:
    return (
        f"[{clf(at)}] {user} http-nio-8090-exec-6 10.0.0.1 GET /index.action HTTP/1.1 200 "
        "12ms 7881 - Mozilla/5.0\n"
    )


def node_settings(tmp_path: Path, **node: object) -> object:
    nodes = [
        {
            "name": "node1",
            "access_logs": [str(tmp_path / "node1" / "conf_access_log.*.log")],
            "security_logs": [str(tmp_path / "node1" / "atlassian-confluence.log")],
            "format": "confluence",
            **node,
        }
    ]
    return load_settings(None, nodes=nodes)


def write_node(tmp_path: Path, line_at: float, mtime: float) -> None:
    folder = tmp_path / "node1"
    folder.mkdir(exist_ok=True)
    access = folder / "conf_access_log.2026-01-05.log"
    access.write_text(confluence_line(line_at - 30) + confluence_line(line_at))
    security = folder / "atlassian-confluence.log"
    security.write_text("2026-01-05 08:00:00,000 INFO [main] [x] started\n")
    for path in (access, security):
        os.utime(path, (mtime, mtime))


def test_fresh_logs_in_step_with_the_clock_pass(tmp_path: Path) -> None:
    now = time.time()
    write_node(tmp_path, line_at=now - 2, mtime=now - 1)
    report = run_doctor(node_settings(tmp_path), clock=lambda: now)  # type: ignore[arg-type]
    assert levels(report.findings, "access logs") == [Level.OK]
    assert levels(report.findings, "security logs") == [Level.OK]
    assert levels(report.findings, "clock") == [Level.OK]


def test_stale_logs_warn_and_missing_ones_fail(tmp_path: Path) -> None:
    now = time.time()
    write_node(tmp_path, line_at=now - 7200, mtime=now - 7200)
    report = run_doctor(node_settings(tmp_path), clock=lambda: now)  # type: ignore[arg-type]
    [access] = [f for f in report.findings if f.check == "access logs"]
    assert access.level is Level.WARN and "2 h ago" in access.message
    assert levels(report.findings, "clock") == [Level.SKIP]  # too old to compare
    missing = node_settings(tmp_path, access_logs=[str(tmp_path / "elsewhere" / "*.log")])
    report = run_doctor(missing, clock=lambda: now)  # type: ignore[arg-type]
    assert levels(report.findings, "access logs") == [Level.FAIL]
    assert report.exit_status == 2


def test_logs_seen_growing_pass(tmp_path: Path) -> None:
    now = time.time()
    write_node(tmp_path, line_at=now - 7200, mtime=now - 7200)

    def grow(_seconds: float) -> None:
        with (tmp_path / "node1" / "conf_access_log.2026-01-05.log").open("a") as out:
            out.write(confluence_line(now))

    options = DoctorOptions(sample_s=3)
    report = run_doctor(node_settings(tmp_path), options, clock=lambda: now, sleep=grow)  # type: ignore[arg-type]
    [access] = [f for f in report.findings if f.check == "access logs"]
    assert access.level is Level.OK and "growing" in access.message


def test_a_node_clock_ahead_or_behind_is_found_from_its_newest_line(tmp_path: Path) -> None:
    now = time.time()
    write_node(tmp_path, line_at=now + 300, mtime=now - 1)
    report = run_doctor(node_settings(tmp_path), clock=lambda: now)  # type: ignore[arg-type]
    [clock] = [f for f in report.findings if f.check == "clock"]
    assert clock.level is Level.FAIL and "ahead of" in clock.message and "NTP" in clock.fix
    write_node(tmp_path, line_at=now - 100, mtime=now - 1)
    report = run_doctor(node_settings(tmp_path), clock=lambda: now)  # type: ignore[arg-type]
    [clock] = [f for f in report.findings if f.check == "clock"]
    assert clock.level is Level.WARN and "behind" in clock.message


def test_a_configured_pattern_without_a_user_fails(tmp_path: Path) -> None:
    now = time.time()
    write_node(tmp_path, line_at=now, mtime=now)
    settings = node_settings(tmp_path, format=None, pattern='%h %t "%r" %s %b')
    report = run_doctor(settings, clock=lambda: now)  # type: ignore[arg-type]
    assert levels(report.findings, "valve") == [Level.FAIL]


def test_date_header_skew() -> None:
    now = time.time()
    assert check_date_header(formatdate(now, usegmt=True), now, now + 0.1).level is Level.OK
    late = check_date_header(formatdate(now - 45, usegmt=True), now, now + 0.1)
    assert late.level is Level.WARN and "behind" in late.message
    early = check_date_header(formatdate(now + 600, usegmt=True), now, now + 0.1)
    assert early.level is Level.FAIL and "ahead of" in early.message
    assert check_date_header(None, now, now).level is Level.SKIP


def test_rate_limit_headers_mean_the_account_is_not_exempt() -> None:
    assert check_rate_limit(200, {"Content-Type": "application/json"}).level is Level.OK
    limited = check_rate_limit(200, {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9"})
    assert limited.level is Level.WARN and "Exempt" in limited.fix
    assert check_rate_limit(429, {"Retry-After": "5"}).level is Level.FAIL


GROUPS = PoolGroups()


def test_access_must_be_the_licensed_pool_group_only() -> None:
    only = check_access(
        "confluence", ApplicationAccess(frozenset({"IUM_Enabled"})), GROUPS, "confluence-users"
    )
    assert [f.level for f in only] == [Level.OK, Level.OK]
    both = check_access(
        "confluence",
        ApplicationAccess(frozenset({"IUM_Enabled", "confluence-users"})),
        GROUPS,
        "confluence-users",
    )
    assert both[0].level is Level.FAIL and "confluence-users" in both[0].message
    none = check_access(
        "confluence", ApplicationAccess(frozenset({"confluence-users"})), GROUPS, None
    )
    assert [f.level for f in none] == [Level.FAIL, Level.WARN, Level.WARN]
    kept = check_access(
        "jira",
        ApplicationAccess(frozenset({"IUM_Enabled", "jira-administrators"})),
        GROUPS,
        "jira-software-users",
    )
    assert [f.level for f in kept] == [Level.WARN, Level.OK]
    admins = check_access(
        "confluence",
        ApplicationAccess(
            frozenset({"IUM_Enabled", "confluence-administrators"}),
            admin_groups=frozenset({"confluence-administrators"}),
        ),
        GROUPS,
        "confluence-users",
    )
    assert {f.level for f in admins} == {Level.OK}


def test_jira_new_users_must_not_land_in_a_group_with_access() -> None:
    def new_users(defaults: set[str], users_group: str | None = "jira-software-users") -> Finding:
        access = ApplicationAccess(frozenset({"IUM_Enabled"} | defaults), frozenset(defaults))
        return check_access("jira", access, GROUPS, users_group)[-1]

    assert new_users(set()).level is Level.OK
    assert new_users({"IUM_Enabled"}).level is Level.FAIL
    kept = new_users({"jira-software-users"})
    assert kept.level is Level.FAIL and "every new user takes a seat" in kept.message
    assert new_users(set(), None).level is Level.WARN


def test_seats_against_the_licence() -> None:
    ok = check_seats(Licence(25, 20), enabled_members=15, licensed_users=20, reserve=3)
    assert ok.level is Level.OK and "5 free" in ok.message and "5 licensed outside" in ok.message
    over = check_seats(Licence(25, 26), enabled_members=15, licensed_users=26, reserve=3)
    assert over.level is Level.FAIL and "over the licence" in over.message
    tight = check_seats(Licence(25, 24), enabled_members=20, licensed_users=24, reserve=3)
    assert tight.level is Level.WARN
    nothing = check_seats(Licence(10, 10), enabled_members=0, licensed_users=10, reserve=0)
    assert nothing.level is Level.FAIL and "nothing left to float" in nothing.message


def test_the_leader_and_its_heartbeat() -> None:
    from floatseat.doctor import check_leadership
    from floatseat.service.ports import LeaderInfo

    assert check_leadership(None, 1000, 15).level is Level.WARN
    nobody = check_leadership(LeaderInfo(4, None, 900, 990), 1000, 15)
    assert nobody.level is Level.WARN and "no instance leads" in nobody.message
    fresh = check_leadership(LeaderInfo(4, "alpha", 900, 999), 1000, 15)
    assert fresh.level is Level.OK and "alpha leads (epoch 4)" in fresh.message
    hung = check_leadership(LeaderInfo(4, "alpha", 900, 980), 1000, 15)
    assert hung.level is Level.FAIL and "hung or cut off" in hung.message
    assert "ha_leader_timeout_s (15 s)" in hung.fix


def test_agents_that_went_quiet_are_named_and_their_logs_need_no_local_nodes(
    tmp_path: Path,
) -> None:
    from floatseat.store.database import upgrade
    from floatseat.store.inbox import Inbox

    state = tmp_path / "state"
    state.mkdir()
    url = f"sqlite:///{state / 'floatseat.db'}"
    upgrade(url)
    from floatseat.store.database import create_engine

    engine = create_engine(url)
    now = int(time.time())
    Inbox(engine).accept_batch("a1", "node1", 1, [], now=now - 30, log_at=now - 30)
    Inbox(engine).accept_batch("a2", "node2", 7, [], now=now - 3600, log_at=now - 3600)
    engine.dispose()
    settings = load_settings(None, state_dir=state)  # no [[nodes]]: the agents read the logs
    report = run_doctor(settings, clock=lambda: now)
    agents = {f.subject: f for f in report.findings if f.check == "agents"}
    assert agents["agent a1 (node1)"].level is Level.OK
    quiet = agents["agent a2 (node2)"]
    assert quiet.level is Level.WARN and "60 min ago (batch 7)" in quiet.message
    assert "floatseat-agent" in quiet.fix
    assert levels(report.findings, "access logs") == []  # no "no nodes configured" failure
