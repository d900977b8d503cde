"""The seat policy, rule by rule, with a fixed clock; then random sequences against invariants."""

from __future__ import annotations

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from floatseat.domain.policy import (
    Activity,
    AdminGrant,
    AdminRevoke,
    Decision,
    Denied,
    DirectoryChanged,
    DirectoryFigures,
    Grant,
    Ignored,
    Pin,
    PinsChanged,
    PolicySettings,
    PriorityClass,
    Queued,
    Release,
    Revoke,
    RevokesPaused,
    Rule,
    SeatPolicy,
    SettingsError,
    Sweep,
    Warn,
)

USERS = ("ann", "bob", "carl", "dora", "eve", "finn")
T = 1800  # idle timeout


def figures(
    tier: int = 5, *, outside: int = 0, groups: dict[str, set[str]] | None = None
) -> DirectoryFigures:
    return DirectoryFigures(
        tier=tier,
        licensed_outside=outside,
        pool=frozenset(USERS),
        groups={u: frozenset(g) for u, g in (groups or {}).items()},
        excluded=frozenset({"svc"}),
    )


def policy(seats: int = 2, **overrides: object) -> SeatPolicy:
    base: dict[str, object] = {"reserve": 0, "warn_before_s": 0}
    base.update(overrides)
    return SeatPolicy(PolicySettings(**base), figures(seats))  # type: ignore[arg-type]


def kinds(decisions: list[Decision]) -> list[tuple[str, str, Rule]]:
    return [(type(d).__name__, d.user, d.rule) for d in decisions]


def test_a_free_seat_is_granted_at_once() -> None:
    p = policy()
    assert kinds(p.handle(Activity("ann", 0))) == [("Grant", "ann", Rule.GRANT_FREE_SEAT)]
    assert p.handle(Activity("ann", 10)) == []  # a holder's activity only refreshes


def test_capacity_is_tier_minus_outside_pinned_and_reserve() -> None:
    p = SeatPolicy(PolicySettings(reserve=3), figures(10, outside=2), [Pin(user="ann")])
    p.handle(Sweep(0))
    assert p.capacity() == 10 - 2 - 1 - 3


def test_users_outside_the_pool_and_excluded_users_are_ignored() -> None:
    p = policy()
    assert kinds(p.handle(Activity("mallory", 0))) == [
        ("Ignored", "mallory", Rule.IGNORE_NOT_IN_POOL)
    ]
    assert isinstance(p.handle(Activity("svc", 0))[0], Ignored)
    assert p.holders == {}


def test_without_a_seat_and_without_preemption_the_user_is_queued_once() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    assert kinds(p.handle(Activity("bob", 10))) == [("Queued", "bob", Rule.QUEUE_NO_SEAT)]
    assert p.handle(Activity("bob", 20)) == []  # at most one open entry per user
    assert list(p.waiters) == ["bob"]


def test_an_expired_holder_makes_room_lazily() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    decisions = p.handle(Activity("bob", T))  # ann expired exactly at 0 + T
    assert kinds(decisions) == [
        ("Revoke", "ann", Rule.REVOKE_LAZY_EXPIRY),
        ("Grant", "bob", Rule.GRANT_AFTER_EXPIRY),
    ]


def test_a_holder_is_not_expired_one_second_before_the_timeout() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    assert isinstance(p.handle(Activity("bob", T - 1))[0], Queued)


def test_idle_holder_is_preempted_only_after_preempt_after() -> None:
    p = policy(seats=1, preempt=True, preempt_after_s=900, min_hold_s=300)
    p.handle(Activity("ann", 0))
    assert isinstance(p.handle(Activity("bob", 899))[0], Queued)
    p2 = policy(seats=1, preempt=True, preempt_after_s=900, min_hold_s=300)
    p2.handle(Activity("ann", 0))
    assert kinds(p2.handle(Activity("bob", 900))) == [
        ("Revoke", "ann", Rule.REVOKE_PREEMPTED),
        ("Grant", "bob", Rule.GRANT_AFTER_PREEMPTION),
    ]


def test_a_holder_is_never_preempted_before_min_hold() -> None:
    p = policy(seats=1, preempt=True, preempt_after_s=0, min_hold_s=300)
    p.handle(Activity("ann", 0))
    assert isinstance(p.handle(Activity("bob", 299))[0], Queued)


