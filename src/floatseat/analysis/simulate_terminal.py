"""The what-if replay as a terminal summary (Rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from floatseat.analysis.simulate import SimulationReport, format_wait
from floatseat.domain.replay import ReplayResult
from floatseat.units import format_duration

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAYS_SHOWN = 31


def render_simulation_summary(report: SimulationReport, console: Console) -> None:
    data, settings = report.data, report.options.settings
    context = Text(
        f"{data.lines:,} lines, {data.malformed_lines:,} malformed, {data.requests:,} requests "
        f"replayed, {len(data.pool):,} users; the analyzer's peak at "
        f"{format_duration(settings.idle_timeout_s)}: {data.peak:,} concurrent users",
        style="dim",
    )
    policy = Text(
        f"idle timeout {format_duration(settings.idle_timeout_s)}, min hold "
        f"{format_duration(settings.min_hold_s)}, pre-emption "
        + (f"after {format_duration(settings.preempt_after_s)}" if settings.preempt else "off")
        + f", queue timeout {format_duration(settings.queue_timeout_s)}, reserve "
        f"{settings.reserve}"
        + (f", pinned: {', '.join(report.options.pins)}" if report.options.pins else ""),
        style="dim",
    )
    if report.sweep:
        _render_sweep(report, console, Group(context, policy))
    else:
        _render_run(report, report.runs[0], console, Group(context, policy))
    for warning in [*data.warnings, *report.warnings]:
        console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)


def _headline(run: ReplayResult) -> Text:
    head = Text()
    if run.waits:
        head.append(
            f"With {run.seats:,} seats: {run.waits:,} waits by {run.queued:,} users", style="bold"
        )
        head.append(
            f"\n95 % of those served waited at most {format_wait(run.wait_seconds_p95)} "
            f"(longest {format_wait(run.wait_seconds_max)}); "
            f"{format_wait(run.wait_seconds_total)} of waiting in all"
        )
    else:
        head.append(f"With {run.seats:,} seats: nobody would have waited", style="bold green")
    if run.denied:
        head.append(f"\n{run.denied:,} waits ended denied after the queue timeout", style="red")
    head.append(
        f"\nseats held at most {run.max_seats_held:,} of {run.seats:,}; {run.grants:,} grants, "
        f"{run.revokes:,} revokes ({run.preemptions:,} pre-emptions)"
    )
    return head


def _render_run(
    report: SimulationReport, run: ReplayResult, console: Console, context: Group
) -> None:
    console.print(Panel(Group(_headline(run), context), title="floatseat simulate", expand=False))
    days = [day for day in run.daily if day.grants or day.waits]
    if not days:
        return
    table = Table(title="Each day", show_edge=False)
    for name in ("date", "day", "grants", "waits", "waiting", "denied"):
        table.add_column(name, justify="left" if name in ("date", "day") else "right")
    for day in days[-DAYS_SHOWN:]:
        when = report.run_date(day.start)
        table.add_row(
            when.isoformat(),
            WEEKDAYS[when.weekday()],
            f"{day.grants:,}",
            f"{day.waits:,}",
            format_wait(day.wait_seconds_total),
            f"{day.denied:,}",
        )
    if len(days) > DAYS_SHOWN:
        table.caption = f"the last {DAYS_SHOWN} of {len(days)} days; all in --json/--html"
    console.print(table)


def _render_sweep(report: SimulationReport, console: Console, context: Group) -> None:
    head = Text()
    limit = format_wait(report.options.max_wait_p95_s)
    if report.recommended_seats is None:
        head.append(
            f"No seat count keeps the p95 wait within {limit} with nobody denied",
            style="bold red",
        )
    else:
        head.append(f"Recommended: {report.recommended_seats:,} seats", style="bold green")
        head.append(f" (the fewest whose p95 wait is within {limit}, nobody denied)")
        if report.recommended_tier is not None:
            fixed = report.options.fixed_seats
            head.append(
                f"\nLicence tier: {report.recommended_tier:,} users"
                + (f" ({report.recommended_seats:,} + {fixed:,} fixed seats)" if fixed else ""),
                style="bold",
            )
    console.print(Panel(Group(head, context), title="floatseat simulate", expand=False))

    # No column rules and no edge padding: ten columns fit in 80 characters.
    table = Table(
        title="Seat counts replayed", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for name in (
        "seats",
        "held",
        "grants",
        "revokes",
        "preempt",
        "waits",
        "users",
        "p95",
        "waiting",
        "denied",
    ):
        table.add_column(name, justify="right")
    for run in report.runs:
        chosen = run.seats == report.recommended_seats
        table.add_row(
            f"{run.seats:,}" + ("*" if chosen else ""),
            f"{run.max_seats_held:,}",
            f"{run.grants:,}",
            f"{run.revokes:,}",
            f"{run.preemptions:,}",
            f"{run.waits:,}",
            f"{run.queued:,}",
            _compact(run.wait_seconds_p95),
            _compact(run.wait_seconds_total),
            f"{run.denied:,}",
            style="bold green" if chosen else None,
        )
    table.caption = "users: distinct users who waited; p95: of the waits served; * recommended"
    console.print(table)


def _compact(seconds: int) -> str:
    """A wait in a narrow column: `45s`, `29m56s`, `15.2h`, `1,850h`."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    hours = seconds / 3600
    return f"{hours:.1f}h" if hours < 100 else f"{round(hours):,}h"
