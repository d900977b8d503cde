"""The `floatseat` command line (Typer). Parses options, calls one use case, prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

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
from floatseat.domain.onboarding import Plan, RevokeAccess, SetupOptions, Step
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

if TYPE_CHECKING:
    # The service, directory and web sides load inside the commands that use them, so that
    # `floatseat analyze` starts without them (tests/test_startup.py).
    from floatseat.directory.errors import ManualStepRequired
    from floatseat.directory.port import ManagedDirectory, PoolGroups
    from floatseat.notify.notifier import Notifier
    from floatseat.service.bootstrap import Served
    from floatseat.service.runtime import Runtime
    from floatseat.service.setup import ExecutionResult, Observed

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


# -- setup: onboarding, rollback and freeze ---------------------------------------------------

SETUP_PRODUCTS = ("confluence", "jira")
DEFAULT_STATE_DIR = Path("floatseat-setup")
DEFAULT_DATABASE = "sqlite:///floatseat.db"
_SHOWN_NAMES = 8


def _secret(env: str, prompt: str) -> str:
    """A secret from the environment, else typed in without echo; never an option's value."""
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise ValueError(f"set {env}, or run in a terminal to type it in")
    return str(typer.prompt(prompt, hide_input=True))


def _connect(
    product: str,
    url: str,
    user: str | None,
    token: bool,
    crowd_url: str | None,
    crowd_app: str,
    groups: PoolGroups,
) -> ManagedDirectory:
    """The product's connector (imported lazily), behind Crowd's when the users live there."""
    from floatseat.directory.http import BasicCredentials, Credentials, PersonalAccessToken

    credentials: Credentials
    if token:
        credentials = PersonalAccessToken(_secret("FLOATSEAT_TOKEN", "Personal access token"))
    elif user:
        credentials = BasicCredentials(user, _secret("FLOATSEAT_PASSWORD", f"Password of {user}"))
    else:
        raise ValueError("give --user (password from FLOATSEAT_PASSWORD) or --token")
    directory: ManagedDirectory
    if product == "confluence":
        from floatseat.directory.confluence import ConfluenceDirectory

        directory = ConfluenceDirectory.connect(url, credentials, groups=groups)
    else:
        from floatseat.directory.jira import JiraDirectory

        directory = JiraDirectory.connect(url, credentials, groups=groups)
    if crowd_url is None:
        return directory
    from floatseat.directory.crowd import CrowdDirectory

    application = BasicCredentials(
        crowd_app, _secret("FLOATSEAT_CROWD_PASSWORD", f"Password of Crowd application {crowd_app}")
    )
    return CrowdDirectory.connect(crowd_url, application, licence_source=directory, groups=groups)


def _names(users: Sequence[str], show_all: bool) -> str:
    if show_all or len(users) <= _SHOWN_NAMES:
        return ", ".join(users)
    return ", ".join(users[:_SHOWN_NAMES]) + f", … (+{len(users) - _SHOWN_NAMES})"


def _moves(step: Step, show_all: bool) -> str:
    """One line per kind of action: who moves where."""
    from floatseat.domain.onboarding import (
        AddMember,
        CreateGroup,
        GrantAccess,
        RemoveMember,
        RevokeAccess,
    )

    lines: list[str] = []
    by_kind: dict[tuple[str, str], list[str]] = {}
    for action in step.actions:
        if isinstance(action, CreateGroup):
            lines.append(f"create group {action.group}")
        elif isinstance(action, GrantAccess):
            lines.append(f"grant application access to {action.group}")
        elif isinstance(action, RevokeAccess):
            lines.append(f"revoke application access from {action.group}")
        elif isinstance(action, AddMember):
            by_kind.setdefault((f"→ {action.group}", ""), []).append(action.user)
        elif isinstance(action, RemoveMember):
            by_kind.setdefault((f"← out of {action.group}", ""), []).append(action.user)
    for (label, _), users in by_kind.items():
        lines.append(f"{len(users)} {label}: {_names(users, show_all)}")
    return "\n".join(lines) or "-"


def _print_plan(console: Console, title: str, plan: Plan, show_all: bool) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("moves", overflow="fold")
    table.add_column("licensed after", justify="right")
    for number, step in enumerate(plan.steps, 1):
        if not step.actions and number > 1:
            continue  # nothing to do in this step (already done, or not needed)
        count = str(step.licensed_after)
        if step.licensed_after > plan.tier:
            count = f"[bold red]{count}[/]"
        table.add_row(str(number), step.title, _moves(step, show_all), count)
    console.print(table)
    console.print(
        f"tier {plan.tier}: licensed {plan.licensed_before} now, "
        f"{plan.licensed_after} afterwards, at most {plan.peak} on the way"
    )