def test_the_longest_idle_holder_is_preempted_and_ties_go_to_the_earlier_grant() -> None:
    p = policy(seats=2, preempt=True, preempt_after_s=60, min_hold_s=0)
    p.handle(Activity("bob", 0))
    p.handle(Activity("ann", 5))
    p.handle(Activity("ann", 10))
    p.handle(Activity("bob", 10))  # both idle since 10: bob was granted first
    decisions = p.handle(Activity("carl", 100))
    assert kinds(decisions)[0] == ("Revoke", "bob", Rule.REVOKE_PREEMPTED)


def test_sweep_revokes_expired_holders_but_never_before_min_hold() -> None:
    p = policy(seats=3, min_hold_s=0)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 100))
    assert kinds(p.handle(Sweep(T))) == [("Revoke", "ann", Rule.REVOKE_IDLE)]
    assert list(p.holders) == ["bob"]


def test_sweep_serves_the_queue_and_the_grant_instant_is_the_last_activity() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 10))
    decisions = p.handle(Sweep(T))
    assert kinds(decisions) == [
        ("Revoke", "ann", Rule.REVOKE_IDLE),
        ("Grant", "bob", Rule.GRANT_FROM_QUEUE),
    ]
    assert p.holders["bob"].last_activity == T


def test_a_queue_entry_older_than_queue_timeout_is_denied() -> None:
    p = policy(seats=1, preempt=False, queue_timeout_s=600)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 10))
    p.handle(Activity("ann", 500))
    assert p.handle(Sweep(610)) == []  # waited exactly the timeout: not older than it yet
    assert kinds(p.handle(Sweep(611))) == [("Denied", "bob", Rule.DENY_QUEUE_TIMEOUT)]
    assert p.waiters == {}


def test_priority_classes_are_served_first_and_fifo_within_a_class() -> None:
    vip = PriorityClass("vip", 10, frozenset({"vips"}))
    p = SeatPolicy(
        PolicySettings(
            reserve=0,
            preempt=False,
            priority_classes=(vip,),
            queue_aging_s=0,
            queue_timeout_s=10_000,
        ),
        figures(1, groups={"dora": {"vips"}}),
    )
    p.handle(Activity("ann", 0))
    for t, user in ((1, "bob"), (2, "carl"), (3, "dora")):
        p.handle(Activity(user, t))
    served = [d.user for d in p.handle(Sweep(T)) if isinstance(d, Grant)]
    assert served == ["dora"]
    p.handle(Activity("dora", T + 1))
    served = [d.user for d in p.handle(Sweep(2 * T + 1)) if isinstance(d, Grant)]
    assert served == ["bob"]


def test_aging_lets_a_long_waiter_overtake_a_newer_vip() -> None:
    vip = PriorityClass("vip", 2, frozenset({"vips"}))
    p = SeatPolicy(
        PolicySettings(
            reserve=0, preempt=False, priority_classes=(vip,), queue_aging_s=100,
            queue_timeout_s=10_000,
        ),
        figures(1, groups={"dora": {"vips"}}),
    )  # fmt: skip
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 1))  # waits 1799 s by the sweep: rank 0 + 17
    p.handle(Activity("dora", 1700))  # rank 2 + 1
    served = [d.user for d in p.handle(Sweep(T)) if isinstance(d, Grant)]
    assert served == ["bob"]


def test_group_cap_keeps_a_team_under_its_maximum() -> None:
    p = SeatPolicy(
        PolicySettings(reserve=0, group_caps={"team-x": 1}),
        figures(5, groups={"ann": {"team-x"}, "bob": {"team-x"}}),
    )
    p.handle(Activity("ann", 0))
    assert isinstance(p.handle(Activity("bob", 1))[0], Queued)
    assert isinstance(p.handle(Activity("carl", 2))[0], Grant)


def test_group_reservation_keeps_seats_for_a_team() -> None:
    p = SeatPolicy(
        PolicySettings(reserve=0, preempt=False, group_reservations={"team-y": 1}),
        figures(2, groups={"dora": {"team-y"}}),
    )
    assert isinstance(p.handle(Activity("ann", 0))[0], Grant)
    assert isinstance(p.handle(Activity("bob", 1))[0], Queued)  # the last seat is dora's
    assert isinstance(p.handle(Activity("dora", 2))[0], Grant)


