"""Benchmark `floatseat simulate`: parse a month of logs once, replay it for 10 seat counts.

Run with the project's venv, from anywhere:

    .venv/bin/python bench/simulate.py [--lines 10000000] [--days 30] [--users N] [--profile]

The issue's target: 30 days of a 5,000-user instance (about 10 M lines), replayed for 10 seat
counts, in under 2 minutes. floatseat's generator writes about a thousand lines per person and
working day, so 5,000 of its users for 30 days would be some 150 M lines; the default input is
therefore the issue's line count and span, 10 M lines over 30 days, made and cached by
bench/analyze.py's `ensure_plain` (shared with that benchmark). `--users N` instead generates
exactly N users for `--days` days, e.g. `--users 5000 --days 2` for about 10 M lines of a
5,000-user instance, whose replay keeps thousands of seats and waiters.

It measures, in this process: reading the logs (`read_requests`), preparing the replay input
(sorting, the analyzer's peak), and each replay; then the same work through the command line,
`floatseat simulate FILE --sweep-seats A:B:STEP --json OUT -q`, with its wall time, CPU time and
peak RSS. The 10 seat counts step by about 5 % of the analyzer's peak up to just above it, the
range an admin would try. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyze import (
    BENCH_DIR,
    MIB,
    calibrate,
    cpu_model,
    ensure_plain,
    floatseat_executable,
    generator_digest,
    git_commit,
    human_bytes,
    load_average,
    memory_total,
    read_json,
    run_once,
    say,
    source_digest,
    verdict,
    warm,
    write_json,
)

import floatseat
from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.pipeline import AnalysisRequest, read_requests
from floatseat.analysis.simulate import (
    SimulationInput,
    SimulationOptions,
    parse_seat_range,
    prepare_input,
    simulate,
)
from floatseat.domain.activity import CountingRules
from floatseat.domain.policy import DirectoryFigures, PolicySettings
from floatseat.domain.replay import ReplayResult, replay
from floatseat.logs import generate as generator

TARGET_SECONDS = 120.0
TARGET_COUNTS = 10
ISSUE_USERS = 5_000


def seat_range(peak: int, counts: int) -> str:
    """`counts` seat counts, stepping by ~5 % of the peak, the last one step above the peak."""
    step = max(1, round(peak / 20))
    last = peak + step
    first = max(1, last - (counts - 1) * step)
    return f"{first}:{last}:{step}"


def project_issue_size(work: Path, days: int, seed: int) -> None:
    """How many lines `generate_logs(users=5000, days=...)` would write, from a calibration."""
    path = work / f"simulate-calibration-{days}d-s{seed}-g{generator_digest()}.json"
    cached = read_json(path)
    if cached is None:
        calibration = calibrate(work, days, seed)
        cached = {"fixed": calibration.fixed_per_day, "per_user_day": calibration.per_user_day}
        write_json(path, cached)
    lines = days * (cached["fixed"] + ISSUE_USERS * cached["per_user_day"])
    say(
        f"generate_logs(users={ISSUE_USERS:,}, days={days}) would write about {lines / 1e6:,.0f} M"
        f" lines ({cached['per_user_day']:.0f} per user and day, weekends included), not 10 M"
    )


def ensure_users(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """Exactly `args.users` users for `args.days` days, one node, plain files (cached)."""
    key = f"simulate-{args.users}u-{args.days}d-s{args.seed}-g{generator_digest()}"
    folder = work / key
    meta_path = work / f"{key}.json"
    meta = read_json(meta_path)
    if meta is not None and folder.is_dir():
        say(f"input (cached): {folder}")
        return folder, meta
    say(f"generating {args.users:,} users for {args.days} days into {folder}")
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    result = generator.generate_logs(
        folder, product="jira", users=args.users, days=args.days, nodes=1, seed=args.seed
    )
    meta = {
        "lines": result.lines,
        "users": args.users,
        "days": args.days,
        "plain_bytes": sum(f.stat().st_size for f in result.files),
    }
    write_json(meta_path, meta)
    say(f"  wrote {result.lines:,} lines in {time.perf_counter() - started:.1f} s")
    return folder, meta


def profile_replay(data: SimulationInput, seats: int) -> None:
    """cProfile of one replay: where a request's time goes (the policy or the loop)."""
    settings = PolicySettings(reserve=0, idle_timeout_s=data.idle_timeout_s)
    figures = DirectoryFigures(tier=seats, pool=data.pool)
    profiler = cProfile.Profile()
    profiler.enable()
    replay(zip(data.times, data.users, strict=True), settings, figures)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
    say(f"== profile of the replay with {seats} seats (cProfile slows it about 3x)")
    say("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    say()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark floatseat simulate: parse once, replay 10 seat counts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines of the input")
    parser.add_argument("--days", type=int, default=30, help="days the input spans")
    parser.add_argument(
        "--users", type=int, default=0, help="generate exactly N users instead of --lines"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--counts", type=int, default=TARGET_COUNTS, help="seat counts replayed")
    parser.add_argument("--sweep-seats", help="FIRST:LAST:STEP instead of the automatic range")
    parser.add_argument("--profile", action="store_true", help="cProfile the smallest count")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line run")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before the command is killed"
    )
    parser.add_argument(
        "--work", type=Path, default=BENCH_DIR / "out", help="work folder (inputs are cached here)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the generator's day files and the JSON report"
    )
    args = parser.parse_args(argv)
    if args.lines < 1 or args.days < 1 or args.counts < 1 or args.users < 0:
        parser.error("--lines, --days and --counts must be 1 or more, --users 0 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    say("== machine")
    say(f"cpu           {cpu_model()}, {len(os.sched_getaffinity(0))} cores")
    say(f"memory        {memory_total()}")
    say(f"python        {sys.version.split()[0]}")
    say(f"floatseat     {floatseat.__version__}, commit {git_commit()}")
    say(f"src digest    {source_digest()}")
    say(f"load average  {load_average()}")
    say()

    say("== input")
    if args.users:
        source, meta = ensure_users(args, work)
        files = sorted(p for p in source.rglob("*") if p.is_file())
    else:
        project_issue_size(work, args.days, args.seed)
        source, meta = ensure_plain(args, work)
        files = [source]
    say(
        f"{meta['lines']:,} lines, {human_bytes(meta['plain_bytes'])}, "
        f"{meta['users']:,} generated users, {meta['days']} days generated"
    )
    warm(files)
    say()

    say("== in this process")
    request = AnalysisRequest(
        arguments=(str(source),), rules=CountingRules(), report=ReportOptions()
    )
    started = time.perf_counter()
    found = read_requests(request)
    parsed = time.perf_counter()
    data = prepare_input(found, 1800)
    prepared = time.perf_counter()
    lines = data.lines
    say(
        f"parse     {parsed - started:8.2f} s  read_requests: "
        f"{lines / (parsed - started) / 1e6:.2f} M lines/s"
    )
    say(
        f"prepare   {prepared - parsed:8.2f} s  {data.requests:,} (user, second) pairs of "
        f"{len(data.pool):,} users in replay order; the analyzer's peak: {data.peak:,}"
    )
    span_days = (data.times[-1] - data.times[0]) / 86_400 if data.times else 0.0
    say(f"          the requests span {span_days:.1f} days")

    seats = args.sweep_seats or seat_range(data.peak, args.counts)
    counts = parse_seat_range(seats)
    options = SimulationOptions(settings=PolicySettings(reserve=0))
    marks = [time.perf_counter()]
    report = simulate(
        data, counts, options, sweep=True, advance=lambda _: marks.append(time.perf_counter())
    )
    replays = marks[-1] - marks[0]
    say(f"replay    {replays:8.2f} s  {len(counts)} seat counts ({seats}), default policy settings")
    say(f"{'seats':>8} {'seconds':>8} {'µs/request':>10} {'waits':>8} {'users':>6} "
        f"{'p95 s':>6} {'denied':>7} {'preempt':>8} {'held':>6}")  # fmt: skip
    for run, begin, end in zip(report.runs, marks, marks[1:], strict=False):
        print_run(run, end - begin, data.requests)
    total = prepared - started + replays
    say(
        f"total     {total:8.2f} s  parse + prepare + {len(counts)} replays: "
        f"{lines / total / 1e6:.2f} M lines/s; per replay {replays / len(counts):.2f} s "
        f"({replays / len(counts) / max(data.requests, 1) * 1e6:.2f} µs/request)"
    )
    say(
        f"recommended {report.recommended_seats} seats, tier {report.recommended_tier}; "
        f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        " MiB"
    )
    say()
    if args.profile:
        profile_replay(data, counts[0])

    passed = total < TARGET_SECONDS
    if not args.no_cli:
        out = work / "simulate-report.json"
        command = [
            floatseat_executable(), "simulate", str(source), "--sweep-seats", seats,
            "--json", str(out), "-q",
        ]  # fmt: skip
        say("== the command line")
        say("$ " + " ".join(command))
        done = run_once(command, args.timeout)
        if done.returncode != 0 or done.timed_out:
            say(f"FAILED (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
            return 1
        written = json.loads(out.read_text(encoding="utf-8"))
        say(
            f"{done.seconds:.2f} s wall, {done.cpu_seconds:.2f} s CPU, "
            f"{done.max_rss_bytes / MIB:.0f} MiB peak RSS; "
            f"{lines / done.seconds / 1e6:.2f} M lines/s; recommended "
            f"{written['recommended_seats']} seats (load {load_average()})"
        )
        if not args.keep:
            out.unlink(missing_ok=True)
        passed = passed and done.seconds < TARGET_SECONDS
        say()

    say("== target")
    say(
        f"{lines / 1e6:.1f} M lines over {span_days:.0f} days, {len(counts)} seat counts, under "
        f"{TARGET_SECONDS:.0f} s: {verdict(passed)}"
    )
    return 0


def print_run(run: ReplayResult, seconds: float, requests: int) -> None:
    say(
        f"{run.seats:>8,} {seconds:>8.2f} {seconds / max(requests, 1) * 1e6:>10.2f} "
        f"{run.waits:>8,} {run.queued:>6,} {run.wait_seconds_p95:>6} {run.denied:>7,} "
        f"{run.preemptions:>8,} {run.max_seats_held:>6,}"
    )


if __name__ == "__main__":
    sys.exit(main())
