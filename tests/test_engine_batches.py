"""`SeatEngine.handle_all`: several events in one ledger transaction must decide, save, queue
and audit exactly what handling them one by one does (the activity API decides the reports
that queued up together this way, and the activity loop decides each poll's activity)."""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from test_incremental_engine import history, ledgers, policy_settings, saved, steps

from floatseat.domain.policy import PolicySettings
from floatseat.service.engine import SeatEngine


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(settings=policy_settings(), plan=steps(), cuts=st.lists(st.integers(1, 6), max_size=40))
def test_a_batch_decides_and_saves_what_its_events_one_by_one_do(
    settings: PolicySettings, plan: list, cuts: list[int]
) -> None:
    events = [step.event for step in plan]
    with ledgers(2) as (batched_ledger, single_ledger):
        batched = SeatEngine(batched_ledger, settings)
        single = SeatEngine(single_ledger, settings)
        start = 0
        for size in [*cuts, len(events)]:
            batch = events[start : start + size]
            start += size
            if not batch:
                break
            assert batched.handle_all(batch) == [single.handle(e) for e in batch], batch
            assert saved(batched_ledger) == saved(single_ledger), batch
            assert history(batched_ledger) == history(single_ledger), batch


def test_a_batch_is_one_transaction_all_or_nothing() -> None:
    from floatseat.domain.policy import Activity, DirectoryChanged, DirectoryFigures

    settings = PolicySettings(idle_timeout_s=600, min_hold_s=0, warn_before_s=0, reserve=0)
    with ledgers(1) as (ledger,):
        engine = SeatEngine(ledger, settings)
        engine.handle(DirectoryChanged(1000, DirectoryFigures(tier=5, pool=frozenset({"ann"}))))
        with ledger.transaction() as tx:
            version = tx.version()
        decided = engine.handle_all([Activity("ann", 1001), Activity("ann", 1002)])
        assert [type(d).__name__ for each in decided for d in each] == ["Grant"]
        with ledger.transaction() as tx:
            assert tx.version() == version + 1  # one commit for both