def test_lock_after_revoke_blocks_preemption_but_not_a_free_seat() -> None:
    p = policy(seats=1, preempt=True, preempt_after_s=60, min_hold_s=0, lock_after_revoke_s=600)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 100))  # pre-empts ann, who is locked until 700
    assert isinstance(p.handle(Activity("ann", 200))[0], Queued)  # bob idle 100 s, yet no
    p2 = policy(seats=2, preempt=True, preempt_after_s=60, min_hold_s=0, lock_after_revoke_s=600)
    p2.handle(Activity("ann", 0))
    p2.handle(Activity("carl", 0))
    p2.handle(Activity("bob", 100))
    p2.handle(Activity("carl", 150))
    assert not p2.locked_until or "ann" in p2.locked_until
    p2.holders.pop("carl")  # a seat comes free
    assert isinstance(p2.handle(Activity("ann", 200))[0], Grant)


def test_a_warning_comes_warn_before_ahead_of_the_revoke() -> None:
    p = policy(seats=2, warn_before_s=60, min_hold_s=0)
    p.handle(Activity("ann", 0))
    assert p.handle(Sweep(T - 61)) == []
    warned = p.handle(Sweep(T - 60))
    assert kinds(warned) == [("Warn", "ann", Rule.WARN_IDLE)]
    assert p.handle(Sweep(T - 30)) == []  # once
    assert isinstance(p.handle(Sweep(T))[0], Revoke)


def test_a_capacity_drop_revokes_the_longest_idle_first() -> None:
    p = policy(seats=3)
    for t, user in ((0, "ann"), (5, "bob"), (9, "carl")):
        p.handle(Activity(user, t))
    p.handle(Activity("ann", 20))
    decisions = p.handle(DirectoryChanged(30, figures(3, outside=2)))
    assert kinds(decisions) == [
        ("Revoke", "bob", Rule.REVOKE_CAPACITY_DROP),
        ("Revoke", "carl", Rule.REVOKE_CAPACITY_DROP),
    ]


def test_pinned_users_hold_a_seat_until_the_pin_ends() -> None:
    p = policy(seats=3)
    p.handle(Activity("ann", 0))
    decisions = p.handle(PinsChanged(10, (Pin(user="ann", until=T + 100),)))
    assert kinds(decisions) == [("Release", "ann", Rule.RELEASE_PINNED)]
    assert p.pinned == {"ann"} and p.capacity() == 2
    assert p.handle(Sweep(T + 50)) == []  # pinned: never moved, however idle
    decisions = p.handle(Sweep(T + 100))
    assert kinds(decisions) == [("Grant", "ann", Rule.GRANT_PIN_ENDED)]
    assert p.capacity() == 3


def test_pins_by_group() -> None:
    p = SeatPolicy(
        PolicySettings(reserve=0), figures(4, groups={"eve": {"admins"}}), [Pin(group="admins")]
    )
    p.handle(Sweep(0))
    assert p.pinned == {"eve"}
    assert p.handle(Activity("eve", 1)) == []


def test_min_hold_above_idle_timeout_is_refused() -> None:
    with pytest.raises(SettingsError, match="min_hold_s must not exceed idle_timeout_s"):
        PolicySettings(idle_timeout_s=60, min_hold_s=61)


def test_the_same_input_gives_the_same_decisions() -> None:
    events = [Activity(u, t) for t, u in enumerate(USERS * 3)] + [Sweep(T * 2)]
    runs = []
    for _ in range(2):
        p = policy(seats=2)
        runs.append([d for e in events for d in p.handle(e)])
    assert runs[0] == runs[1]


def test_a_snapshot_restores_the_same_policy() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 5))
    restored = SeatPolicy.restore(p.settings, p.snapshot())
    assert restored.snapshot() == p.snapshot()
    assert kinds(restored.handle(Sweep(T))) == kinds(p.handle(Sweep(T)))


# -- random sequences ---------------------------------------------------------------------