def _print_notes(console: Console, warnings: Iterable[str], manual: Iterable[str] = ()) -> None:
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for step in manual:
        console.print(f"[cyan]by hand:[/] {step}")


def _ask_manual(console: Console) -> Callable[[Step, ManualStepRequired], bool]:
    def ask(step: Step, error: ManualStepRequired) -> bool:
        console.print(f"[cyan]by hand ({step.title}):[/] {error}")
        for number, line in enumerate(error.steps, 1):
            console.print(f"  {number}. {line}")
        if not sys.stdin.isatty():
            return False
        return bool(typer.confirm("Done?", default=False))

    return ask


def _finish(console: Console, errors: Console, result: ExecutionResult, what: str) -> None:
    if result.finished:
        console.print(f"[green]{what} done[/] ({result.actions_done} changes)")
        return
    errors.print(f"[bold red]stopped:[/] {result.stopped}")
    for number, line in enumerate(result.manual_steps, 1):
        errors.print(f"  {number}. {line}")
    raise typer.Exit(3 if result.manual_steps else 2)


@app.command()
def setup(
    product: Annotated[str, typer.Option(help="confluence or jira")],
    url: Annotated[str, typer.Option(help="The product's base URL, context path included.")],
    user: Annotated[
        str | None, typer.Option(help="Admin user; the password comes from FLOATSEAT_PASSWORD.")
    ] = None,
    token: Annotated[
        bool, typer.Option("--token", help="Use a personal access token from FLOATSEAT_TOKEN.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; change nothing.")] = False,
    rollback: Annotated[bool, typer.Option(help="Restore the snapshot setup took.")] = False,
    freeze: Annotated[
        bool, typer.Option(help="Pin the current seat holders in the ledger: stop floating.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Roll back even over the current tier (Confluence turns read-only)."),
    ] = False,
    exact: Annotated[
        bool,
        typer.Option(help="Roll back the old groups' memberships too, not only the pool groups'."),
    ] = False,
    logs: Annotated[
        list[str] | None,
        typer.Option("--logs", help="Access logs (files, folders, globs): who was active last."),
    ] = None,
    log_format: FormatOption = None,
    context_path: ContextPathOption = None,
    capacity: Annotated[
        int | None,
        typer.Option(min=0, help="Seats for the pool (default: tier - outside - reserve)."),
    ] = None,
    reserve: Annotated[
        int, typer.Option(min=0, help="Seats kept free for integrations and safety.")
    ] = POLICY_DEFAULTS.reserve,
    keep_access: Annotated[
        list[str] | None,
        typer.Option(help="A group that keeps application access (e.g. the administrators)."),
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="A user setup never moves.")] = None,
    access_group: Annotated[
        list[str] | None,
        typer.Option(help="A group with application access, where no API can list them."),
    ] = None,
    enabled_group: Annotated[str, typer.Option(help="The licensed pool group.")] = "IUM_Enabled",
    disabled_group: Annotated[
        str, typer.Option(help="The unlicensed pool group.")
    ] = "IUM_Disabled",
    crowd_url: Annotated[
        str | None, typer.Option(help="The users live in this Crowd: change the groups there.")
    ] = None,
    crowd_app: Annotated[
        str, typer.Option(help="Crowd application name (password: FLOATSEAT_CROWD_PASSWORD).")
    ] = "floatseat",
    state_dir: Annotated[
        Path, typer.Option(help="Where the snapshot of the original memberships is kept.")
    ] = DEFAULT_STATE_DIR,
    database: Annotated[
        str, typer.Option(help="The ledger (for --freeze): a SQLAlchemy URL.")
    ] = DEFAULT_DATABASE,
    show_all: Annotated[bool, typer.Option(help="List every user in the plan.")] = False,
) -> None:
    """Onboard an instance safely: pool groups, access, the first seats; or roll it back."""
    from floatseat.directory.port import PoolGroups
    from floatseat.service.errors import DirectoryError
    from floatseat.service.setup import SetupRefused, last_seen_from_pairs

    console = Console()
    errors = Console(stderr=True, soft_wrap=True)
    if product not in SETUP_PRODUCTS:
        raise _fail(errors, "--product is confluence or jira")
    if rollback + freeze > 1:
        raise _fail(errors, "--rollback and --freeze do not go together")
    groups = _checked(errors, lambda: PoolGroups(enabled_group, disabled_group))
    last_seen: dict[str, int] = {}
    if logs and not rollback and not freeze:
        request = _checked(
            errors,
            lambda: _log_request(
                logs,
                ReportOptions(),
                include=None,
                log_format=log_format,
                pattern=None,
                server_xml=None,
                user_field=None,
                context_path=context_path,
                polling_path=None,
                polling_regex=None,
                no_default_polling=False,
                exclude_user=None,
                exclude_user_agent=None,
            ),
        )
        found = _read_logs(errors, False, lambda progress: read_requests(request, progress))
        last_seen = last_seen_from_pairs(found.pairs.select("user", "ts").iter_rows())
        console.print(f"activity of {len(last_seen)} users read from the logs")
    directory = _checked(
        errors,
        lambda: _connect(product, url, user, token, crowd_url, crowd_app, groups),
    )
    try:
        if freeze:
            _setup_freeze(console, errors, directory, groups, database, exclude, dry_run)
        elif rollback:
            _setup_rollback(
                console,
                errors,
                directory,
                "crowd" if crowd_url else product,
                state_dir,
                force=force,
                exact=exact,
                access_group=access_group,
                dry_run=dry_run,
                show_all=show_all,
            )
        else:
            options = _checked(
                errors,
                lambda: SetupOptions(
                    enabled_group=enabled_group,
                    disabled_group=disabled_group,
                    reserve=reserve,
                    capacity=capacity,
                    keep_access=frozenset(keep_access or ()),
                    excluded=frozenset(exclude or ()),
                ),
            )
            _setup_run(
                console,
                errors,
                directory,
                options,
                last_seen,
                state_dir,
                access_group=access_group,
                dry_run=dry_run,
                show_all=show_all,
            )
    except SetupRefused as refusal:
        for number, line in enumerate(refusal.steps, 1):
            errors.print(f"  {number}. {line}")
        raise _fail(errors, f"refused: {refusal}") from None
    except DirectoryError as error:
        raise _fail(errors, f"the directory failed: {error}") from None
    finally:
        close = getattr(directory, "close", None)
        if close is not None:
            close()


