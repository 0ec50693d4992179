"""Build the sample bundled with the package (src/tapewatch/sample/*.parquet) from ../shared/data.

Usage (from the repository root): ``.venv/bin/python scripts/build_sample.py [DATA_DIR]``
(default ``../shared/data``). Reproducible: the same input files give byte-identical output.

Every file holds records of one kind in tapewatch's own schema (tapewatch.schemas), sorted by
``ts``, zstd-compressed, float columns copied exactly (no rounding, no resampling); the kind is
in the Parquet metadata key ``tapewatch_kind``. The window is where the flow, premium, funding
and OI inputs overlap: 2024-12-31 00:00 UTC up to the close of the last 4h bar with a taker split
(2026-01-12 16:00 UTC). See src/tapewatch/sample/PROVENANCE.md.
"""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import polars as pl
import pyarrow.feather as feather
import pyarrow.parquet as pq

from tapewatch.sample_data import KIND_KEY, SAMPLE_END, SAMPLE_START
from tapewatch.schemas import KINDS, conform

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tapewatch" / "sample"
NS_PER_DAY = 86_400_000_000_000


def in_window(df: pl.DataFrame) -> pl.DataFrame:
    """Rows with ``SAMPLE_START <= ts < SAMPLE_END`` (``ts`` Datetime ns UTC)."""
    ts = pl.col("ts").dt.epoch("ns")
    return df.filter((ts >= SAMPLE_START) & (ts < SAMPLE_END))


def feather_bars(path: Path, exchange: str, market: str, symbol: str, interval: str) -> pl.DataFrame:
    """freqtrade Feather OHLCV (``date`` = bar open, UTC) as bar records; no taker split, no quote volume."""
    df = pl.from_arrow(feather.read_table(path))
    return conform("bar", df.select(
        pl.lit(exchange).alias("exchange"), pl.lit(market).alias("market"), pl.lit(symbol).alias("symbol"),
        pl.col("date").cast(pl.Datetime("ns", "UTC")).alias("ts"), pl.lit(interval).alias("interval"),
        "open", "high", "low", "close", "volume",
    ))


def kaggle_4h(path: Path) -> pl.DataFrame:
    """Kaggle Binance spot BTCUSDT 4h klines (with the taker-buy split) as bar records.

    Rows without an open time (the file's empty last row) are dropped; the window excludes the
    bogus 2018 duplicates.
    """
    text = gzip.decompress(path.read_bytes()).decode()
    df = pl.read_csv(io.StringIO(text), infer_schema=False).filter(pl.col("Open time").str.strip_chars() != "")
    return conform("bar", df.select(
        pl.lit("binance").alias("exchange"), pl.lit("spot").alias("market"), pl.lit("BTC/USDT").alias("symbol"),
        pl.col("Open time").str.strip_chars().str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="ns", time_zone="UTC")
        .alias("ts"),
        pl.lit("4h").alias("interval"),
        pl.col("Open").cast(pl.Float64).alias("open"), pl.col("High").cast(pl.Float64).alias("high"),
        pl.col("Low").cast(pl.Float64).alias("low"), pl.col("Close").cast(pl.Float64).alias("close"),
        pl.col("Volume").cast(pl.Float64).alias("volume"),
        pl.col("Taker buy base asset volume").cast(pl.Float64).alias("taker_buy_volume"),
        pl.col("Quote asset volume").cast(pl.Float64).alias("quote_volume"),
        pl.col("Number of trades").cast(pl.Int64).alias("trades"),
    ))


def funding(path: Path) -> pl.DataFrame:
    """freqtrade funding-rate Feather (the rate is in ``open``, stamped at the funding time) as funding records."""
    df = pl.from_arrow(feather.read_table(path))
    return conform("funding", df.select(
        pl.lit("binance").alias("exchange"), pl.lit("perp").alias("market"), pl.lit("BTC/USDT").alias("symbol"),
        pl.col("date").cast(pl.Datetime("ns", "UTC")).alias("ts"), pl.col("open").alias("rate"),
    ))


def daily_oi(path: Path) -> pl.DataFrame:
    """Daily means of Binance USD-M BTCUSDT open interest as open_interest records, each stamped at
    the END of the day it averages (day + 1 at 00:00 UTC): the mean is only known then."""
    df = pl.read_csv(path, infer_schema=False)
    return conform("open_interest", df.select(
        pl.lit("binance").alias("exchange"), pl.lit("perp").alias("market"), pl.lit("BTC/USDT").alias("symbol"),
        (pl.col("date").str.to_datetime("%Y-%m-%d", time_unit="ns", time_zone="UTC") + pl.duration(days=1)).alias("ts"),
        pl.col("oi").cast(pl.Float64), pl.col("oi_value").cast(pl.Float64),
    ))


def write(kind: str, df: pl.DataFrame, name: str) -> Path:
    """Write one kind's records, sorted by ts, zstd, with the kind in the file metadata."""
    table = in_window(df).sort("ts").to_arrow().cast(KINDS[kind].schema)
    table = table.replace_schema_metadata({KIND_KEY: kind})
    out = OUT / name
    pq.write_table(table, out, compression="zstd", compression_level=19, write_statistics=False)
    print(f"{out.relative_to(ROOT)}: {table.num_rows:,} {kind} rows, {out.stat().st_size / 1e6:.2f} MB")
    return out


def build(data: Path) -> None:
    """Write every sample file from the real files under ``data`` (../shared/data layout)."""
    fq = data / "freqtrade-binance-btc-2025"
    write("bar", feather_bars(fq / "spot" / "BTC_USDT-5m.feather", "binance", "spot", "BTC/USDT", "5m"),
          "binance_spot_btcusdt_5m.parquet")
    write("bar", feather_bars(fq / "futures" / "BTC_USDT_USDT-5m-futures.feather", "binance", "perp", "BTC/USDT", "5m"),
          "binance_perp_btcusdt_5m.parquet")
    write("funding", funding(fq / "futures" / "BTC_USDT_USDT-1h-funding_rate.feather"),
          "binance_perp_btcusdt_funding.parquet")
    write("bar", kaggle_4h(data / "kaggle-binance-btcusdt-4h-1d" / "btc_4h_data_2018_to_2025.csv.gz"),
          "binance_spot_btcusdt_4h.parquet")
    cb = data / "freqtrade-coinbase-btcusd-2024-2026" / "BTC_USD-15m.feather"
    write("bar", feather_bars(cb, "coinbase", "spot", "BTC/USD", "15m"), "coinbase_spot_btcusd_15m.parquet")
    write("open_interest", daily_oi(data / "binance-metrics-daily-2021-2026" / "BTC_USDT_metrics_1d.csv.gz"),
          "binance_perp_btcusdt_oi_1d.parquet")


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data")
