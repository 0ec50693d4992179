"""Issue 10 (statistics): few-event sets are not tested, one significance rule, episodes a full
outcome window apart, point-in-time track records — each on the real BTC perp month."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from study_data import HOUR, month_bars, ns, plain_counted, raw_rows, to_bars, window

from tapewatch.study import StudySettings, run_study, study_events, track_record
from tapewatch.study.result import SideSweep, SweepRow, significance_clause


@pytest.fixture(scope="module")
def month():
    return month_bars()


def plain_labels(rows, window_ns: int, move: float) -> list[float | None]:
    """Per bar k: 1.0 when a low within ``(ts_k, ts_k + window]`` is at least ``move`` % below bar
    k's close, 0.0 when not, None when the window runs past the last row (a sliding minimum, plain
    Python)."""
    from collections import deque

    out: list[float | None] = []
    q: deque[int] = deque()  # indices of candidate lows in the window, lows increasing
    j = 0
    for k, (t, _o, _h, _l, close) in enumerate(rows):
        while j < len(rows) and rows[j][0] <= t + window_ns:
            while q and rows[q[-1]][3] >= rows[j][3]:
                q.pop()
            q.append(j)
            j += 1
        while q and q[0] <= k:
            q.popleft()
        if rows[-1][0] < t + window_ns:
            out.append(None)
        else:
            out.append(1.0 if q and rows[q[0]][3] <= close * (1 - move / 100) + 1e-9 else 0.0)
    return out


def test_sets_with_too_few_events_are_not_tested_and_the_rule_is_rc_and_spa(month):
    """A sweep on real bars where some sets have one or two events: those get no q-value, are not
    counted as tested (so they cannot inflate "BH keeps k"), and the verdict says "significant" only
    when both the Reality Check and the SPA give p <= alpha."""
    bars = month
    change = {w: np.r_[np.full(w, np.nan), (bars.close[w:] / bars.close[:-w] - 1) * 100] for w in (60, 240)}

    def event_fn(p):
        return {"distribution": change[p["w"]] > p["x"], "accumulation": change[p["w"]] < -p["x"]}

    grid = [{"w": w, "x": x} for w in (60, 240) for x in (0.5, 1.5, 3.0, 5.0)]
    s = StudySettings(reps=100, split="none", min_events=5)
    res = run_study(bars, event_fn, s, HOUR, grid, seed=4).result
    few = 0
    for sw in res.sweeps:
        assert sw.min_events == 5
        assert sw.tested == sum(r.events >= 5 for r in sw.rows)
        for r in sw.rows:
            if r.events < 5:
                few += 1
                assert r.q_value is None and not r.significant_bh
            else:
                assert r.q_value is not None
        assert sw.bh_significant == sum(r.significant_bh for r in sw.rows)
        line = next(v for v in res.verdict if f"{sw.side} fired" in v)
        decided = sw.reality_check_p <= 0.05 and sw.spa_p <= 0.05
        assert ("; significant after correcting" in line) == decided
        assert "Reality Check and SPA" in line and "BH q" in line and "not deciding" in line
    assert few >= 2  # the grid really has sets with too few events
    assert any("significance rule" in n and "Reality Check" in n for n in res.notes)


def test_issue_example_bh_q_small_but_reality_check_not_is_not_significant():
    """The reported case: BH q = 0.032 for the best set, Reality Check p = 0.14 → "not significant",
    saying that the Reality Check and SPA decide."""
    row = SweepRow(0, {"w": 1}, 40, 30, 0.75, 0.57, 0.18, 0.62, None, None, None, 0.004, 0.032, True, 2.5)
    sweep = SideSweep("distribution", 8, 8, 0.05, 3, 0, {"w": 1}, 0.14, 0.03, 0.02, 0.14, "4h", 2, (row,) * 8, 5)
    text = significance_clause(0.004, 0.05, sweep, 40, 5)
    assert text.startswith("not significant after correcting for 8 parameter sets: the Reality Check and SPA "
                           "must both give p <= 0.05")
    assert "Reality Check p = 0.14" in text and "BH q = 0.032, not deciding" in text
    assert significance_clause(0.004, 0.05, None, 3, 5) == "too few events to test (3 < 5 needed)"
    assert significance_clause(0.004, 0.05, None, 5, 5) == "significant at the 5 % level (one-sided)"


def test_events_whose_outcome_windows_overlap_count_once():
    """A condition firing every 2 hours for days with a 1h cool-down was up to 12 events per 24h label
    window (the same outcome bars counted again); now counted events are >= 24h apart, the hits
    and p are those of the counted ones (plain Python), and the gap is printed."""
    rows = window("2022-01-03 00:00", "2022-01-13 00:00")
    bars = to_bars(rows)
    fired = np.zeros(len(rows), dtype=bool)
    fired[np.arange(30, len(rows) - 1, 120)] = True
    settings = StudySettings(split="none", reps=50)
    res = study_events(bars, {"distribution": fired}, settings, HOUR, seed=1).result
    side = res.periods[0].sides[0]
    starts = plain_counted(rows, [int(k) for k in np.flatnonzero(fired)], 24 * HOUR)
    assert len(starts) == 10 and side.episodes == len(starts)
    assert [ns(t.replace("T", " ")[:16]) for t in side.event_times] == [rows[k][0] for k in starts]
    gaps = np.diff([rows[k][0] for k in starts])
    assert (gaps >= 24 * HOUR).all()
    every = plain_labels(rows, 24 * HOUR, 2.0)
    scored = [every[k] for k in starts if every[k] is not None]
    defined = [x for x in every if x is not None]
    base = sum(defined) / len(defined)
    lab = side.label
    assert (lab.events, lab.hits) == (len(scored), sum(scored))
    tail = sum(comb(len(scored), x) * base ** x * (1 - base) ** (len(scored) - x)
               for x in range(int(sum(scored)), len(scored) + 1))
    assert lab.p_value == pytest.approx(tail, rel=1e-6)
    assert res.inputs["episode_gap"] == "24h" and res.inputs["cooldown"] == "1h"
    assert any("at least 24h apart" in n for n in res.notes)


def test_track_record_is_point_in_time(month):
    """Issue 10.10: the record beside an event uses only earlier events whose 24h outcome was known by
    then, and a base rate over bars known by then (plain Python), with an exact p and a one-sided
    bound; wrecking every price after the event leaves it unchanged."""
    rows = raw_rows()
    bars = month
    change = np.r_[np.full(60, np.nan), (bars.close[60:] / bars.close[:-60] - 1) * 100]
    fired = {"distribution": change > 1.0}
    settings = StudySettings()
    rec = track_record(bars, fired, settings, HOUR)
    w = 24 * HOUR
    at = ns("2022-01-21 12:00")
    got = rec.at("distribution", at)
    starts, last = [], None
    for k in np.flatnonzero(fired["distribution"]).tolist():
        if last is None or rows[k][0] - rows[last][0] > HOUR:
            starts.append(k)
        last = k
    starts = plain_counted(rows, starts, w)
    known = [k for k in starts if rows[k][0] + w <= at]
    every = plain_labels(rows, w, 2.0)
    hits = [every[k] for k in known]
    base_bars = [every[k] for k in range(len(rows)) if rows[k][0] + w <= at and every[k] is not None]
    assert got.events == len(known) > 5 and got.hits == sum(hits)
    assert got.hit_rate == pytest.approx(sum(hits) / len(hits))
    assert got.base_rate == pytest.approx(sum(base_bars) / len(base_bars), rel=1e-12)
    n, k = len(hits), int(sum(hits))
    assert got.p_value == pytest.approx(sum(comb(n, x) * got.base_rate ** x * (1 - got.base_rate) ** (n - x)
                                            for x in range(k, n + 1)), rel=1e-9)
    assert got.ci_low is not None and got.ci_low < got.hit_rate
    assert got.describe().startswith(f"before this event: n={n}, hit ") and "CI ≥" in got.describe()
    # later events change nothing: the whole-month record differs, the point-in-time one does not
    later = rec.at("distribution", int(bars.ts[-1]))
    assert later.events > got.events
    cut = int(np.searchsorted(bars.ts, at))
    close = bars.close.copy()
    close[cut:] *= np.linspace(1.0, 0.6, len(close) - cut)
    from tapewatch.study import PriceBars

    wrecked = PriceBars(bars.ts, close, np.maximum(bars.high, close), np.minimum(bars.low, close), bars.step_ns)
    fired_w = {"distribution": np.r_[fired["distribution"][:cut], ~fired["distribution"][cut:]]}
    assert track_record(wrecked, fired_w, settings, HOUR).at("distribution", at) == got
    assert rec.at("distribution", ns("2022-01-01 06:00")).describe().startswith("before this event: no earlier")
