"""The pieces the demo relies on: config lookup, the config's interval, taker-split bars chosen over
finer bars without it, the holdout error, and the report's robust y-range — on the real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from tapewatch.commands.common import resolve_config
from tapewatch.config import ConfigError, config_from_dict
from tapewatch.errors import TapewatchError
from tapewatch.report import robust_range
from tapewatch.sample_data import read_sample_file, sample_dir
from tapewatch.store import Store
from tapewatch.study.split import holdout


def test_config_lookup_order(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    assert resolve_config(None, store) == (None, "defaults (tapewatch/default_config.toml)")
    (store / "tapewatch.toml").write_text('interval = "4h"\n')
    path, said = resolve_config(None, store)
    assert path == store / "tapewatch.toml" and "the store's config" in said
    given = tmp_path / "mine.toml"
    assert resolve_config(given, store) == (given, str(given))


def test_config_interval_is_checked() -> None:
    assert config_from_dict({"interval": "4h"}).interval == "4h"
    with pytest.raises(ConfigError, match="config key 'interval'"):
        config_from_dict({"interval": "4 hours"})


def test_4h_bars_come_from_the_klines_with_the_taker_split(tmp_path: Path) -> None:
    """Spot 5m (no split) and 4h klines (with it) for the same days: 4h bars keep the split and
    equal the klines; 1h bars (4h cannot make them) come from the 5m bars."""
    st = Store(tmp_path / "s")
    day = (pd.Timestamp("2025-03-20", tz="UTC"), pd.Timestamp("2025-03-22", tz="UTC"))
    for name in ("binance_spot_btcusdt_5m.parquet", "binance_spot_btcusdt_4h.parquet"):
        kind, df = read_sample_file(sample_dir() / name)
        st.write(kind, df.filter(pl.col("ts").is_between(day[0], day[1], closed="left")))
    k4 = pq.read_table(sample_dir() / "binance_spot_btcusdt_4h.parquet").to_pandas()
    k4 = k4[(k4["ts"] >= day[0]) & (k4["ts"] < day[1])].reset_index(drop=True)
    got = st.bars("binance", "spot", "BTC/USDT", "4h").to_pandas()
    assert len(got) == len(k4) == 12
    np.testing.assert_array_equal(got["taker_buy_volume"].to_numpy(), k4["taker_buy_volume"].to_numpy())
    np.testing.assert_array_equal(got["close"].to_numpy(), k4["close"].to_numpy())
    h1 = st.bars("binance", "spot", "BTC/USDT", "1h").to_pandas()
    k5 = pq.read_table(sample_dir() / "binance_spot_btcusdt_5m.parquet").to_pandas()
    k5 = k5[(k5["ts"] >= day[0]) & (k5["ts"] < day[1])]
    assert len(h1) == 48 and h1["taker_buy_volume"].isna().all()
    np.testing.assert_array_equal(h1["close"].to_numpy(), k5.groupby(k5["ts"].dt.floor("1h"))["close"].last().to_numpy())


def test_holdout_error_names_the_bars() -> None:
    ts = np.array([1_735_603_200_000_000_000], dtype=np.int64)  # one 4h bar, 2024-12-31 00:00 UTC
    with pytest.raises(TapewatchError, match=r"1 bars with a close, 2024-12-31 00:00:00 → 2024-12-31 04:00:00 UTC\) "
                                             r"leave 1 bars in-sample and 0 out-of-sample"):
        holdout(ts, 4 * 3_600_000_000_000, 0.3)


def test_robust_range_keeps_a_spike_from_flattening_the_premium() -> None:
    """The premium index at 4h on the real sample: a handful of spikes (e.g. 2025-10-10) sit far
    outside the 0.5–99.5 % quantiles; the range keeps those quantiles and the ±0.05 % lines."""
    cb = pq.read_table(sample_dir() / "coinbase_spot_btcusd_15m.parquet").to_pandas().set_index("ts")["close"]
    bn = pq.read_table(sample_dir() / "binance_spot_btcusdt_4h.parquet").to_pandas().set_index("ts")["close"]
    a = cb.groupby(cb.index.floor("4h")).last()
    idx = ((a - bn) / bn * 100).dropna().to_numpy()
    lo_q, hi_q = np.quantile(idx, [0.005, 0.995])
    span = robust_range([idx], (0.05, -0.05))
    assert span is not None
    lo, hi = min(lo_q, -0.05), max(hi_q, 0.05)
    pad = 0.1 * (hi - lo)
    assert span == pytest.approx((lo - pad, hi + pad))
    assert idx.max() > span[1]  # the spike is off the scale (and marked in the report)
    assert robust_range([np.array([0.0, 0.01, -0.01])], (0.05, -0.05)) is None  # nothing to clip


def test_backtest_says_in_one_line_what_the_default_config_lacks(tmp_path: Path) -> None:
    """The real files at their own resolutions (spot/perp 5m without a taker split, Coinbase 15m,
    daily OI), studied at the default 5m: one error naming each required factor and why."""
    from typer.testing import CliRunner

    from tapewatch.cli import app

    st = Store(tmp_path / "s")
    lo, hi = pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-11", tz="UTC")
    for p in sorted(sample_dir().glob("*.parquet")):
        kind, df = read_sample_file(p)
        st.write(kind, df.filter(pl.col("ts").is_between(lo, hi, closed="left")))
    res = CliRunner().invoke(app, ["backtest", "--symbol", "BTC", "--store", str(st.root)],
                             env={"COLUMNS": "1000", "TAPEWATCH_CONFIG": ""})
    assert res.exit_code == 1
    out = res.output
    assert out.count("error:") == 1, out
    err = " ".join(out[out.index("error:"):].split())  # one message (the terminal may wrap it)
    assert "could not tell on any of the 2,880 5m bars of BTC" in err
    assert "flow (spot bars: no taker buy/sell split in these bars" in err
    assert "premium (premium venue a bars: cannot build 5m bars: stored bars are 15m, none divides 5m" in err
    assert "oi (open interest on " in err
