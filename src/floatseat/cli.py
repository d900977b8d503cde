"""The `floatseat` command line (Typer). Parses options, calls one use case, prints."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from floatseat import __version__
from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.export import report_json_text, timeline_csv_text
from floatseat.analysis.pipeline import AnalysisRequest, InputError, read_requests
from floatseat.analysis.pipeline import Progress as AnalysisProgress
from floatseat.analysis.pipeline import analyze as run_analysis
from floatseat.analysis.simulate import (
    DEFAULT_MAX_WAIT_P95_S,
    SimulationOptions,
    parse_seat_range,
    prepare_input,
    simulation_json_text,
)
from floatseat.analysis.simulate import simulate as run_simulation
from floatseat.analysis.simulate_terminal import render_simulation_summary
from floatseat.analysis.terminal import render_summary
from floatseat.domain.activity import DEFAULT_POLLING_PREFIXES, CountingRules
from floatseat.domain.licence import DEFAULT_TIERS
from floatseat.domain.policy import PolicySettings
from floatseat.logs.formats import FORMATS_BY_NAME
from floatseat.logs.pattern import (
    PatternError,
    canonical_user,
    compile_pattern,
    read_server_xml_pattern,
)
from floatseat.sim.cli import sim_app
from floatseat.units import format_duration, parse_duration, parse_fraction

T = TypeVar("T")
# The policy's documented defaults, as the defaults of `simulate`'s options.
POLICY_DEFAULTS = PolicySettings()
DEFAULT_IDLE_TIMEOUT = format_duration(POLICY_DEFAULTS.idle_timeout_s)
DEFAULT_MIN_HOLD = format_duration(POLICY_DEFAULTS.min_hold_s)
DEFAULT_PREEMPT_AFTER = format_duration(POLICY_DEFAULTS.preempt_after_s)
DEFAULT_WARN_BEFORE = format_duration(POLICY_DEFAULTS.warn_before_s)
DEFAULT_QUEUE_TIMEOUT = format_duration(POLICY_DEFAULTS.queue_timeout_s)
DEFAULT_QUEUE_AGING = format_duration(POLICY_DEFAULTS.queue_aging_s)
DEFAULT_SWEEP_INTERVAL = format_duration(POLICY_DEFAULTS.sweep_interval_s)
DEFAULT_MAX_WAIT_P95 = format_duration(DEFAULT_MAX_WAIT_P95_S)

app = typer.Typer(
    help="floatseat: floating licences for Atlassian Confluence and Jira Data Center.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(console: Console, message: str, status: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(status)


def _parse_prices(text: str) -> dict[int, float]:
    """'500=42000,1000=72000' or '@prices.txt' (the same, one pair a line)."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    prices: dict[int, float] = {}
    for item in text.replace("\n", ",").split(","):
        if not item.strip():
            continue
        tier, _, price = item.partition("=")
        try:
            prices[int(tier.strip())] = float(price.strip())
        except ValueError:
            raise ValueError(
                f"{item.strip()!r}: write prices as TIER=PRICE, e.g. 500=42000"
            ) from None
    return prices


def _parse_tiers(text: str) -> tuple[int, ...]:
    try:
        tiers = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise ValueError(
            f"{text!r}: write tiers as a comma-separated list, e.g. 500,1000"
        ) from None
    if not tiers or min(tiers) <= 0:
        raise ValueError("tiers must be positive numbers")
    return tiers


# -- reading access logs: the options and steps `analyze` and `simulate` share -------------------

