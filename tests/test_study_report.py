"""The HTML report renders in real headless Chromium, offline, with every panel drawn; PNGs via kaleido."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cdp import Chromium, find_chromium
from study_data import HOUR, to_bars, window

from tapewatch.report import FactorPanel, write_report
from tapewatch.study import StudySettings, run_study

CHROMIUM = find_chromium()

# For every panel div: its plot containers, and per plot area (subplot) the drawn traces — SVG
# trace groups holding at least one path with geometry (a line, a marker or a bar).
PANELS_JS = """(() => {
  const out = {};
  for (const el of document.querySelectorAll('div.plotly-graph-div')) {
    const areas = [...el.querySelectorAll('.cartesianlayer > .subplot')].map(sp => {
      const traces = [...sp.querySelectorAll('.trace')];
      const drawn = traces.filter(t => [...t.querySelectorAll('path')].some(p => (p.getAttribute('d') || '').length > 4));
      return {area: sp.getAttribute('class'), traces: traces.length, drawn: drawn.length};
    });
    out[el.id] = {containers: el.parentElement.querySelectorAll('.plot-container').length, areas: areas};
  }
  out.tableRows = document.querySelectorAll('table.study tbody tr').length;
  out.verdict = [...document.querySelectorAll('ul.verdict li')].map(li => li.textContent);
  return out;
})()"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):
    """A study of a small sweep on two real weeks of 1m bars, with three factor panels."""
    bars = to_bars(window("2022-01-10 00:00", "2022-01-24 00:00"))
    change = {w: np.r_[np.full(w, np.nan), (bars.close[w:] / bars.close[:-w] - 1) * 100] for w in (30, 60)}
    rng = np.random.default_rng(0)
    flow = np.cumsum(rng.normal(size=len(bars)))

    def event_fn(p: dict) -> dict:
        return {"distribution": change[p["w"]] > p["x"], "accumulation": change[p["w"]] < -p["x"]}

    grid = [{"w": w, "x": x} for w in (30, 60) for x in (0.5, 1.0)]
    settings = StudySettings(reps=100)
    study = run_study(bars, event_fn, settings, HOUR, grid, seed=1)
    factors = [
        FactorPanel("price change over 30 min", {"change 30m": change[30]}, "%", (0.5, -0.5)),
        FactorPanel("a cumulative flow", {"flow": flow}, "units"),
        FactorPanel("book ratio", {"ratio": np.full(len(bars), np.nan)}, note="no book_depth records"),
    ]
    out = tmp_path_factory.mktemp("report")
    res = write_report(study, out / "report.html", factors, title="test report", png_dir=out / "png")
    return study, res


def test_report_is_self_contained(report):
    _, res = report
    text = res.html.read_text(encoding="utf-8")
    assert text.count("<script") == 1 + len(res.panels)  # plotly.js inline + one call per figure
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", text)  # nothing loaded from elsewhere
    assert res.panels == ("panel-market", "panel-hits", "panel-returns", "panel-sweep")  # a sweep ran: its chart too


def test_report_renders_every_panel_in_headless_chromium(report):
    assert CHROMIUM is not None, "no Chromium on this machine: scripts/test.sh installs it (apt-get install chromium)"
    study, res = report
    with Chromium(CHROMIUM) as browser:
        page = browser.open(res.html.resolve().as_uri())
        browser.wait_for(page, "document.readyState === 'complete' && "
                               "document.querySelectorAll('.plot-container .main-svg').length >= 3")
        browser.wait_for(page, "document.querySelectorAll('.cartesianlayer > .subplot').length >= "
                               f"{sum(res.subplots.values())}")
        seen = browser.evaluate(page, PANELS_JS)
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        requests = [e["params"]["request"]["url"] for e in browser.events
                    if e.get("method") == "Network.requestWillBeSent"]
    assert not errors, errors
    assert requests == [res.html.resolve().as_uri()]  # offline: nothing but the file itself
    for panel in res.panels:
        assert seen[panel]["containers"] == 1, panel
        areas = seen[panel]["areas"]
        assert len(areas) == res.subplots[panel], (panel, areas)
        assert all(a["drawn"] >= 1 for a in areas), (panel, areas)  # every plot area has a drawn trace
    market = seen["panel-market"]["areas"]
    assert market[0]["drawn"] == 3  # close line, distribution markers, accumulation markers
    rows = sum(len(s.outcomes) for p in study.result.periods for s in p.sides)
    assert seen["tableRows"] >= rows
    assert seen["verdict"] == list(study.result.verdict)


def test_png_figures_or_a_reason(report):
    _, res = report
    if res.png_error:
        pytest.skip(res.png_error)
    assert [p.name for p in res.pngs] == ["panel-market.png", "panel-hits.png", "panel-returns.png",
                                       "panel-sweep.png"]
    for p in res.pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
