"""Trades → 1-minute bars: tapewatch.bars.build_bars against pandas, raw DuckDB SQL and raw Polars.

    python benchmarks/bench_bars.py [--rows N] [--repeat R] [--interval 1m] [--via-store] [--candidate FILE.py]

The input is the real Binance spot BTCUSDT trade table (``shared/data/nautilus-samples/binance/
btcusdt-trades.parquet``, 2,001 trades), read through tapewatch's own importer and repeated with
shifted timestamps (each copy starts one trade spacing after the previous copy ends) and shifted
trade ids until it has N rows (default 10,000,000). Every engine gets the SAME in-memory data,
built once before timing: a Polars frame shaped as ``Store.read("trade")`` returns it (ts is
Datetime(ns, UTC)), its Arrow table for DuckDB (zero-copy), and a pandas frame for pandas.
Column ``i`` (row number) lets SQL take the first / last price of a bar in row order.
``--via-store`` writes the trades to a temporary tapewatch store and reads them back first, so
the frame is exactly what ``Store.read`` hands to build_bars (Arrow batches from DuckDB: many
chunks), instead of one contiguous frame.

Every engine computes the same bar: open, high, low, close, volume (base), taker buy volume,
quote volume and trade count per (exchange, market, symbol, bar). pandas is written the usual way
for one symbol: floor the timestamps, ``groupby(...).agg`` with named aggregations; a second pandas
row groups by the key columns too, as build_bars and the raw queries do (several markets in one
frame). The outputs are checked to agree (OHLC and counts exactly, sums to 1e-9 relative) before
the table is printed. Each engine is run ``--repeat`` times; the best time is reported.

``--candidate FILE.py`` also times ``build_bars`` from that file on the same data (to measure a
proposed implementation before it replaces tapewatch.bars.build_bars).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from tapewatch.bars import build_bars
from tapewatch.schemas import conform
from tapewatch.sources import detect
from tapewatch.sources.base import Hints, RawFile
from tapewatch.store import Store
from tapewatch.timeutil import interval_ns

from shared_data import shared_file

SAMPLE = "nautilus-samples/binance/btcusdt-trades.parquet"
OUT = ["ts", "open", "high", "low", "close", "volume", "taker_buy_volume", "quote_volume", "trades"]


def through_store(df: pl.DataFrame) -> pl.DataFrame:
    """The trades as Store.read returns them after a write to a temporary store."""
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        store.write("trade", df.drop("i"))
        back = store.read("trade", "binance", "spot", "BTC/USDT")
    return back.with_columns(pl.Series("i", np.arange(back.height, dtype=np.int64)))


def make_trades(rows: int) -> pl.DataFrame:
    """The real trades, normalized by tapewatch, repeated to ``rows`` rows (ts UTC ns, sorted)."""
    raw = RawFile(shared_file(SAMPLE))
    (batch,) = detect(raw).parse(raw, Hints())
    base = conform("trade", batch.rows)
    ts = base["ts"].dt.epoch("ns").to_numpy()
    ids = base["trade_id"].cast(pl.Int64).to_numpy()
    span = int(ts[-1] - ts[0] + np.median(np.diff(ts)))
    copies = -(-rows // base.height)
    k = np.repeat(np.arange(copies, dtype=np.int64), base.height)[:rows]
    idx = np.tile(np.arange(base.height), copies)[:rows]
    big = base[idx]
    return big.with_columns(
        pl.Series("ts", ts[idx] + k * span).cast(pl.Datetime("ns", "UTC")),
        pl.Series("trade_id", ids[idx] + k * base.height).cast(pl.String),
        pl.Series("i", np.arange(rows, dtype=np.int64)),
    )


# -- the engines -------------------------------------------------------------------------------
def run_tapewatch(df: pl.DataFrame, interval: str) -> pl.DataFrame:
    return build_bars(df, interval)


def run_polars(df: pl.DataFrame, interval: str) -> pl.DataFrame:
    keys = ["exchange", "market", "symbol"]
    return (
        df.lazy()
        .group_by([*keys, pl.col("ts").dt.truncate(interval)])
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("amount").sum().alias("volume"),
            pl.col("amount").filter(pl.col("taker_side") == "buy").sum().alias("taker_buy_volume"),
            (pl.col("price") * pl.col("amount")).sum().alias("quote_volume"),
            pl.len().alias("trades"),
        )
        .sort([*keys, "ts"])
        .collect()
    )


def run_duckdb(con: duckdb.DuckDBPyConnection, interval: str) -> pa.Table:
    step = interval_ns(interval)
    return con.sql(
        """
        SELECT exchange, market, symbol, epoch_ns(ts) // $step * $step AS ts,
               arg_min(price, i) AS open, max(price) AS high, min(price) AS low, arg_max(price, i) AS close,
               sum(amount) AS volume, coalesce(sum(amount) FILTER (WHERE taker_side = 'buy'), 0) AS taker_buy_volume,
               sum(price * amount) AS quote_volume, count(*) AS trades
        FROM trades GROUP BY ALL ORDER BY exchange, market, symbol, ts
        """,
        params={"step": step},
    ).to_arrow_table()


def run_pandas(pdf: pd.DataFrame, interval: str, keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """The usual pandas way: floor the timestamps, then ``groupby(...).agg`` with named aggregations."""
    freq = f"{interval_ns(interval) // 1_000_000_000}s"
    work = pdf.assign(
        bucket=pdf["ts"].dt.floor(freq),
        buy=pdf["amount"].where(pdf["taker_side"] == "buy", 0.0),
        quote=pdf["price"] * pdf["amount"],
    )
    return work.groupby([*keys, "bucket"], sort=True).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("amount", "sum"), taker_buy_volume=("buy", "sum"), quote_volume=("quote", "sum"),
        trades=("price", "size"),
    )


def load_candidate(path: str) -> Callable[[pl.DataFrame, str], pl.DataFrame]:
    """``build_bars`` from a Python file."""
    spec = importlib.util.spec_from_file_location("candidate_bars", path)
    if spec is None or spec.loader is None:
        sys.exit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_bars


# -- checking and timing -----------------------------------------------------------------------
def canonical(out: pl.DataFrame | pa.Table | pd.DataFrame) -> pl.DataFrame:
    """Any engine's bars as one Polars frame: :data:`OUT` columns, ts int64 ns, sorted by ts."""
    if isinstance(out, pd.DataFrame):
        out = pl.from_pandas(out.reset_index().rename(columns={"bucket": "ts"}))
    elif isinstance(out, pa.Table):
        out = pl.from_arrow(out)
    ts = pl.col("ts").dt.epoch("ns") if isinstance(out.schema["ts"], pl.Datetime) else pl.col("ts").cast(pl.Int64)
    return out.with_columns(ts.alias("ts"), pl.col("trades").cast(pl.Int64)).select(OUT).sort("ts")


