"""The sweep in the dashboard: `tapewatch backtest --sweep` saves it under the store, `tapewatch
serve` shows it (GET /api/sweep and the page, in real headless Chromium) — and before a sweep
was run, a line saying so with the command to run one.

The numbers are checked against the saved file and, for one parameter set, against an
independent pandas recomputation from the detector's per-bar output (`tapewatch signals`) and
the price bars (`tapewatch bars`) of the real bundled sample."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from cdp import Chromium, find_chromium
from scipy.stats import binomtest
from test_serve import Server, _write_window, demo_store, get, runner  # noqa: F401 (demo_store: fixture)

from tapewatch.cli import app
from tapewatch.serve.app import create_app

CHROMIUM = find_chromium()
GRID = '[grid]\n"premium.threshold_pct" = [0.03, 0.05]\n"flow.rally_pct" = [0.5, 1.0]\n'
SAVED = Path("_studies") / "BTC-4h-sweep.json"
ENV = {"TAPEWATCH_CONFIG": "", "COLUMNS": "200"}


def backtest_sweep(store: Path, grid: str, tmp: Path) -> str:
    path = tmp / "grid.toml"
    path.write_text(grid, encoding="utf-8")
    res = runner.invoke(app, ["backtest", "--store", str(store), "--symbol", "BTC", "--sweep", str(path)], env=ENV)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture()
def store(demo_store: Path, tmp_path: Path) -> Path:  # noqa: F811 (the fixture imported above)
    """A copy of the demo store (these tests write a sweep and bars into it)."""
    shutil.copytree(demo_store, tmp_path / "store")
    return tmp_path / "store"


def sweep_json(server: Server, query: str = "symbol=BTC") -> dict:
    status, body = get(server.url(f"/api/sweep?{query}"))
    assert status == 200, body
    return json.loads(body)


def recompute(store: Path, tmp: Path, threshold_pct: float, rally_pct: float) -> dict:
    """n, hits, hit rate, base rate and the exact one-sided p of the distribution side of one
    parameter set, in-sample, from `tapewatch signals` (the detector's firing per bar) and
    `tapewatch bars` (perp first, then spot: the config's markets.price) in plain pandas."""
    cfg_text = (store / "tapewatch.toml").read_text(encoding="utf-8")
    assert "\n[premium]\n" in cfg_text and "\n[flow]\n" in cfg_text and "threshold_pct" not in cfg_text
    cfg = tmp / f"set-{threshold_pct}-{rally_pct}.toml"
    cfg.write_text(cfg_text.replace("\n[premium]\n", f"\n[premium]\nthreshold_pct = {threshold_pct}\n")
                   .replace("\n[flow]\n", f"\n[flow]\nrally_pct = {rally_pct}\n"), encoding="utf-8")
    sig_csv = tmp / "signals.csv"
    res = runner.invoke(app, ["signals", "--store", str(store), "--symbol", "BTC", "--interval", "4h",
                              "--config", str(cfg), "--out", str(sig_csv)], env=ENV)
    assert res.exit_code == 0, res.output
    sig = pd.read_csv(sig_csv, parse_dates=["ts"]).set_index("ts")
    bars = {}
    for market in ("perp", "spot"):
        out = tmp / f"{market}.csv"
        res = runner.invoke(app, ["bars", "--store", str(store), "--exchange", "binance", "--market", market,
                                  "--symbol", "BTC/USDT", "--interval", "4h", "--out", str(out)], env=ENV)
        assert res.exit_code == 0, res.output
        bars[market] = pd.read_csv(out, parse_dates=["ts"]).set_index("ts")[["high", "low", "close"]].reindex(sig.index)
    price = bars["perp"].copy()  # the config's markets.price: perp first, spot where perp has no bar
    gap = price["close"].isna()
    price[gap] = bars["spot"][gap]
    assert (price["close"] - sig["close"]).abs().max() < 1e-9  # the study's closes are these bars'
    ts = list(sig.index)
    step = pd.Timedelta(hours=4)
    # in-sample: bars opening before 70 % of the span (the default 30 % holdout)
    cut = ts[0] + 0.7 * (ts[-1] + step - ts[0])
    ins = [t for t in ts if t < cut]
    last = ins[-1]
    # the label: a >= 2 % fall below the signal close among the bars opening in (t, t + 24h], scored
    # only when that window ends by the last in-sample bar
    day = pd.Timedelta(hours=24)
    label = {}
    for t in ins:
        if t + day > last:
            continue
        window = price.loc[(price.index > t) & (price.index <= t + day), "low"]
        label[t] = 1.0 if window.min() / price.at[t, "close"] - 1 <= -0.02 + 1e-12 else 0.0
    base = sum(label.values()) / len(label)
    # episodes: a firing more than the 1d cool-down after the previous firing bar starts one;
    # counted: the first, then each at least 72h (the longest outcome window) after the last counted
    fired = list(sig.index[sig["distribution"].astype(str).str.lower() == "true"])
    starts = [t for i, t in enumerate(fired) if i == 0 or t - fired[i - 1] > day]
    counted, prev = [], None
    for t in starts:
        if prev is None or t - prev >= pd.Timedelta(hours=72):
            counted.append(t)
            prev = t
    scored = [t for t in counted if t in label]
    hits = int(sum(label[t] for t in scored))
    n = len(scored)
    return {"events": n, "hits": hits, "hit_rate": hits / n, "base_rate": base,
            "p_value": binomtest(hits, n, base, alternative="greater").pvalue}


def test_the_saved_sweep_is_served_with_its_numbers(store: Path, tmp_path: Path) -> None:
    with Server(create_app(store)) as server:
        before = sweep_json(server)
        assert before["present"] is False
        assert "No parameter sweep was run for BTC 4h" in before["line"]
        assert before["command"] == "tapewatch backtest --symbol BTC --interval 4h --sweep GRID.toml"

        out = backtest_sweep(store, GRID, tmp_path)
        flat = " ".join(out.split())
        assert f"sweep saved to {store / SAVED}" in flat
        saved = json.loads((store / SAVED).read_text(encoding="utf-8"))
        got = sweep_json(server)  # the same server: a new sweep file is a new answer
        assert got["present"] is True and got["path"] == str(SAVED)
        assert got["saved_at"] == saved["saved_at"] and got["data"] == saved["data"] == {
            "start": "2024-12-31T00:00:00Z", "end": "2026-01-12T16:00:00Z", "bars": 2266}
        assert saved["grid"]["sets"] == 4 and saved["grid"]["axes"] == [
            {"key": "premium.threshold_pct", "values": [0.03, 0.05]}, {"key": "flow.rally_pct", "values": [0.5, 1.0]}]
        assert saved["config"]["values"]["detector"]["cooldown"] == "1d" and "significant when" in saved["rule"]
        assert got["stale"] is None and got["newer_bars"] == 0
        by_side = {s["side"]: s for s in got["sides"]}
        assert set(by_side) == {"distribution", "accumulation"}
        for side in saved["sides"]:
            shown = by_side[side["side"]]
            for key in ("reality_check_p", "spa_p", "bh_significant", "tested", "best_index", "significant", "verdict"):
                assert shown[key] == side[key], key
            assert shown["rows"] == side["rows"] and len(side["rows"]) == 4
            # the significance rule: significant only when both the Reality Check and the SPA give p <= alpha
            rc, spa = side["reality_check_p"], side["spa_p"]
            assert side["significant"] == (rc is not None and spa is not None and rc <= 0.05 and spa <= 0.05)
            assert side["verdict"].startswith(f"{side['side']}: {'' if side['significant'] else 'not '}significant")
            # BH q only for tested sets (>= min_events scored events)
            for r in side["rows"]:
                assert (r["q_value"] is None) == (r["events"] < saved["min_events"])
            assert f"<table class='study sweep' data-side='{side['side']}'>" in got["table"]
        assert got["figure"]["data"] and "hit rate per parameter set" in json.dumps(got["figure"]["layout"])

        # one parameter set by hand, from the detector's per-bar output and the bars
        dist = by_side["distribution"]
        row = next(r for r in dist["rows"] if r["params"] == {"premium.threshold_pct": 0.05, "flow.rally_pct": 0.5})
        want = recompute(store, tmp_path, 0.05, 0.5)
        assert (row["events"], row["hits"]) == (want["events"], want["hits"]) and want["events"] >= 5
        for key in ("hit_rate", "base_rate", "p_value"):
            assert row[key] == pytest.approx(want[key], rel=1e-9), key
        assert row["excess"] == pytest.approx(want["hit_rate"] - want["base_rate"], rel=1e-9)

        # re-running replaces it; no temporary file is left behind
        backtest_sweep(store, '[grid]\n"premium.threshold_pct" = [0.05, 0.1]\n', tmp_path)
        again = sweep_json(server)
        assert [a["key"] for a in again["grid"]["axes"]] == ["premium.threshold_pct"]
        assert all(len(s["rows"]) == 2 for s in again["sides"])
        assert [p.name for p in (store / "_studies").iterdir()] == ["BTC-4h-sweep.json"]
        # a grid of one set is a single configuration: the saved sweep stays as it was
        out = backtest_sweep(store, '[grid]\n"premium.threshold_pct" = [0.05]\n', tmp_path)
        assert "not saved as a sweep" in out and sweep_json(server) == again
        # a 4h bar written after the sweep's data: the sweep is said to be older than the store's data
        _write_window(store, 1)
        deadline = time.monotonic() + 10  # the server notices a store change within a poll (0.25 s)
        while (stale := sweep_json(server, "symbol=BTC&start=2025-06-01"))["newer_bars"] == 0:  # any range shown
            assert time.monotonic() < deadline, "the new bar was not noticed"
            time.sleep(0.2)
        assert stale["newer_bars"] == 1 and "older than the store's data" in stale["stale"]
        assert "1 more 4h bar (to 2026-01-12 20:00:00 UTC)" in stale["stale"]
        # the sweep of another interval is another file: none was run at 1h
        assert sweep_json(server, "symbol=BTC&interval=1h")["present"] is False
        # bad parameters: one-line 400s
        for query, expected in (("symbol=ETH", "'ETH' has no spot or perp data"),
                                ("interval=4x", "'4x' is not a valid interval name")):
            status, body = get(server.url(f"/api/sweep?{query}"))
            assert status == 400 and expected in body and "\n" not in body.strip(), body


def test_a_damaged_sweep_file_is_a_one_line_400(store: Path) -> None:
    (store / SAVED).parent.mkdir()
    (store / SAVED).write_text('{"format": "tapewatch sweep 1", "sides": [{"side": 1}]}', encoding="utf-8")
    with Server(create_app(store)) as server:
        status, body = get(server.url("/api/sweep?symbol=BTC"))
    assert status == 400 and "BTC-4h-sweep.json: not a readable saved sweep" in body and "\n" not in body.strip()


SWEEP_JS = """(() => ({
  sweep: document.body.dataset.sweep || '', loaded: document.body.dataset.loaded || '',
  none: document.getElementById('sweep-none')?.textContent || '',
  sides: [...document.querySelectorAll('p.sweep-side')].map(p => [p.dataset.side, p.dataset.significant, p.textContent]),
  rows: Object.fromEntries([...document.querySelectorAll('table.sweep')].map(t => [t.dataset.side,
        [...t.querySelectorAll('tbody tr')].map(r => [...r.children].map(c => c.textContent))])),
  areas: [...document.querySelectorAll('#panel-sweep .cartesianlayer > .subplot')].map(sp =>
        [...sp.querySelectorAll('.trace path')].filter(p => (p.getAttribute('d') || '').length > 4).length),
  error: document.getElementById('error').textContent,
}))()"""


def test_the_page_shows_no_sweep_then_the_saved_sweep(store: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "no Chromium on this machine: scripts/test.sh installs it (apt-get install chromium)"
    with Server(create_app(store)) as server, Chromium(CHROMIUM) as browser:
        page = browser.open("about:blank")
        browser.send("Log.enable", session=page)
        browser.send("Page.navigate", {"url": server.url("/")}, session=page)
        browser.wait_for(page, "document.body && document.body.dataset.loaded && document.body.dataset.sweep", 60)
        seen = browser.evaluate(page, SWEEP_JS)
        assert seen["sweep"] == "none" and not seen["error"], seen
        assert "No parameter sweep was run for BTC 4h" in seen["none"]
        assert "tapewatch backtest --symbol BTC --interval 4h --sweep GRID.toml" in seen["none"]
        assert seen["sides"] == [] and seen["rows"] == {} and seen["areas"] == []

        backtest_sweep(store, GRID, tmp_path)
        saved = json.loads((store / SAVED).read_text(encoding="utf-8"))
        browser.send("Page.reload", session=page)
        browser.wait_for(page, "document.body && document.body.dataset.loaded && document.body.dataset.sweep === 'saved'",
                         60)
        seen = browser.evaluate(page, SWEEP_JS)
        assert not seen["error"] and seen["none"] == ""
        for (side, significant, text), want in zip(seen["sides"], saved["sides"]):
            assert side == want["side"] and significant == json.dumps(want["significant"])
            assert ("SIGNIFICANT" if want["significant"] else "not significant") in text
            assert want["verdict"] in " ".join(text.split())
        rc = saved["sides"][0]["reality_check_p"]
        assert f"Reality Check p = {float(f'{rc:.2g}'):g}" in seen["sides"][0][2]
        # the table: every set (4 < 20 shown), best selection score first; n, hit rate, base, p as saved
        for want in saved["sides"]:
            shown = seen["rows"][want["side"]]
            assert len(shown) == 4
            by_index = {r["set_index"]: r for r in want["rows"]}
            scores = [by_index[int(cells[0])]["score"] for cells in shown]
            tested = [s for s in scores if s is not None]
            assert tested == sorted(tested, reverse=True) and scores[:len(tested)] == tested
            for cells in shown:
                r = by_index[int(cells[0])]
                assert int(cells[2]) == r["events"]
                assert cells[3] == ("n/a" if r["hit_rate"] is None else f"{r['hit_rate'] * 100:.0f} %")
                assert cells[5] == f"{r['base_rate'] * 100:.0f} %"
        assert len(seen["areas"]) == 2 and all(n >= 1 for n in seen["areas"]), seen["areas"]

        errors, requests = browser.page_errors(), browser.requested_urls()
    assert not errors, errors
    assert requests and all(u.startswith((server.url("/"), "data:")) for u in requests), requests
