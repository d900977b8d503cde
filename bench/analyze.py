"""Benchmark `floatseat analyze` on one big Jira access log against cat, zcat and GoAccess.

Run with the project's venv, from anywhere:

    .venv/bin/python bench/analyze.py [--lines 10000000] [--days-gz 0] [--work DIR] [--keep]

One run generates the input with floatseat's own generator (cached in the work folder, keyed
by its parameters and the generator's source), makes a .gz of it (cached too), warms the page
cache, measures each command's wall time (best of N), CPU time and peak RSS (each child's own
rusage through os.wait4), and prints a table with the ratios the project's targets are stated
in, each marked PASS or MISS. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import floatseat
from floatseat.analysis.fastscan import engine_name
from floatseat.logs import generate as generator

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CHUNK = 16 * 1024 * 1024
MIB = 1024 * 1024
GIB = 1024 * MIB

# Jira's default valve: %a %{jira.request.id}r %{jira.request.username}r %t "%m %U%q %H" %s %b
# %D "%{Referer}i" "%{User-Agent}i" "%{jira.request.assession.id}r" (%D is milliseconds).
GOACCESS_FORMAT = '%h %^ %e [%d:%t %^] "%r" %s %b %L "%R" "%u" %^'
GOACCESS_ARGS = (
    "--no-global-config",
    f"--log-format={GOACCESS_FORMAT}",
    "--date-format=%d/%b/%Y",
    "--time-format=%T",
    "--no-progress",
    "--no-parsing-spinner",
)

# The targets the project states (README / plan), checked at the end.
TARGET_PLAIN_OVER_CAT = 8.0
TARGET_GOACCESS_OVER_PLAIN = 50.0
TARGET_GZ_OVER_ZCAT = 0.5
TARGET_RSS_BYTES = 2 * GIB
TARGET_RSS_AT_LINES = 10_000_000


# --------------------------------------------------------------------------- helpers


def say(text: str = "") -> None:
    print(text, flush=True)


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def first_line(command: Sequence[str]) -> str:
    """The first line a tool prints for `command` (its version), or why there is none."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def generator_digest() -> str:
    """A short hash of the generator's source: a changed generator invalidates the cache."""
    source = Path(generator.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:10]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def floatseat_executable() -> str:
    beside = Path(sys.executable).with_name("floatseat")
    if beside.exists():
        return str(beside)
    found = shutil.which("floatseat")
    if found is None:
        sys.exit("floatseat is not installed in this Python's environment")
    return found


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return human_bytes(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return "?"


def git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO_DIR), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "--short", "HEAD") or "?"
        dirty = git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.TimeoutExpired):
        return "? (git unavailable)"
    return commit + (" + uncommitted changes in src/" if dirty else "")


