"""The statistics: a planted signal is found, random signals on real returns are not, BH holds its
false discovery rate, the Reality Check / SPA see through a search, splits do not peek."""

from __future__ import annotations

import numpy as np
import pytest
from study_data import HOUR, MIN, month_bars, to_bars, window

from tapewatch.study import StudySettings, collapse, compute_forward, run_study, study_events
from tapewatch.study.forward import PriceBars
from tapewatch.study.events import thin
from tapewatch.study.multiple import benjamini_hochberg, data_snooping, gains_by_bucket, long_run_sd, spa_test
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


def spaced_sets(rng: np.random.Generator, usable: int, n: int, gap: int, runs: int) -> list[np.ndarray]:
    """``runs`` shuffled signal times: ``n`` positions in ``[0, usable)`` at least ``gap`` apart, uniform
    over all such placements (sorted draws without replacement, then spread by ``gap``)."""
    return [np.sort(rng.choice(usable - (n - 1) * gap, n, replace=False)) + gap * np.arange(n) for _ in range(runs)]


def test_p_values_are_calibrated_for_few_and_many_events(month):
    """Issue 10.8: no effect (1,000 shuffled signal times on the real 1m month, events a full label
    window apart) → p < 0.05 in at most about 5 % of the runs at n = 1, 5, 20 and 100 events, for the
    exact label test and the rotation test of the return; near 5 % where the test can get there. A
    single hit can never give a label p below the base rate (the old bootstrap said 0.003)."""
    fw = compute_forward(month, (HOUR,), HOUR, 0.5)
    cols = side_columns(fw, SIDES[0])
    sample = Sample(cols.values, cols.signs)
    usable = int(np.isfinite(cols.values).all(axis=1).sum())
    base = float(np.nanmean(cols.values[:, 0]))
    rng = np.random.default_rng(7)
    rates = {}
    for n in (1, 5, 20, 100):
        sets = spaced_sets(rng, usable, n, 60, 1000)
        assert all(np.array_equal(thin(month.ts, s, HOUR), s) for s in sets[:20])  # already counted episodes
        p = bootstrap(sample, sets, estimate(sample, sets), reps=99, seed=3).p
        rates[n] = (p < 0.05).mean(axis=0)
        if n == 1:
            assert p[:, 0].min() >= base - 1e-12
    print(rates)
    for n, (label, ret) in rates.items():
        assert label <= 0.065 and 0.03 <= ret <= 0.07, (n, label, ret)
    assert rates[20][0] >= 0.02 and rates[100][0] >= 0.03


def test_exact_p_values_equal_hand_computed_binomial(month):
    """The label p of one and of six real events is the exact binomial tail against the base rate
    (plain Python), and the one-sided bound excludes the base exactly when p <= 1 - confidence."""
    from math import comb

    fw = compute_forward(month, (4 * HOUR, 24 * HOUR), 24 * HOUR, 2.0)
    cols = side_columns(fw, SIDES[0])
    sample = Sample(cols.values, cols.signs)
    labels = cols.values[:, 0]
    defined = [x for x in labels.tolist() if x == x]
    base = sum(defined) / len(defined)
    rng = np.random.default_rng(1)
    usable = int(np.isfinite(cols.values).all(axis=1).sum())
    sets = [np.array([month.ts.searchsorted(1_641_384_000_000_000_000)])]  # 2022-01-05 12:00
    sets += spaced_sets(rng, usable, 6, 1440, 1) + spaced_sets(rng, usable, 20, 1440, 300)
    hit_bars = np.flatnonzero(labels == 1)
    for _ in range(60):  # informative sets: real hit bars a day apart, some diluted by random bars
        pick = np.sort(rng.choice(np.r_[hit_bars, rng.integers(0, usable, rng.integers(0, 4000))], 40, replace=False))
        sets.append(thin(month.ts, pick, 24 * HOUR))
    res = bootstrap(sample, sets, estimate(sample, sets), reps=199, seed=2)
    for i in (0, 1):
        hits, n = int(sum(labels[sets[i]])), len(sets[i])
        tail = sum(comb(n, x) * base ** x * (1 - base) ** (n - x) for x in range(hits, n + 1))
        assert res.p[i, 0] == pytest.approx(tail, rel=1e-9), (i, hits, n)
    assert res.p[0, 0] >= base - 1e-12  # one event: never below the base rate (0.57 here)
    alpha = 1 - res.confidence
    for j, sign in enumerate(cols.signs):
        bound = res.ci_low[:, j] if sign > 0 else res.ci_high[:, j]
        other = res.ci_high[:, j] if sign > 0 else res.ci_low[:, j]
        assert np.isnan(other).all()  # one-sided, like the p-value
        base_j = np.nanmean(cols.values[:, j])
        ok = np.isfinite(bound)
        assert ok[2:].all()
        excludes = sign * (bound[ok] - base_j) > 0
        assert np.array_equal(excludes, res.p[ok, j] <= alpha + 1e-12), j
        assert 0 < excludes.sum() < ok.sum(), j  # the bound decides both ways on these sets


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


def test_long_run_sd_equals_the_plain_kernel_sum(month5):
    """The FFT long-run standard deviation equals the Politis–Romano kernel sum written out."""
    fw = compute_forward(month5, (4 * HOUR,), 4 * HOUR, 1.0)
    y = np.nan_to_num(fw.hit(-1)[:600])
    x = np.column_stack([y, np.nan_to_num(fw.returns[:600, 0])])
    t, block = len(x), 9
    for j in range(2):
        c = [v - sum(x[:, j]) / t for v in x[:, j].tolist()]
        var = sum(v * v for v in c) / t
        for i in range(1, t):
            k = (1 - i / t) * (1 - 1 / block) ** i + (i / t) * (1 - 1 / block) ** (t - i)
            var += 2 * k * sum(c[a] * c[a + i] for a in range(t - i)) / t
        assert long_run_sd(x, block)[j] == pytest.approx(max(var, 0.0) ** 0.5, rel=1e-9)


def test_spa_equals_arch_on_a_known_case(month5):
    """Issue 10.11: our Reality Check and studentised SPA against an independent implementation,
    ``arch.bootstrap.SPA`` (public API), on real gains: its "upper" p-value on the raw gains is White's
    Reality Check, and on gains divided by their long-run standard deviation its three p-values are
    Hansen's studentised SPA (the best mean is positive here, so the max(0, ·) floor does not bind)."""
    from arch.bootstrap import SPA

    bars = month5
    y = compute_forward(bars, (4 * HOUR,), 4 * HOUR, 1.0).hit(-1)
    rng = np.random.default_rng(9)
    sets = [collapse(bars.ts, rng.random(len(bars)) < 0.004, HOUR) for _ in range(12)]
    g, _ = gains_by_bucket(y, 1, sets, 48)
    assert g.mean(axis=0).max() > 0
    ours = spa_test(g, 3, 500, 11)
    raw = SPA(np.zeros(len(g)), -g, block_size=3, reps=500, seed=11)
    raw.compute()
    assert ours.reality_check == pytest.approx(float(raw.pvalues["upper"]), abs=1e-12)
    scaled = SPA(np.zeros(len(g)), -g / long_run_sd(g, 3), block_size=3, reps=500, seed=11)
    scaled.compute()
    for key in ("lower", "consistent", "upper"):
        assert getattr(ours, key) == pytest.approx(float(scaled.pvalues[key]), abs=1e-12), key
    assert 0 < ours.consistent < 1