def _print_connection(console: Console, observed: Observed) -> None:
    info, licence = observed.info, observed.licence
    version = f" {info.version}" if info.version else ""
    console.print(
        f"{info.product}{version} at {info.base_url} via {info.api}: "
        f"{licence.licensed} of {licence.tier} seats licensed"
    )


def _setup_run(
    console: Console,
    errors: Console,
    directory: ManagedDirectory,
    options: SetupOptions,
    last_seen: Mapping[str, int],
    state_dir: Path,
    *,
    access_group: list[str] | None,
    dry_run: bool,
    show_all: bool,
) -> None:
    from floatseat.service.setup import execute, prepare_setup

    run = prepare_setup(directory, options, last_seen, state_dir, access_groups=access_group)
    _print_connection(console, run.observed)
    plan = run.plan
    _print_plan(console, "floatseat setup" + (" (dry run)" if dry_run else ""), plan, show_all)
    console.print(
        f"{len(plan.enabled)} users get one of {plan.capacity} seats in {options.enabled_group}; "
        f"{len(plan.disabled)} go to {options.disabled_group}"
    )
    notes = list(run.observed.warnings) + list(plan.warnings)
    if run.observed.info.product == "confluence" and any(
        isinstance(a, RevokeAccess) for a in plan.actions
    ):
        notes.append(
            "Confluence drops every global permission of a group that loses 'Can use' "
            "(e.g. Create Space): note them first; --rollback gives back 'Can use' only"
        )
    _print_notes(console, notes, plan.manual)
    if dry_run:
        console.print("dry run: nothing changed")
        return
    if run.resuming:
        taken = run.snapshot.taken_at
        console.print(f"keeping the original snapshot {run.snapshot_path} (taken {taken})")
    else:
        run.snapshot.save(run.snapshot_path)
        console.print(f"snapshot of the original memberships: {run.snapshot_path}")
    result = execute(directory, plan, on_manual=_ask_manual(console))
    _finish(console, errors, result, "setup")


