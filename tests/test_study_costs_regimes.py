"""Net-of-cost returns and bull / bear regimes, checked against plain Python on real bars."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from study_data import HOUR, MIN, plain_counted, to_bars, window
from test_study_forward import plain_forward, plain_low_high

from tapewatch.config import ConfigError
from tapewatch.study import StudySettings, load_settings, study_events
from tapewatch.study.regime import REGIMES, regime_codes

REGIME_W = 6 * HOUR
FIRED = [15, 16, 130, 400, 401, 460, 700, 1000, 1010, 1300, 1555, 1600, 1700]
COOLDOWN = 30 * MIN


@pytest.fixture(scope="module")
def rows():
    return window("2022-01-10 00:00", "2022-01-11 06:00")  # 1,800 real 1-minute bars


def plain_regime(rows, i, w_ns):
    """bull / bear by close_i / close(last bar opening at or before t_i - w) - 1; unknown before the data."""
    t = rows[i][0]
    if t - w_ns < rows[0][0]:
        return "unknown"
    j = max(k for k in range(i + 1) if rows[k][0] <= t - w_ns)
    return "bull" if rows[i][4] / rows[j][4] - 1.0 > 0 else "bear"


def plain_starts(rows, fired, cooldown):
    starts, last = [], None
    for k in range(len(rows)):
        if k in fired:
            if last is None or rows[k][0] - rows[last][0] > cooldown:
                starts.append(k)
            last = k
    return plain_counted(rows, starts, 4 * HOUR)  # the longest outcome window of `run`


def run(rows, side, cost_bps=10.0):
    fired = np.zeros(len(rows), dtype=bool)
    fired[FIRED] = True
    settings = StudySettings(horizons=("1h", "4h"), move_pct=1.0, move_window="4h", split="none", reps=30,
                             cost_bps=cost_bps, regime_window="6h")
    return study_events(to_bars(rows), {side: fired}, settings, COOLDOWN, seed=1).result


@pytest.mark.parametrize("side, direction", [("distribution", -1), ("accumulation", 1)])
def test_net_returns_equal_plain_python(rows, side, direction):
    starts = plain_starts(rows, set(FIRED), COOLDOWN)
    cost = 10.0 / 10_000
    res = run(rows, side)
    outcomes = res.periods[0].sides[0].outcomes
    assert outcomes[0].net_mean is None and outcomes[0].net_median is None  # the hit label has no return
    for out, h in zip(outcomes[1:], (HOUR, 4 * HOUR)):
        gross = [x for x in (plain_forward(rows, k, h) for k in starts) if x is not None]
        net = [direction * x - cost for x in gross]  # short: -r - cost; long: r - cost
        assert out.events == len(net) > 5
        assert out.net_mean == pytest.approx(sum(net) / len(net), abs=1e-12)
        assert out.net_median == pytest.approx(statistics.median(net), abs=1e-12)
        assert out.value == pytest.approx(sum(gross) / len(gross), abs=1e-12)  # gross unchanged
    zero = run(rows, side, cost_bps=0.0).periods[0].sides[0].outcomes[-1]
    assert zero.net_mean == pytest.approx(direction * outcomes[-1].value, abs=1e-12)


@pytest.mark.parametrize("gaps", [False, True])
def test_regime_labels_equal_plain_python(rows, gaps):
    if gaps:
        drop = set(range(300, 340)) | {361, 500, 777, 1000}
        rows = [r for k, r in enumerate(rows) if k not in drop]
    codes = regime_codes(to_bars(rows), REGIME_W)
    got = [REGIMES[c] for c in codes]
    want = [plain_regime(rows, i, REGIME_W) for i in range(len(rows))]
    assert got == want
    assert {"bull", "bear", "unknown"} <= set(want)


def test_hit_rate_per_regime_equals_plain_python(rows):
    starts = plain_starts(rows, set(FIRED), COOLDOWN)
    move, w = 0.01, 4 * HOUR

    def pullback(k):
        ext = plain_low_high(rows, k, w)
        return None if ext is None else (1.0 if ext[0] <= -move else 0.0)

    labels = [pullback(k) for k in range(len(rows))]
    regime = [plain_regime(rows, k, REGIME_W) for k in range(len(rows))]
    side = run(rows, "distribution").periods[0].sides[0]
    assert [r.regime for r in side.regimes] == ["bull", "bear", "unknown"]
    seen = 0
    for r in side.regimes:
        ev = [labels[k] for k in starts if labels[k] is not None and regime[k] == r.regime]
        every = [labels[k] for k in range(len(rows)) if labels[k] is not None and regime[k] == r.regime]
        assert (r.events, r.hits, r.bars) == (len(ev), sum(ev), len(every)), r.regime
        assert r.hit_rate == (pytest.approx(sum(ev) / len(ev), abs=1e-12) if ev else None)
        assert r.base_rate == pytest.approx(sum(every) / len(every), abs=1e-12)
        seen += r.events
    assert seen == side.label.events  # every scored event has exactly one regime
    assert sum(1 for r in side.regimes if r.events) >= 2


def test_regime_uses_no_later_bars(rows):
    """Changing every bar after an event never changes its regime label; changing one inside the
    trailing window can."""
    i = 900
    base = regime_codes(to_bars(rows), REGIME_W)
    later = [r if k <= i else (r[0], r[1] * 3, r[2] * 3, r[3] * 0.2, r[4] * (0.2 if k % 2 else 3))
             for k, r in enumerate(rows)]
    changed = regime_codes(to_bars(later), REGIME_W)
    assert (changed[:i + 1] == base[:i + 1]).all()
    assert (changed[i + 1:] != base[i + 1:]).any()
    ref = i - REGIME_W // MIN  # the bar whose close starts the event's window
    flip = 2.0 if REGIMES[base[i]] == "bull" else 0.5  # a higher (lower) start turns bull to bear (bear to bull)
    earlier = [r if k != ref else (r[0], r[1], r[2] * flip * 2, r[3] * flip / 2, r[4] * flip)
               for k, r in enumerate(rows)]
    assert regime_codes(to_bars(earlier), REGIME_W)[i] != base[i]


def test_costs_and_regimes_in_json_and_settings(rows, tmp_path: Path):
    res = run(rows, "distribution")
    doc = json.loads(res.to_json())
    assert doc["settings"]["cost_bps"] == 10.0 and doc["settings"]["regime_window"] == "6h"
    side = doc["periods"][0]["sides"][0]
    assert [r["regime"] for r in side["regimes"]] == ["bull", "bear", "unknown"]
    assert side["outcomes"][-1]["net_mean"] is not None
    assert any("net of a 10 bp round trip, short" in v for v in res.verdict)
    assert any("distribution by regime: " in v for v in res.verdict)
    assert StudySettings().cost_bps == 10.0 and StudySettings().regime_window == "30d"
    f = tmp_path / "cfg.toml"
    f.write_text('[study]\ncost_bps = 4.5\nregime_window = "7d"\n')
    assert load_settings(f)[1].cost_bps == 4.5 and load_settings(f)[1].regime_window == "7d"
    f.write_text("[study]\ncost_bps = -1\n")
    with pytest.raises(ConfigError, match=r"study\.cost_bps"):
        load_settings(f)