class PolicyMachine(RuleBasedStateMachine):
    """Random activity, sweeps, directory and pin changes, and restarts from a snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0
        self.decisions: list[Decision] = []
        self.policy = SeatPolicy(
            PolicySettings(
                idle_timeout_s=600, min_hold_s=60, preempt_after_s=300, warn_before_s=30,
                queue_timeout_s=900, reserve=1, lock_after_revoke_s=120,
                group_caps={"team-x": 2}, group_reservations={"team-y": 1},
            ),
            figures(5, groups={"ann": {"team-x"}, "bob": {"team-x"}, "carl": {"team-y"}}),
        )  # fmt: skip

        self.paused: str | None = None

    def step(self, seconds: int) -> None:
        self.now += seconds

    def handle(self, event: object) -> None:
        decisions = self.policy.handle(event)  # type: ignore[arg-type]
        if self.paused is not None:  # nobody loses a seat for idleness while paused
            judged_idle = {Rule.REVOKE_IDLE, Rule.REVOKE_LAZY_EXPIRY, Rule.REVOKE_PREEMPTED}
            assert not [d for d in decisions if d.rule in judged_idle or isinstance(d, Warn)]
        self.decisions += decisions

    @rule(user=st.sampled_from((*USERS, "svc", "mallory")), wait=st.integers(0, 400))
    def activity(self, user: str, wait: int) -> None:
        self.step(wait)
        self.handle(Activity(user, self.now))

    @rule(wait=st.integers(0, 700))
    def sweep(self, wait: int) -> None:
        self.step(wait)
        self.handle(Sweep(self.now))

    @rule(tier=st.integers(0, 8), outside=st.integers(0, 4), leave=st.sampled_from(USERS))
    def directory_changes(self, tier: int, outside: int, leave: str) -> None:
        base = figures(tier, outside=outside, groups={"ann": {"team-x"}, "carl": {"team-y"}})
        pool = base.pool - {leave}
        self.handle(
            DirectoryChanged(
                self.now, DirectoryFigures(tier, outside, pool, base.groups, base.excluded)
            )
        )

    @rule(user=st.sampled_from(USERS), for_s=st.one_of(st.none(), st.integers(1, 2000)))
    def pin(self, user: str, for_s: int | None) -> None:
        until = None if for_s is None else self.now + for_s
        self.handle(PinsChanged(self.now, (Pin(user=user, until=until),)))

    @rule(user=st.sampled_from((*USERS, "svc")), grant=st.booleans())
    def admin(self, user: str, grant: bool) -> None:
        event = AdminGrant if grant else AdminRevoke
        self.handle(event(self.now, user, "root", "by hand"))

    @rule(reason=st.one_of(st.none(), st.just("feed of node2 stalled")))
    def pause_or_resume(self, reason: str | None) -> None:
        self.paused = reason
        self.handle(RevokesPaused(self.now, reason))

    @precondition(lambda self: True)
    @rule()
    def restart_from_snapshot(self) -> None:
        self.policy = SeatPolicy.restore(self.policy.settings, self.policy.snapshot())
        assert self.policy.revokes_paused == self.paused

    @invariant()
    def seats_held_never_exceed_capacity(self) -> None:
        p = self.policy
        assert len(p.holders) <= p.capacity()
        figures_ = p.figures
        if len(p.pinned) + figures_.licensed_outside + p.settings.reserve <= figures_.tier:
            assert p.licensed_count() <= figures_.tier

    @invariant()
    def nobody_both_holds_and_waits_and_pinned_users_float_never(self) -> None:
        p = self.policy
        assert not set(p.holders) & set(p.waiters)
        assert not p.pinned & (set(p.holders) | set(p.waiters))

    @invariant()
    def holders_are_kept_longest_idle_first(self) -> None:
        lasts = [h.last_activity for h in self.policy.holders.values()]
        assert lasts == sorted(lasts)

    @invariant()
    def only_managed_pool_members_hold_or_wait(self) -> None:
        p = self.policy
        managed = p.figures.pool - p.figures.excluded
        assert set(p.holders) <= managed and set(p.waiters) <= managed

    @invariant()
    def decisions_replay_to_the_holders(self) -> None:
        # Every move is a decision: replaying grants and revokes gives the floating holders.
        held: set[str] = set()
        for d in self.decisions:
            if isinstance(d, Grant):
                held.add(d.user)
            elif isinstance(d, Revoke | Release):
                held.discard(d.user)
        assert held == set(self.policy.holders)

    @invariant()
    def every_decision_has_a_rule_and_a_reason(self) -> None:
        assert all(d.reason and isinstance(d.rule, Rule) for d in self.decisions[-5:])
        assert all(not isinstance(d, Warn | Denied) or d.user for d in self.decisions[-5:])


PolicyMachine.TestCase.settings = hypothesis_settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_policy_invariants_hold_under_random_sequences = PolicyMachine.TestCase


def test_a_group_cap_lets_a_member_take_an_idle_members_seat() -> None:
    p = SeatPolicy(
        PolicySettings(reserve=0, group_caps={"team-x": 1}, preempt_after_s=900),
        figures(1, groups={"ann": {"team-x"}, "bob": {"team-x"}}),
    )
    p.handle(Activity("ann", 0))
    assert kinds(p.handle(Activity("bob", 1000))) == [
        ("Revoke", "ann", Rule.REVOKE_PREEMPTED),
        ("Grant", "bob", Rule.GRANT_AFTER_PREEMPTION),
    ]


def test_a_reserved_free_seat_does_not_stop_a_newcomer_taking_an_idle_seat() -> None:
    p = SeatPolicy(
        PolicySettings(reserve=0, group_reservations={"team-y": 1}, preempt_after_s=900),
        figures(2, groups={"dora": {"team-y"}}),
    )
    p.handle(Activity("ann", 0))
    decisions = p.handle(Activity("bob", 1000))
    assert kinds(decisions)[-1] == ("Grant", "bob", Rule.GRANT_AFTER_PREEMPTION)
    assert p.free_seats() == 1  # still kept for team-y


def test_lazy_expiry_and_the_sweep_agree_on_reservations() -> None:
    def fresh() -> SeatPolicy:
        p = SeatPolicy(
            PolicySettings(reserve=0, preempt=False, group_reservations={"team-y": 1}),
            figures(2, groups={"dora": {"team-y"}}),
        )
        p.handle(Activity("dora", 0))
        p.handle(Activity("ann", 0))
        p.handle(Activity("ann", 1700))
        return p

    lazy = fresh()
    swept = fresh()
    swept.handle(Sweep(T))
    assert isinstance(lazy.handle(Activity("bob", T))[-1], Queued)
    assert isinstance(swept.handle(Activity("bob", T))[-1], Queued)


def test_a_late_event_keeps_the_queue_in_the_order_people_queued() -> None:
    p = policy(seats=1, preempt=False, queue_timeout_s=600)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 100))
    p.handle(Activity("carl", 50))  # logged late by another node
    assert list(p.waiters) == ["carl", "bob"]
    restored = SeatPolicy.restore(p.settings, p.snapshot())
    assert list(restored.waiters) == list(p.waiters)
    assert kinds(p.handle(Sweep(651))) == [("Denied", "carl", Rule.DENY_QUEUE_TIMEOUT)]


def test_while_revokes_are_paused_nobody_loses_a_seat_for_idleness() -> None:
    p = policy(seats=2, preempt_after_s=600)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 0))
    assert p.handle(RevokesPaused(10, "feed of node2 stalled")) == []
    assert p.revokes_paused == "feed of node2 stalled"
    assert p.handle(Sweep(T + 100)) == []  # expired, but not revoked
    assert kinds(p.handle(Activity("carl", T + 200))) == [("Queued", "carl", Rule.QUEUE_NO_SEAT)]
    # The licence still comes first: a capacity drop revokes even now.
    dropped = p.handle(DirectoryChanged(T + 300, figures(1)))
    assert kinds(dropped) == [("Revoke", "ann", Rule.REVOKE_CAPACITY_DROP)]
    resumed = p.handle(RevokesPaused(T + 400, None))
    assert kinds(resumed) == [
        ("Revoke", "bob", Rule.REVOKE_LAZY_EXPIRY),
        ("Grant", "carl", Rule.GRANT_FROM_QUEUE),
    ]


def test_a_paused_policy_still_gives_free_seats() -> None:
    p = policy(seats=2)
    p.handle(RevokesPaused(0, "frozen by admin"))
    assert kinds(p.handle(Activity("ann", 5))) == [("Grant", "ann", Rule.GRANT_FREE_SEAT)]


def test_idle_revokes_per_sweep_are_capped_longest_idle_first() -> None:
    p = policy(seats=5, max_revokes_per_sweep=2)
    for at, user in enumerate(USERS[:5]):
        p.handle(Activity(user, at))
    first = p.handle(Sweep(T + 10))
    assert kinds(first) == [("Revoke", u, Rule.REVOKE_IDLE) for u in USERS[:2]]
    second = p.handle(Sweep(T + 70))
    assert kinds(second) == [("Revoke", u, Rule.REVOKE_IDLE) for u in USERS[2:4]]
    assert [d.user for d in p.handle(Sweep(T + 130))] == [USERS[4]]


def test_a_capped_sweep_revokes_the_same_equally_idle_holders_after_a_restore() -> None:
    # Granted in name order, then all active in the same second in the reverse order: the
    # live policy holds them in that reverse order, a restored one by grant and name.
    p = policy(seats=5, max_revokes_per_sweep=2, min_hold_s=0)
    for at, user in enumerate(USERS[:4]):
        p.handle(Activity(user, at))
    for user in reversed(USERS[:4]):
        p.handle(Activity(user, 10))
    restored = SeatPolicy.restore(p.settings, p.snapshot())
    sweep = Sweep(10 + p.settings.idle_timeout_s)
    expected = [("Revoke", u, Rule.REVOKE_IDLE) for u in USERS[:2]]  # the earlier grants
    assert kinds(p.handle(sweep)) == expected
    assert kinds(restored.handle(sweep)) == expected
    assert restored.holders.keys() == p.holders.keys() == set(USERS[2:4])


def test_a_negative_revoke_cap_is_refused() -> None:
    with pytest.raises(SettingsError, match="max_revokes_per_sweep"):
        PolicySettings(max_revokes_per_sweep=-1)


def test_an_admin_grant_takes_a_free_seat_and_says_who_and_why() -> None:
    p = policy(seats=1)
    [grant] = p.handle(AdminGrant(5, "ann", "root", "incident 42"))
    assert (type(grant), grant.rule) == (Grant, Rule.GRANT_BY_ADMIN)
    assert "root" in grant.reason and "incident 42" in grant.reason


def test_an_admin_grant_never_goes_above_capacity() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    [denied] = p.handle(AdminGrant(10, "bob", "root", "urgent"))
    assert (type(denied), denied.rule) == (Denied, Rule.DENY_NO_SEAT_FOR_ADMIN)
    assert set(p.holders) == {"ann"}


def test_an_admin_grant_may_take_an_expired_seat_but_not_while_paused() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    p.handle(RevokesPaused(T + 1, "frozen"))
    assert kinds(p.handle(AdminGrant(T + 10, "bob", "root", "x"))) == [
        ("Denied", "bob", Rule.DENY_NO_SEAT_FOR_ADMIN)
    ]
    p.handle(RevokesPaused(T + 20, None))
    assert kinds(p.handle(AdminGrant(T + 30, "bob", "root", "x"))) == [
        ("Revoke", "ann", Rule.REVOKE_LAZY_EXPIRY),
        ("Grant", "bob", Rule.GRANT_BY_ADMIN),
    ]


def test_an_admin_revoke_frees_the_seat_for_the_queue() -> None:
    p = policy(seats=1, preempt=False)
    p.handle(Activity("ann", 0))
    p.handle(Activity("bob", 10))  # queued
    assert kinds(p.handle(AdminRevoke(20, "ann", "root", "left"))) == [
        ("Revoke", "ann", Rule.REVOKE_BY_ADMIN),
        ("Grant", "bob", Rule.GRANT_FROM_QUEUE),
    ]


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (AdminGrant(5, "mallory", "root", "x"), "not a member of the pool"),
        (AdminGrant(5, "svc", "root", "x"), "excluded"),
        (AdminRevoke(5, "bob", "root", "x"), "holds no floating seat"),
    ],
)
def test_admin_requests_that_cannot_apply_are_ignored_with_the_reason(
    event: AdminGrant | AdminRevoke, why: str
) -> None:
    p = policy(seats=2)
    [ignored] = p.handle(event)
    assert (type(ignored), ignored.rule) == (Ignored, Rule.IGNORE_ADMIN_REQUEST)
    assert why in ignored.reason


def test_a_pinned_user_is_neither_granted_nor_revoked_by_hand() -> None:
    p = policy(seats=2)
    p.handle(PinsChanged(0, (Pin(user="ann"),)))
    for event in (AdminGrant(5, "ann", "root", "x"), AdminRevoke(6, "ann", "root", "x")):
        assert kinds(p.handle(event)) == [("Ignored", "ann", Rule.IGNORE_ADMIN_REQUEST)]
