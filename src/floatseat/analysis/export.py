"""The report as JSON (a stable contract for scripts) and the timeline as CSV."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from floatseat.analysis.report import AnalysisReport

# The top-level keys scripts may rely on (README, "JSON output"); more may sit beside them.
STABLE_KEYS = (
    "idle_timeout_s",
    "lines",
    "malformed_lines",
    "requests_counted",
    "users_active",
    "sessions",
    "peak",
    "peak_at",
    "first_request_at",
    "last_request_at",
    "daily",
    "recommended_tier",
)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def report_to_json(report: AnalysisReport) -> dict[str, Any]:
    tier = report.tier
    return {
        "idle_timeout_s": report.idle_timeout_s,
        "lines": report.lines,
        "malformed_lines": report.malformed_lines,
        "requests_counted": report.requests_counted,
        "users_active": report.users_active,
        "sessions": report.sessions,
        "peak": report.peak,
        "peak_at": _iso(report.peak_at),
        "first_request_at": _iso(report.first_request_at),
        "last_request_at": _iso(report.last_request_at),
        "daily": [
            {"date": d.date.isoformat(), "active_users": d.active_users, "peak": d.peak}
            for d in report.daily
        ],
        "recommended_tier": tier.recommended_tier,
        "tz": report.tz,
        "peak_share_of_registered": report.peak_share_of_registered,
        "registered_users": report.registered_users,
        "peaks_by_idle_timeout_s": {str(k): v for k, v in report.peaks_by_timeout.items()},
        "tier": {
            "required_seats": tier.required_seats,
            "headroom": tier.headroom,
            "fixed_seats": tier.fixed_seats,
            "above_largest_tier": tier.above_largest_tier,
            "largest_tier": tier.largest_tier,
            "current_tier": tier.current_tier,
            "yearly_saving": tier.yearly_saving,
        },
        "service_accounts": report.service_accounts,
        "top_users": [
            {
                "username": u.username,
                "active_hours": u.active_hours,
                "requests": u.requests,
                "days_active": u.days_active,
                "service_like": u.service_like,
            }
            for u in report.top_users
        ],
        "files": [
            {
                "path": f.path,
                "format": f.format,
                "lines": f.lines,
                "malformed_lines": f.malformed_lines,
            }
            for f in report.files
        ],
        "malformed_examples": report.malformed_examples,
        "warnings": report.warnings,
    }


def report_json_text(report: AnalysisReport) -> str:
    return json.dumps(report_to_json(report), indent=2, ensure_ascii=False) + "\n"


def timeline_csv_text(report: AnalysisReport) -> str:
    """Columns minute,concurrent: each minute's maximum, from the first to the last active one."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["minute", "concurrent"])
    for index, value in enumerate(report.timeline):
        writer.writerow([report.minute(index).isoformat(), value])
    return out.getvalue()
