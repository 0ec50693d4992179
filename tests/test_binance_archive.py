"""Binance public-data archives: rows written in the exact published layouts (binance-public-data
README; bookDepth rows from binance/binance-public-data issue #431), zipped like the archive and
plain, imported into a store and checked against values computed here from the rows themselves.
The order-book CSVs are the real nautilus_trader samples in tests/data (see PROVENANCE.md).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import polars as pl
import pytest

from tapewatch.importer import ImportReport, import_paths
from tapewatch.schemas import KINDS
from tapewatch.sources import RawFile
from tapewatch.sources.base import Hints
from tapewatch.sources.binance_archive import FORMATS
from tapewatch.store import Store

MS = 1_000_000  # ns per millisecond
US = 1_000  # ns per microsecond

# -- rows in the published layouts -----------------------------------------------------------
# spot klines: no header; open_time, open, high, low, close, volume, close_time, quote asset volume,
# number of trades, taker buy base volume, taker buy quote volume, ignore
SPOT_KLINES_MS = [
    "1704067200000,42283.58000000,42298.62000000,42261.02000000,42298.61000000,35.92724000,1704067259999,"
    "1519032.65342950,1327,16.35328000,691400.61217290,0",
    "1704067260000,42298.62000000,42320.00000000,42298.61000000,42320.00000000,21.37358000,1704067319999,"
    "904305.55836200,1006,13.39640000,566791.34981440,0",
    "1704067320000,42319.99000000,42331.54000000,42317.99000000,42325.50000000,22.86424000,1704067379999,"
    "967753.28706950,1035,11.63060000,492278.78929460,0",
]
# from 2025-01-01 spot timestamps are microseconds
SPOT_KLINES_US = [
    "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,1735689659999999,"
    "768978.85281950,1315,3.91202000,366095.03640960,0",
    "1735689660000000,93610.93000000,93652.00000000,93606.18000000,93652.00000000,5.89391000,1735689719999999,"
    "551833.18064840,1116,4.80834000,450243.04802410,0",
]
UM_KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
)
UM_KLINES_1H = [
    "1704067200000,42314.00,42603.20,42289.60,42513.10,6924.567,1704070799999,293819131.17790,61184,3710.314,"
    "157433432.22180,0",
    "1704070800000,42513.10,42584.00,42325.00,42400.00,4517.998,1704074399999,191796042.80440,44867,2110.123,"
    "89590210.11220,0",
]
# spot aggTrades: no header; agg id, price, quantity, first id, last id, timestamp, buyer maker, best match
SPOT_AGG_MS = [
    "2969869000,42283.58000000,0.01200000,3342390000,3342390001,1704067200077,True,True",
    "2969869001,42283.59000000,0.00035000,3342390002,3342390002,1704067200134,False,True",
    "2969869002,42283.59000000,0.05081000,3342390003,3342390005,1704067200134,False,True",
]
SPOT_AGG_US = [
    "3317702000,93576.00000000,0.00010000,4386010000,4386010000,1735689600015278,False,True",
    "3317702001,93575.99000000,0.00640000,4386010001,4386010003,1735689600021904,True,True",
]
UM_AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
UM_AGG = [
    "1997163080,42314.00,0.002,4373410000,4373410000,1704067200048,false",
    "1997163081,42313.90,0.150,4373410001,4373410003,1704067200061,true",
]
# spot trades: no header; id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch
SPOT_TRADES = [
    "3342390000,42283.58000000,0.01200000,507.40296000,1704067200077,True,True",
    "3342390001,42283.59000000,0.00035000,14.79925650,1704067200134,False,True",
]
UM_TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
UM_TRADES = [
    "4373410000,42314.00,0.002,84.62800,1704067200048,false",
    "4373410001,42313.90,0.150,6347.08500,1704067200061,true",
]
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
    "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"
)
METRICS = [
    "2024-01-01 00:05:00,BTCUSDT,67043.60500000,2838291286.58850000,1.34478589,1.39418234,1.60271740,0.86013600",
    "2024-01-01 00:10:00,BTCUSDT,67066.30700000,2840168553.53360000,1.33960171,1.38898498,1.60113232,1.16834500",
]
BOOK_DEPTH_HEADER = "timestamp,percentage,depth,notional"
# binance/binance-public-data issue #431, from BTCUSDT-bookDepth-2025-05-19.zip
BOOK_DEPTH = [
    "2025-05-19 11:07:31,-5,7885.27500000,647368074.36920000",
    "2025-05-19 11:07:31,-4,7178.45300000,590768470.27090000",
    "2025-05-19 11:07:31,-3,5443.14900000,450287742.99870000",
    "2025-05-19 11:07:31,-2,3989.69900000,331452387.75030000",
    "2025-05-19 11:07:31,-1,2294.32400000,191369991.21780000",
    "2025-05-19 11:07:31,1,2097.41000000,176607765.20950000",
    "2025-05-19 11:07:31,2,3485.14100000,294629128.47080000",
    "2025-05-19 11:07:31,3,4813.86500000,408742768.20550000",
    "2025-05-19 11:07:31,4,5699.71200000,485628858.29740000",
    "2025-05-19 11:07:31,5,6491.51500000,555012399.28440000",
]
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
FUNDING = ["1704067200000,8,0.00037409", "1704096000001,8,0.00032814", "1704124800000,8,-0.00001250"]

T_2024_01_01_0005 = 1_704_067_500 * 10**9  # 2024-01-01 00:05:00 UTC in ns
T_2025_05_19_110731 = 1_747_652_851 * 10**9  # 2025-05-19 11:07:31 UTC in ns


# -- helpers -----------------------------------------------------------------------------------
def write(path: Path, lines: list[str], zipped: bool = False) -> Path:
    """Write CSV lines as ``path`` or, zipped, as ``path`` with .zip holding ``path.name`` (like the archive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not zipped:
        path.write_text(text)
        return path
    zpath = path.with_suffix(".zip")
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.name, text)
    return zpath


