"""The what-if replay's HTML page: self-contained, escaped, and its charts draw in a browser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_page_runs_only_its_own_scripts
from test_html_report import CANVAS_STATS, OpenPage, browser, embedded_data

from floatseat.analysis.analyze import ReportOptions
from floatseat.analysis.pipeline import AnalysisRequest, read_requests
from floatseat.analysis.simulate import (
    SimulationOptions,
    SimulationReport,
    prepare_input,
    simulate,
)
from floatseat.analysis.simulate_html import render_simulation_html
from floatseat.domain.activity import CountingRules
from floatseat.domain.policy import PolicySettings

__all__ = ["browser"]  # the fixture, shared with the analyzer's page tests

JIRA_REAL = Path(__file__).parent / "data" / "jira-real"
NASTY = "</script><b>mallory"


def report_of(
    path: Path, seats: list[int], *, sweep: bool, pins: tuple[str, ...] = ()
) -> SimulationReport:
    request = AnalysisRequest(arguments=(str(path),), rules=CountingRules(), report=ReportOptions())
    data = prepare_input(read_requests(request), 1800)
    options = SimulationOptions(settings=PolicySettings(reserve=0), pins=pins, tz="Europe/Berlin")
    return simulate(data, seats, options, sweep=sweep)


@pytest.fixture(scope="module")
def single() -> SimulationReport:
    return report_of(JIRA_REAL, [3], sweep=False, pins=(NASTY,))


@pytest.fixture(scope="module")
def sweep() -> SimulationReport:
    return report_of(JIRA_REAL, list(range(1, 8)), sweep=True)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> SimulationReport:
    log = tmp_path_factory.mktemp("empty") / "access_log.2026-03-02"
    log.write_text(
        '10.0.0.1 1x1x1 - [02/Mar/2026:10:00:00 +0000] "GET /status HTTP/1.1" 200 5 4 "-" '
        '"curl" "-"\n',
        encoding="utf-8",
    )
    return report_of(log, [2], sweep=False)


@pytest.fixture(scope="module")
def pages(single: SimulationReport, sweep: SimulationReport, empty: SimulationReport) -> Any:
    return {
        "single": render_simulation_html(single),
        "sweep": render_simulation_html(sweep),
        "empty": render_simulation_html(empty),
    }


# -- the page as text ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["single", "sweep", "empty"])
def test_the_page_loads_nothing_from_outside(which: str, pages: dict[str, str]) -> None:
    html = pages[which]
    assert not re.search(
        r"""\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I
    )
    assert "<link" not in html.lower() and "@import" not in html
    assert not re.search(r"https?://", html[: html.index("<script>")])


@pytest.mark.parametrize("which", ["single", "sweep", "empty"])
def test_only_the_pages_own_scripts_may_run(which: str, pages: dict[str, str]) -> None:
    html = pages[which]
    assert_page_runs_only_its_own_scripts(html)


def test_a_pinned_username_is_shown_as_text(pages: dict[str, str]) -> None:
    html = pages["single"]
    assert NASTY not in html and "<b>mallory" not in html
    assert "&lt;/script&gt;&lt;b&gt;mallory" in html


def test_the_single_replay_page_carries_its_figures(
    single: SimulationReport, pages: dict[str, str]
) -> None:
    run = single.runs[0]
    html = pages["single"]
    assert f'<div class="big" id="waits-value">{run.waits:,}</div>' in html
    data = embedded_data(html)
    assert data["sweep"] is False and data["seats"] == 3
    assert max(data["timeline"]["held"]) == run.max_seats_held == 3
    assert max(data["timeline"]["queue"]) >= 1
    assert len(data["timeline"]["held"]) == len(data["timeline"]["queue"])
    assert sum(data["daily"]["waits"]) == run.waits
    assert data["daily"]["dates"][0] == "2015-11-12"