LogPaths = Annotated[
    list[str],
    typer.Argument(help="Files, folders (read recursively) or globs; '-' reads stdin."),
]
IncludeOption = Annotated[
    list[str] | None,
    typer.Option("--include", help="Also read files in folders whose name matches GLOB."),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Known format for every file: " + ", ".join(FORMATS_BY_NAME) + ". "
        "Default: detected per file.",
    ),
]
PatternOption = Annotated[
    str | None, typer.Option(help="A Tomcat AccessLogValve pattern for every file.")
]
ServerXmlOption = Annotated[
    Path | None, typer.Option(help="Read the pattern from this server.xml's valve.")
]
UserFieldOption = Annotated[
    str | None, typer.Option(help="The pattern token holding the user, e.g. %u.")
]
ContextPathOption = Annotated[
    str | None, typer.Option(help="Strip this context path (e.g. /jira) first.")
]
PollingPathOption = Annotated[
    list[str] | None, typer.Option(help="Add a polling prefix of the request target.")
]
PollingRegexOption = Annotated[
    list[str] | None, typer.Option(help="Add a polling regex of the request target.")
]
NoDefaultPollingOption = Annotated[bool, typer.Option(help="Clear the default polling prefixes.")]
ExcludeUserOption = Annotated[
    list[str] | None, typer.Option(help="Leave out this user's requests.")
]
ExcludeUserAgentOption = Annotated[
    str | None, typer.Option(help="Leave out requests whose User-Agent matches REGEX.")
]
IdleTimeoutOption = Annotated[str, typer.Option(help="Idle timeout T: 90s, 30m, 1h or seconds.")]
TzOption = Annotated[str, typer.Option(help="Time zone of reported times and days.")]
JsonOption = Annotated[
    str | None, typer.Option("--json", help="Write the JSON report here ('-': stdout).")
]
HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Write a self-contained HTML report.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No terminal summary.")]


def _log_request(
    paths: list[str],
    report: ReportOptions,
    *,
    include: list[str] | None,
    log_format: str | None,
    pattern: str | None,
    server_xml: Path | None,
    user_field: str | None,
    context_path: str | None,
    polling_path: list[str] | None,
    polling_regex: list[str] | None,
    no_default_polling: bool,
    exclude_user: list[str] | None,
    exclude_user_agent: str | None,
) -> AnalysisRequest:
    """The checked input options as a request for the reader.

    Raises ValueError, PatternError or OSError (server.xml) with a message for people.
    """
    if log_format is not None and log_format not in FORMATS_BY_NAME:
        raise ValueError(f"unknown format {log_format!r}; known: {', '.join(FORMATS_BY_NAME)}")
    if server_xml is not None:
        pattern = read_server_xml_pattern(server_xml.read_text(encoding="utf-8"))
    if pattern is not None:
        compile_pattern(pattern, user_field=user_field)
    prefixes = () if no_default_polling else tuple(p for p, _ in DEFAULT_POLLING_PREFIXES)
    rules = CountingRules(
        polling_prefixes=prefixes + tuple(polling_path or ()),
        polling_regexes=tuple(polling_regex or ()),
        excluded_users=frozenset(u.lower() for u in exclude_user or ()),
        excluded_agent_regex=exclude_user_agent,
        context_path=context_path,
    )
    return AnalysisRequest(
        arguments=tuple(paths),
        rules=rules,
        report=report,
        includes=tuple(include or ()),
        format_name=log_format,
        pattern=pattern,
        user_field=user_field,
    )


def _check_zone(tz: str) -> None:
    from zoneinfo import ZoneInfo

    ZoneInfo(tz)


def _positive_duration(text: str, what: str) -> int:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"the {what} must be positive")
    return seconds


def _checked(errors: Console, build: Callable[[], T]) -> T:
    """`build()`, with a bad option turned into exit status 2 and its reason."""
    try:
        return build()
    except (ValueError, PatternError, OSError) as error:
        raise _fail(errors, str(error)) from None
    except Exception as error:  # zoneinfo and re raise their own kinds
        raise _fail(errors, f"{type(error).__name__}: {error}") from None