def agree(a: pl.DataFrame, b: pl.DataFrame) -> str | None:
    """None when the bars agree (OHLC, ts, trades exactly; sums to 1e-9 relative), else why not."""
    if a.height != b.height:
        return f"{a.height} bars vs {b.height}"
    for c in ("ts", "open", "high", "low", "close", "trades"):
        if not (a[c] == b[c]).all():
            return f"{c} differs"
    for c in ("volume", "taker_buy_volume", "quote_volume"):
        if not np.allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-9, atol=1e-12):
            return f"{c} differs"
    return None


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="trades to aggregate (default 10,000,000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per engine; the best is reported (default 3)")
    ap.add_argument("--interval", default="1m", help="bar interval (default 1m)")
    ap.add_argument("--candidate", help="a .py file whose build_bars is timed too")
    ap.add_argument("--via-store", action="store_true", help="round-trip the trades through a tapewatch store first")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    df = make_trades(args.rows)
    if args.via_store:
        df = through_store(df)
    table = df.to_arrow()
    pdf = df.drop("i").to_pandas()
    con = duckdb.connect()
    con.register("trades", table)
    print(f"{df.height:,} real Binance BTCUSDT trades (repeated{', via a store' if args.via_store else ''}), "
          f"{args.interval} bars; "
          f"data built in {time.perf_counter() - t0:.1f} s; best of {args.repeat}; "
          f"polars {pl.__version__}, duckdb {duckdb.__version__}, pandas {pd.__version__}")

    engines: dict[str, Callable[[], object]] = {
        "tapewatch build_bars": lambda: run_tapewatch(df, args.interval),
        "raw Polars query": lambda: run_polars(df, args.interval),
        "raw DuckDB SQL": lambda: run_duckdb(con, args.interval),
        "pandas groupby": lambda: run_pandas(pdf, args.interval),
        "pandas groupby + keys": lambda: run_pandas(pdf, args.interval, ("exchange", "market", "symbol")),
    }
    if args.candidate:
        candidate = load_candidate(args.candidate)
        engines = {"candidate build_bars": lambda: candidate(df, args.interval), **engines}
    times, outs = {}, {}
    for name, fn in engines.items():
        times[name], out = best_time(fn, args.repeat)
        outs[name] = canonical(out)
    ref = outs["tapewatch build_bars"]
    failed = False
    for name, out in outs.items():
        why = agree(ref, out)
        if why:
            print(f"MISMATCH tapewatch vs {name}: {why}")
            failed = True
    print(f"all outputs agree: {ref.height:,} bars" if not failed else "outputs DO NOT agree")

    tw = times["tapewatch build_bars"]
    print(f"\n{'engine':<22} {'seconds':>9} {'rows/s':>14} {'vs tapewatch':>15}")
    for name, t in times.items():
        ratio = "1.00x" if t == tw else (f"{t / tw:.2f}x slower" if t > tw else f"{tw / t:.2f}x faster")
        print(f"{name:<22} {t:>9.3f} {df.height / t:>14,.0f} {ratio:>15}")
    speedup = times["pandas groupby"] / tw
    raw_best = min(times["raw DuckDB SQL"], times["raw Polars query"])
    print(f"\ngoal ≥ 10x pandas: {speedup:.1f}x ({'met' if speedup >= 10 else 'MISSED'}); "
          f"goal within 1.5x of the fastest raw query: {tw / raw_best:.2f}x "
          f"({'met' if tw <= 1.5 * raw_best else 'MISSED'})")
    if args.candidate:
        c = times["candidate build_bars"]
        print(f"candidate: {times['pandas groupby'] / c:.1f}x pandas, {c / raw_best:.2f}x the fastest raw query, "
              f"{tw / c:.1f}x faster than the current build_bars")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