def _setup_rollback(
    console: Console,
    errors: Console,
    directory: ManagedDirectory,
    product: str,
    state_dir: Path,
    *,
    force: bool,
    exact: bool,
    access_group: list[str] | None,
    dry_run: bool,
    show_all: bool,
) -> None:
    from floatseat.service.setup import archive_snapshot, execute, prepare_rollback

    run = prepare_rollback(
        directory, state_dir, product, force=force, exact=exact, access_groups=access_group
    )
    _print_connection(console, run.observed)
    console.print(
        f"the restore of the snapshot of {run.snapshot.taken_at} licenses "
        f"{run.would_license} users; the tier is {run.plan.tier}"
    )
    title = "floatseat setup --rollback" + (" (dry run)" if dry_run else "")
    _print_plan(console, title, run.plan, show_all)
    notes = list(run.observed.warnings) + list(run.plan.warnings)
    notes += [
        f"{g} changed since the snapshot; left as it is (--exact restores it)" for g in run.drift
    ]
    _print_notes(console, notes, run.plan.manual)
    if dry_run:
        console.print("dry run: nothing changed")
        return
    result = execute(directory, run.plan, on_manual=_ask_manual(console), allow_over_tier=force)
    if result.finished:
        console.print(f"snapshot set aside as {archive_snapshot(run.snapshot_path)}")
    _finish(console, errors, result, "rollback")


def _setup_freeze(
    console: Console,
    errors: Console,
    directory: ManagedDirectory,
    groups: PoolGroups,
    database: str,
    exclude: list[str] | None,
    dry_run: bool,
) -> None:
    import time

    from floatseat.service.errors import EngineError
    from floatseat.service.setup import freeze as freeze_holders

    try:
        result = freeze_holders(
            directory,
            database,
            groups,
            at=int(time.time()),
            excluded=exclude or (),
            dry_run=dry_run,
        )
    except EngineError as error:
        raise _fail(errors, f"the ledger failed: {error}") from None
    verb = "would pin" if dry_run else "pinned"
    console.print(
        f"{verb} {len(result.pinned)} holders of {groups.enabled}"
        + (f": {_names(result.pinned, False)}" if result.pinned else "")
        + (f"; {len(result.already)} were pinned already" if result.already else "")
    )
    if not dry_run:
        console.print("floating has stopped for them: the engine keeps their seats until unpinned")


