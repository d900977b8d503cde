"""The HTML report: self-contained, escaped, and its charts really draw in a browser."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import assert_page_runs_only_its_own_scripts

from floatseat.analysis.html import (
    ECHARTS_VERSION,
    format_duration,
    format_money,
    format_percent,
    render_html,
    required_seats_text,
)
from floatseat.analysis.report import (
    AnalysisReport,
    DailyUsage,
    FileSummary,
    TierAdvice,
    UserActivity,
)

ASSETS = resources.files("floatseat") / "analysis" / "assets"
NASTY = "</script><b>mallory"
JOZEF = "józef.wiśniewski"
CHART_IDS = (
    "chart-concurrency",
    "chart-daily",
    "chart-heatmap",
    "chart-top-users",
    "chart-timeouts",
)


# -- reports built by hand ---------------------------------------------------------------------


def realistic_report() -> AnalysisReport:
    """Five working days of a ~1,200-user Jira, Monday 06:00 to Friday 20:00, Berlin time."""
    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 3, 4, 6, 0, tzinfo=tz)
    rng = random.Random(7)
    minutes = 4 * 1440 + 14 * 60
    timeline: list[int] = []
    for i in range(minutes):
        at = start + timedelta(minutes=i)
        hour = at.hour + at.minute / 60
        if 7 <= hour < 19:
            workday = math.sin(math.pi * (hour - 7) / 12) ** 0.8
            lunch = 0.82 if 12 <= hour < 13 else 1.0
            level = 170 * workday * lunch * (1.05 if at.weekday() == 1 else 1.0)
            timeline.append(max(1, round(level + rng.gauss(0, 6))))
        else:
            timeline.append(rng.choice((1, 1, 2, 3)))  # the bots work at night
    peak = max(timeline)
    peak_index = timeline.index(peak)
    peak_at = start + timedelta(minutes=peak_index, seconds=17)

    by_day: dict[date, int] = {}
    hourly: dict[tuple[int, int], int] = {}
    for i, value in enumerate(timeline):
        at = start + timedelta(minutes=i)
        by_day[at.date()] = max(by_day.get(at.date(), 0), value)
        key = (at.weekday(), at.hour)
        hourly[key] = max(hourly.get(key, 0), value)
    daily = [
        DailyUsage(date=day, active_users=round(day_peak * 2.4) + 11, peak=day_peak)
        for day, day_peak in sorted(by_day.items())
    ]
    heatmap = [
        [float(hourly.get((weekday, hour), 0)) for hour in range(24)] for weekday in range(7)
    ]

    names = [
        "svc-jira-automation",
        "anna.kowalska",
        JOZEF,
        NASTY,
        "b.schmidt",
        "chen.wei",
        "o'brien",
        "maria.garcia",
        "d.mueller",
        "l.rossi",
        "ext-contractor-17",
        "p.novak",
    ]
    top_users = [
        UserActivity(
            username=name,
            active_hours=118.5 if index == 0 else round(46.0 - index * 2.7, 1),
            requests=48_210 if index == 0 else 2_900 - index * 170,
            days_active=5 if index < 9 else 3,
            service_like=index == 0,
        )
        for index, name in enumerate(names)
    ]
    tier = TierAdvice(
        peak=peak,
        headroom=0.1,
        fixed_seats=5,
        required_seats=math.ceil(peak * 1.1) + 5,
        recommended_tier=250,
        largest_tier=10_000,
        current_tier=500,
        yearly_saving=14_350.0,
        currency="EUR",
    )
    return AnalysisReport(
        idle_timeout_s=1800,
        tz="Europe/Berlin",
        lines=1_482_907,
        malformed_lines=7,
        requests_counted=1_203_554,
        users_active=884,
        sessions=9_812,
        peak=peak,
        peak_at=peak_at,
        first_request_at=start + timedelta(seconds=4),
        last_request_at=start + timedelta(minutes=minutes - 1, seconds=52),
        daily=daily,
        timeline_start=start,
        timeline=timeline,
        peaks_by_timeout={300: peak - 41, 900: peak - 17, 1800: peak, 3600: peak + 22},
        heatmap=heatmap,
        top_users=top_users,
        service_accounts=["svc-jira-automation", "integration-backup"],
        tier=tier,
        registered_users=1_204,
        files=[
            FileSummary("logs/node1/access_log.2024-03-04", "jira-access", 781_220, 3),
            FileSummary("logs/node2/access_log.2024-03-04", "jira-access", 701_687, 4),
            FileSummary("logs/notes.txt", None, 12, 0),
        ],
        malformed_examples=[f"logs/node1/access_log.2024-03-04:{n}" for n in (5, 77, 912)]
        + [f"logs/node2/access_log.2024-03-04:{n}" for n in (3, 44, 45, 46)],
        warnings=[
            "logs/notes.txt: format not detected, skipped",
            "clock skew of 41 s between node1 and node2 <script>alert(1)</script>",
        ],
    )


def empty_report() -> AnalysisReport:
    return AnalysisReport(
        idle_timeout_s=1800,
        tz="UTC",
        lines=0,
        malformed_lines=0,
        requests_counted=0,
        users_active=0,
        sessions=0,
        peak=0,
        peak_at=None,
        first_request_at=None,
        last_request_at=None,
        daily=[],
        timeline_start=None,
        timeline=[],
        peaks_by_timeout={1800: 0},
        heatmap=[],
        top_users=[],
        service_accounts=[],
        tier=TierAdvice(
            peak=0,
            headroom=0.1,
            fixed_seats=0,
            required_seats=0,
            recommended_tier=10,
            largest_tier=10_000,
        ),
    )


@pytest.fixture(scope="module")
def realistic() -> AnalysisReport:
    return realistic_report()


@pytest.fixture(scope="module")
def realistic_html(realistic: AnalysisReport) -> str:
    return render_html(realistic)


@pytest.fixture(scope="module")
def empty_html() -> str:
    return render_html(empty_report())


def embedded_data(html: str) -> Any:
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL
    )
    assert match is not None
    return json.loads(match.group(1))


# -- the page as text ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["realistic_html", "empty_html"])
def test_page_loads_nothing_from_outside(which: str, request: pytest.FixtureRequest) -> None:
    html: str = request.getfixturevalue(which)
    assert not re.search(
        r"""\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I
    )
    assert "<link" not in html.lower()
    assert "@import" not in html
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", html, re.I)
    assert "<iframe" not in html.lower()
    # Outside ECharts (whose licence comment names apache.org) the page holds no URL at all.
    echarts_start = html.index("<script>")
    assert not re.search(r"https?://", html[:echarts_start])


