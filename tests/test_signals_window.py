"""The rolling statistics of signals/window.py and the CVD carry of signals/resume.py, on real bars
(freqtrade's Binance BTC/USDT spot 5m, tests/data): the values are pandas' rolling sum / mean /
sample std of the same windows, and — what polars' running totals do not give — bit for bit the
same whatever bar the series starts at; CVD continued chunk by chunk is the single running sum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from conftest import SHARED
from tapewatch.signals.resume import continue_cumulative
from tapewatch.signals.window import Rolling

STEP = 300_000_000_000  # 5m


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    """Real 5m spot bars: ``ts`` (Int64 ns) and ``x`` = the bar's change (close - open, USDT) with
    every 50th bar and a run of 30 bars set to null (missing inputs), and volume."""
    df = pl.read_ipc(SHARED / "freqtrade-binance-btc-2025/spot/BTC_USDT-5m.feather").sort("date")
    df = df.select(pl.col("date").dt.epoch("ns").alias("ts"), (pl.col("close") - pl.col("open")).alias("x"),
                   pl.col("volume"))
    # the file is the union of a few slices: its longest run of consecutive bars
    run = (pl.col("ts").diff() != STEP).fill_null(True).cum_sum()
    df = df.with_columns(run.alias("run"))
    df = df.filter(pl.col("run") == df["run"].mode()[0]).drop("run")
    assert df.height > 2000 and df["ts"].diff().drop_nulls().unique().to_list() == [STEP]
    i = pl.int_range(pl.len())
    return df.with_columns(pl.when((i % 50 == 3) | ((i >= 400) & (i < 430))).then(None).otherwise(pl.col("x")).alias("x"))


@pytest.mark.parametrize(("w", "min_samples"), [(1, 1), (3, 3), (12, 1), (12, 12), (288, 100)])
def test_rolling_is_pandas_rolling(bars: pl.DataFrame, w: int, min_samples: int) -> None:
    x = pd.Series(bars["x"].to_numpy())  # nulls → NaN, which pandas leaves out of the window
    r = Rolling(bars, "x", w, STEP)
    want = {
        "sum": x.rolling(w, min_periods=min_samples).sum(),
        "mean": x.rolling(w, min_periods=min_samples).mean(),
        "std": x.rolling(w, min_periods=min(max(min_samples, 2), w)).std(),  # w = 1: all NaN
    }
    for name, ref in want.items():
        got = getattr(r, name)(min_samples).to_numpy()
        assert np.array_equal(np.isnan(got), np.isnan(ref.to_numpy())), name
        ok = ~np.isnan(got)
        assert ok.sum() > 1000 or (name == "std" and w == 1 and not ok.any())  # one value has no sample std
        np.testing.assert_allclose(got[ok], ref.to_numpy()[ok], rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("w", [2, 12, 288])
def test_rolling_is_the_same_from_any_first_bar(bars: pl.DataFrame, w: int) -> None:
    whole = Rolling(bars, "x", w, STEP)
    for first in (1, 5, 289, 1000):
        part = Rolling(bars.slice(first), "x", w, STEP)
        for name in ("sum", "mean", "std"):
            a = getattr(whole, name)(1).to_numpy()[first + w - 1:]
            b = getattr(part, name)(1).to_numpy()[w - 1:]
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            assert same.all(), (name, first, np.flatnonzero(~same)[:5])
    # polars' own rolling sum does not have this property on these bars (why window.py exists)
    a = bars["volume"].rolling_sum(w).to_numpy()[1000 + w - 1:]
    b = bars["volume"].slice(1000).rolling_sum(w).to_numpy()[w - 1:]
    assert w == 2 or not np.array_equal(a, b)


def test_rolling_needs_one_row_per_bar(bars: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="contiguous"):
        Rolling(bars.filter(pl.col("ts") != bars["ts"][10]), "x", 3, STEP)


def test_cvd_continued_chunk_by_chunk_is_the_running_sum(bars: pl.DataFrame) -> None:
    frame = bars.select("ts", pl.col("x").alias("spot_net_taker"), pl.col("volume").alias("perp_net_taker"))
    whole = frame.with_columns(pl.col("spot_net_taker").cum_sum().alias("spot_cvd"),
                               pl.col("perp_net_taker").cum_sum().alias("perp_cvd"))
    totals: dict[str, float | None] = {}
    parts = []
    for lo, hi in ((0, 2), (2, 3), (3, 401), (401, 420), (420, frame.height)):  # the chunk 401-420 is all null
        part, totals = continue_cumulative(frame.slice(lo, hi - lo), totals)
        parts.append(part)
    got = pl.concat(parts)
    assert got["spot_cvd"].equals(whole["spot_cvd"]) and got["perp_cvd"].equals(whole["perp_cvd"])
    # by hand: the last value is the plain sum of the present values, in order
    total = 0.0
    for v in frame["spot_net_taker"].to_list():
        total += 0.0 if v is None else v
    assert totals["spot_cvd"] == total