def ok(paths: list[Path], store: Store, **hints: str) -> ImportReport:
    report = import_paths(paths, store, Hints(**hints))
    assert not report.errors, report.errors[0].error
    assert report.imported
    return report


def stored(store: Store, kind_name: str) -> list[dict]:
    """Stored rows (``ts`` as int ns); archive files have no local receive time: ``local_ts`` is null."""
    df = store.read(kind_name)
    if "local_ts" in df.columns:
        assert df.get_column("local_ts").is_null().all()
        df = df.drop("local_ts")
    return df.with_columns(pl.col("ts").cast(pl.Int64)).to_dicts()


def fields(line: str) -> list[str]:
    return line.split(",")


def store_is_empty(store: Store) -> bool:
    return all(store.read(k).is_empty() for k in KINDS)


def failed(path: Path, store: Store, **hints: str) -> str:
    """Import a bad file: returns its error message, after checking nothing was stored."""
    report = import_paths([path], store, Hints(**hints))
    assert report.errors and not report.imported
    assert store_is_empty(store)
    message = report.errors[0].error
    assert message is not None and str(path) in message
    return message


# -- klines ------------------------------------------------------------------------------------
def expected_bars(lines: list[str], unit: int, interval: str, market: str, symbol: str = "BTC/USDT") -> list[dict]:
    out = []
    for line in lines:
        f = fields(line)
        out.append({
            "exchange": "binance", "market": market, "symbol": symbol, "ts": int(f[0]) * unit, "interval": interval,
            "open": float(f[1]), "high": float(f[2]), "low": float(f[3]), "close": float(f[4]),
            "volume": float(f[5]), "taker_buy_volume": float(f[9]), "quote_volume": float(f[7]), "trades": int(f[8]),
        })
    return out


@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize(
    ("lines", "unit", "day"), [(SPOT_KLINES_MS, MS, "2024-01-01"), (SPOT_KLINES_US, US, "2025-01-01")]
)
def test_spot_klines_no_header(
    tmp_path: Path, store: Store, zipped: bool, lines: list[str], unit: int, day: str
) -> None:
    path = write(tmp_path / f"BTCUSDT-1m-{day}.csv", lines, zipped)
    report = ok([path], store)
    assert report.files[0].format == "binance-klines"
    assert stored(store, "bar") == expected_bars(lines, unit, "1m", "spot")


