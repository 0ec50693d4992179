"""Forward returns, the move label and the cool-down, checked against plain Python on real bars."""

from __future__ import annotations

import math

import numpy as np
import pytest
from study_data import HOUR, MIN, plain_counted, to_bars, window

from tapewatch.errors import TapewatchError
from tapewatch.study import StudySettings, collapse, compute_forward, study_events
from tapewatch.study.forward import PriceBars, format_duration


def plain_forward(rows, i, h_ns):
    """close(t_i + step + h) / close_i - 1: the last bar with open <= t_i + h; None past the data."""
    t = rows[i][0]
    if t + h_ns > rows[-1][0]:
        return None
    j = max(k for k in range(i, len(rows)) if rows[k][0] <= t + h_ns)
    return rows[j][4] / rows[i][4] - 1.0


def plain_low_high(rows, i, w_ns):
    """Lowest low and highest high of the bars opening in (t_i, t_i + w]; None past the data."""
    t = rows[i][0]
    if t + w_ns > rows[-1][0]:
        return None
    nxt = [r for r in rows[i + 1:] if r[0] <= t + w_ns]
    return min(r[3] for r in nxt) / rows[i][4] - 1.0, max(r[2] for r in nxt) / rows[i][4] - 1.0


def plain_peak_drawdown(rows, i, w_ns):
    """Largest fall of a later bar's low below the running peak (signal close, then earlier highs)."""
    t = rows[i][0]
    if t + w_ns > rows[-1][0]:
        return None
    peak, worst = rows[i][4], math.inf
    for r in rows[i + 1:]:
        if r[0] > t + w_ns:
            break
        worst = min(worst, r[3] / peak - 1.0)
        peak = max(peak, r[2])
    return worst


@pytest.fixture(scope="module")
def rows():
    return window("2022-01-10 00:00", "2022-01-11 06:00")  # 1,800 real 1-minute bars


@pytest.fixture(scope="module")
def gappy(rows):
    """The same bars with a few holes (real data has none): 40 minutes, then single bars."""
    drop = set(range(300, 340)) | {500, 777, 1000, 1001, 1795}
    return [r for k, r in enumerate(rows) if k not in drop]


@pytest.mark.parametrize("which", ["rows", "gappy"])
def test_forward_returns_and_extremes_match_plain_python(which, request):
    rows = request.getfixturevalue(which)
    bars = to_bars(rows)
    fw = compute_forward(bars, (HOUR, 4 * HOUR), 3 * HOUR, 1.0, "close")
    for i in list(range(0, len(rows), 37)) + [len(rows) - 241, len(rows) - 240, len(rows) - 181, len(rows) - 1]:
        for j, h in enumerate((HOUR, 4 * HOUR)):
            want = plain_forward(rows, i, h)
            got = fw.returns[i, j]
            assert (want is None and np.isnan(got)) or got == pytest.approx(want, abs=1e-15), (i, h)
        ext = plain_low_high(rows, i, 3 * HOUR)
        if ext is None:
            assert np.isnan(fw.down[i]) and np.isnan(fw.up[i]), i
        else:
            assert fw.down[i] == pytest.approx(ext[0], abs=1e-15) and fw.up[i] == pytest.approx(ext[1], abs=1e-15)
            assert fw.hit(-1)[i] == (1.0 if ext[0] <= -0.01 else 0.0)
            assert fw.hit(+1)[i] == (1.0 if ext[1] >= 0.01 else 0.0)


def test_peak_to_trough_drawdown_matches_plain_python(gappy):
    bars = to_bars(gappy)
    fw = compute_forward(bars, (HOUR,), 2 * HOUR, 0.5, "peak")
    for i in range(0, len(gappy), 29):
        want = plain_peak_drawdown(gappy, i, 2 * HOUR)
        assert (want is None and np.isnan(fw.down[i])) or fw.down[i] == pytest.approx(want, abs=1e-15), i


def test_outcomes_use_only_future_bars(rows):
    """Changing bars at or before t never changes t's forward values; changing later bars does."""
    bars = to_bars(rows)
    base = compute_forward(bars, (HOUR,), 2 * HOUR, 1.0)
    i = 900
    past = [r if k >= i else (r[0], r[1], r[2] * 1.5, r[3] * 0.5, r[4] * 1.2) for k, r in enumerate(rows)]
    changed = compute_forward(to_bars(past), (HOUR,), 2 * HOUR, 1.0)
    # the signal bar's own close is the reference: bars strictly before it cannot matter
    assert changed.returns[i:, 0] == pytest.approx(base.returns[i:, 0], nan_ok=True)
    assert changed.down[i:] == pytest.approx(base.down[i:], nan_ok=True)
    future = [r if k != i + 30 else (r[0], r[1], r[2], r[3] * 0.9, r[4]) for k, r in enumerate(rows)]
    assert compute_forward(to_bars(future), (HOUR,), 2 * HOUR, 1.0).down[i] < base.down[i]