@app.command()
def serve(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML settings (no secrets in it).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="State folder (the SQLite ledger lives here).")
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Decide and audit everything, move nobody.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Address of the web side.")] = None,
    port: Annotated[int | None, typer.Option(help="Port of the web side.")] = None,
    web: Annotated[
        bool, typer.Option("--web/--no-web", help="Serve the dashboard and the API.")
    ] = True,
    notify_config: Annotated[
        Path | None,
        typer.Option(
            "--notify-config",
            help="TOML with a [notify] table: user notices and admin alerts (docs/operations.md).",
        ),
    ] = None,
) -> None:
    """Run the floating-licence engine: follow the logs, float the seats, serve the dashboard.

    Settings come from --config and FLOATSEAT_* variables; the product's password from
    FLOATSEAT_PASSWORD (or FLOATSEAT_TOKEN). SIGTERM stops it cleanly.
    """
    import logging

    from floatseat.service.bootstrap import build_service, connect_directory
    from floatseat.service.errors import EngineError
    from floatseat.service.runner import run_until_signalled
    from floatseat.service.settings import SettingsError, load_settings

    errors = Console(stderr=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(
            config, state_dir=state, shadow=True if shadow else None, host=host, port=port
        )
        served = build_service(settings, connect_directory(settings))
        notifier = _notifier(notify_config, served)
    except (SettingsError, ValueError) as error:
        raise _fail(errors, str(error)) from None
    except EngineError as error:
        raise _fail(errors, f"the ledger failed: {error}") from None
    asgi = _web_app(served.runtime, errors) if web else None
    mode = " in shadow mode (nobody is moved)" if settings.shadow else ""
    where = f" on http://{settings.host}:{settings.port}/" if asgi is not None else " (headless)"
    errors.print(f"floatseat serve{mode}{where}, ledger {settings.ledger_url()}")
    try:
        if notifier is not None:
            notifier.start()
        run_until_signalled(served.service, app=asgi, host=settings.host, port=settings.port)
    except RuntimeError as error:
        raise _fail(errors, str(error), 1) from None
    finally:
        if notifier is not None:
            notifier.stop()
        served.close()


def _notifier(config: Path | None, served: Served) -> Notifier | None:
    """The notifier the settings ask for (FLOATSEAT_NOTIFY_* and --notify-config), or None."""
    from floatseat.notify.notifier import Notifier
    from floatseat.notify.settings import load_notify_settings

    settings = load_notify_settings(config)
    if not settings.enabled:
        return None
    return Notifier.for_runtime(settings, served.runtime, served.directory)


def _web_app(runtime: Runtime, errors: Console) -> object | None:
    """The web side's app for `runtime`, or None (headless) where it is not installed."""
    try:
        from floatseat.web.app import create_app
        from floatseat.web.settings import WebSettings
    except ImportError as error:
        errors.print(f"[yellow]no web side[/] ({error}): running headless")
        return None
    return create_app(runtime, web_settings=WebSettings())


@app.command()
def demo(
    product: Annotated[str, typer.Option(help="confluence or jira")] = "confluence",
    port: Annotated[int, typer.Option(help="Port of the dashboard, on 127.0.0.1.")] = 8080,
    sim_port: Annotated[
        int, typer.Option(help="Port of the simulated product, on 127.0.0.1.")
    ] = 8090,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Keep the ledger and the logs here (default: a temp folder)."),
    ] = None,
    users: Annotated[int, typer.Option(help="Virtual users.")] = 40,
    tier: Annotated[int, typer.Option(help="The simulated licence's tier.")] = 18,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per real second (60: an hour a minute).")
    ] = 60.0,
) -> None:
    """Run floatseat against a simulated Confluence or Jira with virtual users: no setup.

    Starts the simulator on an accelerated clock, prepares it as `floatseat setup` would,
    runs `floatseat serve` on SQLite with the dashboard in demo mode (no login from this
    machine), and prints the dashboard's URL. Ctrl-C or SIGTERM stops everything.
    """
    import logging

    from floatseat.demo import Demo, DemoError, DemoOptions
    from floatseat.service.errors import DirectoryError, EngineError

    errors = Console(stderr=True)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        options = DemoOptions(
            product=product,  # type: ignore[arg-type]
            port=port,
            sim_port=sim_port,
            state=state,
            users=users,
            tier=tier,
            speed=speed,
        )
        running = Demo(options)
    except DemoError as error:
        raise _fail(errors, str(error)) from None

    def ready(d: Demo) -> None:
        o = d.options
        print(
            f"floatseat demo: simulated {o.product} at {d.sim_url} ({o.users} virtual users, "
            f"tier {o.tier}; admin/admin), clock {o.speed:g}x from Monday 09:00 UTC\n"
            f"state (SQLite ledger, logs): {d.state}"
            + (" (removed at the end)" if d.temporary else "")
            + f"\n\n  Dashboard: {d.url}   (no login needed from this machine)\n\n"
            "Seats float within a minute. Ctrl-C stops.",
            flush=True,
        )

    try:
        running.run(ready=ready)
    except (DemoError, DirectoryError, EngineError) as error:
        raise _fail(errors, str(error)) from None
    print("floatseat demo: stopped", flush=True)


