"""Run the simulated Confluence / Jira / Crowd in a test: `running_simulator`.

Import it as the tests import `conftest` (pytest puts `tests/` on sys.path)::

    from simulator import running_simulator

    def test_adds_a_member():
        with running_simulator(product="confluence", users=5, tier=10) as sim:
            with httpx.Client(base_url=sim.base_url, auth=sim.admin_auth) as http:
                r = http.put("/rest/api/user/admin/group/confluence-users")
            assert r.status_code == 204
            assert sim.state()["licence_violations"] == 0

`running_simulator(product="confluence", users=10, tier=25, version=None, **options)`
starts uvicorn on 127.0.0.1 on a free port in a background thread, waits until it
answers, yields a `SimHandle`, and shuts everything down on exit. `options` are the other
fields of `floatseat.sim.SimConfig`, e.g. `read_only_users=2`, `local_groups_users=2`,
`crowd=True`, `crowd_sync_interval_s=60`, `remote_api=True`, `member_page_cap=200`,
`log_dir=tmp_path`, `nodes=2`, `seed=0`, `admin_password="admin"`,
`tokens={"pat": "admin"}`. The clock is manual: it moves only through `advance()`.

Default versions: Confluence 8.5.4, Jira 9.12.2. Users are named like `alice.smith`
(password `password`); the admin is `admin` / `admin`, PAT `sim-admin-token`; Crowd's
application is `floatseat` / `floatseat`.

`SimHandle`:
- `base_url`, `admin_user`, `admin_password`, `admin_auth` (a tuple for httpx),
  `admin_token`, `crowd_auth`, `product`, `users` (the virtual users' names, sorted);
- `sim`: the in-process `floatseat.sim.Simulator` (`sim.world` holds the directories;
  take `sim.lock` when touching it);
- `state()`: `GET /_sim/state` as a dict: `licence_violations`, `licensed`, `tier`,
  `groups` (name -> members), `over_tier`, `read_only`, `faults`, `violations`, ...;
- `add_fault(kind, *, times=None, paths=(), methods=(), status=503, latency_ms=0,
  retry_after_s=5) -> int` (kinds: latency, rate_limit, error, drop, read_only);
  `remove_fault(id)`, `clear_faults()`;
- `set_licence(tier=None, can_use=None, grants=None, admin_groups=None)`: Confluence's
  "Can use" groups and individual grants, or the tier;
- `add_user(name, *, directory=None, groups=(), active=True)`, `set_active(name, bool)`;
- `sync()`: the product synchronises its Crowd directory;
- `advance(seconds) -> int`: move the clock and play the virtual users (requests made);
- `http()`: a new `httpx.Client` on `base_url` with the admin's credentials (close it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from floatseat.sim import SimConfig, SimServer, Simulator

__all__ = ["SimHandle", "running_simulator"]


@dataclass
class SimHandle:
    base_url: str
    sim: Simulator
    admin_user: str
    admin_password: str
    admin_token: str | None
    crowd_auth: tuple[str, str]

    @property
    def product(self) -> str:
        return self.sim.product

    @property
    def admin_auth(self) -> tuple[str, str]:
        return (self.admin_user, self.admin_password)

    @property
    def users(self) -> list[str]:
        return sorted(p.name for p in self.sim.people.people)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=self.admin_auth, timeout=10)

    def _control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            response = client.request(method, path, json=body)
        response.raise_for_status()
        return response

    def state(self) -> dict[str, Any]:
        data = self._control("GET", "/_sim/state").json()
        assert isinstance(data, dict)
        return data

    def add_fault(self, kind: str, **spec: Any) -> int:
        spec["kind"] = kind
        for name in ("paths", "methods"):
            if name in spec:
                spec[name] = list(spec[name])
        return int(self._control("POST", "/_sim/faults", spec).json()["id"])

    def remove_fault(self, fault_id: int) -> None:
        self._control("DELETE", f"/_sim/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._control("DELETE", "/_sim/faults")

    def set_licence(self, **licence: Any) -> None:
        self._control("POST", "/_sim/licence", licence)

    def add_user(
        self,
        name: str,
        *,
        directory: str | None = None,
        groups: tuple[str, ...] | list[str] = (),
        active: bool = True,
    ) -> None:
        body = {"name": name, "directory": directory, "groups": list(groups), "active": active}
        self._control("POST", "/_sim/users", body)

    def set_active(self, name: str, active: bool) -> None:
        self._control("PATCH", f"/_sim/users/{name}", {"active": active})

    def sync(self) -> None:
        self._control("POST", "/_sim/sync")

    def advance(self, seconds: float) -> int:
        return int(self._control("POST", "/_sim/advance", {"seconds": seconds}).json()["requests"])


@contextmanager
def running_simulator(
    product: str = "confluence",
    users: int = 10,
    tier: int = 25,
    version: str | None = None,
    **options: Any,
) -> Iterator[SimHandle]:
    """A simulated instance served over loopback HTTP for the `with` block."""
    config = SimConfig(product=product, users=users, tier=tier, version=version, **options)  # type: ignore[arg-type]
    with SimServer(config) as server:
        token = next((t for t, u in config.tokens.items() if u == config.admin_user), None)
        yield SimHandle(
            base_url=server.base_url,
            sim=server.sim,
            admin_user=config.admin_user,
            admin_password=config.admin_password,
            admin_token=token,
            crowd_auth=(config.crowd_app, config.crowd_password),
        )