def test_vendored_echarts_fetches_nothing() -> None:
    """The URLs in echarts.min.js are names (SVG namespaces) and licence links, never loaded."""
    text = (ASSETS / "echarts.min.js").read_text(encoding="utf-8")
    assert set(re.findall(r"https?://[^\s\"'()\\]+", text)) <= {
        "http://www.apache.org/licenses/LICENSE-2.0",
        "https://github.com/ecomfe/zrender/blob/master/LICENSE",
        "http://www.w3.org/1999/xlink",
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/2000/xmlns/",
        "http://www.w3.org/XML/1998/namespace",
    }
    assert "</script" not in text.lower() and "<!--" not in text
    for name in ("ECHARTS-LICENSE.txt", "ECHARTS-NOTICE.txt", "README.md"):
        assert (ASSETS / name).is_file()


@pytest.mark.parametrize("which", ["realistic_html", "empty_html"])
def test_only_the_pages_own_scripts_may_run(which: str, request: pytest.FixtureRequest) -> None:
    html: str = request.getfixturevalue(which)
    assert_page_runs_only_its_own_scripts(html)


def test_usernames_are_escaped(realistic_html: str) -> None:
    html = realistic_html
    assert NASTY not in html
    assert "<b>mallory" not in html
    assert "&lt;/script&gt;&lt;b&gt;mallory" in html  # the top users table
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the warnings table
    assert JOZEF in html  # UTF-8 as it is, not mangled
    assert "o&#39;brien" in html
    names = [user["name"] for user in embedded_data(html)["topUsers"]]
    assert NASTY in names and JOZEF in names and "o'brien" in names


def test_headline_figures(realistic: AnalysisReport, realistic_html: str) -> None:
    html = realistic_html
    assert f'<div class="big" id="peak-value">{realistic.peak:,}</div>' in html
    assert realistic.peak_at is not None
    assert realistic.peak_at.strftime("%Y-%m-%d %H:%M:%S") in html
    assert "30 min" in html
    assert '250 <span class="unit">users</span>' in html
    assert "14,350 EUR" in html
    assert "1,482,907" in html and "1,203,554" in html and "9,812" in html
    assert "skipped: format not detected" in html
    assert "logs/node1/access_log.2024-03-04:5" in html
    assert "logs/node2/access_log.2024-03-04:46" not in html  # only the first few examples
    assert "… and 2 more" in html
    assert f"{realistic.peak / 1204:.1%}".replace("%", " %") in html
    # The daily table, readable without JavaScript.
    for day in realistic.daily:
        assert (
            f'<td>{format_weekday(day.date)}</td><td class="num">{day.active_users:,}</td>' in html
        )


