"""The report as a terminal summary (Rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from floatseat.analysis.report import AnalysisReport
from floatseat.units import format_duration

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _when(report: AnalysisReport) -> str:
    return report.peak_at.isoformat() if report.peak_at else "-"


def render_summary(report: AnalysisReport, console: Console) -> None:
    tier = report.tier
    head = Text()
    head.append(f"Peak of concurrent users: {report.peak}", style="bold")
    head.append(f"  at {_when(report)}  (idle timeout {format_duration(report.idle_timeout_s)})")
    share = report.peak_share_of_registered
    if share is not None:
        head.append(f"\n{share:.1%} of {report.registered_users} registered users")
    if tier.recommended_tier is None:
        head.append(
            f"\nRecommended tier: above the largest tier ({tier.largest_tier}); "
            f"{tier.required_seats} seats needed",
            style="bold red",
        )
    else:
        head.append(f"\nRecommended tier: {tier.recommended_tier} users", style="bold green")
        head.append(
            f"  (peak {tier.peak} + {tier.headroom:.0%} headroom"
            + (f" + {tier.fixed_seats} fixed seats" if tier.fixed_seats else "")
            + f" = {tier.required_seats} seats)"
        )
    if tier.yearly_saving is not None and tier.current_tier is not None:
        head.append(
            f"\nYearly saving against the current {tier.current_tier}-user tier: "
            f"{tier.yearly_saving:,.0f} {tier.currency}".rstrip()
        )
    counts = Text(
        f"{report.lines:,} lines, {report.malformed_lines:,} malformed, "
        f"{report.requests_counted:,} requests counted, {report.users_active:,} users, "
        f"{report.sessions:,} sessions",
        style="dim",
    )
    if report.first_request_at and report.last_request_at:
        counts.append(
            f"\nfrom {report.first_request_at.isoformat()} to {report.last_request_at.isoformat()}"
        )
    console.print(Panel(Group(head, counts), title="floatseat analyze", expand=False))

    timeouts = Table(title="Peak by idle timeout", show_edge=False)
    for seconds in report.peaks_by_timeout:
        timeouts.add_column(format_duration(seconds), justify="right")
    timeouts.add_row(*(str(v) for v in report.peaks_by_timeout.values()))
    console.print(timeouts)

    if report.daily:
        daily = Table(title="Daily peaks", show_edge=False)
        daily.add_column("date")
        daily.add_column("day")
        daily.add_column("active users", justify="right")
        daily.add_column("peak", justify="right")
        daily.add_column("")
        widest = max(d.peak for d in report.daily) or 1
        for day in report.daily[-31:]:
            bar = "█" * max(1, round(20 * day.peak / widest)) if day.peak else ""
            daily.add_row(
                day.date.isoformat(),
                WEEKDAYS[day.date.weekday()],
                str(day.active_users),
                str(day.peak),
                bar,
            )
        if len(report.daily) > 31:
            daily.caption = f"the last 31 of {len(report.daily)} days; all in --json/--html"
        console.print(daily)

    busiest = report.busiest_hours()
    if busiest:
        hours = Table(title="Busiest hours (mean hourly peak)", show_edge=False)
        hours.add_column("weekday")
        hours.add_column("hour")
        hours.add_column("mean peak", justify="right")
        for weekday, hour, value in busiest:
            hours.add_row(WEEKDAYS[weekday], f"{hour:02d}:00", f"{value:.1f}")
        console.print(hours)

    if report.service_accounts:
        console.print(
            "Users who look like service accounts (active > 20 h a day on most days): "
            + ", ".join(report.service_accounts)
            + "\n  consider --exclude-user for them, or licensing them as fixed seats"
        )
    if report.malformed_examples:
        console.print(
            f"[yellow]{report.malformed_lines} malformed lines[/], for example: "
            + ", ".join(report.malformed_examples[:5]),
            soft_wrap=True,  # file:line examples must stay whole for copy and paste
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