def _read_logs(errors: Console, quiet: bool, read: Callable[[AnalysisProgress], T]) -> T:
    """`read(progress)` under a progress bar of the files read; InputError exits with 2."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task("reading logs", total=None)

        def start(total: int) -> None:
            bar.update(task, total=total)

        def advance(name: str) -> None:
            bar.update(task, advance=1, description=f"read {Path(name).name}")

        try:
            return read(AnalysisProgress(start=start, advance=advance))
        except InputError as error:
            raise _fail(errors, str(error)) from None


def _write_text(target: str | Path, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(target).write_text(text, encoding="utf-8")


@app.command()
def analyze(
    paths: LogPaths,
    include: IncludeOption = None,
    log_format: FormatOption = None,
    pattern: PatternOption = None,
    server_xml: ServerXmlOption = None,
    user_field: UserFieldOption = None,
    context_path: ContextPathOption = None,
    polling_path: PollingPathOption = None,
    polling_regex: PollingRegexOption = None,
    no_default_polling: NoDefaultPollingOption = False,
    exclude_user: ExcludeUserOption = None,
    exclude_user_agent: ExcludeUserAgentOption = None,
    idle_timeout: IdleTimeoutOption = "30m",
    tz: TzOption = "UTC",
    registered: Annotated[
        int | None, typer.Option(help="Registered users, to show the peak as a share.")
    ] = None,
    headroom: Annotated[str, typer.Option(help="Headroom over the peak.")] = "10%",
    fixed: Annotated[int, typer.Option(help="Seats that never float.")] = 0,
    tiers: Annotated[
        str | None, typer.Option(help="Licence tiers, comma-separated (default: Atlassian DC).")
    ] = None,
    current_tier: Annotated[int | None, typer.Option(help="The tier you license now.")] = None,
    price_per_tier: Annotated[
        str | None,
        typer.Option(help="Yearly prices: 500=42000,1000=72000 or @file with one a line."),
    ] = None,
    currency: Annotated[str, typer.Option(help="Currency label for prices.")] = "",
    json_out: JsonOption = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-minute timeline as CSV.")
    ] = None,
    html_out: HtmlOption = None,
    quiet: QuietOption = False,
) -> None:
    """Report the exact peak of concurrent users from Jira and Confluence access logs."""
    # With JSON on stdout, everything meant for people goes to stderr.
    console = Console(stderr=json_out == "-")
    errors = Console(stderr=True, soft_wrap=True)

    def build() -> AnalysisRequest:
        _check_zone(tz)
        options = ReportOptions(
            idle_timeout_s=_positive_duration(idle_timeout, "idle timeout"),
            tz=tz,
            tiers=_parse_tiers(tiers) if tiers else DEFAULT_TIERS,
            headroom=parse_fraction(headroom),
            fixed_seats=fixed,
            registered_users=registered,
            current_tier=current_tier,
            price_per_tier=_parse_prices(price_per_tier) if price_per_tier else {},
            currency=currency,
        )
        return _log_request(
            paths,
            options,
            include=include,
            log_format=log_format,
            pattern=pattern,
            server_xml=server_xml,
            user_field=user_field,
            context_path=context_path,
            polling_path=polling_path,
            polling_regex=polling_regex,
            no_default_polling=no_default_polling,
            exclude_user=exclude_user,
            exclude_user_agent=exclude_user_agent,
        )

    request = _checked(errors, build)
    report = _read_logs(errors, quiet, lambda progress: run_analysis(request, progress))

    if not quiet:
        render_summary(report, console)
    try:
        if json_out is not None:
            _write_text(json_out, report_json_text(report))
        if csv_out is not None:
            csv_out.write_text(timeline_csv_text(report), encoding="utf-8")
        if html_out is not None:
            from floatseat.analysis.html import render_html

            html_out.write_text(render_html(report), encoding="utf-8")
    except OSError as error:
        raise _fail(errors, f"cannot write the report: {error}") from None
    for target, label in ((json_out, "JSON"), (csv_out, "CSV"), (html_out, "HTML")):
        if target is not None and target != "-" and not quiet:
            console.print(f"{label} report: {target}")


@app.command()
def simulate(
    paths: LogPaths,
    seats: Annotated[
        int | None,
        typer.Option(
            min=1, help="Seats the policy may hand out (pinned users and reserve included)."
        ),
    ] = None,
    sweep_seats: Annotated[
        str | None,
        typer.Option(
            help="Replay every seat count FIRST:LAST:STEP (inclusive), e.g. 100:200:10, "
            "and recommend the fewest seats whose p95 wait is within --max-wait-p95 with "
            "nobody denied."
        ),
    ] = None,
    idle_timeout: IdleTimeoutOption = DEFAULT_IDLE_TIMEOUT,
    min_hold: Annotated[
        str, typer.Option(help="Never revoke a seat held for less than this.")
    ] = DEFAULT_MIN_HOLD,
    preempt: Annotated[
        bool,
        typer.Option("--preempt/--no-preempt", help="Give an idle holder's seat to a newcomer."),
    ] = POLICY_DEFAULTS.preempt,
    preempt_after: Annotated[
        str, typer.Option(help="A holder idle this long may be pre-empted.")
    ] = DEFAULT_PREEMPT_AFTER,
    warn_before: Annotated[
        str, typer.Option(help="Warn a holder this long before the seat goes; 0: never.")
    ] = DEFAULT_WARN_BEFORE,
    queue_timeout: Annotated[
        str, typer.Option(help="A queue entry older than this is dropped (denied).")
    ] = DEFAULT_QUEUE_TIMEOUT,
    queue_aging: Annotated[
        str, typer.Option(help="A waiter gains one priority rank per this long; 0: no aging.")
    ] = DEFAULT_QUEUE_AGING,
    sweep_interval: Annotated[
        str, typer.Option(help="Time between two sweeps of the simulated clock.")
    ] = DEFAULT_SWEEP_INTERVAL,
    reserve: Annotated[
        int, typer.Option(min=0, help="Seats kept free for integrations and safety.")
    ] = 0,
    lock_after_revoke: Annotated[
        str,
        typer.Option(help="After an idle revoke, take a seat back only if one is free; 0: off."),
    ] = "0",
    pin: Annotated[
        list[str] | None, typer.Option(help="A user who always holds a seat (repeatable).")
    ] = None,
    max_wait_p95: Annotated[
        str,
        typer.Option(help="With --sweep-seats: the longest acceptable 95th percentile wait."),
    ] = DEFAULT_MAX_WAIT_P95,
    fixed: Annotated[
        int,
        typer.Option(
            min=0,
            help="Users licensed outside the pool (administrators, other groups), added to the "
            "recommended tier; leave them out of the replay with --exclude-user.",
        ),
    ] = 0,
    tiers: Annotated[
        str | None, typer.Option(help="Licence tiers, comma-separated (default: Atlassian DC).")
    ] = None,
    include: IncludeOption = None,
    log_format: FormatOption = None,
    pattern: PatternOption = None,
    server_xml: ServerXmlOption = None,
    user_field: UserFieldOption = None,
    context_path: ContextPathOption = None,
    polling_path: PollingPathOption = None,
    polling_regex: PollingRegexOption = None,
    no_default_polling: NoDefaultPollingOption = False,
    exclude_user: ExcludeUserOption = None,
    exclude_user_agent: ExcludeUserAgentOption = None,
    tz: TzOption = "UTC",
    json_out: JsonOption = None,
    html_out: HtmlOption = None,
    quiet: QuietOption = False,
) -> None:
    """Replay access logs through the seat policy: with N seats, who would have waited, how long?"""
    console = Console(stderr=json_out == "-")
    errors = Console(stderr=True, soft_wrap=True)

    def build() -> tuple[list[int], SimulationOptions, AnalysisRequest]:
        if (seats is None) == (sweep_seats is None):
            raise ValueError("give either --seats N or --sweep-seats FIRST:LAST:STEP")
        counts = [seats] if seats is not None else parse_seat_range(sweep_seats or "")
        _check_zone(tz)
        settings = PolicySettings(
            idle_timeout_s=_positive_duration(idle_timeout, "idle timeout"),
            min_hold_s=parse_duration(min_hold),
            preempt=preempt,
            preempt_after_s=parse_duration(preempt_after),
            warn_before_s=parse_duration(warn_before),
            queue_timeout_s=parse_duration(queue_timeout),
            queue_aging_s=parse_duration(queue_aging),
            sweep_interval_s=_positive_duration(sweep_interval, "sweep interval"),
            reserve=reserve,
            lock_after_revoke_s=parse_duration(lock_after_revoke),
        )
        pins = tuple(sorted({canonical_user(user) for user in pin or ()}))
        if len(pins) + reserve > min(counts):
            raise ValueError(
                f"{min(counts)} seats cannot hold {len(pins)} pinned users and a reserve of "
                f"{reserve}"
            )
        options = SimulationOptions(
            settings=settings,
            pins=pins,
            tz=tz,
            max_wait_p95_s=parse_duration(max_wait_p95),
            tiers=_parse_tiers(tiers) if tiers else DEFAULT_TIERS,
            fixed_seats=fixed,
        )
        request = _log_request(
            paths,
            ReportOptions(idle_timeout_s=settings.idle_timeout_s, tz=tz),
            include=include,
            log_format=log_format,
            pattern=pattern,
            server_xml=server_xml,
            user_field=user_field,
            context_path=context_path,
            polling_path=polling_path,
            polling_regex=polling_regex,
            no_default_polling=no_default_polling,
            exclude_user=exclude_user,
            exclude_user_agent=exclude_user_agent,
        )
        return counts, options, request

    counts, options, request = _checked(errors, build)
    found = _read_logs(errors, quiet, lambda progress: read_requests(request, progress))
    data = prepare_input(found, options.settings.idle_timeout_s)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=quiet,
    ) as bar:
        task = bar.add_task(f"replaying {data.requests:,} requests", total=len(counts))
        report = run_simulation(
            data,
            counts,
            options,
            sweep=sweep_seats is not None,
            advance=lambda done: bar.update(task, advance=1, description=f"replayed {done} seats"),
        )

    if not quiet:
        render_simulation_summary(report, console)
    try:
        if json_out is not None:
            _write_text(json_out, simulation_json_text(report))
        if html_out is not None:
            from floatseat.analysis.simulate_html import render_simulation_html

            html_out.write_text(render_simulation_html(report), encoding="utf-8")
    except OSError as error:
        raise _fail(errors, f"cannot write the report: {error}") from None
    for target, label in ((json_out, "JSON"), (html_out, "HTML")):
        if target is not None and target != "-" and not quiet:
            console.print(f"{label} report: {target}")


@app.command("generate-logs")
def generate_logs_command(
    out: Annotated[Path, typer.Argument(help="Folder to write node1/, node2/, ... into.")],
    product: Annotated[str, typer.Option(help="jira or confluence")] = "jira",
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 200,
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 7,
    nodes: Annotated[int, typer.Option(min=1, help="Number of cluster nodes.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same logs.")] = 0,
    gzip: Annotated[bool, typer.Option(help="Write .gz files.")] = False,
    start: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD (default 2026-01-05, a Monday).")
    ] = None,
    utc_offset: Annotated[
        list[str] | None,
        typer.Option(help="UTC offset like +0100; once for all nodes or once per node."),
    ] = None,
    malformed_every: Annotated[
        int | None, typer.Option(min=1, help="Cut every Nth line short, to test malformed input.")
    ] = None,
) -> None:
    """Write realistic Jira or Confluence access logs, for trying floatseat and for tests."""
    from datetime import date

    from floatseat.logs.generate import generate_logs

    errors = Console(stderr=True, soft_wrap=True)
    if product not in ("jira", "confluence"):
        raise _fail(errors, "--product is jira or confluence")
    try:
        result = generate_logs(
            out,
            product="jira" if product == "jira" else "confluence",
            users=users,
            days=days,
            nodes=nodes,
            seed=seed,
            gzip=gzip,
            start=date.fromisoformat(start) if start else None,
            utc_offset=utc_offset[0]
            if utc_offset and len(utc_offset) == 1
            else (utc_offset or "+0000"),
            malformed_every=malformed_every,
        )
    except (ValueError, OSError) as error:
        raise _fail(errors, str(error)) from None
    Console(stderr=True).print(
        f"wrote {result.lines:,} lines in {len(result.files)} files under {out}"
    )


@app.command()
def version() -> None:
    """Print floatseat's version."""
    print(__version__)


app.add_typer(sim_app, name="sim")


def main() -> None:
    app()
