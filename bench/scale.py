"""The engine at 100,000 users: one sweep over 100k holders, and reconciling a 100k group.

Each measurement runs in its own child process (this script with `--part`), so its peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is its own; the child also reports its RSS
after building the input, so the step's own memory shows as the difference.

Parts:
- `policy-sweep`: `SeatPolicy.handle(Sweep)` on a policy restored with N holders, the
  older half idle past `idle_timeout_s` (no cap on revokes per sweep): N/2 revokes.
- `engine-sweep`: the same `Sweep` through `SeatEngine` on a SQLite ledger (in a temporary
  folder): loading the N holders, deciding, saving the state, queuing N/2 revoke moves and
  writing their audit rows, in one transaction. Then one `Activity` event with N/2 holders
  left, as the engine decides every event in a busy instance.
- `reconcile`: `Reconciler.run` against a `FakeDirectory` whose `IUM_Disabled` has N
  members (N + 1,000 pool members, the other 1,000 are holders, of whom 10 were taken out
  of `IUM_Enabled` by hand: regranted; 10 non-holders were put in by hand: adopted) and
  whose users group has 1,000 new users (500 placed per run). The first run, a second
  (steady state: the other 500 placed) and a third that finds nothing new. Each row also
  says how long that run spent inside `FakeDirectory` calls (its `find_user` builds the set
  of every known user on each call: ~9 ms at 100k, where a real directory makes one
  request), so that floatseat's own share is the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from floatseat.directory.fake import FakeDirectory
from floatseat.domain.policy import (
    Activity,
    DirectoryFigures,
    Holder,
    PolicySettings,
    PolicySnapshot,
    SeatPolicy,
    Sweep,
)
from floatseat.service.engine import SeatEngine
from floatseat.service.reconcile import Reconciler, ReconcileSettings
from floatseat.service.runtime import Runtime
from floatseat.store.ledger import SqlLedger

NOW = 1_750_000_000
IDLE = 1800
E, D, USERS = "IUM_Enabled", "IUM_Disabled", "confluence-users"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def settings() -> PolicySettings:
    return PolicySettings(
        idle_timeout_s=IDLE, min_hold_s=60, reserve=0, warn_before_s=0, max_revokes_per_sweep=0
    )


def snapshot(n: int) -> PolicySnapshot:
    """N holders, ordered by last activity; the first half idle past the timeout."""
    users = [f"user{k:06d}" for k in range(n)]
    holders = tuple(
        Holder(
            user,
            granted_at=NOW - 3 * IDLE,
            last_activity=NOW - 2 * IDLE - (n // 2 - k) if k < n // 2 else NOW - 60 + k % 60,
        )
        for k, user in enumerate(users)
    )
    figures = DirectoryFigures(tier=n + 10, pool=frozenset(users))
    return PolicySnapshot(figures, (), holders, (), (), frozenset())


def policy_sweep(n: int) -> dict[str, Any]:
    policy = SeatPolicy.restore(settings(), snapshot(n))
    before = rss_mib()
    started = time.perf_counter()
    decisions = policy.handle(Sweep(NOW))
    took = time.perf_counter() - started
    return {
        "step": f"SeatPolicy.handle(Sweep), {n:,} holders",
        "s": took,
        "result": f"{len(decisions):,} revokes, {len(policy.holders):,} left",
        "rss_before": before,
        "rss_peak": rss_mib(),
    }


def engine_sweep(n: int, work: Path) -> list[dict[str, Any]]:
    ledger = SqlLedger.open(f"sqlite:///{work / 'ledger.db'}")
    engine = SeatEngine(ledger, settings())
    started = time.perf_counter()
    with ledger.transaction() as tx:
        tx.lock()
        tx.save(tx.load(), snapshot(n))
    seeded = time.perf_counter() - started
    before = rss_mib()
    started = time.perf_counter()
    decisions = engine.handle(Sweep(NOW))
    took = time.perf_counter() - started
    with ledger.transaction() as tx:
        pending = len(tx.users_with_unfinished_moves())
    rows = [
        {
            "step": f"SeatEngine.handle(Sweep), {n:,} holders, SQLite",
            "s": took,
            "result": f"{len(decisions):,} revokes"
            + ("" if pending is None else f", {pending:,} moves queued")
            + f" (seeding the ledger: {seeded:.2f} s)",
            "rss_before": before,
            "rss_peak": rss_mib(),
        }
    ]
    left = engine.peek()
    assert left is not None
    user = left.holders[-1].user
    before = rss_mib()
    started = time.perf_counter()
    engine.handle(Activity(user, NOW + 1))
    took = time.perf_counter() - started
    rows.append(
        {
            "step": f"SeatEngine.handle(Activity), {len(left.holders):,} holders, SQLite",
            "s": took,
            "result": "one holder refreshed",
            "rss_before": before,
            "rss_peak": rss_mib(),
        }
    )
    ledger.engine.dispose()
    return rows


def reconcile(n: int, work: Path) -> list[dict[str, Any]]:
    users = [f"user{k:06d}" for k in range(n + 1000)]
    holders = users[:1000]
    new = [f"new{k:04d}" for k in range(1000)]
    enabled = set(holders[10:]) | set(users[1000:1010])  # 10 taken out, 10 put in by hand
    disabled = (set(users) - enabled) | set(holders[:10])
    directory = FakeDirectory(
        tier=n + 2000,
        groups={E: enabled, D: disabled, USERS: set(users) | set(new)},
    )
    ledger = SqlLedger.open(f"sqlite:///{work / 'ledger.db'}")
    engine = SeatEngine(ledger, settings())
    seed = PolicySnapshot(
        DirectoryFigures(tier=n + 2000, pool=frozenset(users)),
        (),
        tuple(Holder(u, NOW - 600, NOW - 60) for u in holders),
        (),
        (),
        frozenset(),
    )
    with ledger.transaction() as tx:
        tx.lock()
        tx.save(tx.load(), seed)
    runtime = Runtime(ledger=ledger, engine=engine, policy_settings=settings(), clock=lambda: NOW)
    reconciler = Reconciler(
        runtime, directory, ReconcileSettings(users_group=USERS, excluded=frozenset({"admin"}))
    )
    read = [E, D, USERS]
    started = time.perf_counter()
    directory.memberships(read)
    reading = time.perf_counter() - started
    spent = time_calls(directory, ("find_user", "memberships", "licence", "add_user_to_group"))
    rows = []
    for label in ("first run", "second run", "third run"):
        spent.clear()
        before = rss_mib()
        started = time.perf_counter()
        report = reconciler.run(NOW)
        took = time.perf_counter() - started
        inside = sum(spent.values())
        rows.append(
            {
                "step": f"Reconciler.run, {len(disabled):,}-member {D}, {label}",
                "s": took,
                "result": (
                    f"placed {len(report.placed)}, adopted {len(report.adopted)}, "
                    f"regranted {len(report.regranted)}, revoked {len(report.revoked)}; "
                    f"of which FakeDirectory.memberships() alone: {reading:.2f} s; "
                    f"in FakeDirectory calls this run: {inside:.2f} s "
                    f"(find_user {spent.get('find_user', 0.0):.2f} s), "
                    f"floatseat's own: {took - inside:.2f} s"
                ),
                "rss_before": before,
                "rss_peak": rss_mib(),
            }
        )
    ledger.engine.dispose()
    return rows


def time_calls(obj: object, names: tuple[str, ...]) -> dict[str, float]:
    """Wrap `obj`'s methods `names` to add up the seconds spent in each (by name)."""
    spent: dict[str, float] = {}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

        return call

    for name in names:
        setattr(obj, name, timed(name, getattr(obj, name)))
    return spent


