"""`floatseat doctor` against the simulated Confluence and Jira over real HTTP: before and
after setup, over the licence, rate-limited, a read-only directory, a skewed clock."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from simulator import SimHandle, running_simulator

from floatseat.directory.http import BasicCredentials
from floatseat.directory.port import ManagedDirectory
from floatseat.doctor import DoctorOptions, DoctorReport, Finding, Level, run_doctor
from floatseat.domain.onboarding import SetupOptions
from floatseat.service.settings import ServeSettings, load_settings
from floatseat.service.setup import execute, prepare_setup
from floatseat.sim.logs import AccessRecord

USERS_GROUP = {"confluence": "confluence-users", "jira": "jira-software-users"}
FORMAT = {"confluence": "confluence", "jira": "jira"}
REST_ACCESS = "9.2.5"  # the first Confluence whose REST API reads "Can use"


def connector(sim: SimHandle) -> ManagedDirectory:
    credentials = BasicCredentials(sim.admin_user, sim.admin_password)
    if sim.product == "confluence":
        from floatseat.directory.confluence import ConfluenceDirectory

        return ConfluenceDirectory.connect(sim.base_url, credentials)
    from floatseat.directory.jira import JiraDirectory

    return JiraDirectory.connect(sim.base_url, credentials)


def set_up(sim: SimHandle, tmp_path: Path) -> None:
    """`floatseat setup`, as the demo runs it."""
    directory = connector(sim)
    try:
        options = SetupOptions(reserve=0, excluded=frozenset({"admin"}))
        run = prepare_setup(directory, options, {}, tmp_path / "setup")
        result = execute(directory, run.plan, on_manual=lambda _step, _error: False)
        assert result.finished, result.stopped
    finally:
        directory.close()  # type: ignore[attr-defined]


def settings_for(sim: SimHandle, logs: Path, **extra: Any) -> ServeSettings:
    product = sim.product
    if product == "jira":
        access, security = "access_log.*", "home/log/atlassian-jira-security.log*"
    else:
        access, security = "conf_access_log.*.log", "home/logs/atlassian-confluence.log*"
    nodes = [
        {
            "name": f"node{k}",
            "access_logs": [str(logs / f"node{k}" / access)],
            "security_logs": [str(logs / f"node{k}" / security)],
            "format": FORMAT[product],
        }
        for k in (1, 2)
    ]
    return load_settings(
        None,
        product=product,
        base_url=sim.base_url,
        username=sim.admin_user,
        password=sim.admin_password,
        users_group=USERS_GROUP[product],
        nodes=nodes,
        policy={"reserve": 2, "min_hold_s": 60},
        **extra,
    )


BUSY_S = 600


def busy(sim: SimHandle) -> None:
    """Virtual users work a while (their lines reach both nodes' logs); a request and a
    refusal on each node at the end.

    The simulator must have started `BUSY_S` ago (`busy_simulator`): its clock
    then ends where the host's is, as a node's does, whatever the hour (people work by day,
    and a line from after its file's last write would be a node's clock running ahead).
    """
    sim.advance(BUSY_S)
    for node in (0, 1):
        # A request on each node now: whether people work at this hour is up to the day.
        now = sim.sim.now()
        sim.sim.log_access(node, AccessRecord(now, "GET", "/index.action", 200, 512, 20, "admin"))
        sim.sim.log_refusal(node, now, sim.users[node], ip="10.0.0.9")


def busy_simulator(product: str, logs: Path) -> AbstractContextManager[SimHandle]:
    """Six users, ten seats, the clock `BUSY_S` behind the host's (for `busy`)."""
    version = {"version": REST_ACCESS} if product == "confluence" else {}
    return running_simulator(
        product, users=6, tier=10, log_dir=logs, start=time.time() - BUSY_S, **version
    )


def doctor(sim: SimHandle, logs: Path, **options: Any) -> DoctorReport:
    clock = options.pop("clock", time.time)
    return run_doctor(settings_for(sim, logs), DoctorOptions(**options), clock=clock)


def found(report: DoctorReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


def test_confluence_before_setup_fails_with_what_to_do(tmp_path: Path) -> None:
    with busy_simulator("confluence", tmp_path) as sim:
        busy(sim)
        report = doctor(sim, tmp_path)
    groups = found(report, "groups")
    assert [g.level for g in groups] == [Level.FAIL, Level.FAIL]
    assert "floatseat setup" in groups[0].fix
    [access, *_] = found(report, "access")
    assert access.level is Level.FAIL and "IUM_Enabled has no application access" in access.message
    assert report.exit_status == 2


def test_confluence_after_setup_is_healthy(tmp_path: Path) -> None:
    with busy_simulator("confluence", tmp_path) as sim:
        set_up(sim, tmp_path)
        busy(sim)
        report = doctor(sim, tmp_path)
    bad = [f for f in report.findings if f.level in (Level.WARN, Level.FAIL)]
    assert bad == [], bad
    assert [f.level for f in found(report, "clock")] == [Level.OK] * 3  # two nodes, the product
    [connection] = found(report, "connection")
    assert "confluence 9.2.5" in connection.message
    [seats] = found(report, "seats")
    assert "of 10 seats licensed" in seats.message
    [directory] = found(report, "directory")
    assert directory.level is Level.SKIP and "--write-test" in directory.message
    assert report.exit_status == 0


def test_jira_a_default_group_gives_new_users_a_seat(tmp_path: Path) -> None:
    with busy_simulator("jira", tmp_path) as sim:
        set_up(sim, tmp_path)
        busy(sim)
        report = doctor(sim, tmp_path)
        assert [f.level for f in found(report, "new users")] == [Level.OK]
        assert report.exit_status == 0, [f for f in report.findings if f.level is not Level.OK]
        with sim.http() as http:
            role = http.get("/rest/api/2/applicationrole/jira-software").json()
            body = {"groups": role["groups"], "defaultGroups": ["IUM_Enabled"]}
            assert http.put("/rest/api/2/applicationrole/jira-software", json=body).is_success
        report = doctor(sim, tmp_path)
    [new_users] = found(report, "new users")
    assert new_users.level is Level.FAIL and "IUM_Enabled is a default group" in new_users.message


def test_over_the_licence_fails(tmp_path: Path) -> None:
    with running_simulator(
        "confluence", users=6, tier=10, version=REST_ACCESS, log_dir=tmp_path, start=time.time()
    ) as sim:
        set_up(sim, tmp_path)
        sim.set_licence(tier=1)
        report = doctor(sim, tmp_path)
    [seats] = found(report, "seats")
    assert seats.level is Level.FAIL and "over the licence" in seats.message


def test_rate_limited_account_is_not_exempt(tmp_path: Path) -> None:
    with running_simulator("jira", users=4, tier=10, log_dir=tmp_path, start=time.time()) as sim:
        set_up(sim, tmp_path)
        sim.add_fault("rate_limit", paths=["/rest/api/2/myself"], times=1)
        report = doctor(sim, tmp_path)
        [limited] = found(report, "rate limit")
        assert limited.level is Level.FAIL and "429" in limited.message
        report = doctor(sim, tmp_path)
    assert [f.level for f in found(report, "rate limit")] == [Level.OK]


def test_write_test_finds_a_read_only_directory(tmp_path: Path) -> None:
    with running_simulator(
        "confluence", users=6, tier=5, version=REST_ACCESS, log_dir=tmp_path, start=time.time()
    ) as sim:
        set_up(sim, tmp_path)
        before = sim.state()["groups"]
        report = doctor(sim, tmp_path, write_test=True)
        [ok] = found(report, "directory")
        assert ok.level is Level.OK, ok
        assert sim.state()["groups"] == before  # taken out and put back
        sim.add_fault("read_only", paths=["/rest/api/user/"])
        report = doctor(sim, tmp_path, write_test=True, write_test_users=2)
        [refused] = found(report, "directory")
        sim.clear_faults()
        assert sim.state()["groups"]["IUM_Disabled"] == before["IUM_Disabled"]
    assert refused.level is Level.FAIL and "read only" in refused.message
    assert "Read Only, with Local Groups" in refused.fix


def test_a_skewed_host_clock_shows_against_the_date_header(tmp_path: Path) -> None:
    with running_simulator(
        "confluence", users=4, tier=10, version=REST_ACCESS, log_dir=tmp_path, start=time.time()
    ) as sim:
        set_up(sim, tmp_path)
        report = doctor(sim, tmp_path, clock=lambda: time.time() + 600)
    product = [f for f in found(report, "clock") if f.subject == "product"]
    assert [f.level for f in product] == [Level.FAIL]
    assert "behind" in product[0].message


def test_confluence_8_access_is_checked_by_hand(tmp_path: Path) -> None:
    with running_simulator("confluence", users=4, tier=10, log_dir=tmp_path) as sim:
        report = doctor(sim, tmp_path)
    [access] = found(report, "access")
    assert access.level is Level.SKIP and "Check by hand" in access.fix
