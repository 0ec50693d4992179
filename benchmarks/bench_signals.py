"""Signals for a year of 5-minute bars: how long tapewatch takes, per 100k bars.

    .venv/bin/python benchmarks/bench_signals.py [--days 365] [--interval 5m] [--store DIR] [--repeat 3]

Input: one year (``--days``) of market data built by block-resampling the real 1-minute BTC
perpetual month (``shared/data/nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz``): whole
days of real 1-minute log returns and quote volumes are drawn with replacement and chained into a
price path. Around that path, in the stores' record formats: Binance spot 1m klines (base volume
from the real quote volume; taker buy share following the return), Binance perp 1m bars, Coinbase
5m bars (price + an AR(1) premium), Kraken 15m USDT/USD bars, book depth every 60 s (bands 1/2/5/10),
open interest every 5 min, funding every 8 h. Everything is written to a tapewatch store once
(timed separately; reuse with ``--store DIR``).

Timed (best of ``--repeat``), on the default config:
- ``compute_signals``: read every input from the store, build the 5m bars from the 1m klines, align
  the point-in-time records, compute every factor, the detector columns and the events;
- ``compute_frame``: the factors and the detector alone, on inputs already aligned;
- ``find_events``: the explained events alone.
"""

from __future__ import annotations

import argparse
import gzip
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from tapewatch.config import Config
from tapewatch.detector import find_events
from tapewatch.signals.compute import compute_frame, compute_signals
from tapewatch.signals.frame import load
from tapewatch.store import Store

from shared_data import shared_file

PERP = "nautilus-samples/btc-perp-20211231-20220201_1m.csv.gz"
MIN = 60_000_000_000
DAY = 1440
T0 = 1_640_995_200_000_000_000  # 2022-01-01 00:00 UTC


def real_days() -> tuple[np.ndarray, np.ndarray]:
    """Whole days of the real perp month: (days × 1440) log returns and quote volumes."""
    with gzip.open(shared_file(PERP), "rt") as fh:
        rows = list(csv.DictReader(fh))
    close = np.array([float(r["close"]) for r in rows])
    qv = np.array([float(r["volume"]) for r in rows])
    ret = np.diff(np.log(close), prepend=np.log(close[0]))
    n = len(ret) // DAY
    return ret[: n * DAY].reshape(n, DAY), qv[: n * DAY].reshape(n, DAY)


