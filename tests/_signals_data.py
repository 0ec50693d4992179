"""Test data for the signal tests: real rows from tests/data, and rows written in the venues'
exact public formats (Binance klines / metrics / bookDepth / fundingRate archives, Coinbase
candles, Kraken OHLC), with the small conversions to store records done here, in test code.

Expected values in the tests are computed from the raw rows parsed here with the standard library,
never through tapewatch functions.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from datetime import datetime, timezone

import polars as pl

from conftest import SHARED as DATA

# real bars for the warm-up and declaration tests: freqtrade's Binance spot / perp 5m and funding,
# its Coinbase 15m, and the Kaggle Binance 4h bars (with the taker buy volume)
REAL_FILES = (
    "freqtrade-binance-btc-2025/spot/BTC_USDT-5m.feather",
    "freqtrade-binance-btc-2025/futures/BTC_USDT_USDT-5m-futures.feather",
    "freqtrade-binance-btc-2025/futures/BTC_USDT_USDT-1h-funding_rate.feather",
    "freqtrade-coinbase-btcusd-2024-2026/BTC_USD-15m.feather",
    "kaggle-binance-btcusdt-4h-1d/btc_4h_data_2025.csv.gz",
)
PERP_CSV = DATA / "nautilus-samples" / "btc-perp-20211231-20220201_1m.csv.gz"
TRADES_PARQUET = DATA / "nautilus-samples" / "binance" / "btcusdt-trades.parquet"
MIN = 60_000_000_000


def ns(text: str) -> int:
    """``2022-01-03 00:05:00`` (UTC) → epoch ns."""
    dt = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000


def iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# -- the real BTC perpetual month (1m, volume in quote) ------------------------------------------
def perp_rows() -> list[tuple[int, float, float, float, float, float]]:
    """``(open ns, open, high, low, close, quote volume)`` per 1-minute bar, parsed with csv."""
    with gzip.open(PERP_CSV, "rt") as fh:
        rows = list(csv.DictReader(fh))
    return [
        (ns(r["timestamp"][:19]), float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]),
         float(r["volume"]))
        for r in rows
    ]


def perp_records(rows: list[tuple[int, float, float, float, float, float]]) -> pl.DataFrame:
    """Bar records of binance perp BTC/USDT 1m (base volume unknown, no taker split)."""
    return pl.DataFrame(
        {
            "exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "interval": "1m",
            "ts": [r[0] for r in rows], "open": [r[1] for r in rows], "high": [r[2] for r in rows],
            "low": [r[3] for r in rows], "close": [r[4] for r in rows], "quote_volume": [r[5] for r in rows],
        }
    )


# -- Binance klines (archive CSV: open_time,open,high,low,close,volume,close_time,quote_volume,count,
#    taker_buy_volume,taker_buy_quote_volume,ignore) ---------------------------------------------
def kline_line(open_ms: int, o: float, h: float, lo: float, c: float, vol: float, taker_buy: float, step_ms: int) -> str:
    return (
        f"{open_ms},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{vol:.5f},{open_ms + step_ms - 1},{vol * c:.8f},"
        f"{max(1, int(vol * 10))},{taker_buy:.5f},{taker_buy * c:.8f},0"
    )


def klines_to_records(text: str, exchange: str, market: str, symbol: str, interval: str) -> pl.DataFrame:
    rows = list(csv.reader(io.StringIO(text)))
    return pl.DataFrame(
        {
            "exchange": exchange, "market": market, "symbol": symbol, "interval": interval,
            "ts": [int(r[0]) * 1_000_000 for r in rows],
            "open": [float(r[1]) for r in rows], "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows], "close": [float(r[4]) for r in rows],
            "volume": [float(r[5]) for r in rows], "quote_volume": [float(r[7]) for r in rows],
            "trades": [int(r[8]) for r in rows], "taker_buy_volume": [float(r[9]) for r in rows],
        }
    )


# -- Coinbase Exchange candles: GET /products/BTC-USD/candles → [[time, low, high, open, close, volume]]
#    newest first, time in seconds ---------------------------------------------------------------
def coinbase_candles_json(rows: list[tuple[int, float, float, float, float, float]]) -> str:
    """rows: (time s, low, high, open, close, volume), any order; written newest first."""
    return json.dumps([list(r) for r in sorted(rows, key=lambda r: -r[0])])


def coinbase_to_records(text: str, symbol: str, interval: str) -> pl.DataFrame:
    rows = json.loads(text)
    return pl.DataFrame(
        {
            "exchange": "coinbase", "market": "spot", "symbol": symbol, "interval": interval,
            "ts": [int(r[0]) * 1_000_000_000 for r in rows], "low": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows], "open": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows], "volume": [float(r[5]) for r in rows],
        }
    )


# -- Kraken OHLC: {"error": [], "result": {"USDTZUSD": [[time, open, high, low, close, vwap, volume, count]], "last": t}}
def kraken_ohlc_json(rows: list[tuple[int, float]]) -> str:
    """rows: (time s, close) — open/high/low equal to the close, as Kraken writes quiet minutes."""
    data = [[t, f"{c:.5f}", f"{c:.5f}", f"{c:.5f}", f"{c:.5f}", f"{c:.5f}", "1000.00000000", 3] for t, c in rows]
    return json.dumps({"error": [], "result": {"USDTZUSD": data, "last": rows[-1][0]}})


def kraken_to_records(text: str, interval: str) -> pl.DataFrame:
    rows = json.loads(text)["result"]["USDTZUSD"]
    return pl.DataFrame(
        {
            "exchange": "kraken", "market": "spot", "symbol": "USDT/USD", "interval": interval,
            "ts": [int(r[0]) * 1_000_000_000 for r in rows], "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows], "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows], "volume": [float(r[6]) for r in rows],
        }
    )


# -- Binance metrics archive (USD-M, 5-minute rows) -----------------------------------------------
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
    "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


def metrics_csv(rows: list[tuple[int, float, float]]) -> str:
    """rows: (create_time ns, sum_open_interest, sum_open_interest_value)."""
    lines = [METRICS_HEADER] + [f"{iso(t)},BTCUSDT,{oi:.8f},{val:.8f},1.52,1.31,1.87,0.97" for t, oi, val in rows]
    return "\n".join(lines) + "\n"


def metrics_to_records(text: str) -> pl.DataFrame:
    rows = list(csv.DictReader(io.StringIO(text)))
    return pl.DataFrame(
        {
            "exchange": "binance", "market": "perp", "symbol": "BTC/USDT",
            "ts": [ns(r["create_time"]) for r in rows], "oi": [float(r["sum_open_interest"]) for r in rows],
            "oi_value": [float(r["sum_open_interest_value"]) for r in rows],
        }
    )


# -- Binance bookDepth archive: timestamp,percentage,depth,notional (depth cumulative within the band)
def bookdepth_csv(snapshots: list[tuple[int, dict[int, tuple[float, float]]]]) -> str:
    """snapshots: (time ns, {percentage (-5..-1, 1..5): (depth, notional)})."""
    lines = ["timestamp,percentage,depth,notional"]
    for t, levels in snapshots:
        for p in sorted(levels):
            d, n = levels[p]
            lines.append(f"{iso(t)},{p:.2f},{d:.8f},{n:.8f}")
    return "\n".join(lines) + "\n"


def bookdepth_to_records(text: str, market: str = "perp") -> pl.DataFrame:
    rows = list(csv.DictReader(io.StringIO(text)))
    by: dict[tuple[int, float], dict[str, float]] = {}
    for r in rows:
        p = float(r["percentage"])
        rec = by.setdefault((ns(r["timestamp"]), abs(p)), {})
        side = "bid" if p < 0 else "ask"
        rec[f"{side}_amount"] = float(r["depth"])
        rec[f"{side}_notional"] = float(r["notional"])
    keys = sorted(by)
    return pl.DataFrame(
        {
            "exchange": "binance", "market": market, "symbol": "BTC/USDT", "reference": "mid",
            "ts": [k[0] for k in keys], "band_pct": [k[1] for k in keys],
            **{c: [by[k].get(c) for k in keys] for c in ("bid_amount", "ask_amount", "bid_notional", "ask_notional")},
        }
    )


# -- Binance fundingRate archive: calc_time,funding_interval_hours,last_funding_rate ---------------
def funding_csv(rows: list[tuple[int, float]]) -> str:
    return "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
        f"{t // 1_000_000},8,{r:.8f}\n" for t, r in rows
    )


def funding_to_records(text: str) -> pl.DataFrame:
    rows = list(csv.DictReader(io.StringIO(text)))
    return pl.DataFrame(
        {
            "exchange": "binance", "market": "perp", "symbol": "BTC/USDT",
            "ts": [int(r["calc_time"]) * 1_000_000 for r in rows], "rate": [float(r["last_funding_rate"]) for r in rows],
        }
    )


# -- one synthetic-but-formatted market around the real perp prices --------------------------------
def market(first: str = "2022-01-03 00:00:00", minutes: int = 2 * 1440, seed: int = 7) -> dict[str, object]:
    """Raw texts (each venue's format) and the records they convert to, over ``minutes`` of the real
    perp month: perp 1m bars (real), spot 1m klines, Coinbase 5m candles, Kraken 15m USDT/USD,
    bookDepth every 30 s, metrics every 5 min, funding every 8 h."""
    rng = random.Random(seed)
    t0 = ns(first)
    perp = [r for r in perp_rows() if t0 <= r[0] < t0 + minutes * MIN]
    spot_lines, cb_rows, usdt, depth, metrics, fund = [], [], [], [], [], []
    premium = 0.0
    oi = 80_000.0
    for i, (t, o, h, lo, c, qv) in enumerate(perp):
        vol = qv / c / 3
        buy = vol * rng.uniform(0.2, 0.8)
        spot_lines.append(kline_line(t // 1_000_000, o, h, lo, c * 1.0002, vol, buy, 60_000))
        if i % 5 == 0:
            premium = 0.9 * premium + rng.gauss(0, 12)
            cb_rows.append((t // 1_000_000_000, c - 30, c + 30, o + premium, c * 1.0002 + premium, vol / 4))
        if i % 15 == 0:
            usdt.append((t // 1_000_000_000, 1.0 + rng.gauss(0, 0.0004)))
        if i % 5 == 0:
            oi *= 1 + rng.gauss(0, 0.004)
            metrics.append((t, oi, oi * c))
        if t % (8 * 60 * MIN) == 0:
            fund.append((t, rng.choice([0.0001, 0.00005, -0.00002, 0.00012])))
        for k in (0, 1):
            ts = t + k * 30_000_000_000 + rng.randint(0, 2_000_000_000)
            tilt = rng.uniform(-0.5, 0.5)
            levels = {}
            for p in (1, 2, 3, 4, 5):
                bid = 100.0 * p * (1 + tilt) * rng.uniform(0.8, 1.2)
                ask = 100.0 * p * (1 - tilt) * rng.uniform(0.8, 1.2)
                levels[-p] = (bid, bid * c * (1 - p / 200))
                levels[p] = (ask, ask * c * (1 + p / 200))
            depth.append((ts, levels))
    texts = {
        "spot_klines": "\n".join(spot_lines) + "\n",
        "coinbase": coinbase_candles_json(cb_rows),
        "kraken": kraken_ohlc_json(usdt),
        "bookdepth": bookdepth_csv(depth),
        "metrics": metrics_csv(metrics),
        "funding": funding_csv(fund),
    }
    records = {
        "bar": [
            perp_records(perp),
            klines_to_records(texts["spot_klines"], "binance", "spot", "BTC/USDT", "1m"),
            coinbase_to_records(texts["coinbase"], "BTC/USD", "5m"),
            kraken_to_records(texts["kraken"], "15m"),
        ],
        "book_depth": [bookdepth_to_records(texts["bookdepth"])],
        "open_interest": [metrics_to_records(texts["metrics"])],
        "funding": [funding_to_records(texts["funding"])],
    }
    return {"texts": texts, "records": records, "perp": perp}


def write_market(store: object, records: dict[str, list[pl.DataFrame]]) -> None:
    for kind, frames in records.items():
        for df in frames:
            store.write(kind, df)  # type: ignore[attr-defined]


def import_real(store: object) -> None:
    """Import :data:`REAL_FILES` with tapewatch's importer (the import itself is tested elsewhere)."""
    from tapewatch.importer import import_paths

    report = import_paths([DATA / f for f in REAL_FILES], store)  # type: ignore[arg-type]
    assert [f.error for f in report.files] == [None] * len(REAL_FILES)