@pytest.mark.parametrize("zipped", [True, False])
def test_usdm_klines_with_header_are_perp(tmp_path: Path, store: Store, zipped: bool) -> None:
    path = write(tmp_path / "BTCUSDT-1h-2024-01-01.csv", [UM_KLINE_HEADER, *UM_KLINES_1H], zipped)
    ok([path], store)
    assert stored(store, "bar") == expected_bars(UM_KLINES_1H, MS, "1h", "perp")


def test_klines_market_from_archive_path(tmp_path: Path, store: Store) -> None:
    spot = write(tmp_path / "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.csv", SPOT_KLINES_MS, True)
    # an old headerless USD-M file: the path tells it is a perp
    um = write(tmp_path / "data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-01.csv", UM_KLINES_1H, True)
    ok([spot, um], store)
    got = stored(store, "bar")
    assert [r for r in got if r["market"] == "spot"] == expected_bars(SPOT_KLINES_MS, MS, "1m", "spot")
    assert [r for r in got if r["market"] == "perp"] == expected_bars(UM_KLINES_1H, MS, "1h", "perp")


def test_klines_interval_inferred_and_hints(tmp_path: Path, store: Store) -> None:
    # no Binance file name: the symbol comes from the hints, the interval from close_time - open_time + 1
    path = write(tmp_path / "bars.csv", UM_KLINES_1H)
    ok([path], store, symbol="ETH/USDT", market="perp")
    assert stored(store, "bar") == expected_bars(UM_KLINES_1H, MS, "1h", "perp", "ETH/USDT")


def test_weekly_kline_from_readme(tmp_path: Path, store: Store) -> None:
    # the README's USD-M example row is a weekly bar (close_time - open_time + 1 = 7 days): stored as 7d
    row = ("1499040000000,0.01634790,0.80000000,0.01575800,0.01577100,148976.11427815,1499644799999,"
           "2434.19055334,308,1756.87402397,28.46694368,17928899.62484339")
    ok([write(tmp_path / "BNBBTC-1w-2017-07.csv", [UM_KLINE_HEADER, row], True)], store)
    assert stored(store, "bar") == expected_bars([row], MS, "7d", "perp", "BNB/BTC")


