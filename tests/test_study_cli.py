"""``tapewatch backtest`` and ``tapewatch report`` end to end: store → detector → study → outputs.

The store holds six days around the real BTC perpetual month with every input the detector reads,
written in the venues' formats by tests/_signals_data.py (issue 3's test data).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tapewatch.commands.study import backtest_cmd, report_cmd
from tapewatch.config import Config, config_from_dict
from tapewatch.store import Store
from tapewatch.study import StudySettings
from tapewatch.study.wiring import config_with, prepare, track_records

sd = pytest.importorskip("_signals_data")

CONFIG = """
[detector]
required = ["flow", "premium"]
when_present = []
cooldown = "30m"

[premium]
threshold_pct = 0.0

[study]
horizons = ["1h", "4h"]
move_pct = 0.5
move_window = "4h"
reps = 100
"""
GRID = """
[grid]
"flow.rally_pct" = [0.3, 0.5]
"premium.threshold_pct" = [0.0, 0.02]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    st = Store(tmp_path_factory.mktemp("study-store") / "store")
    sd.write_market(st, sd.market(minutes=6 * 1440)["records"])
    return st


@pytest.fixture
def app() -> typer.Typer:
    a = typer.Typer()
    a.command("backtest")(backtest_cmd)
    a.command("report")(report_cmd)
    return a


def test_config_overrides_are_validated():
    cfg = config_with(Config(), {"premium.threshold_pct": 0.2, "detector.cooldown": "2h"})
    assert cfg.premium.threshold_pct == 0.2 and cfg.detector.cooldown == "2h"
    from tapewatch.config import ConfigError
    with pytest.raises(ConfigError, match="premium.treshold_pct"):
        config_with(Config(), {"premium.treshold_pct": 0.2})
    with pytest.raises(ConfigError, match="premium.threshold_pct"):
        config_with(Config(), {"premium.threshold_pct": "high"})


def test_prepare_uses_the_detector_columns(store: Store):
    cfg = config_from_dict({"detector": {"required": ["flow", "premium"], "when_present": []},
                            "premium": {"threshold_pct": 0.0}})
    ds = prepare(store, "BTC", "5m", None, None, cfg, [{}, {"flow.rally_pct": 0.3}])
    fired = ds.event_fn({})
    assert len(fired["distribution"]) == len(ds.bars) == ds.frame.height
    assert fired["distribution"].sum() > 0 and fired["accumulation"].sum() > 0
    expect = ds.frame.get_column("distribution").fill_null(False).to_numpy()
    assert (fired["distribution"] == expect).all()
    assert ds.event_fn({"flow.rally_pct": 0.3})["distribution"].sum() >= fired["distribution"].sum()
    assert ds.cooldown_ns({}) == 3_600_000_000_000  # detector.cooldown default 1h
    assert (ds.bars.high >= ds.bars.close).all() and (ds.bars.low <= ds.bars.close).all()
    assert [f.title.split(":")[0].split(" (")[0] for f in ds.factors][:2] == ["taker flow", "premium index"]
    # a detector-only change reuses the factor frame; it must equal a fresh computation
    only = {"detector.required": ["flow"], "detector.when_present": ["premium"]}
    ds2 = prepare(store, "BTC", "5m", None, None, cfg, [{}, only])
    ds2.event_fn({})
    fresh = prepare(store, "BTC", "5m", None, None, config_with(cfg, only))
    for side in ("distribution", "accumulation"):
        assert (ds2.event_fn(only)[side] == fresh.event_fn({})[side]).all()
    rec = track_records(store, "BTC", "5m", cfg, StudySettings(move_window="4h", horizons=("1h",)))
    assert rec.at("distribution", int(ds.bars.ts[-1])).describe().startswith("before this event: n=")


def test_backtest_prints_the_verdict_and_writes_identical_json(app, store: Store, tmp_path: Path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    runner = CliRunner()
    outs = []
    for name in ("a.json", "b.json"):
        res = runner.invoke(app, ["backtest", "--symbol", "BTC", "--interval", "5m", "--config", str(cfg),
                                  "--sweep", str(grid), "--json", str(tmp_path / name), "--seed", "3",
                                  "--store", str(store.root)], terminal_width=200)
        assert res.exit_code == 0, res.output
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert "verdict" in res.output and "distribution fired" in res.output
    flat = " ".join(res.output.replace("│", " ").split())  # the verdict panel wraps lines
    assert "after correcting for 4 parameter sets: the Reality Check and SPA" in flat
    doc = json.loads(outs[0])
    assert doc["inputs"]["symbol"] == "BTC" and doc["inputs"]["parameter_sets"] == 4
    assert doc["settings"]["move_pct"] == 0.5 and doc["seed"] == 3


def test_backtest_reports_bad_input_in_one_line(app, store: Store, tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nmove_pct = 'two'\n")
    res = CliRunner().invoke(app, ["backtest", "--config", str(bad), "--store", str(store.root)])
    assert res.exit_code == 1 and "study.move_pct" in res.output
    res = CliRunner().invoke(app, ["backtest", "--symbol", "ETH", "--store", str(store.root)])
    assert res.exit_code == 1 and "error" in res.output and "Traceback" not in res.output


def test_report_command_writes_html(app, store: Store, tmp_path: Path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(app, ["report", "--symbol", "BTC", "--out", str(out), "--config", str(cfg),
                                   "--store", str(store.root)], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    assert 'id="panel-market"' in text and "premium index" in text and "distribution fired" in text
