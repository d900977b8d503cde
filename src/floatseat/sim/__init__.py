"""A simulated Confluence / Jira / Crowd Data Center that speaks real HTTP: the big fake.

    from floatseat.sim import SimConfig, SimServer
    with SimServer(SimConfig(product="jira", users=20, tier=25)) as server:
        ...  # REST calls to server.base_url; server.sim is the in-process state

Modules: `model` (directories, groups, licence; pure), `faults` (pure), `people` (virtual
users), `logs` (access and security logs), `core` (`Simulator`), `app` and the product
routers (`confluence`, `jira`, `crowd`), `server` (uvicorn in a thread), `cli`.
"""

from floatseat.sim.core import SimConfig, Simulator
from floatseat.sim.server import SimServer

__all__ = ["SimConfig", "SimServer", "Simulator"]
