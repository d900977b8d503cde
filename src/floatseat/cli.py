"""The `floatseat` command line (Typer). Parses options, calls one use case, prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from floatseat import __version__
from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.export import report_json_text, timeline_csv_text
from floatseat.analysis.pipeline import AnalysisRequest, InputError
from floatseat.analysis.pipeline import Progress as AnalysisProgress
from floatseat.analysis.pipeline import analyze as run_analysis
from floatseat.analysis.terminal import render_summary
from floatseat.domain.activity import DEFAULT_POLLING_PREFIXES, CountingRules
from floatseat.domain.licence import DEFAULT_TIERS
from floatseat.logs.formats import FORMATS_BY_NAME
from floatseat.logs.pattern import PatternError, compile_pattern, read_server_xml_pattern
from floatseat.units import parse_duration, parse_fraction

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


@app.command()
def analyze(
    paths: Annotated[
        list[str],
        typer.Argument(help="Files, folders (read recursively) or globs; '-' reads stdin."),
    ],
    include: Annotated[
        list[str] | None,
        typer.Option("--include", help="Also read files in folders whose name matches GLOB."),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Known format for every file: " + ", ".join(FORMATS_BY_NAME) + ". "
            "Default: detected per file.",
        ),
    ] = None,
    pattern: Annotated[
        str | None, typer.Option(help="A Tomcat AccessLogValve pattern for every file.")
    ] = None,
    server_xml: Annotated[
        Path | None, typer.Option(help="Read the pattern from this server.xml's valve.")
    ] = None,
    user_field: Annotated[
        str | None, typer.Option(help="The pattern token holding the user, e.g. %u.")
    ] = None,
    context_path: Annotated[
        str | None, typer.Option(help="Strip this context path (e.g. /jira) first.")
    ] = None,
    polling_path: Annotated[
        list[str] | None, typer.Option(help="Add a polling prefix of the request target.")
    ] = None,
    polling_regex: Annotated[
        list[str] | None, typer.Option(help="Add a polling regex of the request target.")
    ] = None,
    no_default_polling: Annotated[
        bool, typer.Option(help="Clear the default polling prefixes.")
    ] = False,
    exclude_user: Annotated[
        list[str] | None, typer.Option(help="Leave out this user's requests.")
    ] = None,
    exclude_user_agent: Annotated[
        str | None, typer.Option(help="Leave out requests whose User-Agent matches REGEX.")
    ] = None,
    idle_timeout: Annotated[
        str, typer.Option(help="Idle timeout T: 90s, 30m, 1h or seconds.")
    ] = "30m",
    tz: Annotated[str, typer.Option(help="Time zone of reported times and days.")] = "UTC",
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
    json_out: Annotated[
        str | None, typer.Option("--json", help="Write the JSON report here ('-': stdout).")
    ] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write the per-minute timeline as CSV.")
    ] = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No terminal summary.")] = False,
) -> None:
    """Report the exact peak of concurrent users from Jira and Confluence access logs."""
    # With JSON on stdout, everything meant for people goes to stderr.
    console = Console(stderr=json_out == "-")
    errors = Console(stderr=True, soft_wrap=True)
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
        timeout_s = parse_duration(idle_timeout)
        if timeout_s <= 0:
            raise ValueError("the idle timeout must be positive")
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
        options = ReportOptions(
            idle_timeout_s=timeout_s,
            tz=tz,
            tiers=_parse_tiers(tiers) if tiers else DEFAULT_TIERS,
            headroom=parse_fraction(headroom),
            fixed_seats=fixed,
            registered_users=registered,
            current_tier=current_tier,
            price_per_tier=_parse_prices(price_per_tier) if price_per_tier else {},
            currency=currency,
        )
    except (ValueError, PatternError, OSError) as error:
        raise _fail(errors, str(error)) from None
    except Exception as error:  # zoneinfo and re raise their own kinds
        raise _fail(errors, f"{type(error).__name__}: {error}") from None

    request = AnalysisRequest(
        arguments=tuple(paths),
        rules=rules,
        report=options,
        includes=tuple(include or ()),
        format_name=log_format,
        pattern=pattern,
        user_field=user_field,
    )
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
            report = run_analysis(request, AnalysisProgress(start=start, advance=advance))
        except InputError as error:
            raise _fail(errors, str(error)) from None

    if not quiet:
        render_summary(report, console)
    try:
        if json_out == "-":
            sys.stdout.write(report_json_text(report))
            sys.stdout.flush()
        elif json_out is not None:
            Path(json_out).write_text(report_json_text(report), encoding="utf-8")
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


def main() -> None:
    app()
