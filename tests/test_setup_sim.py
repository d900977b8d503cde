"""`floatseat setup` and `--rollback` through the CLI against the simulated Confluence and Jira."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from simulator import SimHandle, running_simulator
from typer.testing import CliRunner

from floatseat.cli import app

E, D = "IUM_Enabled", "IUM_Disabled"
OLD = {"confluence": "confluence-users", "jira": "jira-software-users"}
ADMINS = "confluence-administrators"
runner = CliRunner()

JIRA_LINE = (
    '10.0.0.1 1x1x1 {user} [05/Jan/2026:{time} +0000] "GET /browse/A-1 HTTP/1.1" 200 5 4 "-" '
    '"Mozilla/5.0" "s1"'
)


def memberships(sim: SimHandle) -> dict[str, list[str]]:
    return {g: sorted(us) for g, us in sim.state()["groups"].items()}


def access_options(sim: SimHandle) -> list[str]:
    """What the admin reads off Confluence's Global permissions page where no API reads it:
    before 9.2.5 (from 9.2.5 on, setup reads it over REST, administrator groups included)."""
    if sim.product != "confluence" or sim.sim.config.at_least(9, 2, 5):
        return []
    state = sim.state()
    groups = sorted(set(state["can_use"]) | set(state["admin_groups"]))
    options = [f"--access-group={g}" for g in groups]
    return [*options, f"--keep-access={ADMINS}"]


def setup(sim: SimHandle, state_dir: Path, *extra: str, access: bool = True) -> Any:
    args = [
        "setup",
        f"--product={sim.product}",
        f"--url={sim.base_url}",
        f"--user={sim.admin_user}",
        f"--state-dir={state_dir}",
        *(access_options(sim) if access else []),
        *extra,
    ]
    return runner.invoke(app, args, env={"FLOATSEAT_PASSWORD": sim.admin_password})


def until_done(sim: SimHandle, state_dir: Path, *extra: str, restore: bool = False) -> None:
    """Run until it finishes, doing by hand the steps no API can do (Confluence's "Can use"
    before 9.2.5 with the Remote API off, as Confluence ships it)."""
    for _ in range(4):
        result = setup(sim, state_dir, *extra)
        if result.exit_code == 0:
            return
        assert result.exit_code == 3, result.stdout + result.stderr  # a manual step
        can_use = {g.lower() for g in sim.state()["can_use"]}
        old, enabled = OLD[sim.product], E.lower()
        if not restore:
            can_use = can_use | {enabled} if enabled not in can_use else can_use - {old}
        else:
            can_use = can_use - {enabled} if enabled in can_use else can_use | {old}
        sim.set_licence(can_use=sorted(can_use))
    raise AssertionError("setup did not finish")


def check_product(product: str, tmp_path: Path) -> None:
    with running_simulator(product=product, users=6, tier=10) as sim:
        old = OLD[product]
        original = memberships(sim)
        people = [u for u in original[old] if u != "admin"]
        recent = people[-2:]
        log = tmp_path / "access_log.2026-01-05"
        log.write_text(
            "\n".join(JIRA_LINE.format(user=u, time=f"10:0{i}:00") for i, u in enumerate(recent))
            + "\n"
        )
        options = ["--capacity=3", "--exclude=admin", f"--logs={log}", "--format=jira"]

        dry = setup(sim, tmp_path, *options, "--dry-run")
        assert dry.exit_code == 0, dry.stdout + dry.stderr
        assert "licensed after" in dry.stdout and "dry run: nothing changed" in dry.stdout
        assert memberships(sim) == original and not list(tmp_path.glob("*.json"))

        until_done(sim, tmp_path, *options)
        state = sim.state()
        assert state["licence_violations"] == 0
        assert len(state["groups"][E]) == 3 and set(recent) <= set(state["groups"][E])
        assert set(state["groups"][E]) | set(state["groups"][D]) == set(people)
        assert not set(state["groups"][E]) & set(state["groups"][D])
        assert state["licensed"] <= state["tier"]
        # Confluence's admin keeps a seat through the administrators' group; Jira's admin was
        # licensed only through the old group, excluded, and lost it (setup warned).
        admin = {"admin"} if product == "confluence" else set()
        assert set(state["licensed_users"]) == set(state["groups"][E]) | admin
        snapshot = json.loads((tmp_path / f"{product}-snapshot.json").read_text())
        assert snapshot["memberships"][old] == original[old]

        # A downgrade: the exact restore (7 licensed) no longer fits. Refused, nothing moves.
        sim.set_licence(tier=5)
        before = memberships(sim)
        refused = setup(sim, tmp_path, "--rollback")
        assert refused.exit_code == 2
        assert "would license 7 users, over the current tier of 5" in refused.stderr
        assert memberships(sim) == before and sim.state()["licence_violations"] == 0

        # The tier allows it again: the original memberships come back exactly.
        sim.set_licence(tier=10)
        until_done(sim, tmp_path, "--rollback", restore=True)
        restored = memberships(sim)
        assert {g: us for g, us in restored.items() if g not in (E, D)} == original
        assert restored[E] == [] and restored[D] == []
        assert sim.state()["licence_violations"] == 0
        assert sim.state()["licensed"] == 7


def test_setup_and_rollback_on_jira(tmp_path: Path) -> None:
    check_product("jira", tmp_path)


def test_setup_and_rollback_on_confluence(tmp_path: Path) -> None:
    check_product("confluence", tmp_path)


def test_force_rolls_back_over_the_tier_when_told_to(tmp_path: Path) -> None:
    with running_simulator(product="jira", users=4, tier=10) as sim:
        original = memberships(sim)
        until_done(sim, tmp_path, "--capacity=2", "--exclude=admin")
        sim.set_licence(tier=3)
        assert setup(sim, tmp_path, "--rollback").exit_code == 2
        forced = setup(sim, tmp_path, "--rollback", "--force")
        assert forced.exit_code == 0, forced.stdout + forced.stderr
        restored = memberships(sim)
        assert {g: us for g, us in restored.items() if g not in (E, D)} == original
        assert sim.state()["licensed"] == 5


def permissions(sim: SimHandle) -> dict[str, list[str]]:
    state = sim.state()
    return {k: state[k] for k in ("can_use", "admin_groups", "sysadmin_groups", "grants")}


@pytest.mark.parametrize(
    ("version", "options"),
    [
        ("9.3.1", {}),  # "Can use" and the administrator groups read and changed over REST
        ("8.5.4", {"remote_api": True}),  # named by the admin, changed over JSON-RPC
    ],
)
def test_setup_and_rollback_on_confluence_without_a_manual_step(
    version: str, options: dict[str, Any], tmp_path: Path
) -> None:
    # A tier with no seat to spare: every step must keep the count at or below it.
    with running_simulator(
        product="confluence", version=version, users=6, tier=7, **options
    ) as sim:
        original, granted = memberships(sim), permissions(sim)
        assert sim.state()["licensed"] == 7
        people = [u for u in original[OLD["confluence"]] if u != "admin"]
        recent = people[-2:]
        log = tmp_path / "access_log.2026-01-05"
        log.write_text(
            "\n".join(JIRA_LINE.format(user=u, time=f"10:0{i}:00") for i, u in enumerate(recent))
            + "\n"
        )
        # No --exclude=admin: the administrators' group keeps admin out of the pool.
        done = setup(sim, tmp_path, "--capacity=3", f"--logs={log}", "--format=jira")
        assert done.exit_code == 0, done.stdout + done.stderr
        state = sim.state()
        assert state["licence_violations"] == 0, state["violations"]
        assert state["licensed"] <= state["tier"]
        assert len(state["groups"][E]) == 3 and set(recent) <= set(state["groups"][E])
        assert set(state["groups"][E]) | set(state["groups"][D]) == set(people)
        assert not set(state["groups"][E]) & set(state["groups"][D])
        # "Can use" moved from confluence-users to the pool; the administrators kept theirs.
        assert permissions(sim) == {**granted, "can_use": sorted([ADMINS, E.casefold()])}
        assert set(state["licensed_users"]) == set(state["groups"][E]) | {"admin"}
        assert state["licensed"] == 4

        back = setup(sim, tmp_path, "--rollback")
        assert back.exit_code == 0, back.stdout + back.stderr
        restored = memberships(sim)
        assert {g: us for g, us in restored.items() if g not in (E, D)} == original
        assert restored[E] == [] and restored[D] == []
        assert permissions(sim) == granted
        assert sim.state()["licensed"] == 7
        assert sim.state()["licence_violations"] == 0
