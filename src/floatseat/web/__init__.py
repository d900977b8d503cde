"""The web side of `floatseat serve`: REST API, dashboard, waiting room and /metrics.

`create_app(runtime, web_settings=...)` builds the app; see `floatseat.web.app`.
"""

from __future__ import annotations

from floatseat.web.app import create_app, setup_path
from floatseat.web.security import make_waiting_room_link, sign_activity
from floatseat.web.settings import WebSettings

__all__ = ["WebSettings", "create_app", "make_waiting_room_link", "setup_path", "sign_activity"]