def source_digest() -> str:
    """A short hash of floatseat's Python and C sources as they are now, committed or not."""
    package = Path(floatseat.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted([*package.rglob("*.py"), *package.rglob("*.c")]):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_machine(goaccess: str | None, compressor: list[str]) -> None:
    say("== machine")
    say(f"date          {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z}")
    say(f"nproc         {len(os.sched_getaffinity(0))} (os.cpu_count {os.cpu_count()})")
    say(f"cpu           {cpu_model()}")
    say(f"memory        {memory_total()}")
    say(f"kernel        {platform.system()} {platform.release()}")
    say(f"python        {platform.python_version()}")
    say(f"floatseat     {floatseat.__version__}, commit {git_commit()}")
    say(f"src digest    {source_digest()} (sha256 of src/floatseat/**/*.py and *.c)")
    say(f"scan path     {engine_name()}")
    say(f"polars        {metadata.version('polars')}")
    say(f"cat           {first_line(['cat', '--version'])}")
    say(f"gzip (zcat)   {first_line(['gzip', '--version'])}")
    say(f"compressor    {' '.join(compressor)}")
    say(f"goaccess      {first_line([goaccess, '--version']) if goaccess else 'not installed'}")
    say(f"load average  {load_average()} (another user of the CPU skews wall times)")
    say()


# --------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class Calibration:
    """Lines the generator writes: per day with no users, and per user-day on top."""

    fixed_per_day: float
    per_user_day: float

    def users_for(self, lines_per_day: float) -> int:
        return max(1, math.ceil((lines_per_day - self.fixed_per_day) / self.per_user_day))


def calibrate(work: Path, days: int, seed: int) -> Calibration:
    """Two small generator runs (0 and 40 users) give the line count as a function of users."""
    users = 40
    counts = []
    for n in (0, users):
        folder = work / f"calibrate-{n}"
        shutil.rmtree(folder, ignore_errors=True)
        result = generator.generate_logs(
            folder, product="jira", users=n, days=days, nodes=1, seed=seed
        )
        shutil.rmtree(folder, ignore_errors=True)
        counts.append(result.lines)
    calibration = Calibration(counts[0] / days, (counts[1] - counts[0]) / (users * days))
    say(
        f"calibration: {calibration.fixed_per_day:.0f} lines/day without users, "
        f"{calibration.per_user_day:.0f} lines per user-day ({days}-day runs, seed {seed})"
    )
    return calibration


def copy_first_lines(sources: Sequence[Path], dest: Path, limit: int) -> int:
    """Concatenate `sources` into `dest`, stopping after `limit` lines; the lines copied."""
    written = 0
    with dest.open("wb") as out:
        for source in sources:
            with source.open("rb") as stream:
                while chunk := stream.read(CHUNK):
                    count = chunk.count(b"\n")
                    if written + count >= limit:
                        end = -1
                        for _ in range(limit - written):
                            end = chunk.index(b"\n", end + 1)
                        out.write(chunk[: end + 1])
                        return limit
                    out.write(chunk)
                    written += count
    return written


@dataclass(frozen=True, slots=True)
class Input:
    plain: Path
    gz: Path
    lines: int
    plain_bytes: int
    gz_bytes: int
    users: int
    days: int


def ensure_plain(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """The cached plain log of `args.lines` lines, generated when missing or stale."""
    key = f"jira-{args.lines}l-{args.days}d-s{args.seed}-g{generator_digest()}"
    plain = work / f"{key}.log"
    meta_path = work / f"{key}.json"
    meta = read_json(meta_path)
    if meta is not None and plain.exists() and plain.stat().st_size == meta.get("plain_bytes"):
        say(f"input (cached): {plain}")
        return plain, meta

    say(f"generating about {args.lines:,} lines into {plain}")
    # Drop what an older generator wrote for the same parameters: gigabytes nobody will reuse.
    stem = f"jira-{args.lines}l-{args.days}d-s{args.seed}-g"
    for stale in work.glob(stem + "*"):
        if stale.is_file():
            say(f"  removing stale {stale.name}")
            stale.unlink()
    started = time.perf_counter()
    calibration = calibrate(work, args.days, args.seed)
    users = calibration.users_for(args.lines * 1.08 / args.days)
    staging = work / f"generate-{key}"
    for _attempt in range(4):
        shutil.rmtree(staging, ignore_errors=True)
        say(f"  generate_logs(users={users}, days={args.days}, nodes=1, seed={args.seed})")
        result = generator.generate_logs(
            staging, product="jira", users=users, days=args.days, nodes=1, seed=args.seed
        )
        say(f"  wrote {result.lines:,} lines")
        if result.lines >= args.lines:
            break
        users = math.ceil(users * args.lines * 1.08 / max(result.lines, 1))
    else:
        sys.exit(f"the generator wrote only {result.lines:,} lines; try more --days")
    temporary = plain.with_name(plain.name + ".tmp")
    lines = copy_first_lines(result.files, temporary, args.lines)
    temporary.replace(plain)
    if not args.keep:
        shutil.rmtree(staging, ignore_errors=True)
    meta = {
        "lines": lines,
        "plain_bytes": plain.stat().st_size,
        "users": users,
        "days": args.days,
        "seed": args.seed,
        "generated_lines": result.lines,
        "generator": generator_digest(),
    }
    write_json(meta_path, meta)
    say(f"  done in {time.perf_counter() - started:.1f} s")
    return plain, meta


def compressor_command() -> list[str]:
    pigz = shutil.which("pigz")
    return [pigz, "-6", "-c"] if pigz else ["gzip", "-6", "-c"]


def ensure_gz(plain: Path, meta: dict[str, Any], meta_path: Path, timeout: float) -> Path:
    """The cached .gz of `plain`, made with pigz (or gzip) -6 when missing or stale."""
    gz = plain.with_name(plain.name + ".gz")
    if gz.exists() and gz.stat().st_size == meta.get("gz_bytes"):
        say(f"input .gz (cached): {gz}")
        return gz
    command = compressor_command()
    say(f"compressing: {' '.join(command)} {plain.name} > {gz.name}")
    started = time.perf_counter()
    temporary = gz.with_name(gz.name + ".tmp")
    with plain.open("rb") as source, temporary.open("wb") as out:
        subprocess.run(command, stdin=source, stdout=out, timeout=timeout, check=True)
    temporary.replace(gz)
    meta["gz_bytes"] = gz.stat().st_size
    write_json(meta_path, meta)
    say(f"  done in {time.perf_counter() - started:.1f} s")
    return gz


def ensure_input(args: argparse.Namespace, work: Path) -> Input:
    plain, meta = ensure_plain(args, work)
    gz = ensure_gz(plain, meta, plain.with_suffix(".json"), args.timeout)
    return Input(
        plain=plain,
        gz=gz,
        lines=int(meta["lines"]),
        plain_bytes=plain.stat().st_size,
        gz_bytes=gz.stat().st_size,
        users=int(meta["users"]),
        days=int(meta["days"]),
    )


@dataclass(frozen=True, slots=True)
class DailyInput:
    folder: Path
    files: tuple[Path, ...]
    lines: int
    gz_bytes: int
    users: int


def ensure_daily_gz(args: argparse.Namespace, work: Path) -> DailyInput:
    """`args.days_gz` daily .gz files of about `args.day_lines` lines each (cached)."""
    key = f"days-gz-{args.days_gz}d-{args.day_lines}l-s{args.seed}-g{generator_digest()}"
    folder = work / key
    meta_path = work / f"{key}.json"
    meta = read_json(meta_path)
    if meta is None or not folder.is_dir():
        say(f"generating {args.days_gz} daily .gz files of ~{args.day_lines:,} lines into {folder}")
        started = time.perf_counter()
        shutil.rmtree(folder, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
        users = calibrate(work, args.days_gz, args.seed).users_for(args.day_lines)
        say(f"  generate_logs(users={users}, days={args.days_gz}, nodes=1, gzip=True)")
        result = generator.generate_logs(
            folder,
            product="jira",
            users=users,
            days=args.days_gz,
            nodes=1,
            seed=args.seed,
            gzip=True,
        )
        meta = {"lines": result.lines, "users": users, "files": len(result.files)}
        write_json(meta_path, meta)
        say(f"  wrote {result.lines:,} lines in {time.perf_counter() - started:.1f} s")
    else:
        say(f"daily .gz input (cached): {folder}")
    files = tuple(sorted(folder.rglob("*.gz")))
    return DailyInput(
        folder=folder,
        files=files,
        lines=int(meta["lines"]),
        gz_bytes=sum(f.stat().st_size for f in files),
        users=int(meta["users"]),
    )


def warm(paths: Sequence[Path]) -> None:
    """Read each file once so that every measured command finds it in the page cache."""
    started = time.perf_counter()
    total = 0
    for path in paths:
        with path.open("rb", buffering=0) as stream:
            while block := stream.read(CHUNK):
                total += len(block)
    elapsed = time.perf_counter() - started
    say(f"page cache warmed: read {human_bytes(total)} in {elapsed:.1f} s")


def compile_bytecode() -> None:
    """Compile floatseat's modules to bytecode, beside their sources (`__pycache__`).

    An installed floatseat has its bytecode (pip compiles it; an editable install writes it
    on its first run), but not where PYTHONDONTWRITEBYTECODE is set: every run would then
    compile floatseat's sources again (~0.04 s). Python reads bytecode that exists even so.
    (Not PYTHONPYCACHEPREFIX: that moves every package's cache, Polars' too, which is then
    compiled on every run.)
    """
    package = Path(floatseat.__file__).resolve().parent
    done = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        capture_output=True,
        text=True,
        check=False,
    )
    state = "ok" if done.returncode == 0 else f"failed ({done.stderr.strip()[-200:]})"
    say(f"bytecode: floatseat's modules compiled in {package}: {state}")


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_bytes: int
    returncode: int
    timed_out: bool
    stderr: str


@dataclass(slots=True)
class Measurement:
    label: str
    command: list[str]
    lines: int
    bytes_read: int
    runs: list[Run] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.returncode == 0 and not r.timed_out for r in self.runs)

    @property
    def best(self) -> Run:
        good = [r for r in self.runs if r.returncode == 0 and not r.timed_out]
        return min(good or self.runs, key=lambda r: r.seconds)

    @property
    def max_rss_bytes(self) -> int:
        return max(r.max_rss_bytes for r in self.runs)


# A tiny launcher, run as `python -I -S -c LAUNCHER COMMAND...`: it forks and execs COMMAND
# (stdout to /dev/null), reaps it with os.wait4 and prints "seconds utime stime maxrss_kb
# exit_code". Why not wait4 on a child of this script directly: Linux carries a process's
# peak RSS across fork and exec (the old mm's high-water mark goes into the new program's
# ru_maxrss), so every child of this big Python process would report at least this process's
# own peak. Forked from the small launcher instead, a command's ru_maxrss is its own peak plus
# at most the launcher's few MiB (printed as the floor).
LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.execvp(sys.argv[1], sys.argv[1:])
    except BaseException as error:
        os.write(2, f"cannot run {sys.argv[1]}: {error}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
print(seconds, usage.ru_utime, usage.ru_stime, usage.ru_maxrss, code, flush=True)
"""


def run_once(command: Sequence[str], timeout: float) -> Run:
    """Run `command` (stdout to /dev/null) under LAUNCHER and return its own time and rusage.

    The wall time is the launcher's, from its fork to the command's exit. `os.wait4` reaps
    exactly that one child, so its rusage is the command's own (with the descendants it waited
    for, e.g. gzip under the zcat script), not a maximum over every child run so far.
    """
    timed_out = threading.Event()

    def kill_group(pid: int) -> None:
        timed_out.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
        )
        timer = threading.Timer(timeout, kill_group, args=(process.pid,))
        timer.daemon = True
        timer.start()
        try:
            output, _ = process.communicate()
        except BaseException:
            kill_group(process.pid)
            process.wait()
            raise
        finally:
            timer.cancel()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    fields = output.decode("ascii", "replace").split()
    if len(fields) != 5 or timed_out.is_set():
        return Run(0.0, 0.0, 0, process.returncode or -1, timed_out.is_set(), stderr)
    seconds, user, system, max_rss_kb, code = fields
    return Run(
        seconds=float(seconds),
        cpu_seconds=float(user) + float(system),
        max_rss_bytes=int(max_rss_kb) * 1024,  # kilobytes on Linux
        returncode=int(code),
        timed_out=False,
        stderr=stderr,
    )


def measure(measurement: Measurement, repeats: int, timeout: float) -> Measurement:
    say(f"-- {measurement.label}")
    for index in range(repeats):
        run = run_once(measurement.command, timeout)
        measurement.runs.append(run)
        state = "ok" if run.returncode == 0 else f"exit {run.returncode}"
        if run.timed_out:
            state = f"killed after the {timeout:.0f} s timeout"
        say(
            f"   run {index + 1}/{repeats}: {run.seconds:8.2f} s wall, "
            f"{run.cpu_seconds:8.2f} s CPU, {run.max_rss_bytes / MIB:8.1f} MiB peak RSS, "
            f"{state}  (load {load_average()})"
        )
        if run.returncode != 0 or run.timed_out:
            tail = "\n".join(run.stderr.strip().splitlines()[-15:])
            if tail:
                say("   stderr: " + tail.replace("\n", "\n           "))
            break
    return measurement


def check_floatseat_json(path: Path, expected_lines: int) -> str:
    report = read_json(path)
    if report is None:
        return f"no JSON report at {path}"
    lines = report.get("lines")
    verdict = "all lines read" if lines == expected_lines else f"EXPECTED {expected_lines:,} lines"
    return (
        f"peak {report.get('peak')} concurrent users at {report.get('peak_at')}, "
        f"{report.get('users_active')} users active, {report.get('sessions')} sessions, "
        f"{lines:,} lines ({verdict}), {report.get('malformed_lines')} malformed, "
        f"{report.get('requests_counted'):,} requests counted"
    )


def check_goaccess_json(path: Path, expected_lines: int) -> str:
    report = read_json(path)
    general = (report or {}).get("general")
    if not isinstance(general, dict):
        return f"no usable GoAccess JSON at {path}"
    valid = int(general.get("valid_requests", 0))
    return (
        f"GoAccess parsed {valid:,} valid of {int(general.get('total_requests', 0)):,} "
        f"requests, {int(general.get('failed_requests', 0)):,} failed "
        f"({valid / max(expected_lines, 1):.2%} of the {expected_lines:,} lines); "
        f"{general.get('unique_visitors')} unique visitors"
    )


# --------------------------------------------------------------------------- report


def print_table(measurements: Sequence[Measurement]) -> None:
    say("== results (wall time: best run; CPU time: that run's user+sys; peak RSS: max of runs)")
    header = (
        f"{'command':<44} {'runs':>4} {'wall s':>9} {'CPU s':>9} {'peak RSS MiB':>13} "
        f"{'M lines/s':>10} {'MiB/s in':>9}"
    )
    say(header)
    say("-" * len(header))
    for m in measurements:
        if not m.runs:
            continue
        best = m.best
        seconds = max(best.seconds, 1e-9)
        suffix = "" if m.ok else "  FAILED"
        say(
            f"{m.label:<44} {len(m.runs):>4} {best.seconds:>9.2f} {best.cpu_seconds:>9.2f} "
            f"{m.max_rss_bytes / MIB:>13.1f} {m.lines / seconds / 1e6:>10.2f} "
            f"{m.bytes_read / MIB / seconds:>9.0f}{suffix}"
        )
    say()


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def print_targets(results: dict[str, Measurement], lines: int) -> None:
    say("== targets")
    header = f"{'ratio':<44} {'value':>10} {'target':>10}  verdict"
    say(header)
    say("-" * len(header))

    def ratio(label: str, top: str, bottom: str, target: float, at_most: bool) -> None:
        sign = "<=" if at_most else ">="
        a, b = results.get(top), results.get(bottom)
        if a is None or b is None or not a.ok or not b.ok:
            missing = top if a is None or not a.ok else bottom
            say(f"{label:<44} {'n/a':>10} {sign + ' ' + str(target) + 'x':>10}  ({missing} n/a)")
            return
        value = a.best.seconds / b.best.seconds
        passed = value <= target if at_most else value >= target
        target_text = f"{sign} {target:g}x"
        say(f"{label:<44} {value:>9.2f}x {target_text:>10}  {verdict(passed)}")

    ratio("floatseat plain / cat", "floatseat plain", "cat", TARGET_PLAIN_OVER_CAT, True)
    ratio(
        "GoAccess / floatseat plain",
        "goaccess",
        "floatseat plain",
        TARGET_GOACCESS_OVER_PLAIN,
        False,
    )
    ratio("floatseat .gz / zcat", "floatseat .gz", "zcat", TARGET_GZ_OVER_ZCAT, True)
    if "floatseat days-gz" in results:
        ratio(
            "floatseat daily .gz / zcat daily .gz",
            "floatseat days-gz",
            "zcat days-gz",
            TARGET_GZ_OVER_ZCAT,
            True,
        )

    peaks = [results[k] for k in ("floatseat plain", "floatseat .gz") if k in results]
    if peaks and all(m.ok for m in peaks):
        rss = max(m.max_rss_bytes for m in peaks)
        note = "" if lines == TARGET_RSS_AT_LINES else f"  (measured at {lines:,} lines)"
        say(
            f"{'floatseat peak memory (plain, .gz)':<44} {rss / MIB:>6.0f} MiB {'< 2048 MiB':>10}"
            f"  {verdict(rss < TARGET_RSS_BYTES)}{note}"
        )
    daily = results.get("floatseat days-gz")
    if daily is not None and daily.ok:
        say(
            f"{'floatseat peak memory (daily .gz)':<44} {daily.max_rss_bytes / MIB:>6.0f} MiB"
            f" {'(info)':>10}  ({daily.lines:,} lines)"
        )
    say()


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark floatseat analyze against cat, zcat and GoAccess.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=10_000_000, help="lines of the big log")
    parser.add_argument("--days", type=int, default=14, help="days the big log spans")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument(
        "--days-gz", type=int, default=0, help="also analyse N daily .gz files (0: skip)"
    )
    parser.add_argument(
        "--day-lines", type=int, default=1_000_000, help="average lines per daily .gz file"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of the fast commands")
    parser.add_argument(
        "--slow-repeats", type=int, default=1, help="runs of GoAccess and the daily .gz set"
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before a command is killed"
    )
    parser.add_argument(
        "--work", type=Path, default=BENCH_DIR / "out", help="work folder (inputs are cached here)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the reports and the generator's day files (the cached inputs always stay)",
    )
    parser.add_argument(
        "--no-goaccess", action="store_true", help="skip GoAccess even when installed"
    )
    args = parser.parse_args(argv)
    if args.lines < 1 or args.days < 1 or args.repeats < 1 or args.slow_repeats < 1:
        parser.error("--lines, --days, --repeats and --slow-repeats must be 1 or more")
    if args.days_gz < 0 or args.day_lines < 1:
        parser.error("--days-gz must be 0 or more and --day-lines 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    goaccess = None if args.no_goaccess else shutil.which("goaccess")
    print_machine(goaccess, compressor_command())

    say("== input")
    data = ensure_input(args, work)
    say(
        f"plain: {data.plain} — {human_bytes(data.plain_bytes)}, {data.lines:,} lines "
        f"({data.users} users, {data.days} days generated, cut at {data.lines:,} lines)"
    )
    say(
        f"gz:    {data.gz} — {human_bytes(data.gz_bytes)} "
        f"({data.gz_bytes / data.plain_bytes:.1%} of plain)"
    )
    daily = ensure_daily_gz(args, work) if args.days_gz else None
    if daily is not None:
        say(
            f"daily: {len(daily.files)} files in {daily.folder} — {human_bytes(daily.gz_bytes)}"
            f" compressed, {daily.lines:,} lines ({daily.users} users)"
        )
    warm([data.plain, data.gz, *(daily.files if daily else ())])
    compile_bytecode()
    say()

    reports = {
        name: work / f"report-{name}.json" for name in ("plain", "gz", "days-gz", "goaccess")
    }
    for report in reports.values():
        report.unlink(missing_ok=True)
    floatseat_cli = floatseat_executable()
    fast, slow = args.repeats, args.slow_repeats
    plan: list[tuple[str, Measurement, int]] = [
        ("cat", Measurement("cat FILE > /dev/null", ["cat", str(data.plain)], 0, 0), fast),
        ("zcat", Measurement("zcat FILE.gz > /dev/null", ["zcat", str(data.gz)], 0, 0), fast),
        (
            "floatseat plain",
            Measurement(
                "floatseat analyze FILE --json -q",
                [floatseat_cli, "analyze", str(data.plain), "--json", str(reports["plain"]), "-q"],
                0,
                0,
            ),
            fast,
        ),
        (
            "floatseat .gz",
            Measurement(
                "floatseat analyze FILE.gz --json -q",
                [floatseat_cli, "analyze", str(data.gz), "--json", str(reports["gz"]), "-q"],
                0,
                0,
            ),
            fast,
        ),
    ]
    for name, measurement, _ in plan:
        compressed = name in ("zcat", "floatseat .gz")
        measurement.lines = data.lines
        measurement.bytes_read = data.gz_bytes if compressed else data.plain_bytes
    if goaccess:
        command = [goaccess, str(data.plain), *GOACCESS_ARGS, "-o", str(reports["goaccess"])]
        plan.append(
            (
                "goaccess",
                Measurement("goaccess FILE -o report.json", command, data.lines, data.plain_bytes),
                slow,
            )
        )
    if daily is not None:
        files = [str(f) for f in daily.files]
        label = f"{len(files)} daily .gz"
        plan.append(
            (
                "zcat days-gz",
                Measurement(f"zcat {label} > /dev/null", ["zcat", *files], daily.lines, 0),
                slow,
            )
        )
        plan.append(
            (
                "floatseat days-gz",
                Measurement(
                    f"floatseat analyze {label} --json -q",
                    [
                        floatseat_cli,
                        "analyze",
                        str(daily.folder),
                        "--json",
                        str(reports["days-gz"]),
                        "-q",
                    ],
                    daily.lines,
                    0,
                ),
                slow,
            )
        )
        for _, measurement, _ in plan[-2:]:
            measurement.bytes_read = daily.gz_bytes

    say("== measuring")
    floor = run_once(["true"], args.timeout)
    say(
        f"launch floor: `true` shows {floor.max_rss_bytes / MIB:.1f} MiB peak RSS and "
        f"{floor.seconds * 1000:.1f} ms (no command can read below these)"
    )
    say(f"load average before: {load_average()}")
    results: dict[str, Measurement] = {}
    for name, measurement, repeats in plan:
        results[name] = measure(measurement, repeats, args.timeout)
        if name == "floatseat plain":
            say("   " + check_floatseat_json(reports["plain"], data.lines))
        elif name == "floatseat .gz":
            say("   " + check_floatseat_json(reports["gz"], data.lines))
        elif name == "goaccess":
            say("   " + check_goaccess_json(reports["goaccess"], data.lines))
        elif name == "floatseat days-gz" and daily is not None:
            say("   " + check_floatseat_json(reports["days-gz"], daily.lines))
    if not goaccess:
        reason = "--no-goaccess given" if args.no_goaccess else "goaccess is not installed"
        say(f"-- GoAccess skipped: {reason} (Debian: apt-get install -y goaccess)")
    say(f"load average after: {load_average()}")
    say()

    say(
        f"== input: {data.lines:,} lines, {human_bytes(data.plain_bytes)} plain, "
        f"{human_bytes(data.gz_bytes)} gz"
    )
    print_table([m for _, m, _ in plan])
    print_targets(results, data.lines)

    if not args.keep:
        for report in reports.values():
            report.unlink(missing_ok=True)
    return 0 if all(m.ok for m in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