def test_klines_interval_disagreeing_with_file_name(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-1m-2024-01-01.csv", [UM_KLINE_HEADER, *UM_KLINES_1H])
    message = failed(path, store)
    assert "row 2" in message and "does not close a 1m bar" in message


def test_mark_price_klines_are_not_claimed(tmp_path: Path) -> None:
    path = write(tmp_path / "futures/um/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.csv",
                 [UM_KLINE_HEADER, *UM_KLINES_1H])
    assert not any(f.sniff(RawFile(path)) for f in FORMATS)


def test_coin_m_archive_is_refused(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "futures/cm/daily/klines/BTCUSD_PERP/1h/BTCUSD_PERP-1h-2024-01-01.csv",
                 [UM_KLINE_HEADER, *UM_KLINES_1H])
    assert "COIN-M" in failed(path, store)


def test_symbol_unknown_asks_for_symbol(tmp_path: Path, store: Store) -> None:
    message = failed(write(tmp_path / "download.csv", SPOT_KLINES_MS), store)
    assert "--symbol" in message


# -- aggTrades and trades ----------------------------------------------------------------------
def expected_trades(lines: list[str], unit: int, market: str, time_col: int, amount_col: int,
                    maker_col: int) -> list[dict]:
    out = []
    for line in lines:
        f = fields(line)
        out.append({
            "exchange": "binance", "market": market, "symbol": "BTC/USDT", "ts": int(f[time_col]) * unit,
            "price": float(f[1]), "amount": float(f[amount_col]),
            # buyer was the maker → the taker sold
            "taker_side": "sell" if f[maker_col].lower() == "true" else "buy", "trade_id": f[0],
        })
    return sorted(out, key=lambda r: (r["ts"], r["trade_id"]))


def sorted_trades(store: Store) -> list[dict]:
    return sorted(stored(store, "trade"), key=lambda r: (r["ts"], r["trade_id"]))


# a trade dataset: its word in the file name, the format it is read as, and the columns of the
# trade time, the amount and is_buyer_maker
AGG_TRADES = ("aggTrades", "binance-aggtrades", (5, 2, 6))
TRADES = ("trades", "binance-trades", (4, 2, 5))


@pytest.mark.parametrize("zipped", [True, False])
@pytest.mark.parametrize(
    ("dataset", "lines", "unit", "day"),
    [
        pytest.param(AGG_TRADES, SPOT_AGG_MS, MS, "2024-01-01", id="aggTrades-ms"),
        pytest.param(AGG_TRADES, SPOT_AGG_US, US, "2025-01-01", id="aggTrades-us"),
        pytest.param(TRADES, SPOT_TRADES, MS, "2024-01-01", id="trades"),
    ],
)
def test_spot_trades(tmp_path: Path, store: Store, zipped: bool, dataset: tuple, lines: list[str], unit: int,
                     day: str) -> None:
    name, fmt, cols = dataset
    path = write(tmp_path / f"BTCUSDT-{name}-{day}.csv", lines, zipped)
    assert ok([path], store).files[0].format == fmt
    assert sorted_trades(store) == expected_trades(lines, unit, "spot", *cols)


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize(
    ("dataset", "header_line", "lines"),
    [
        pytest.param(AGG_TRADES, UM_AGG_HEADER, UM_AGG, id="aggTrades"),
        pytest.param(TRADES, UM_TRADES_HEADER, UM_TRADES, id="trades"),
    ],
)
def test_usdm_trades(tmp_path: Path, store: Store, header: bool, dataset: tuple, header_line: str,
                     lines: list[str]) -> None:
    # 7 aggTrades / 6 trades columns (no is_best_match) exist only on USD-M: perp with or without the header
    name, _, cols = dataset
    path = write(tmp_path / f"BTCUSDT-{name}-2024-01-01.csv", [header_line] * header + lines, True)
    ok([path], store)
    assert sorted_trades(store) == expected_trades(lines, MS, "perp", *cols)


def test_reimport_is_idempotent(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", SPOT_AGG_MS, True)
    ok([path], store)
    again = ok([path], store)
    assert again.files[0].added == {"trade": 0}
    assert len(stored(store, "trade")) == len(SPOT_AGG_MS)


# -- metrics, bookDepth, fundingRate -----------------------------------------------------------
@pytest.mark.parametrize("zipped", [True, False])
def test_metrics_open_interest(tmp_path: Path, store: Store, zipped: bool) -> None:
    # rows given out of time order: metrics rows are independent snapshots and get sorted
    path = write(tmp_path / "BTCUSDT-metrics-2024-01-01.csv", [METRICS_HEADER, METRICS[1], METRICS[0]], zipped)
    assert ok([path], store).files[0].format == "binance-metrics"
    expected = [
        {"exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "ts": T_2024_01_01_0005 + i * 300 * 10**9,
         "oi": float(fields(line)[2]), "oi_value": float(fields(line)[3])}
        for i, line in enumerate(METRICS)
    ]
    assert stored(store, "open_interest") == expected


def test_metrics_symbol_from_column(tmp_path: Path, store: Store) -> None:
    ok([write(tmp_path / "oi.csv", [METRICS_HEADER, *(m.replace("BTCUSDT", "ETHUSDT") for m in METRICS)])], store)
    assert {r["symbol"] for r in stored(store, "open_interest")} == {"ETH/USDT"}


@pytest.mark.parametrize("zipped", [True, False])
def test_book_depth_bands(tmp_path: Path, store: Store, zipped: bool) -> None:
    path = write(tmp_path / "BTCUSDT-bookDepth-2025-05-19.csv", [BOOK_DEPTH_HEADER, *BOOK_DEPTH], zipped)
    assert ok([path], store).files[0].format == "binance-bookdepth"
    by_pct = {float(fields(line)[1]): (float(fields(line)[2]), float(fields(line)[3])) for line in BOOK_DEPTH}
    expected = [
        {"exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "ts": T_2025_05_19_110731, "band_pct": band,
         "reference": "mid",
         "bid_amount": by_pct[-band][0], "ask_amount": by_pct[band][0],
         "bid_notional": by_pct[-band][1], "ask_notional": by_pct[band][1],
         "bid_known_pct": None, "ask_known_pct": None}  # the archive does not say how far its book reached
        for band in (1.0, 2.0, 3.0, 4.0, 5.0)
    ]
    assert sorted(stored(store, "book_depth"), key=lambda r: r["band_pct"]) == expected
    # the bid side sits below the ask side: notional / depth is an average price
    for row in expected:
        assert row["bid_notional"] / row["bid_amount"] < row["ask_notional"] / row["ask_amount"]


@pytest.mark.parametrize("zipped", [True, False])
def test_funding_rate(tmp_path: Path, store: Store, zipped: bool) -> None:
    path = write(tmp_path / "BTCUSDT-fundingRate-2024-01.csv", [FUNDING_HEADER, *FUNDING], zipped)
    assert ok([path], store).files[0].format == "binance-fundingrate"
    expected = [
        {"exchange": "binance", "market": "perp", "symbol": "BTC/USDT", "ts": int(fields(line)[0]) * MS,
         "rate": float(fields(line)[2]), "mark_price": None, "index_price": None}
        for line in FUNDING
    ]
    assert stored(store, "funding") == expected


# -- the real order-book CSVs ------------------------------------------------------------------
def test_nautilus_depth_csvs(shared: Path, store: Store) -> None:
    folder = shared / "nautilus-samples" / "binance"
    snap, update = folder / "btcusdt-depth-snap.csv", folder / "btcusdt-depth-update.csv"
    report = ok([snap, update], store)
    assert [f.format for f in report.files] == ["binance-orderbook"] * 2
    rows = []
    for path in (snap, update):
        with open(path, newline="") as fh:
            rows.extend(csv.DictReader(fh))
    expected = {
        ("binance", "perp", "BTC/USDT", int(r["timestamp"]) * MS, int(r["last_update_id"]),
         None if r["update_type"] == "snap" else int(r["first_update_id"]),
         None if r["update_type"] == "snap" else int(r["pu"]),
         "bid" if r["side"] == "b" else "ask", float(r["price"]), float(r["qty"]), r["update_type"] == "snap")
        for r in rows
    }
    got = stored(store, "book_delta")
    assert {tuple(r.values()) for r in got} == expected and len(got) == len(expected)
    # hand-checked rows: first snapshot row, a removal (qty 0) and the last update row
    assert {"ts": 1667346579146 * MS, "seq": 2098021528332, "first_seq": None, "prev_seq": None, "side": "bid",
            "price": 20377.0, "amount": 1.77, "is_snapshot": True}.items() <= got[0].items()
    removal = next(r for r in got if r["price"] == 20472.8)
    assert {"amount": 0.0, "side": "ask", "is_snapshot": False, "seq": 2098041696700, "first_seq": 2098041693435,
            "prev_seq": 2098041693400}.items() <= removal.items()
    assert sum(r["is_snapshot"] for r in got) == 100
    last = max(got, key=lambda r: (r["ts"], r["price"]))
    assert (last["ts"], last["price"], last["amount"]) == (1667347199939 * MS, 20879.1, 10.249)


# -- recognition -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "timestamp,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,10\n",
    "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\nbitmex,XBTUSD,1585699209920000,"
    "1585699209934201,a,buy,6424.5,1\n",
    '{"e":"aggTrade","p":"1"}\n',
    "a,b,c\n1,2,3\n",
    "1,2,3,4,5,6,7,8,9,10,11,12\n",  # twelve numbers, but no epoch times
    "1,0.5,2,3,4,1704067200000,yes,no\n",  # aggTrades-like, but not true/false
])
def test_other_csvs_are_not_claimed(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text)
    assert not any(f.sniff(RawFile(path)) for f in FORMATS)


