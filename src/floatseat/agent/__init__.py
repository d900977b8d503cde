"""`floatseat agent`: ship one cluster node's activity to the floatseat service.

It runs on each Data Center node, follows that node's access logs and refused-login logs
with `floatseat serve`'s own followers and parsers (`floatseat.service.feeds`), and sends
what it sees in numbered batches to POST /api/v1/agent/batches. While the service cannot be
reached it keeps the batches in a spool on disk and sends them in order afterwards: nothing
is lost, nothing is counted twice. The protocol is in `floatseat.agent.spool`.

It needs only the core dependencies (pydantic for the settings, httpx to send): no web
stack, no database driver.
"""

from floatseat.agent.runner import Agent, run_agent
from floatseat.agent.settings import AgentSettings

__all__ = ["Agent", "AgentSettings", "run_agent"]
