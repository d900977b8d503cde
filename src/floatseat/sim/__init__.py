"""A simulated Confluence / Jira / Crowd Data Center that speaks real HTTP: the big fake.

    from floatseat.sim import SimConfig, SimServer
    with SimServer(SimConfig(product="jira", users=20, tier=25)) as server:
        ...  # REST calls to server.base_url; server.sim is the in-process state

Modules: `model` (directories, groups, licence; pure), `faults` (pure), `people` (virtual
users), `logs` (access and security logs), `core` (`Simulator`), `app` and the product
routers (`confluence`, `jira`, `crowd`), `server` (uvicorn in a thread), `cli`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from floatseat.sim.core import SimConfig, Simulator
    from floatseat.sim.server import SimServer

__all__ = ["SimConfig", "SimServer", "Simulator"]

# Loaded on first use (PEP 562): `floatseat` imports `floatseat.sim.cli` on every start, and
# the package must not bring the web stack (FastAPI, uvicorn) with it.
_LAZY = {"SimConfig": "core", "Simulator": "core", "SimServer": "server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"floatseat.sim.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