def run_part(part: str, n: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="floatseat-bench-scale-") as tmp:
        if part == "policy-sweep":
            return [policy_sweep(n)]
        if part == "engine-sweep":
            return engine_sweep(n, Path(tmp))
        if part == "reconcile":
            return reconcile(n, Path(tmp))
    raise SystemExit(f"no part {part}")


PARTS = ("policy-sweep", "engine-sweep", "reconcile")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--part", choices=PARTS, help="run one part here (used internally)")
    args = parser.parse_args()
    if args.part:
        print(json.dumps(run_part(args.part, args.users)))
        return 0
    print(f"floatseat scale bench: {args.users:,} users, nproc {os.cpu_count()}")
    rows: list[tuple[dict[str, Any], str]] = []
    for part in PARTS:
        load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
        out = subprocess.run(
            [sys.executable, __file__, "--part", part, "--users", str(args.users)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.extend((row, load) for row in json.loads(out.stdout.strip().splitlines()[-1]))
    head = f"{'step':<62} {'wall s':>7} {'RSS before':>11} {'peak RSS':>9}  load avg"
    print(head)
    print("-" * len(head))
    for row, load in rows:
        print(
            f"{row['step']:<62} {row['s']:>7.3f} {row['rss_before']:>7.0f} MiB "
            f"{row['rss_peak']:>5.0f} MiB  {load}"
        )
        print(f"    {row['result']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