# -- malformed files: error names file, row and reason; nothing stored -------------------------
def test_truncated_zip(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-1m-2024-01-01.csv", SPOT_KLINES_MS * 50, zipped=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = failed(path, store)
    # the zip cannot be opened at all: no row to name
    assert "truncated or corrupt zip file" in message and ", row" not in message


def test_wrong_column_count(tmp_path: Path, store: Store) -> None:
    short = SPOT_KLINES_MS[1].rsplit(",", 1)[0]  # 11 columns
    message = failed(write(tmp_path / "BTCUSDT-1m-2024-01-01.csv", [SPOT_KLINES_MS[0], short]), store)
    assert "row 2" in message and "column" in message and "expected 12" in message


def test_extra_column(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", [UM_AGG_HEADER, UM_AGG[0], UM_AGG[1] + ",true"])
    message = failed(path, store)
    assert "row 3" in message and "wrong column count" in message


def test_non_numeric_price(tmp_path: Path, store: Store) -> None:
    bad = SPOT_TRADES[1].replace("42283.59000000", "42283.59USDT")
    message = failed(write(tmp_path / "BTCUSDT-trades-2024-01-01.csv", [SPOT_TRADES[0], bad], True), store)
    assert "row 2" in message and "non-numeric price '42283.59USDT'" in message


def test_negative_volume(tmp_path: Path, store: Store) -> None:
    bad = SPOT_KLINES_MS[2].replace(",22.86424000,", ",-22.86424000,")
    message = failed(write(tmp_path / "BTCUSDT-1m-2024-01-01.csv", [*SPOT_KLINES_MS[:2], bad], True), store)
    assert "row 3" in message and "negative volume" in message


def test_negative_depth(tmp_path: Path, store: Store) -> None:
    bad = BOOK_DEPTH[3].replace(",3989.", ",-3989.")
    path = write(tmp_path / "BTCUSDT-bookDepth-2025-05-19.csv", [BOOK_DEPTH_HEADER, *BOOK_DEPTH[:3], bad])
    message = failed(path, store)
    assert "row 5" in message and "negative depth" in message


def test_timestamps_out_of_order(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", [SPOT_AGG_MS[0], SPOT_AGG_MS[2], SPOT_AGG_MS[0]])
    message = failed(path, store)
    assert "row 3" in message and "out of order" in message


def test_funding_out_of_order(tmp_path: Path, store: Store) -> None:
    path = write(tmp_path / "BTCUSDT-fundingRate-2024-01.csv", [FUNDING_HEADER, FUNDING[1], FUNDING[0]], True)
    message = failed(path, store)
    assert "row 3" in message and "out of order" in message


def test_bad_bool(tmp_path: Path, store: Store) -> None:
    bad = UM_TRADES[1].replace(",true", ",maybe")
    message = failed(write(tmp_path / "BTCUSDT-trades-2024-01-01.csv", [UM_TRADES_HEADER, UM_TRADES[0], bad]), store)
    assert "row 3" in message and "is_buyer_maker must be true or false" in message


def test_bad_order_book_side(tmp_path: Path, store: Store) -> None:
    header = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"
    lines = [header, "BTCUSDT,1667346579146,2098021528332,2098021528332,b,snap,20377.00,1.770,-1",
             "BTCUSDT,1667346579146,2098021528332,2098021528332,x,snap,20376.90,0.001,-1"]
    message = failed(write(tmp_path / "depth.csv", lines), store)
    assert "row 3" in message and "side must be b or a, got 'x'" in message


def test_empty_file(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv"
    path.write_text("")
    # an empty file has no row to name
    assert "empty file" in failed(path, store)


def test_header_only_file(tmp_path: Path, store: Store) -> None:
    message = failed(write(tmp_path / "BTCUSDT-metrics-2024-01-01.csv", [METRICS_HEADER], True), store)
    assert "empty file: no data rows" in message


def test_bad_file_beside_good_one(tmp_path: Path, store: Store) -> None:
    good = write(tmp_path / "a" / "BTCUSDT-fundingRate-2024-01.csv", [FUNDING_HEADER, *FUNDING], True)
    bad = write(tmp_path / "b" / "BTCUSDT-fundingRate-2024-02.csv", [FUNDING_HEADER, "1706745600000,8,abc"], True)
    report = import_paths([tmp_path], store)
    assert [f.path for f in report.errors] == [bad] and [f.path for f in report.imported] == [good]
    assert "row 2" in (report.errors[0].error or "") and "non-numeric last_funding_rate" in report.errors[0].error
    assert len(stored(store, "funding")) == len(FUNDING)
