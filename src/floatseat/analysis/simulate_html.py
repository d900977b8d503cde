"""The what-if replay as one self-contained HTML page, readable offline.

Built like the analyzer's report (`floatseat.analysis.html`), whose pieces it reuses: the vendored
ECharts inline, the page's data as inline JSON, and a Content-Security-Policy that forbids every
fetch and allows only the page's own two scripts, by hash. A single replay charts the seats held
and the queue length over time and the waits of each day; a sweep charts the seat counts against
their waits and 95th percentile wait.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from floatseat import __version__
from floatseat.analysis.html import (
    ECHARTS_VERSION,
    SCRIPT_ESCAPES,
    csp_hash,
    echarts_js,
    template_environment,
    wall_ms,
)
from floatseat.analysis.simulate import SimulationReport, format_wait
from floatseat.domain.replay import ReplayResult
from floatseat.domain.sessions import window_peaks

__all__ = ["render_simulation_html"]

_TEMPLATE = "simulate.html.j2"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def render_simulation_html(report: SimulationReport) -> str:
    """The replay (or the sweep) as one self-contained HTML page (UTF-8 text)."""
    echarts = echarts_js()
    data_json = json.dumps(
        _chart_data(report), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    zone = ZoneInfo(report.options.tz)
    data = report.data

    def instant(epoch_s: int | None) -> datetime | None:
        return None if epoch_s is None else datetime.fromtimestamp(epoch_s, zone)

    run = None if report.sweep else report.runs[0]
    context: dict[str, Any] = {
        "r": report,
        "d": data,
        "s": report.options.settings,
        "run": run,
        "days": [] if run is None else _day_rows(report, run),
        "version": __version__,
        "echarts_version": ECHARTS_VERSION,
        "echarts_js": Markup(echarts),
        "echarts_hash": csp_hash(echarts),
        "data_json": Markup(data_json.translate(SCRIPT_ESCAPES)),
        "empty": data.requests == 0,
        "first_at": instant(data.times[0] if data.times else None),
        "last_at": instant(data.times[-1] if data.times else None),
        "peak_at": instant(data.peak_at),
        "warnings": [*data.warnings, *report.warnings],
        "wait": format_wait,
    }
    return template_environment().get_template(_TEMPLATE).render(context)


def _day_rows(report: SimulationReport, run: ReplayResult) -> list[dict[str, Any]]:
    rows = []
    for day in run.daily:
        when = report.run_date(day.start)
        rows.append(
            {
                "date": when,
                "weekday": _WEEKDAYS[when.weekday()],
                "grants": day.grants,
                "waits": day.waits,
                "wait_seconds_total": day.wait_seconds_total,
                "denied": day.denied,
            }
        )
    return rows


def _chart_data(report: SimulationReport) -> dict[str, Any]:
    data = report.data
    out: dict[str, Any] = {
        "tz": report.options.tz,
        "empty": data.requests == 0,
        "sweep": report.sweep,
        "peak": data.peak,
    }
    if report.sweep:
        out["runs"] = {
            "seats": [run.seats for run in report.runs],
            "waits": [run.waits for run in report.runs],
            "queued": [run.queued for run in report.runs],
            "p95": [run.wait_seconds_p95 for run in report.runs],
            "denied": [run.denied for run in report.runs],
            "total": [run.wait_seconds_total for run in report.runs],
        }
        out["recommended"] = report.recommended_seats
        out["maxWaitP95"] = report.options.max_wait_p95_s
        return out
    run = report.runs[0]
    out["seats"] = run.seats
    out["timeline"] = _timeline(report, run)
    days = _day_rows(report, run)
    out["daily"] = {
        "dates": [day["date"].isoformat() for day in days],
        "weekdays": [day["weekday"] for day in days],
        "grants": [day["grants"] for day in days],
        "waits": [day["waits"] for day in days],
        "denied": [day["denied"] for day in days],
        "waitSeconds": [day["wait_seconds_total"] for day in days],
    }
    return out


def _timeline(report: SimulationReport, run: ReplayResult) -> dict[str, Any]:
    """Seats held and queue length, the most in each minute, from the first to the last one."""
    if run.first_at is None or run.end_at is None:
        return {"start": None, "held": [], "queue": []}
    first = run.first_at // 60 * 60
    edges = list(range(first, run.end_at // 60 * 60 + 61, 60))
    start = datetime.fromtimestamp(first, ZoneInfo(report.options.tz))
    return {
        "start": wall_ms(start),
        "held": window_peaks(run.held, edges),
        "queue": window_peaks(run.queue, edges),
    }
