"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which ``.ci/run`` installs) renders the demo's report at 1400 px and
the test checks what a reader would see: every chart and table is on the page and has a
size, no chart label is cut off or overlaps another, nothing overflows its card, and the
page needs no horizontal scrolling.

Set ``PROGRAMVIEW_REPORT_SCREENSHOT=docs/report-html.png`` to also save the screenshot of
the top of the page (programs and their explained health) shown in docs/report.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from programview.report_forecast import CHARTED_RELEASES

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH = 1400
#: Without these, Chromium on a machine without network waits on connections it tries.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The demo's report (two simulated weeks: health history, sprints, releases)."""
    from programview.demo import run_demo
    from programview.report import build_report
    from programview.warehouse import db

    result = run_demo(
        tmp_path_factory.mktemp("demo"),
        size="small",
        seed=12,
        weeks=2,
        echo=lambda _line: None,
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    engine = db.create_engine(f"sqlite:///{result.database}")
    try:
        report = build_report(engine)
    finally:
        engine.dispose()
    return result.html_report, report


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, DRIVER) if not Path(p).exists()]
    if missing:
        message = (
            f"{', '.join(missing)} not found: apt-get install -y chromium chromium-driver "
            "(.ci/run installs them)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={WIDTH},1000")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


#: Runs in the page: what was rendered, measured by the browser's layout.
MEASURE = """
const box = e => { const r = e.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
          width: r.width, height: r.height}; };
const charts = [...document.querySelectorAll('svg[role=img]')].map(svg => {
  const frame = box(svg);
  const labels = [...svg.querySelectorAll(':scope > text')].map(t => ({
    text: t.textContent, box: box(t)}));
  return {label: svg.getAttribute('aria-label'), box: frame, labels: labels};
});
const tables = [...document.querySelectorAll('table')].map(t => ({
  id: t.id, rows: t.rows.length, box: box(t)}));
const boxes = [...document.querySelectorAll('.card, .chart, .panel')].map(c => ({
  title: (c.querySelector('h3') || c).textContent.slice(0, 60),
  scroll: c.scrollWidth, client: c.clientWidth}));
return {charts: charts, tables: tables, boxes: boxes,
        page: document.documentElement.scrollWidth,
        explained: [...document.querySelectorAll('.explained')].map(e => e.id)};
"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"] - 0.5
        and b["left"] < a["right"] - 0.5
        and (a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5)
    )


def test_every_chart_and_table_renders_and_no_label_is_cut(
    report_html: tuple[Path, dict[str, Any]], browser: Any
) -> None:
    path, report = report_html
    browser.get(path.as_uri())
    seen = browser.execute_script(MEASURE)

    # Every chart the report data calls for, with a real size.
    trends = report["trends"]
    expected = (
        {f"health score of {s['program_key']} by day" for s in trends["health"] if s["points"]}
        | {
            f"committed and completed points per sprint of {s['project_key']}"
            for s in trends["velocity"]
            if s["sprints"]
        }
        | {f"burn-up of Burn-up - {s['project_key']} {s['release_name']}" for s in trends["burnup"]}
        # the delivery forecasts: a burn-up with the fan for the first releases (at-risk
        # first), and a cumulative flow chart per project
        | {
            "burn-up and forecast of "
            + f"{r['project_key']} {r.get('release_name') or ''}".rstrip()
            for r in report["forecasts"][:CHARTED_RELEASES]
        }
        | {f"cumulative flow of {e['project_key']}" for e in report["flow"]}
    )
    assert trends["health"] and trends["velocity"] and trends["burnup"]
    assert report["forecasts"] and report["flow"]
    charts = {c["label"]: c for c in seen["charts"]}
    assert set(charts) == expected
    for chart in charts.values():
        assert chart["box"]["width"] > 250 and chart["box"]["height"] > 120, chart["label"]

    # Every table: the explained health of each program, projects (flow, plan, health),
    # alerts or blockers when there are any, the cards' component tables.
    tables = {t["id"]: t for t in seen["tables"] if t["id"]}
    assert {"projects-flow", "projects-plan", "projects-health"} <= set(tables)
    if report["alerts"]:
        assert tables["alerts"]["rows"] == len(report["alerts"]) + 1
    quiet = [b for b in report["blockers"] if not b["alerted"]]
    if quiet:
        assert tables["blockers"]["rows"] == len(quiet) + 1
    for table_id in ("projects-flow", "projects-plan", "projects-health"):
        assert tables[table_id]["rows"] == len(report["projects"]) + 1
    # the people most stretched and the benefits register of each program
    assert report["people"] and report["benefits"]
    for entry in report["people"]:
        assert tables[f"people-{entry['program_key']}"]["rows"] == len(entry["people"]) + 1
    for program in report["benefits"]:
        assert tables[f"benefits-{program['program_key']}"]["rows"] == len(program["items"]) + 1
    assert seen["explained"] == [f"explained-{p['program_key']}" for p in report["programs"]]
    assert all(t["box"]["height"] > 0 for t in seen["tables"])

    problems = []
    for chart in charts.values():
        frame = chart["box"]
        labels = [lab for lab in chart["labels"] if lab["text"]]
        assert labels, f"{chart['label']}: no axis labels"
        for lab in labels:
            b = lab["box"]
            inside = (
                b["left"] >= frame["left"] - 0.5
                and b["right"] <= frame["right"] + 0.5
                and b["top"] >= frame["top"] - 0.5
                and b["bottom"] <= frame["bottom"] + 0.5
            )
            if not inside:
                problems.append(f"{chart['label']}: label {lab['text']!r} is cut off")
            if lab["text"].endswith(("…", "~")):
                problems.append(f"{chart['label']}: label {lab['text']!r} is clipped")
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                if overlap(a["box"], b["box"]):
                    problems.append(
                        f"{chart['label']}: labels {a['text']!r} and {b['text']!r} overlap"
                    )
    for card in seen["boxes"]:
        if card["scroll"] > card["client"] + 1:
            problems.append(f"{card['title']!r} overflows its box ({card['scroll']}px)")
    if seen["page"] > WIDTH:
        problems.append(f"the page is {seen['page']}px wide at a {WIDTH}px window")
    assert not problems, "\n".join(problems)

    target = os.environ.get("PROGRAMVIEW_REPORT_SCREENSHOT")
    if target:
        first = browser.execute_script(
            "const e = document.querySelectorAll('.explained'); "
            "return e.length ? e[0].getBoundingClientRect().bottom + window.scrollY : 1200;"
        )
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": int(first) + 24, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.save_screenshot(target)