def test_horizon_must_be_whole_bars_and_bars_on_grid(rows):
    with pytest.raises(TapewatchError, match="whole number of 1m bars"):
        compute_forward(to_bars(rows), (90 * 1_000_000_000,), HOUR, 1.0)
    ts = np.array([0, MIN, 2 * MIN + 1], dtype=np.int64)
    with pytest.raises(TapewatchError, match="grid"):
        PriceBars(ts, np.ones(3), np.ones(3), np.ones(3), MIN)
    assert format_duration(24 * HOUR) == "24h" and format_duration(48 * HOUR) == "2d"
    assert format_duration(90 * MIN) == "90m"


def test_cooldown_collapses_episodes():
    ts = np.arange(20, dtype=np.int64) * 5 * MIN
    fired = np.zeros(20, dtype=bool)
    fired[[2, 3, 4, 9, 16, 17]] = True  # a 3-bar run; a lone firing 25 min later; another run
    assert collapse(ts, fired, 0).tolist() == [2, 3, 4, 9, 16, 17]
    assert collapse(ts, fired, 20 * MIN).tolist() == [2, 9, 16]  # 9 is 25 min after 4 (> 20 min)
    assert collapse(ts, fired, 25 * MIN).tolist() == [2, 16]  # 9 continues the first episode
    assert collapse(ts, fired, 60 * MIN).tolist() == [2]  # 16 is 35 min after the firing at 9
    unknown = np.array([None, True, None, True], dtype=object)  # null = unknown = not fired
    assert collapse(np.arange(4, dtype=np.int64) * MIN, unknown, 0).tolist() == [1, 3]


def test_hit_rate_base_rate_and_returns_equal_plain_python(rows):
    """For a small real window: the tool's event statistics equal numbers computed from raw rows."""
    step, w, horizons, move = MIN, 4 * HOUR, (HOUR, 4 * HOUR), 1.0
    fired = np.zeros(len(rows), dtype=bool)
    fired[[15, 16, 17, 130, 400, 401, 460, 700, 1000, 1010, 1300, 1555, 1700, 1750]] = True
    cooldown = 30 * MIN
    # plain Python: episodes, labels, base rate
    starts, last = [], None
    for k in range(len(rows)):
        if fired[k]:
            if last is None or rows[k][0] - rows[last][0] > cooldown:
                starts.append(k)
            last = k
    assert starts == [15, 130, 400, 460, 700, 1000, 1300, 1555, 1700, 1750]
    # counted: at least the longest outcome window (4h) after the last counted episode
    starts = plain_counted(rows, starts, w)
    assert starts == [15, 400, 700, 1000, 1300, 1555]

    def pullback(k):
        ext = plain_low_high(rows, k, w)
        return None if ext is None else (1.0 if ext[0] <= -move / 100 else 0.0)

    labels = [pullback(k) for k in range(len(rows))]
    scored = [labels[k] for k in starts if labels[k] is not None]
    defined = [x for x in labels if x is not None]
    settings = StudySettings(horizons=("1h", "4h"), move_pct=move, move_window="4h", split="none", reps=50)
    res = study_events(to_bars(rows), {"distribution": fired}, settings, cooldown, seed=3).result
    side = res.periods[0].sides[0]
    label, r1, r4 = side.outcomes
    assert side.episodes == len(starts) and label.events == len(scored) == 6
    assert label.hits == sum(scored)
    assert label.value == pytest.approx(sum(scored) / len(scored), abs=1e-12)
    assert label.base == pytest.approx(sum(defined) / len(defined), abs=1e-12)
    for out, h in ((r1, HOUR), (r4, 4 * HOUR)):
        ev = [plain_forward(rows, k, h) for k in starts]
        ev = [x for x in ev if x is not None]
        every = [x for x in (plain_forward(rows, k, h) for k in range(len(rows))) if x is not None]
        assert out.events == len(ev)
        assert out.value == pytest.approx(sum(ev) / len(ev), abs=1e-12)
        assert out.median == pytest.approx(sorted(ev)[len(ev) // 2] if len(ev) % 2 else
                                           (sorted(ev)[len(ev) // 2 - 1] + sorted(ev)[len(ev) // 2]) / 2, abs=1e-12)
        assert out.base == pytest.approx(sum(every) / len(every), abs=1e-12)
    assert side.event_times[0] == "2022-01-10T00:15:00Z"