def build(days: int, seed: int = 1) -> dict[str, pl.DataFrame]:
    """Record frames for ``days`` days, block-resampled from the real month (blocks = whole days)."""
    rng = np.random.default_rng(seed)
    rets, qvs = real_days()
    pick = rng.integers(0, len(rets), days)
    ret, qv = rets[pick].ravel(), qvs[pick].ravel()
    n = len(ret)
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    close = 40_000.0 * np.exp(np.cumsum(ret))
    open_ = np.concatenate([[close[0]], close[:-1]])
    hi, lo = np.maximum(open_, close) * 1.0003, np.minimum(open_, close) * 0.9997
    vol = qv / close / 3
    share = np.clip(0.5 + 0.3 * np.tanh(ret / (ret.std() + 1e-12)) + rng.normal(0, 0.05, n), 0.02, 0.98)

    def key(ex: str, mkt: str, sym: str) -> dict:
        return {"exchange": ex, "market": mkt, "symbol": sym}

    spot = pl.DataFrame({**key("binance", "spot", "BTC/USDT"), "interval": "1m", "ts": ts, "open": open_,
                         "high": hi, "low": lo, "close": close * 1.0001, "volume": vol,
                         "taker_buy_volume": vol * share, "quote_volume": qv / 3, "trades": 100})
    perp = pl.DataFrame({**key("binance", "perp", "BTC/USDT"), "interval": "1m", "ts": ts, "open": open_,
                         "high": hi, "low": lo, "close": close, "quote_volume": qv})
    five = np.arange(0, n, 5)
    gap = np.zeros(len(five))
    for i in range(1, len(gap)):
        gap[i] = 0.97 * gap[i - 1] + rng.normal(0, 8)
    c5 = close[np.minimum(five + 4, n - 1)]
    coinbase = pl.DataFrame({**key("coinbase", "spot", "BTC/USD"), "interval": "5m", "ts": ts[five],
                             "open": c5 + gap, "high": c5 + gap, "low": c5 + gap, "close": c5 + gap, "volume": 5.0})
    q = np.arange(0, n, 15)
    usdt = pl.DataFrame({**key("kraken", "spot", "USDT/USD"), "interval": "15m", "ts": ts[q],
                         "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0 + rng.normal(0, 3e-4, len(q))})
    lean = np.zeros(n)
    for i in range(1, n):
        lean[i] = 0.98 * lean[i - 1] + rng.normal(0, 0.05)
    bands = np.array([1.0, 2.0, 5.0, 10.0])
    bid = (200.0 * bands[None, :]) * (1 + np.tanh(lean))[:, None]
    ask = (200.0 * bands[None, :]) * (1 - np.tanh(lean))[:, None] + 1.0
    book = pl.DataFrame({**key("binance", "perp", "BTC/USDT"), "reference": "mid",
                         "ts": np.repeat(ts + 7_000_000_000, 4), "band_pct": np.tile(bands, n),
                         "bid_amount": bid.ravel(), "ask_amount": ask.ravel(),
                         "bid_notional": (bid * close[:, None]).ravel(), "ask_notional": (ask * close[:, None]).ravel()})
    oi = 80_000 * np.exp(np.cumsum(rng.normal(0, 0.002, len(five)) - 0.3 * ret[five]))
    oi_df = pl.DataFrame({**key("binance", "perp", "BTC/USDT"), "ts": ts[five], "oi": oi, "oi_value": oi * c5})
    f = np.arange(0, n, 480)
    funding = pl.DataFrame({**key("binance", "perp", "BTC/USDT"), "ts": ts[f], "rate": rng.normal(1e-4, 5e-5, len(f))})
    return {"spot": spot, "perp": perp, "coinbase": coinbase, "usdt": usdt, "book": book, "oi": oi_df,
            "funding": funding}


KINDS = {"spot": "bar", "perp": "bar", "coinbase": "bar", "usdt": "bar", "book": "book_depth",
         "oi": "open_interest", "funding": "funding"}


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--interval", default="5m")
    ap.add_argument("--store", type=Path, help="store directory to build once and reuse")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    root = args.store or Path(tempfile.mkdtemp(prefix="tapewatch-bench-"))
    store = Store(root)
    if not store.files("bar"):
        t = time.perf_counter()
        frames = build(args.days)
        built = time.perf_counter() - t
        t = time.perf_counter()
        for name, df in frames.items():
            store.write(KINDS[name], df)
        rows = sum(df.height for df in frames.values())
        print(f"inputs: {rows:,} records over {args.days} days, built in {built:.1f} s, "
              f"written to {root} in {time.perf_counter() - t:.1f} s")
    cfg = Config()
    t_all, sig = best(lambda: compute_signals(store, "BTC", args.interval, config=cfg), args.repeat)
    aligned = load(store, "BTC", args.interval, cfg)
    t_frame, (frame, ctx) = best(lambda: compute_frame(aligned, cfg), args.repeat)
    t_events, events = best(lambda: find_events(frame, ctx), args.repeat)
    bars = sig.frame.height
    per = 100_000 / bars
    print(f"{bars:,} {args.interval} bars ({bars / 288:.0f} days), default config, best of {args.repeat}:")
    print(f"  compute_signals (store → bars → factors → detector → events): {t_all:6.2f} s  = "
          f"{t_all * per:6.2f} s per 100k bars")
    print(f"  compute_frame   (factors + detector on aligned inputs):      {t_frame:6.2f} s  = "
          f"{t_frame * per:6.2f} s per 100k bars")
    print(f"  find_events     ({len(events)} events with their readings):        {t_events:6.2f} s  = "
          f"{t_events * per:6.2f} s per 100k bars")
    fired = {s: int(sig.frame.get_column(s).sum()) for s in ("distribution", "accumulation")}
    print(f"  bars firing: distribution {fired['distribution']}, accumulation {fired['accumulation']}; "
          f"events: {len(sig.events)}")


if __name__ == "__main__":
    main()