@app.command()
def agent(
    to: Annotated[
        str, typer.Option("--to", help="The floatseat service's base URL (https://...).")
    ],
    product: Annotated[str, typer.Option(help="confluence or jira: the logs' file names.")],
    follow: Annotated[
        list[Path] | None,
        typer.Option(
            "--follow",
            help="A folder holding the node's access logs or refused-login log (repeat).",
        ),
    ] = None,
    access: Annotated[
        list[str] | None, typer.Option("--access", help="A glob of access logs (repeat).")
    ] = None,
    security: Annotated[
        list[str] | None,
        typer.Option("--security", help="A glob of the refused-login log (repeat)."),
    ] = None,
    node: Annotated[
        str | None, typer.Option(help="The node's name (default: the host name).")
    ] = None,
    pattern: Annotated[
        str | None, typer.Option(help="The access-log valve's pattern (default: detect).")
    ] = None,
    timezone: Annotated[
        str, typer.Option(help="Zone of Confluence's application-log times (no offset).")
    ] = "UTC",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="serve's TOML file: count lines by the same rules."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLOATSEAT_AGENT_TOKEN",
            help="A reporter token. Prefer FLOATSEAT_AGENT_TOKEN or --token-file: "
            "--token shows in ps.",
            show_envvar=True,
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Read the token from this file.")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA certificates for a private CA (PEM).")
    ] = None,
    spool: Annotated[
        Path, typer.Option("--spool", help="State and batches waiting for the service.")
    ] = Path("/var/lib/floatseat-agent"),
    spool_max_mb: Annotated[
        int, typer.Option("--spool-max-mb", help="Past this, log reading pauses.")
    ] = 256,
    batch_max: Annotated[int, typer.Option("--batch-max", help="Sightings per batch.")] = 1000,
    interval: Annotated[float, typer.Option(help="Seconds between reads of the logs.")] = 0.25,
    read_existing: Annotated[
        bool,
        typer.Option("--read-existing", help="On a first start, read what the logs hold."),
    ] = False,
) -> None:
    """Run on a cluster node: follow its logs and ship the activity to floatseat serve.

    The batches wait in --spool while the service cannot be reached and go out in order
    afterwards: nothing is lost, nothing is counted twice. SIGTERM stops it cleanly.
    """
    import logging
    import signal
    import threading

    from floatseat.agent import AgentSettings, run_agent
    from floatseat.agent.settings import default_node_name
    from floatseat.agent.spool import SpoolLocked
    from floatseat.service.settings import SettingsError

    errors = Console(stderr=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if product not in ("confluence", "jira"):
        raise _fail(errors, "--product must be confluence or jira")
    if spool_max_mb < 1:
        raise _fail(errors, "--spool-max-mb must be 1 or more")
    secret = token
    if not secret and token_file is not None:
        try:
            secret = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise _fail(
                errors, f"cannot read --token-file {token_file}: {error.strerror}"
            ) from None
    try:
        settings = AgentSettings(
            to_url=to,
            token=secret or "",
            product=product,  # type: ignore[arg-type]
            node=node or default_node_name(),
            spool_dir=spool,
            follow=tuple(follow or ()),
            access_logs=tuple(access or ()),
            security_logs=tuple(security or ()),
            pattern=pattern,
            timezone=timezone,
            config=config,
            ca_file=ca_file,
            batch_max=batch_max,
            interval_s=interval,
            spool_max_bytes=spool_max_mb * 1024 * 1024,
            read_existing=read_existing,
        )
    except SettingsError as error:
        raise _fail(errors, str(error)) from None
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    try:
        run_agent(settings, stop)
    except (SettingsError, SpoolLocked, ValueError) as error:
        raise _fail(errors, str(error)) from None
    except OSError as error:
        raise _fail(errors, f"the spool {settings.spool_dir}: {error}") from None


@app.command()
def doctor(
    config: Annotated[
        Path | None, typer.Option("--config", help="serve's TOML settings (no secrets in it).")
    ] = None,
    server_xml: Annotated[
        list[Path] | None,
        typer.Option("--server-xml", help="A node's Tomcat server.xml (repeat for each node)."),
    ] = None,
    write_test: Annotated[
        bool,
        typer.Option(
            "--write-test",
            help="Take a few IUM_Disabled members out of the group and put them back, to "
            "prove the directory is writable (harmless for the licence).",
        ),
    ] = False,
    sample: Annotated[
        float, typer.Option(help="Seconds to watch the logs grow (0: judge by their mtimes).")
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check an installation: valve, logs, clocks, directory, access, rate limit, seats.

    Each problem is explained with its fix. Exit status: 0 all good, 1 warnings, 2 failures.
    Settings (and the product's password) are read as floatseat serve reads them.
    """
    from floatseat.doctor import DoctorOptions, render_report, run_doctor
    from floatseat.service.settings import SettingsError, load_settings

    errors = Console(stderr=True)
    settings = None
    if config is not None or os.environ.get("FLOATSEAT_BASE_URL") or not server_xml:
        try:
            settings = load_settings(config)
        except SettingsError as error:
            raise _fail(errors, str(error)) from None
    options = DoctorOptions(server_xml=server_xml or (), write_test=write_test, sample_s=sample)
    report = run_doctor(settings, options)
    if as_json:
        print(report.as_json())
    else:
        render_report(report, Console())
    raise typer.Exit(report.exit_status)


@app.command()
def version() -> None:
    """Print floatseat's version."""
    print(__version__)


app.add_typer(sim_app, name="sim")


def main() -> None:
    app()
