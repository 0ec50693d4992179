"""Benchmark: an event-study sweep of 1,000 parameter sets over one year of 1-minute bars.

The year is built from the real BTC perpetual month in ../shared/data (45,031 one-minute bars,
2021-12-31 → 2022-02-01) by block-resampling its bars: whole days of 1-minute returns, with each
bar's high and low kept relative to its previous close, drawn with replacement (seeded) and chained
into 525,600 bars. The detector is a stand-in with the detector's shape — "price up more than X %
over W while volume is Z standard deviations above its day" for distribution, the mirror for
accumulation — whose factors are computed once; a parameter set only compares them with its
thresholds. The study runs with 1,000 bootstrap draws, the in-sample sweep with BH and Reality
Check / SPA, and the untouched final 30 %.

Run: .venv/bin/python benchmarks/bench_study.py [--sets 1000] [--reps 1000] [--days 365]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import time

import numpy as np
import polars as pl

from tapewatch.study import PriceBars, StudySettings, run_study

from shared_data import shared_file

PERP = "nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz"
MINUTE = 60_000_000_000
DAY = 1440


def real_month() -> pl.DataFrame:
    """The real perpetual month: ts (ns), open, high, low, close, volume (quote units)."""
    with gzip.open(shared_file(PERP), "rb") as fh:
        df = pl.read_csv(fh.read(), try_parse_dates=True)
    return df.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC").dt.epoch("ns").alias("ts")).sort("ts")


def resampled_year(days: int, seed: int) -> tuple[PriceBars, np.ndarray]:
    """``days`` of 1-minute bars made of whole real days drawn with replacement (and their volume)."""
    m = real_month()
    close = m.get_column("close").to_numpy()
    prev = np.concatenate([[m.get_column("open").to_numpy()[0]], close[:-1]])
    r_close = close / prev
    r_high = m.get_column("high").to_numpy() / prev
    r_low = m.get_column("low").to_numpy() / prev
    vol = m.get_column("volume").to_numpy()
    full_days = len(close) // DAY
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, full_days, size=days) * DAY
    idx = (starts[:, None] + np.arange(DAY)[None, :]).ravel()
    c = 40_000.0 * np.cumprod(r_close[idx])
    p = np.concatenate([[40_000.0], c[:-1]])
    ts = np.int64(1_640_995_200_000_000_000) + np.arange(len(idx), dtype=np.int64) * MINUTE
    return PriceBars(ts, c, np.maximum(p * r_high[idx], c), np.minimum(p * r_low[idx], c), MINUTE), vol[idx]


def stand_in_detector(bars: PriceBars, volume: np.ndarray, sets: int):
    """Factors once; a grid of ``sets`` parameter sets; an event function that only thresholds."""
    windows = [15, 30, 60, 120, 240]
    change = {}
    for w in windows:
        c = np.full(len(bars), np.nan)
        c[w:] = (bars.close[w:] / bars.close[:-w] - 1.0) * 100.0
        change[w] = c
    v = pl.Series(np.log1p(volume))
    vz = ((v - v.rolling_mean(DAY)) / v.rolling_std(DAY)).to_numpy()
    rally = np.round(np.linspace(0.3, 3.0, 20), 3).tolist()
    zs = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0]
    grid = [{"window": w, "rally_pct": r, "volume_z": z} for w, r, z in itertools.product(windows, rally, zs)][:sets]

    def event_fn(params: dict) -> dict[str, np.ndarray]:
        ch = change[params["window"]]
        loud = vz > params["volume_z"]
        return {"distribution": (ch > params["rally_pct"]) & loud, "accumulation": (ch < -params["rally_pct"]) & loud}

    return event_fn, grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    t0 = time.perf_counter()
    bars, volume = resampled_year(args.days, args.seed)
    event_fn, grid = stand_in_detector(bars, volume, args.sets)
    load_before = os.getloadavg()[0]
    t1, c1 = time.perf_counter(), time.process_time()
    settings = StudySettings(reps=args.reps, seed=args.seed)
    study = run_study(bars, event_fn, settings, cooldown=60 * MINUTE, grid=grid)
    t2, c2 = time.perf_counter(), time.process_time()
    res = study.result
    print(f"machine: {os.cpu_count()} CPUs; load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"bars: {len(bars):,} 1m bars ({args.days} days resampled from the real BTC perp month)")
    print(f"parameter sets: {len(grid):,} × 2 sides; bootstrap draws: {args.reps:,}; "
          f"block length {res.periods[0].block_bars} bars")
    for s in res.sweeps:
        print(f"  {s.side}: {s.tested} sets tested, BH keeps {s.bh_significant}, "
              f"Reality Check p = {s.reality_check_p}, SPA p = {s.spa_p}")
    print(f"events counted at least {res.inputs['episode_gap']} apart (no shared outcome bars); significance: "
          "Reality Check and SPA both p <= 0.05")
    print(f"data + factors: {t1 - t0:.1f} s (not part of the study)")
    print(f"event study wall time: {t2 - t1:.1f} s  (goal: under 60 s); CPU time of this process: {c2 - c1:.1f} s")
    print(res.verdict[0])


if __name__ == "__main__":
    main()
