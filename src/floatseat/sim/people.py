"""Virtual users: people who log in, work, idle and leave, on the simulated clock.

Deterministic: each person draws from their own `random.Random` seeded by the run's seed and
their name, and events run in (time, person) order, so a seed and a sequence of clock
readings always give the same requests. Nothing here sleeps or reads a clock.

A working day (UTC): most people come on weekdays between 07:30 and 09:30, stay 6.5-9 h
with a lunch break, and click every few seconds to minutes, with the odd meeting of 20-60
minutes. Their first request of a stretch logs them in. Without application access the
login is refused: the access log shows the attempt as `-`, the security log the refusal,
and the person tries again after 20-90 s (a few times, then later). A person whose access
is taken away mid-session is bounced by the next request the same way (remember-me login
refused).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from floatseat.sim.logs import AccessRecord, thread_name

if TYPE_CHECKING:
    from floatseat.sim.core import Simulator

__all__ = ["Person", "VirtualUsers", "make_people"]

DAY: Final = 86_400.0
_FIRST = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert "
    "sybil trent victor walter xena yusuf zoe"
).split()
_LAST = "smith jones brown taylor wilson evans thomas roberts walker wright green hall".split()
_UNICODE = ("jürgen.müller", "zoë.ødegård", "łukasz.wiśniewski", "josé.garcía")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_BASE = {"confluence": "https://wiki.example.com", "jira": "https://jira.example.com"}


@dataclass(frozen=True)
class Person:
    name: str
    display_name: str
    email: str
    agent: str
    ip: str


def make_people(count: int, seed: int) -> list[Person]:
    """`count` people with unique names; every 25th has a non-ASCII name (logged escaped)."""
    rng = random.Random(seed)
    people: list[Person] = []
    taken: set[str] = set()
    for index in range(count):
        if index % 25 == 24:
            base = _UNICODE[(index // 25) % len(_UNICODE)]
        else:
            base = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        taken.add(name)
        first, _, last = base.partition(".")
        people.append(
            Person(
                name=name,
                display_name=f"{first.title()} {last.title()}",
                email=f"{name}@example.com",
                agent=_AGENTS[index % len(_AGENTS)],
                ip=f"10.1.{index // 250}.{index % 250 + 1}",
            )
        )
    return people


@dataclass
class _State:
    person: Person
    rng: random.Random
    day: int  # the last day planned, in days since the epoch
    stretches: list[tuple[float, float]]
    logged_in: bool = False
    node: int = 0
    session: str = ""
    refusals: int = 0


@dataclass
class VirtualUsers:
    """The people of one instance and their next events."""

    people: list[Person]
    seed: int
    nodes: int
    start: float
    states: list[_State] = field(init=False)
    heap: list[tuple[float, int]] = field(init=False)
    requests: int = 0
    logins: int = 0
    refusals: int = 0
    last_logins: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.states = []
        self.heap = []
        first_day = int(self.start // DAY)
        for index, person in enumerate(self.people):
            rng = random.Random(f"{self.seed}:{person.name}")
            state = _State(person, rng, first_day - 1, [])
            self.states.append(state)
            self._plan_until_work(state, self.start)
            heapq.heappush(self.heap, (max(self.start, state.stretches[0][0]), index))

    def last_login(self, name: str) -> int | None:
        """When `name` last logged in, in epoch milliseconds; None if never."""
        at = self.last_logins.get(name.casefold())
        return None if at is None else int(at * 1000)

    def end_session(self, name: str) -> None:
        """An admin killed the sessions: the next request logs in again."""
        for state in self.states:
            if state.person.name.casefold() == name.casefold():
                state.logged_in = False

    def summary(self) -> dict[str, int]:
        return {
            "people": len(self.people),
            "logged_in": sum(s.logged_in for s in self.states),
            "requests": self.requests,
            "logins": self.logins,
            "refused_logins": self.refusals,
        }

    # -- planning ------------------------------------------------------------------------------

    def _plan_day(self, rng: random.Random, day: int) -> list[tuple[float, float]]:
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 is Monday
        if rng.random() > (0.92 if weekday < 5 else 0.06):
            return []
        midnight = day * DAY
        arrive = midnight + rng.uniform(7.5, 9.5) * 3600
        lunch = midnight + rng.uniform(11.75, 13.0) * 3600
        leave = arrive + rng.uniform(6.5, 9.0) * 3600
        back = lunch + rng.uniform(0.5, 1.0) * 3600
        return [(arrive, lunch), (back, leave)]

    def _plan_until_work(self, state: _State, now: float) -> None:
        """Drop finished stretches; plan further days until one lies ahead of `now`."""
        while state.stretches and state.stretches[0][1] <= now:
            state.stretches.pop(0)
        while not state.stretches:
            state.day += 1
            state.stretches = [s for s in self._plan_day(state.rng, state.day) if s[1] > now]

    # -- running -------------------------------------------------------------------------------

    def run_until(self, now: float, sim: Simulator) -> int:
        """Play every event due by `now` against `sim`; the number of requests logged."""
        before = self.requests
        while self.heap and self.heap[0][0] <= now:
            at, index = heapq.heappop(self.heap)
            state = self.states[index]
            next_at = self._act(state, at, sim)
            heapq.heappush(self.heap, (next_at, index))
        return self.requests - before

    def _act(self, s: _State, t: float, sim: Simulator) -> float:
        start, end = s.stretches[0]
        if t >= end:  # the stretch is over: they leave, the session times out on its own
            s.logged_in = False
            self._plan_until_work(s, t)
            return s.stretches[0][0]
        if t < start:
            return start
        rng = s.rng
        licensed = sim.world.is_licensed(s.person.name)
        if not s.logged_in:
            s.node = rng.randrange(self.nodes)
            s.session = f"{rng.getrandbits(32):x}"[:7]
            login = "/dologin.action" if sim.product == "confluence" else "/login.jsp"
            self._log(
                sim,
                s,
                t,
                "GET",
                "/login.action" if login == "/dologin.action" else login,
                200,
                None,
            )
            if licensed:
                self._log(sim, s, t + 1, "POST", login, 302, s.person.name)
                s.logged_in, s.refusals = True, 0
                self.logins += 1
                self.last_logins[s.person.name.casefold()] = t + 1
                return t + 1 + self._think(rng)
            return self._refused(s, t + 1, sim, "POST", login, 200)
        if not licensed:
            s.logged_in = False
            page, _ = self._page(sim.product, rng)
            return self._refused(s, t, sim, "GET", page, 302)
        page, calls = self._page(sim.product, rng)
        self._log(sim, s, t, "GET", page, 200, s.person.name)
        for offset, (method, uri) in enumerate(calls, start=1):
            status = 200
            if method == "POST" and sim.world.over_tier():
                # Over the tier Confluence is read-only and Jira refuses new issues.
                status = 403
            self._log(sim, s, t + offset * 0.3, method, uri, status, s.person.name)
        return t + self._think(rng)

    def _refused(
        self, s: _State, t: float, sim: Simulator, method: str, uri: str, status: int
    ) -> float:
        self._log(sim, s, t, method, uri, status, None)
        sim.log_refusal(s.node, t, s.person.name, ip=s.person.ip, url=uri.split("?")[0])
        self.refusals += 1
        s.refusals += 1
        # People retry a few times at once, then come back later.
        return t + (s.rng.uniform(20, 90) if s.refusals < 4 else s.rng.uniform(900, 2400))

    @staticmethod
    def _think(rng: random.Random) -> float:
        if rng.random() < 0.04:
            return rng.uniform(1200, 3600)  # a meeting
        return min(900.0, max(5.0, rng.expovariate(1 / 150)))

    @staticmethod
    def _page(product: str, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
        n = rng.randint(10_000, 99_999)
        if product == "confluence":
            choice = rng.random()
            if choice < 0.6:
                return f"/pages/viewpage.action?pageId={n}", [
                    ("GET", f"/rest/api/content/{n}?expand=body.view"),
                    ("GET", "/rest/mywork/latest/status/notification/count"),
                ]
            if choice < 0.85:
                return f"/display/DOC/Page+{n}", [("GET", f"/rest/likes/1.0/content/{n}/likes")]
            return f"/pages/editpage.action?pageId={n}", [
                ("POST", f"/rest/tinymce/1/drafts?pageId={n}"),
                ("POST", f"/rest/api/content/{n}"),
            ]
        choice = rng.random()
        key = f"{rng.choice(('OPS', 'WEB', 'PLAT'))}-{n % 5000}"
        if choice < 0.6:
            return f"/browse/{key}", [("GET", f"/rest/api/2/issue/{key}?expand=renderedFields")]
        if choice < 0.85:
            return "/secure/Dashboard.jspa", [("GET", "/rest/gadget/1.0/issueTable/jql")]
        return "/secure/CreateIssue!default.jspa", [("POST", "/rest/api/2/issue")]

    def _log(
        self,
        sim: Simulator,
        s: _State,
        t: float,
        method: str,
        uri: str,
        status: int,
        user: str | None,
    ) -> None:
        self.requests += 1
        product = sim.product
        rng = s.rng
        sim.log_access(
            s.node,
            AccessRecord(
                at=t,
                method=method,
                uri=uri,
                status=status,
                size=0 if status in (302, 304) else rng.randint(300, 90_000),
                took_ms=rng.randint(3, 900),
                user=user,
                ip=s.person.ip,
                referer=f"{_BASE[product]}/",
                agent=s.person.agent,
                session=s.session if product == "jira" else "",
                thread=thread_name(product, rng.randint(1, 40)),
            ),
        )