def format_weekday(day: date) -> str:
    return day.strftime("%a ") + day.isoformat()


def test_chart_data_follows_the_report(realistic: AnalysisReport, realistic_html: str) -> None:
    data = embedded_data(realistic_html)
    assert data["timeline"]["values"] == realistic.timeline
    assert data["peak"] == realistic.peak
    start = data["timeline"]["start"]
    # Wall-clock milliseconds: 06:00 Berlin shows as 06:00 whatever the browser's zone.
    assert datetime.fromtimestamp(start / 1000, ZoneInfo("UTC")).strftime("%H:%M") == "06:00"
    minute = (data["peakMinute"] - start) // 60_000
    assert realistic.timeline[minute] == realistic.peak
    assert len(data["heatmap"]) == 7 * 24
    assert [t["seconds"] for t in data["timeouts"]] == [300, 900, 1800, 3600]


def test_empty_report(empty_html: str) -> None:
    assert "no counted requests" in empty_html
    assert '<div class="big" id="peak-value">0</div>' in empty_html
    data = embedded_data(empty_html)
    assert data["empty"] is True and data["timeline"] == {"start": None, "values": []}


def test_above_the_largest_tier(realistic: AnalysisReport) -> None:
    tier = TierAdvice(
        peak=12_000, headroom=0.1, fixed_seats=0, required_seats=13_200,
        recommended_tier=None, largest_tier=10_000,
    )  # fmt: skip
    html = render_html(replace(realistic, tier=tier, registered_users=None))
    assert "above the largest tier" in html
    assert "The largest tier holds 10,000 users" in html
    assert "registered users" not in html


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(45, "45 s"), (90, "90 s"), (300, "5 min"), (3600, "1 h"), (5400, "1 h 30 min")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


def test_small_formats() -> None:
    assert format_percent(0.1) == "10 %"
    assert format_percent(0.125) == "12.5 %"
    assert format_money(14350.0, "EUR") == "14,350 EUR"
    assert format_money(99.5) == "99.50"
    assert required_seats_text(187, 0.1, 5) == "⌈187 × 1.1⌉ + 5"
    assert required_seats_text(187, 0.0, 0) == "⌈187 × 1⌉"


# -- the page in a browser -----------------------------------------------------------------------

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# For each chart: the size of its drawing, how many distinct colours it holds, and the share of
# its pixels that are not background (white or transparent). ECharts may paint a chart on several
# stacked canvases (layers); they are flattened first, in the order they stack.
CANVAS_STATS = """
(ids) => ids.map((id) => {
  const layers = [...document.querySelectorAll('#' + id + ' canvas')];
  if (!layers.length) return { id, layers: 0, width: 0, height: 0, colours: 0, inked: 0 };
  const { width, height } = layers[0];
  const flat = document.createElement('canvas');
  flat.width = width;
  flat.height = height;
  const context = flat.getContext('2d', { willReadFrequently: true });
  for (const layer of layers) context.drawImage(layer, 0, 0, width, height);
  const pixels = context.getImageData(0, 0, width, height).data;
  const colours = new Set();
  let inked = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    colours.add(((pixels[i] << 24) | (pixels[i + 1] << 16) | (pixels[i + 2] << 8)) ^ pixels[i + 3]);
    if (pixels[i + 3] > 16 && Math.min(pixels[i], pixels[i + 1], pixels[i + 2]) < 240) inked++;
  }
  return { id, layers: layers.length, width, height, colours: colours.size,
           inked: inked / (width * height) };
})
"""


