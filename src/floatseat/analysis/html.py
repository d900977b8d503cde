"""The HTML report: one self-contained page, readable offline.

Everything the page needs is inline: the CSS, the chart library (Apache ECharts, vendored in
`assets/`), the page's own script and the report's data as JSON. The page makes no network
request; its Content-Security-Policy forbids every fetch and allows only the page's own two
scripts (by hash), so a username in the data can neither break out nor load anything.

Times: the report's datetimes are already in the report's time zone. The charts receive them as
"wall-clock milliseconds" (the local date and time read as if it were UTC) and ECharts runs with
`useUTC`, so the browser shows the report's time zone whatever its own is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

import jinja2
from markupsafe import Markup

from floatseat import __version__
from floatseat.analysis.report import AnalysisReport

__all__ = [
    "ECHARTS_VERSION",
    "format_duration",
    "format_int",
    "format_money",
    "format_percent",
    "render_html",
    "required_seats_text",
]

ECHARTS_VERSION = "6.1.0"

_PACKAGE = "floatseat"
_ANALYSIS_DIR = "analysis"
_TEMPLATE = "report.html.j2"
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPOCH = datetime(1970, 1, 1)
_MALFORMED_EXAMPLES_SHOWN = 5

# Characters that must not appear literally inside an inline <script> element. `<`, `>` and `&`
# cover `</script>` and `<!--`; U+2028/U+2029 keep the text valid as a JS string too.
SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def render_html(report: AnalysisReport) -> str:
    """The report as one self-contained HTML page (UTF-8 text)."""
    echarts = echarts_js()
    data_json = json.dumps(
        _chart_data(report), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    context: dict[str, Any] = {
        "r": report,
        "version": __version__,
        "echarts_version": ECHARTS_VERSION,
        "echarts_js": Markup(echarts),
        "echarts_hash": csp_hash(echarts),
        "data_json": Markup(data_json.translate(SCRIPT_ESCAPES)),
        "empty": _is_empty(report),
        "timeout_text": format_duration(report.idle_timeout_s),
        "malformed_examples": report.malformed_examples[:_MALFORMED_EXAMPLES_SHOWN],
        "malformed_more": max(0, len(report.malformed_examples) - _MALFORMED_EXAMPLES_SHOWN),
        "service_rows": _service_rows(report),
        "seats_formula": required_seats_text(
            report.tier.peak, report.tier.headroom, report.tier.fixed_seats
        ),
    }
    return template_environment().get_template(_TEMPLATE).render(context)


# -- assets and template -------------------------------------------------------------------------


@cache
def echarts_js() -> str:
    """The vendored echarts.min.js, made safe to sit inside an inline <script> element."""
    path = resources.files(_PACKAGE) / _ANALYSIS_DIR / "assets" / "echarts.min.js"
    text = path.read_text(encoding="utf-8")
    # ECharts 6.1.0 holds no `</script`; `<\/` means the same as `</` in JS strings, regexes and
    # comments, so this stays correct should a later version bring one.
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


@cache
def template_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(_PACKAGE, f"{_ANALYSIS_DIR}/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        {
            "count": format_int,
            "datetime": format_datetime,
            "duration": format_duration,
            "percent": format_percent,
            "money": format_money,
            "weekday_date": format_weekday_date,
            "csp_hash": csp_hash,
        }
    )
    return env


def csp_hash(script: str) -> Markup:
    """The Content-Security-Policy source expression that allows exactly this inline script."""
    digest = hashlib.sha256(str(script).encode("utf-8")).digest()
    # Base64 and quotes only: safe in an attribute as it is.
    return Markup("'sha256-" + base64.b64encode(digest).decode("ascii") + "'")


# -- formatting ----------------------------------------------------------------------------------


def format_int(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def format_datetime(value: datetime | None, seconds: bool = True) -> str:
    if value is None:
        return "–"
    return value.strftime("%a %Y-%m-%d %H:%M:%S" if seconds else "%a %Y-%m-%d %H:%M")


def format_weekday_date(value: date) -> str:
    return f"{_WEEKDAYS[value.weekday()]} {value.isoformat()}"


def format_duration(seconds: int) -> str:
    """`1800` -> `30 min`, `5400` -> `1 h 30 min`, `45` -> `45 s`."""
    if seconds < 60 or seconds % 60:
        return f"{seconds:,} s"
    minutes = seconds // 60
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours:,} h" + (f" {minutes} min" if minutes else "")


def format_percent(fraction: float) -> str:
    """`0.1` -> `10 %`, `0.125` -> `12.5 %`."""
    text = f"{fraction * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text} %"


def format_money(amount: float, currency: str = "") -> str:
    text = f"{amount:,.2f}"
    if text.endswith(".00"):
        text = text[:-3]
    return f"{text} {currency}".strip()


# -- data for the page's script ------------------------------------------------------------------


def wall_ms(value: datetime) -> int:
    """Milliseconds since the epoch of the local wall-clock time, read as if it were UTC."""
    return (value.replace(tzinfo=None) - _EPOCH) // timedelta(milliseconds=1)


def _is_empty(report: AnalysisReport) -> bool:
    """Whether there is nothing to chart: no counted request."""
    return report.requests_counted == 0 or report.peak_at is None


def _finite(value: float) -> float:
    """The value rounded for the page; 0 for NaN and infinities, which JSON cannot carry."""
    return round(float(value), 2) if math.isfinite(value) else 0.0


def _chart_data(report: AnalysisReport) -> dict[str, Any]:
    tier = report.tier
    peak_minute_ms: int | None = None
    if report.peak_at is not None:
        peak_minute_ms = wall_ms(report.peak_at.replace(second=0, microsecond=0))
    heatmap_cells: list[list[float]] = []
    for weekday, row in enumerate(report.heatmap[:7]):
        for hour, value in enumerate(row[:24]):
            heatmap_cells.append([hour, weekday, _finite(value)])
    return {
        "tz": report.tz,
        "empty": _is_empty(report),
        "idleTimeoutS": report.idle_timeout_s,
        "peak": report.peak,
        "peakMinute": peak_minute_ms,
        "timeline": {
            "start": None if report.timeline_start is None else wall_ms(report.timeline_start),
            "values": report.timeline,
        },
        "daily": {
            "dates": [day.date.isoformat() for day in report.daily],
            "weekdays": [_WEEKDAYS[day.date.weekday()] for day in report.daily],
            "active": [day.active_users for day in report.daily],
            "peak": [day.peak for day in report.daily],
        },
        "heatmap": heatmap_cells,
        "topUsers": [
            {
                "name": user.username,
                "hours": _finite(user.active_hours),
                "requests": user.requests,
                "days": user.days_active,
                "service": user.service_like,
            }
            for user in report.top_users
        ],
        "timeouts": [
            {
                "seconds": seconds,
                "label": format_duration(seconds),
                "peak": peak,
                "current": seconds == report.idle_timeout_s,
            }
            for seconds, peak in sorted(report.peaks_by_timeout.items())
        ],
        "tier": {
            "recommended": tier.recommended_tier,
            "required": tier.required_seats,
            "current": tier.current_tier,
        },
    }


def _service_rows(report: AnalysisReport) -> list[dict[str, Any]]:
    """The service-looking accounts, with their activity when they are among the top users."""
    activity = {user.username: user for user in report.top_users}
    rows = []
    for name in report.service_accounts:
        user = activity.get(name)
        rows.append(
            {
                "name": name,
                "hours": None if user is None else user.active_hours,
                "requests": None if user is None else user.requests,
                "days": None if user is None else user.days_active,
            }
        )
    return rows


def required_seats_text(peak: int, headroom: float, fixed_seats: int) -> str:
    """How `required_seats` comes about, for the page: `⌈123 × 1.1⌉ + 5`."""
    factor = f"{1 + headroom:.4f}".rstrip("0").rstrip(".")
    text = f"⌈{peak:,} × {factor}⌉"
    if fixed_seats:
        text += f" + {fixed_seats:,}"
    return text
