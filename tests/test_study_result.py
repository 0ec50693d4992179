"""Result JSON is deterministic; the verdict reads as plain words; settings and grids fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from study_data import HOUR, to_bars, window

from tapewatch.config import ConfigError
from tapewatch.study import StudySettings, grid_from_dict, load_grid, load_settings, run_study, study_events
from tapewatch.study.result import (
    OutcomeStats, SideStats, SideSweep, SweepRow, p_text, pct_range, side_sentence, significance_clause,
)

def make_json(seed: int) -> str:
    """A small sweep on six real days of 1m bars (two sides, four parameter sets), as JSON."""
    bars = to_bars(window("2022-01-03 00:00", "2022-01-09 00:00"))
    change = {w: np.r_[np.full(w, np.nan), (bars.close[w:] / bars.close[:-w] - 1) * 100] for w in (30, 60)}

    def event_fn(p: dict) -> dict:
        return {"distribution": change[p["w"]] > p["x"], "accumulation": change[p["w"]] < -p["x"]}

    grid = [{"w": w, "x": x} for w in (30, 60) for x in (0.4, 0.8)]
    s = StudySettings(reps=120, horizons=("1h", "4h"), move_window="4h", move_pct=1.0)
    return run_study(bars, event_fn, s, HOUR, grid, seed=seed).result.to_json()


def test_same_inputs_and_seed_give_byte_identical_json():
    here = make_json(7)
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           "from test_study_result import make_json; sys.stdout.write(make_json(7))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert here == there and here.endswith("\n")  # another process, another hash seed: same bytes
    assert make_json(8) != here  # the seed matters (bootstrap intervals and p-values)
    doc = json.loads(here)
    assert doc["seed"] == 7 and doc["settings"]["seed"] == 7
    assert list(doc) == sorted(doc)
    assert doc["verdict"][0].startswith("in-sample (")
    assert {p["role"] for p in doc["periods"]} == {"in-sample", "out-of-sample"}
    assert len(doc["sweeps"]) == 2 and len(doc["sweeps"][0]["rows"]) == 4


def test_json_has_no_nan_and_round_trips_none():
    bars = to_bars(window("2022-01-03 00:00", "2022-01-04 00:00"))
    never = np.zeros(len(bars), dtype=bool)
    res = study_events(bars, {"distribution": never}, StudySettings(reps=20, split="none"), HOUR).result
    text = res.to_json()
    assert "NaN" not in text and "Infinity" not in text
    lab = json.loads(text)["periods"][0]["sides"][0]["outcomes"][0]
    assert lab["value"] is None and lab["p_value"] is None and lab["events"] == 0
    assert res.verdict[0].endswith("distribution never fired")


def _outcome(**kw) -> OutcomeStats:
    base = dict(outcome="pullback >= 2% within 24h", kind="hit", horizon="24h", events=14, hits=9,
                value=9 / 14, ci_low=0.38, ci_high=0.86, median=None, median_ci_low=None, median_ci_high=None,
                base=0.41, base_median=None, excess=9 / 14 - 0.41, p_value=0.08)
    return OutcomeStats(**{**base, **kw})


def test_verdict_sentence_matches_the_issue_example():
    side = SideStats("distribution", "pullback", -1, 3, {"w": 1}, 14, 14, (), (_outcome(),))
    row = SweepRow(3, {"w": 1}, 14, 9, 9 / 14, 0.41, 0.23, 0.38, 0.86, None, None, 0.08, 0.61, False, 1.0)
    sweep = SideSweep("distribution", 48, 48, 0.05, 0, 3, {"w": 1}, 0.52, 0.44, 0.4, 0.5, "4h", 2, (row,) * 48)
    text = side_sentence(side) + "; " + significance_clause(0.08, 0.05, sweep)
    assert text.startswith(
        "distribution fired 14 times; 9 were followed by a >= 2 % pullback within 24h (64 %, 95 % CI 38–86 %) "
        "vs a base rate of 41 %; p = 0.08; not significant after correcting for 48 parameter sets")
    assert "BH q = 0.61" in text and "SPA p = 0.44" in text
    assert significance_clause(0.01, 0.05, None) == "significant at the 5 % level (one-sided)"
    assert p_text(0.0004) == "p < 0.001" and p_text(0.0123) == "p = 0.012"
    assert pct_range(-0.012, 0.003, 2) == "-1.20 to 0.30 %"


def test_settings_from_the_config_file(tmp_path: Path):
    f = tmp_path / "cfg.toml"
    f.write_text('[detector]\ncooldown = "30m"\n[study]\nhorizons = ["30m", "2h"]\nmove_pct = 1.5\nreps = 200\nsplit = "walk_forward"\n')
    cfg, s = load_settings(f)
    assert cfg.detector.cooldown == "30m"
    assert s.horizons == ("30m", "2h") and s.move_pct == 1.5 and s.reps == 200 and s.split == "walk_forward"
    assert s.horizons_ns(60_000_000_000) == (1_800_000_000_000, 7_200_000_000_000)
    for bad, key in (("move_pct = -1", "study.move_pct"), ("split = 'sideways'", "study.split"),
                     ("horizon = ['1h']", "study.horizon"), ("reps = 'many'", "study.reps"),
                     ("reps = 3", "study.reps")):
        f.write_text(f"[study]\n{bad}\n")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_settings(f)


def test_grid_files(tmp_path: Path):
    g = tmp_path / "grid.toml"
    g.write_text('[grid]\nwindow = ["30m", "1h"]\n"flow.rally_pct" = [0.3, 0.5, 1.0]\n[grid.premium]\nthreshold_pct = [0.03, 0.05]\n')
    sets = load_grid(g)
    assert len(sets) == 12 and sets[0] == {"window": "30m", "flow.rally_pct": 0.3, "premium.threshold_pct": 0.03}
    assert sets[1]["premium.threshold_pct"] == 0.05  # the last key varies fastest
    with pytest.raises(ConfigError, match="'window'.*non-empty list"):
        grid_from_dict({"grid": {"window": "1h"}})
    with pytest.raises(ConfigError, match="unknown top-level key 'windows'"):
        grid_from_dict({"grid": {"a": [1]}, "windows": 1})


def test_run_study_rejects_unknown_sides():
    bars = to_bars(window("2022-01-03 00:00", "2022-01-03 12:00"))
    with pytest.raises(ValueError, match="unknown event side"):
        run_study(bars, lambda p: {"exit_pump": np.zeros(len(bars), bool)}, StudySettings(reps=10), HOUR)