# Shows a chart's tooltip, at its middle (axis tooltips) or for its second data item; returns
# the tooltip's text.
SHOW_TIP = """
(id) => {
  const el = document.getElementById(id);
  const chart = echarts.getInstanceByDom(el);
  const axis = chart.getOption().tooltip[0].trigger === 'axis';
  chart.dispatchAction(axis
    ? { type: 'showTip', x: el.clientWidth / 2, y: el.clientHeight / 2 }
    : { type: 'showTip', seriesIndex: 0, dataIndex: 1 });
  const drawing = el.querySelector('canvas').parentElement;
  const tips = [...el.children].filter((d) => d !== drawing && d.textContent.trim());
  return tips.length ? tips[tips.length - 1].textContent : '';
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from conftest import system_program
    from playwright.sync_api import sync_playwright

    path = system_program("chromium", "headless browser for the HTML report test")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class OpenPage:
    """A report opened from a file, with everything the browser said and fetched."""

    def __init__(self, browser: Any, html: str, tmp_path: Path, timezone: str = "UTC") -> None:
        report = tmp_path / "report.html"
        report.write_text(html, encoding="utf-8")
        self.page = browser.new_page(viewport={"width": 1280, "height": 900}, timezone_id=timezone)
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console",
            lambda m: self.console_errors.append(m.text) if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(report.as_uri())
        self.page.wait_for_function(
            "document.body.dataset.chartsRendered !== undefined", timeout=10_000
        )

    def assert_clean(self) -> None:
        assert self.page_errors == []
        assert self.console_errors == []
        outside = [u for u in self.requests if not u.startswith(("file:", "data:", "blob:"))]
        assert outside == []


@pytest.mark.browser
def test_charts_draw_in_a_browser(
    browser: Any, realistic: AnalysisReport, realistic_html: str, tmp_path: Path
) -> None:
    opened = OpenPage(browser, realistic_html, tmp_path, timezone="America/New_York")
    page = opened.page
    try:
        assert page.evaluate("document.body.dataset.chartsRendered") == "5"
        assert page.evaluate("echarts.version") == ECHARTS_VERSION
        for stats in page.evaluate(CANVAS_STATS, list(CHART_IDS)):
            assert stats["width"] > 100 and stats["height"] > 100, stats
            assert stats["colours"] > 8, stats
            assert stats["inked"] > 0.02, stats
        # The area under the concurrency line fills a good part of the plot.
        concurrency = page.evaluate(CANVAS_STATS, ["chart-concurrency"])[0]
        assert concurrency["inked"] > 0.15, concurrency

        # A tooltip shows a hostile username as text, not as markup.
        names = [u.username for u in realistic.top_users][::-1]
        tooltip = page.evaluate(
            """(index) => {
              const el = document.getElementById('chart-top-users');
              const chart = echarts.getInstanceByDom(el);
              chart.dispatchAction({ type: 'showTip', seriesIndex: 0, dataIndex: index });
              const tips = [...el.querySelectorAll('div')].filter(
                (d) => d.textContent.includes('mallory'));
              return tips.length ? tips[tips.length - 1].textContent : null;
            }""",
            names.index(NASTY),
        )
        assert tooltip is not None and NASTY in tooltip, tooltip  # as text, not as markup

        # Every chart's tooltip formatter works.
        tips = {chart_id: page.evaluate(SHOW_TIP, chart_id) for chart_id in CHART_IDS}
        assert "concurrent users" in tips["chart-concurrency"], tips
        assert "peak concurrent" in tips["chart-daily"], tips
        assert "mean hourly peak" in tips["chart-heatmap"], tips
        assert "active hours" in tips["chart-top-users"], tips
        assert "idle timeout 15 min" in tips["chart-timeouts"], tips

        # The browser runs in New York, yet times show in Berlin, the report's zone: the minute
        # the tooltip names holds the value it shows.
        shown = re.search(
            r"(\d{4}-\d\d-\d\d \d\d:\d\d) \(Europe/Berlin\)([\d,]+) concurrent users",
            tips["chart-concurrency"],
        )
        assert shown is not None, tips["chart-concurrency"]
        assert realistic.timeline_start is not None
        at = datetime.strptime(shown[1], "%Y-%m-%d %H:%M")
        minute = (at - realistic.timeline_start.replace(tzinfo=None)) // timedelta(minutes=1)
        assert realistic.timeline[minute] == int(shown[2].replace(",", ""))
        opened.assert_clean()
    finally:
        page.close()


@pytest.mark.browser
def test_empty_report_in_a_browser(browser: Any, empty_html: str, tmp_path: Path) -> None:
    opened = OpenPage(browser, empty_html, tmp_path)
    try:
        assert opened.page.evaluate("document.body.dataset.chartsRendered") == "5"
        assert opened.page.is_visible("#no-requests")
        opened.assert_clean()
    finally:
        opened.page.close()


@pytest.mark.browser
def test_the_cli_report_of_real_logs_draws_in_a_browser(
    browser: Any, data_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from floatseat.cli import app

    target = tmp_path / "cli-report.html"
    result = CliRunner().invoke(
        app, ["analyze", str(data_dir / "jira-real"), "--html", str(target), "-q"]
    )
    assert result.exit_code == 0, result.stderr
    opened = OpenPage(browser, target.read_text(encoding="utf-8"), tmp_path)
    try:
        assert opened.page.evaluate("document.body.dataset.chartsRendered") == "5"
        for stats in opened.page.evaluate(CANVAS_STATS, list(CHART_IDS)):
            assert stats["inked"] > 0.01, stats
        opened.assert_clean()
    finally:
        opened.page.close()