def test_the_sweep_page_carries_every_count_and_the_recommendation(
    sweep: SimulationReport, pages: dict[str, str]
) -> None:
    html = pages["sweep"]
    data = embedded_data(html)
    assert data["runs"]["seats"] == [1, 2, 3, 4, 5, 6, 7]
    assert data["runs"]["waits"] == [r.waits for r in sweep.runs]
    assert data["runs"]["p95"] == [r.wait_seconds_p95 for r in sweep.runs]
    assert data["recommended"] == sweep.recommended_seats == 5
    assert '<div class="big" id="recommended-seats">5 <span class="unit">seats</span>' in html
    assert html.count('<tr class="chosen">') == 1


def test_an_empty_replay_says_so(pages: dict[str, str]) -> None:
    html = pages["empty"]
    assert 'id="no-requests"' in html
    data = embedded_data(html)
    assert data["empty"] is True and data["timeline"]["held"] == []


# -- the page in a browser -----------------------------------------------------------------------


def tooltip_of(page: Any, chart_id: str) -> str:
    text: str = page.evaluate(
        """(id) => {
          const el = document.getElementById(id);
          const chart = echarts.getInstanceByDom(el);
          chart.dispatchAction({ type: 'showTip', x: el.clientWidth / 2, y: el.clientHeight / 2 });
          const drawing = el.querySelector('canvas').parentElement;
          const tips = [...el.children].filter((d) => d !== drawing && d.textContent.trim());
          return tips.length ? tips[tips.length - 1].textContent : '';
        }""",
        chart_id,
    )
    return text


@pytest.mark.browser
def test_the_single_replay_charts_draw_in_a_browser(
    browser: Any, pages: dict[str, str], tmp_path: Path
) -> None:
    opened = OpenPage(browser, pages["single"], tmp_path, timezone="America/New_York")
    page = opened.page
    try:
        assert page.evaluate("document.body.dataset.chartsRendered") == "2"
        for stats in page.evaluate(CANVAS_STATS, ["chart-timeline", "chart-daily"]):
            assert stats["width"] > 100 and stats["height"] > 100, stats
            assert stats["colours"] > 8, stats
            assert stats["inked"] > 0.01, stats
        assert "seats held" in tooltip_of(page, "chart-timeline")
        assert "(Europe/Berlin)" in tooltip_of(page, "chart-timeline")
        assert "waits" in tooltip_of(page, "chart-daily")
        opened.assert_clean()
    finally:
        page.close()


@pytest.mark.browser
def test_the_sweep_chart_draws_in_a_browser(
    browser: Any, pages: dict[str, str], tmp_path: Path
) -> None:
    opened = OpenPage(browser, pages["sweep"], tmp_path)
    page = opened.page
    try:
        assert page.evaluate("document.body.dataset.chartsRendered") == "1"
        stats = page.evaluate(CANVAS_STATS, ["chart-sweep"])[0]
        assert stats["colours"] > 8 and stats["inked"] > 0.02, stats
        tip = tooltip_of(page, "chart-sweep")
        assert "seats" in tip and "p95 wait" in tip, tip
        opened.assert_clean()
    finally:
        page.close()


@pytest.mark.browser
def test_the_empty_replay_draws_in_a_browser(
    browser: Any, pages: dict[str, str], tmp_path: Path
) -> None:
    opened = OpenPage(browser, pages["empty"], tmp_path)
    try:
        assert opened.page.evaluate("document.body.dataset.chartsRendered") == "2"
        assert opened.page.is_visible("#no-requests")
        opened.assert_clean()
    finally:
        opened.page.close()


@pytest.mark.browser
def test_the_cli_report_of_a_sweep_draws_in_a_browser(browser: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from floatseat.cli import app

    target = tmp_path / "sweep.html"
    result = CliRunner().invoke(
        app, ["simulate", str(JIRA_REAL), "--sweep-seats", "1:8", "--html", str(target), "-q"]
    )
    assert result.exit_code == 0, result.stderr
    opened = OpenPage(browser, target.read_text(encoding="utf-8"), tmp_path)
    try:
        assert opened.page.evaluate("document.body.dataset.chartsRendered") == "1"
        opened.assert_clean()
    finally:
        opened.page.close()
