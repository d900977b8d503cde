"""The admin's changes while `floatseat serve` runs: policy overrides that survive a restart,
and one audit log for every admin action (the web side's included)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import PriorityClass
from floatseat.service.bootstrap import Served, build_service
from floatseat.service.ports import AuditKind
from floatseat.service.settings import ServeSettings, load_settings
from floatseat.store.database import _alembic_config, create_engine, upgrade
from floatseat.store.ledger import SqlLedger
from floatseat.web.actions import Actions
from floatseat.web.store import WebStore

E, D = "IUM_Enabled", "IUM_Disabled"
T0 = 1_767_600_000
USERS = ("ann", "bob", "carl")


def settings(tmp_path: Path, **policy: Any) -> ServeSettings:
    knobs = {"idle_timeout_s": 600, "min_hold_s": 60, "reserve": 0, "preempt": False, **policy}
    return load_settings(None, product="confluence", state_dir=tmp_path / "state", policy=knobs)


def serve(tmp_path: Path, **policy: Any) -> Served:
    fake = FakeDirectory(5, groups={E: set(), D: set(USERS)})
    return build_service(settings(tmp_path, **policy), fake, clock=lambda: T0)


def test_the_admins_policy_changes_survive_a_restart_and_win_over_the_config(
    tmp_path: Path,
) -> None:
    served = serve(tmp_path, reserve=0, queue_timeout_s=1800)
    try:
        runtime = served.runtime
        vip = (PriorityClass("vip", 2, frozenset({"execs"})),)
        changed = dataclasses.replace(
            runtime.policy_settings, idle_timeout_s=900, group_caps={"contractors": 2}
        )
        runtime.update_policy(changed, "root")
        runtime.update_policy(dataclasses.replace(changed, priority_classes=vip), "ops")
        now = runtime.policy_settings
        runtime.update_policy(dataclasses.replace(now, sweep_interval_s=45), "root")
        assert served.service.activity.sweep_interval_s == 45  # the loop follows at once
        runtime.update_policy(now, "root")
        overrides = runtime.ledger.policy_overrides()
        assert sorted(overrides) == ["group_caps", "idle_timeout_s", "priority_classes"]
        assert overrides["idle_timeout_s"].set_by == "root"  # untouched by the second change
        assert overrides["priority_classes"].set_by == "ops"
    finally:
        served.close()

    # The config file changes meanwhile: reserve and idle_timeout_s. The dashboard's
    # idle_timeout_s wins; the file's new reserve applies (the admin never changed it).
    served = serve(tmp_path, reserve=2, idle_timeout_s=1200, queue_timeout_s=1800)
    try:
        policy = served.runtime.policy_settings
        assert policy.idle_timeout_s == 900
        assert dict(policy.group_caps) == {"contractors": 2}
        assert policy.priority_classes == vip
        assert policy.reserve == 2 and policy.queue_timeout_s == 1800
        assert served.runtime.engine.settings == policy  # the engine decides with it
        assert served.runtime.base_policy is not None
        assert served.runtime.base_policy.idle_timeout_s == 1200
        # Setting it back to the file's value hands the setting back to the file.
        served.runtime.update_policy(dataclasses.replace(policy, idle_timeout_s=1200), "root")
        assert "idle_timeout_s" not in served.runtime.ledger.policy_overrides()
    finally:
        served.close()


def test_overrides_that_no_longer_fit_the_config_are_left_out(tmp_path: Path) -> None:
    served = serve(tmp_path, idle_timeout_s=600, min_hold_s=60)
    try:
        changed = dataclasses.replace(served.runtime.policy_settings, min_hold_s=500)
        served.runtime.update_policy(changed, "root")
    finally:
        served.close()
    # The file now says idle_timeout_s = 300: min_hold_s 500 would exceed it.
    served = serve(tmp_path, idle_timeout_s=300, min_hold_s=60)
    try:
        assert served.runtime.policy_settings.min_hold_s == 60
        assert served.runtime.policy_settings.idle_timeout_s == 300
    finally:
        served.close()


def audit(served: Served) -> list[tuple[str, AuditKind, str, str]]:
    with served.services.ledger.transaction() as tx:
        return [(e.user, e.kind, e.rule, e.reason) for e in tx.audit_log()]


def test_admin_actions_of_the_web_side_go_to_the_one_audit_log_once(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        runtime = served.runtime
        store = WebStore(runtime.ledger.engine)
        store.create()
        actions = Actions(runtime, store)
        actions.pin("ann", None, "root", "the CEO")
        actions.unpin("ann", "root")
        actions.set_policy({"idle_timeout_s": 900}, "root")
        actions.record("root", "token", "-", "created reporter token 'sr'")
        entries = audit(served)
        admin = [(u, r, why) for u, k, r, why in entries if k is AuditKind.ADMIN]
        assert admin == [
            ("ann", "admin-pin", "by root: pinned until no end: the CEO"),
            ("ann", "admin-unpin", "by root: unpinned"),
            ("-", "admin-token", "by root: created reporter token 'sr'"),
        ]
        policy = [(u, k, why) for u, k, r, why in entries if r == "admin-policy"]
        assert policy == [("-", AuditKind.POLICY_CHANGED, "by root: idle_timeout_s: 600 -> 900")]
        with runtime.ledger.engine.connect() as c:
            assert not sa.inspect(c).has_table("web_admin_audit")
    finally:
        served.close()


def test_the_migration_moves_the_web_sides_old_admin_audit_into_the_audit_log(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "0003")
        connection.exec_driver_sql(
            "CREATE TABLE web_admin_audit (id INTEGER PRIMARY KEY, at BIGINT, actor VARCHAR, "
            "action VARCHAR, target VARCHAR, detail TEXT)"
        )
        connection.exec_driver_sql(
            "INSERT INTO web_admin_audit (at, actor, action, target, detail) VALUES "
            "(20, 'root', 'unpin', 'ann', 'unpinned'), (10, 'root', 'pin', 'ann', 'pinned')"
        )
    engine.dispose()
    upgrade(url)
    ledger = SqlLedger.open(url)
    try:
        with ledger.transaction() as tx:
            entries = [(e.at, e.user, e.kind, e.rule, e.reason) for e in tx.audit_log()]
        assert entries == [
            (10, "ann", AuditKind.ADMIN, "admin-pin", "by root: pinned"),
            (20, "ann", AuditKind.ADMIN, "admin-unpin", "by root: unpinned"),
        ]
        with ledger.engine.connect() as c:
            assert not sa.inspect(c).has_table("web_admin_audit")
    finally:
        ledger.close()
