"""The statistics: a planted signal is found, random signals on real returns are not, BH holds its
false discovery rate, the Reality Check / SPA see through a search, splits do not peek."""

from __future__ import annotations

import numpy as np
import pytest
from study_data import HOUR, MIN, month_bars, to_bars, window

from tapewatch.study import StudySettings, collapse, compute_forward, run_study, study_events
from tapewatch.study.forward import PriceBars
from tapewatch.study.multiple import _SPA, benjamini_hochberg, data_snooping, long_run_sd
from tapewatch.study.run import SIDES, side_columns
from tapewatch.study.stats import Sample, bootstrap, estimate


def five_minute(bars: PriceBars) -> PriceBars:
    """The real 1m month as 5m bars (fewer bars: faster repeated bootstraps)."""
    n = len(bars) // 5 * 5
    shape = (n // 5, 5)
    return PriceBars(bars.ts[:n:5], bars.close[:n].reshape(shape)[:, -1], bars.high[:n].reshape(shape).max(1),
                     bars.low[:n].reshape(shape).min(1), 5 * MIN)


@pytest.fixture(scope="module")
def month() -> PriceBars:
    return month_bars()


@pytest.fixture(scope="module")
def month5(month: PriceBars) -> PriceBars:
    return five_minute(month)


def planted(seed: int, drop: float = 0.03) -> tuple[PriceBars, np.ndarray]:
    """Ten real days of 1m bars; after each of 25 signal bars price falls ``drop`` over the next 2 h."""
    rows = window("2022-01-05 00:00", "2022-01-15 00:00")
    bars = to_bars(rows)
    rng = np.random.default_rng(seed)
    n = len(bars)
    fired = np.zeros(n, dtype=bool)
    starts = np.sort(rng.choice(np.arange(100, n - 1700, 400), size=25, replace=False))
    fired[starts] = True
    factor = np.ones(n)
    for s in starts:  # a ramp down over 120 bars after the signal bar, then the lower level persists
        ramp = np.ones(n)
        ramp[s + 1:s + 121] = 1 - drop * np.arange(1, 121) / 120
        ramp[s + 121:] = 1 - drop
        factor *= ramp
    return PriceBars(bars.ts, bars.close * factor, bars.high * factor, bars.low * factor, bars.step_ns), fired


def test_planted_signal_gets_a_small_p_value():
    bars, fired = planted(seed=11)
    settings = StudySettings(horizons=("1h", "4h"), move_pct=2.0, move_window="4h", split="none", reps=400)
    res = study_events(bars, {"distribution": fired}, settings, HOUR, seed=1).result
    label, r1, r4 = res.periods[0].sides[0].outcomes
    assert label.events == 25 and label.hits >= 23 and label.base < 0.6
    assert label.p_value < 0.01 and r4.p_value < 0.01  # hit rate up, 4h return down
    assert label.ci_low > label.base
    assert "significant at the 5 % level" in res.verdict[0] and "not significant" not in res.verdict[0]
    # the same signal bars on the unmodified prices: nothing to find
    raw = to_bars(window("2022-01-05 00:00", "2022-01-15 00:00"))
    null = study_events(raw, {"distribution": fired}, settings, HOUR, seed=1).result.periods[0].sides[0].label
    assert null.p_value > 0.05


def test_random_signals_on_real_returns_give_uniform_p_values(month):
    """300 random signal series on the real 1m month: p-values of the 24h pullback label and of the
    24h return spread evenly over [0, 1]."""
    fw = compute_forward(month, (4 * HOUR, 24 * HOUR), 24 * HOUR, 2.0)
    rng = np.random.default_rng(2024)
    sets = [collapse(month.ts, rng.random(len(month)) < 0.0015, HOUR) for _ in range(300)]
    ps = []
    for side in SIDES:
        cols = side_columns(fw, side)
        sample = Sample(cols.values, cols.signs)
        est = estimate(sample, sets)
        ps.append(bootstrap(sample, sets, est, reps=300, seed=5).p[:, [0, 2]])
    p = np.concatenate(ps).ravel()
    assert np.isfinite(p).all() and len(p) == 1200
    deciles = np.histogram(p, bins=10, range=(0, 1))[0] / len(p)
    assert deciles.min() > 0.05 and deciles.max() < 0.16, deciles
    assert 0.025 < np.mean(p < 0.05) < 0.08
    assert 0.45 < p.mean() < 0.55


def test_benjamini_hochberg_keeps_the_false_discovery_rate(month5):
    """Over 200 seeds: 16 random signal series and 4 informative ones (a firing is three times as
    likely on a bar followed by a >= 1 % pullback within 4h) on the real returns (5m bars). BH at
    q = 0.1 finds the informative ones and its false discovery proportion averages at most the
    nominal level (+ 2 Monte Carlo standard errors); under the complete null (the 16 random series
    alone) it rejects anything in about q of the seeds."""
    bars = month5
    fw = compute_forward(bars, (4 * HOUR,), 4 * HOUR, 1.0)
    cols = side_columns(fw, SIDES[0])
    sample = Sample(cols.values[:, :1], (1,))
    label = cols.values[:, 0]
    alpha, seeds = 0.10, 200
    fdp, power, any_null = [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        null_sets = [collapse(bars.ts, rng.random(len(bars)) < 0.006, HOUR) for _ in range(16)]
        u = rng.random((4, len(bars)))
        true_sets = [collapse(bars.ts, u[k] < np.where(label == 1, 0.012, 0.004), HOUR) for k in range(4)]
        sets = null_sets + true_sets
        p = bootstrap(sample, sets, estimate(sample, sets), reps=200, seed=seed + 1000).p[:, 0]
        rej = benjamini_hochberg(p, alpha).rejected
        fdp.append(rej[:16].sum() / max(1, rej.sum()))
        power.append(rej[16:].mean())
        any_null.append(benjamini_hochberg(p[:16], alpha).rejected.any())
    se = np.std(fdp) / np.sqrt(seeds)
    print(f"FDR {np.mean(fdp):.3f} (se {se:.3f}), power {np.mean(power):.2f}, complete-null FWER {np.mean(any_null):.3f}")
    assert np.mean(fdp) <= alpha + 2 * se, (np.mean(fdp), se)
    assert np.mean(power) > 0.8, np.mean(power)
    assert np.mean(any_null) <= alpha + 2 * np.sqrt(alpha * (1 - alpha) / seeds), np.mean(any_null)


def test_reality_check_and_spa_see_through_a_search(month5):
    """Best of 40 random signal sets: a nominally small p, but the Reality Check / SPA do not reject;
    add one planted set and the SPA rejects while pointing at it."""
    bars = month5
    fw = compute_forward(bars, (4 * HOUR,), 4 * HOUR, 1.0)
    y = fw.hit(-1)
    rng = np.random.default_rng(9)
    sets = [collapse(bars.ts, rng.random(len(bars)) < 0.004, HOUR) for _ in range(40)]
    sample = Sample(y[:, None], (1,))
    est = estimate(sample, sets)
    p = bootstrap(sample, sets, est, reps=300, seed=1).p[:, 0]
    snoop = data_snooping(y, 1, sets, bucket_bars=48, block_bars=100, reps=500, seed=2)
    assert snoop is not None and snoop.models == 40
    assert p.min() < 0.2 and snoop.spa_p > 0.1 and snoop.reality_check_p > 0.1
    good = collapse(bars.ts, rng.random(len(bars)) < np.where(y == 1, 0.02, 0.002), HOUR)
    snoop2 = data_snooping(y, 1, [*sets, good], bucket_bars=48, block_bars=100, reps=500, seed=2)
    assert snoop2.best == 40 and snoop2.spa_p < 0.05


def test_holdout_never_looks_at_out_of_sample_prices(month5):
    """Wrecking every price after the split changes nothing in-sample (labels near the split end
    are embargoed); the out-of-sample part does change."""
    bars = month5
    rng = np.random.default_rng(4)
    fired = {"distribution": rng.random(len(bars)) < 0.01, "accumulation": rng.random(len(bars)) < 0.01}
    settings = StudySettings(reps=50, holdout=0.3)
    a = study_events(bars, fired, settings, HOUR, seed=1).result
    start_ns = int(np.datetime64(a.periods[1].start.replace("Z", "")).astype("datetime64[ns]").astype(np.int64))
    k = int(np.searchsorted(bars.ts, start_ns))
    mangled = bars.close.copy()
    mangled[k:] *= np.linspace(0.5, 1.5, len(bars) - k)
    wrecked = PriceBars(bars.ts, mangled, np.maximum(bars.high, mangled), np.minimum(bars.low, mangled), bars.step_ns)
    b = study_events(wrecked, fired, settings, HOUR, seed=1).result
    assert a.periods[0] == b.periods[0]
    assert a.periods[1] != b.periods[1]


def test_sweep_holdout_and_walk_forward(month5):
    """A small grid end to end: BH and SPA per side, the best set scored out of sample, folds."""
    bars = month5
    change = {w: np.r_[np.full(w, np.nan), (bars.close[w:] / bars.close[:-w] - 1) * 100] for w in (6, 12)}

    def event_fn(p):
        ch = change[p["w"]]
        return {"distribution": ch > p["x"], "accumulation": ch < -p["x"]}

    grid = [{"w": w, "x": x} for w in (6, 12) for x in (0.5, 1.0, 1.5)]
    for split in ("holdout", "walk_forward"):
        s = StudySettings(reps=100, split=split, folds=3, horizons=("1h", "4h"), move_window="4h", move_pct=1.0)
        res = run_study(bars, event_fn, s, HOUR, grid, seed=3).result
        assert [p.role for p in res.periods] == ["in-sample", "out-of-sample"]
        assert len(res.sweeps) == 2 and all(len(sw.rows) == 6 for sw in res.sweeps)
        for sw in res.sweeps:
            assert sw.reality_check_p is not None and sw.spa_p is not None and sw.tested <= 6
            assert all((r.q_value is None) == (r.p_value is None) for r in sw.rows)
            assert all(r.q_value is None or r.q_value >= r.p_value - 1e-12 for r in sw.rows)
        if split == "walk_forward":
            assert len(res.periods[1].folds) == 2 * 3
        assert any("parameter sets" in v for v in res.verdict)


def test_fft_variances_equal_arch_spa():
    """The FFT long-run variances used to speed up arch's SPA equal arch's own loop, and so do the
    p-values."""
    from arch.bootstrap import SPA

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 6)).cumsum(axis=0) * 0.1 + rng.standard_normal((300, 6))
    slow, fast = SPA(np.zeros(300), -x, block_size=9, seed=4), _SPA(np.zeros(300), -x, block_size=9, seed=4)
    slow.compute()
    fast.compute()
    assert np.allclose(slow._loss_diff_var, fast._loss_diff_var, rtol=1e-10, atol=1e-12)
    assert dict(slow.pvalues) == dict(fast.pvalues)
    assert np.allclose(long_run_sd(x, 9) ** 2, slow._loss_diff_var)
