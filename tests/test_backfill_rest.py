"""Backfill through ccxt REST against the fake on 127.0.0.1, ccxt pointed at it by its URL config:
Coinbase candles (≤ 300 per request, no rows invented for intervals without trades), Binance
open interest for the last 30 days beyond the archive and funding, Bybit and OKX open interest
and funding — with 429 / 418 / 5xx / dropped / truncated responses injected."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from fakevenue import data, publish, venues
from fakevenue.fixtures import FAST_RETRY, RecordingSleep, recordings, run, venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.backfill.gaps import series_status
from tapewatch.backfill.manifest import Manifest, SeriesKey
from tapewatch.backfill.run import BackfillRequest
from tapewatch.store import Store

START = data.ms(date(2024, 1, 1))
MIN = 60_000
FIVE = 5 * MIN


def _req(exchange: str, symbol: str, start_ms: int, end_ms: int | None = None, **kw: object) -> BackfillRequest:
    return BackfillRequest(exchange, symbol, start=start_ms * 1_000_000,
                           end=end_ms * 1_000_000 if end_ms is not None else None, **kw)  # type: ignore[arg-type]


def _ts_ms(df: pl.DataFrame) -> np.ndarray:
    return (df["ts"].dt.epoch("ns") // 1_000_000).to_numpy()


# -- Coinbase candles ------------------------------------------------------------------------------
@pytest.fixture
def candles(venue: FakeVenue, recordings: Path) -> pl.DataFrame:
    """Two days and a bit of 1m candles; every 17th minute had no trades and has no row."""
    c = data.candles_with_gaps(START, 2 * 1440 + 30)
    venues.install_coinbase(venue, recordings, c.to_numpy())
    return c


def test_coinbase_candles_at_most_300_per_request_and_gaps_stay_gaps(venue: FakeVenue, candles: pl.DataFrame,
                                                                    store: Store) -> None:
    now = START + 2 * data.DAY_MS + 20 * MIN + 30_000  # 00:20:30 on day 3: the 00:20 candle is still open
    rep = run(venue, store, _req("coinbase", "BTC/USD", START), now)
    assert rep.ok, rep.problems()
    got = store.read("bar", "coinbase", "spot", "BTC/USD")
    exp = candles.filter(pl.col("open_time") < now - now % MIN)
    assert got.height == exp.height and not got["ts"].is_duplicated().any()
    assert (_ts_ms(got) == exp["open_time"].to_numpy()).all()  # no zero rows where there were no trades
    for col in ("open", "high", "low", "close", "volume"):
        assert (got[col].to_numpy() == exp[col].to_numpy()).all(), col
    assert got["taker_buy_volume"].is_null().all() and (got["volume"] > 0).all()
    reqs = venue.requests("candles")
    assert all(r.status == 200 for r in reqs)  # the fake answers 400 beyond 300 candles
    assert len(reqs) == 10  # 2900 minutes / 300
    st = {s.key: s for s in series_status(store)}[SeriesKey("coinbase", "spot", "bar", "BTC/USD", "1m")]
    missing = 2 * 1440 + 20 - exp.height
    assert len(st.gaps) == missing and st.missing_points == missing  # the no-trade minutes are gaps …
    settled = (now - 10 * MIN) * 1_000_000
    assert all(g.fetched for g in st.gaps if g.end <= settled)  # … "no rows at source"
    assert not any(g.fetched for g in st.gaps if g.start >= settled)  # the last minutes may still fill in


def test_coinbase_topped_up_later_fetches_only_new_windows(venue: FakeVenue, candles: pl.DataFrame,
                                                          store: Store) -> None:
    first_now = START + data.DAY_MS
    assert run(venue, store, _req("coinbase", "BTC/USD", START), first_now).ok
    n1 = len(venue.requests("candles"))
    later = START + 2 * data.DAY_MS
    rep = run(venue, store, _req("coinbase", "BTC/USD", START), later)
    assert rep.ok
    starts = [r.query["start"] for r in venue.requests("candles")[n1:]]
    assert starts and all(s >= "2024-01-01T23:" for s in starts)  # only the unsettled tail and the new day
    got = store.read("bar", "coinbase", "spot", "BTC/USD")
    exp = candles.filter(pl.col("open_time") < later)
    assert (_ts_ms(got) == exp["open_time"].to_numpy()).all()


def test_rest_failures_are_retried_with_retry_after_honoured(venue: FakeVenue, candles: pl.DataFrame,
                                                            store: Store) -> None:
    venue.fail("candles", "429", 2, retry_after="4")
    venue.fail("candles", "500", 1)
    venue.fail("candles", "drop", 1)
    venue.fail("candles", "truncate", 1)  # Content-Length says more than arrives
    venue.fail("candles", "cut", 1)  # a complete response with half a JSON body
    venue.fail("products$", "503", 1)  # the market list, too
    sleep = RecordingSleep()
    now = START + data.DAY_MS
    rep = run(venue, store, _req("coinbase", "BTC/USD", START, now), now, sleep=sleep,
              retry=replace(FAST_RETRY, max_attempts=8))  # all six faults hit the first window
    assert rep.ok, rep.problems()
    assert all(f.hits == f.times for f in venue.faults)
    assert sum(1 for s in sleep.calls if s >= 3.9) >= 2
    got = store.read("bar", "coinbase", "spot", "BTC/USD")
    exp = candles.filter(pl.col("open_time") < now)
    assert got.height == exp.height and (_ts_ms(got) == exp["open_time"].to_numpy()).all()


def test_rest_give_up_keeps_earlier_windows_and_names_the_missing_range(venue: FakeVenue, candles: pl.DataFrame,
                                                                       store: Store) -> None:
    now = START + data.DAY_MS
    calls = {"n": 0}  # the first 3 windows come through, then the venue fails for good
    original = venue.routes["api.exchange.coinbase.com/products/BTC-USD/candles"]

    def flaky(r):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return original(r) if calls["n"] <= 3 else (502, {"message": "bad gateway"})

    venue.route("api.exchange.coinbase.com/products/BTC-USD/candles", flaky)
    rep = run(venue, store, _req("coinbase", "BTC/USD", START, now), now)
    assert not rep.ok
    [msg] = rep.problems()
    assert msg.startswith("missing coinbase spot BTC/USD bar 1m 2024-01-01 15:00:00 → 2024-01-02 00:00:00: "
                          "HTTP 502 from http://127.0.0.1")
    assert msg.endswith("/api.exchange.coinbase.com/products/BTC-USD/candles?granularity=60&start=2024-01-01T15%3A00%3A00.000Z"
                        "&end=2024-01-01T19%3A59%3A59.999Z (gave up after 5 attempts)")
    got = store.read("bar", "coinbase", "spot", "BTC/USD")
    assert _ts_ms(got).max() < START + 900 * MIN and got.height > 800  # the 3 windows before stay valid
    venue.route("api.exchange.coinbase.com/products/BTC-USD/candles", original)
    assert run(venue, store, _req("coinbase", "BTC/USD", START, now), now).ok
    assert store.read("bar", "coinbase", "spot", "BTC/USD").height == candles.filter(pl.col("open_time") < now).height


# -- Binance OI (archive + last 30 days by REST) and funding ----------------------------------------
def test_binance_oi_rest_fills_only_the_recent_days_the_archive_lacks(venue: FakeVenue, recordings: Path,
                                                                      store: Store) -> None:
    now = data.ms(date(2024, 3, 5)) + 3 * 3_600_000 + 17_000
    archived = publish.metrics(venue, "BTC/USDT", date(2024, 2, 23), 10)  # up to 2024-03-03; 03-04 not yet
    t = np.arange(data.ms(date(2024, 1, 1)), now, FIVE, dtype=np.int64)
    oi = np.round(90_000 + np.cumsum(np.random.default_rng(3).normal(0, 5, len(t))), 3)
    ft = np.arange(data.ms(date(2024, 1, 1)), now, 8 * 3_600_000, dtype=np.int64)
    rate = np.round(np.random.default_rng(4).normal(0.0001, 0.00003, len(ft)), 8)
    venues.install_binance(venue, recordings, oi=(t, oi, np.round(oi * 42_000, 2)),
                           funding=(ft, rate, np.full(len(ft), 42_000.5)), now_ms=now)
    publish.funding(venue, "BTC/USDT", [date(2024, 1, 1), date(2024, 2, 1)])
    venue.fail("openInterestHist", "429", 1, retry_after="2")
    venue.fail("openInterestHist", "truncate", 1)
    venue.fail("fapi/v1/fundingRate", "cut", 1)
    venue.fail("exchangeInfo", "drop", 1)
    rep = run(venue, store, _req("binance", "BTC/USDT", data.ms(date(2024, 2, 23)), markets=("perp",),
                                 kinds=("metrics", "funding")), now)
    assert rep.ok, rep.problems()
    assert rep.warnings() == ["not in the archive (HTTP 404; not published yet, or before the listing): binance "
                              "perp BTC/USDT metrics 2024-03-04 (1 daily file)"]
    got = store.read("open_interest", "binance", "perp", "BTC/USDT")
    assert not got["ts"].is_duplicated().any()
    arch = got.filter(pl.col("ts") < pl.datetime(2024, 3, 4, time_zone="UTC"))
    assert arch.equals(archived)
    recent = got.filter(pl.col("ts") >= pl.datetime(2024, 3, 4, time_zone="UTC"))
    sel = t >= data.ms(date(2024, 3, 4))
    assert (_ts_ms(recent) == t[sel]).all() and (recent["oi"].to_numpy() == oi[sel]).all()
    windows = [r for r in venue.requests("openInterestHist") if r.status == 200 and not r.fault]
    assert all(int(r.query["startTime"]) >= data.ms(date(2024, 3, 4)) for r in windows)  # not what the archive had
    assert all(int(r.query["limit"]) <= 500 for r in windows)
    f = store.read("funding", "binance", "perp", "BTC/USDT")
    sel_f = ft >= data.ms(date(2024, 3, 1))
    rest_part = f.filter(pl.col("ts") >= pl.datetime(2024, 3, 1, time_zone="UTC"))
    assert (_ts_ms(rest_part) == ft[sel_f]).all() and (rest_part["mark_price"] == 42_000.5).all()
    assert f.filter(pl.col("ts") < pl.datetime(2024, 3, 1, time_zone="UTC")).height == 29 * 3  # the Feb file


def test_418_on_rest_stops_the_venue_and_says_until_when(venue: FakeVenue, recordings: Path, store: Store) -> None:
    now = data.ms(date(2024, 3, 5))
    t = np.arange(now - 5 * data.DAY_MS, now, FIVE, dtype=np.int64)
    venues.install_binance(venue, recordings, oi=(t, np.full(len(t), 1.0), np.full(len(t), 2.0)),
                           funding=(t[::96], np.full(len(t[::96]), 0.0001), np.full(len(t[::96]), 1.0)), now_ms=now)
    venue.fail("openInterestHist", "418", 1)  # no Retry-After: Binance's body says until when
    rep = run(venue, store, _req("binance", "BTC/USDT", now - 5 * data.DAY_MS, markets=("perp",), kinds=("oi", "funding")),
              now)
    assert not rep.ok and "binance" in rep.rest.banned
    msgs = rep.problems()
    assert len(msgs) == 2 and all("binance banned this IP (HTTP 418" in m for m in msgs)
    assert all("the ban lasts until 2024-01-02 00:00:00 UTC" in m for m in msgs)
    assert msgs[0].startswith("missing binance perp BTC/USDT open_interest 2024-02-29")
    assert msgs[1].startswith("missing binance perp BTC/USDT funding 2024-02-29")
    assert not venue.requests("fapi/v1/fundingRate")  # nothing sent to the venue after the ban


# -- Bybit and OKX ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exchange", ["bybit", "okx"])
def test_bybit_and_okx_oi_and_funding(venue: FakeVenue, store: Store, exchange: str) -> None:
    t, v = data.series(START, 3 * 288, FIVE, 9, level=50_000, noise=20)
    ft, fr = data.series(START, 9, 8 * 3_600_000, 10, level=0.0001, noise=0.00001, decimals=8)
    (venues.install_bybit if exchange == "bybit" else venues.install_okx)(venue, (t, v), (ft, fr))
    venue.fail("open-interest", "500", 1)
    venue.fail("funding", "429", 1, retry_after="1")
    now = START + 3 * data.DAY_MS
    rep = run(venue, store, _req(exchange, "BTC/USDT", START), now)
    assert rep.ok, rep.problems()
    oi = store.read("open_interest", exchange, "perp", "BTC/USDT")
    assert (_ts_ms(oi) == t).all() and np.allclose(oi["oi"].to_numpy(), v, rtol=0, atol=1e-9)
    if exchange == "okx":  # contracts × 0.01 BTC: base units, and the USD value
        assert np.allclose(oi["oi_value"].to_numpy(), np.round(v * 42_000, 2))
    f = store.read("funding", exchange, "perp", "BTC/USDT")
    assert (_ts_ms(f) == ft).all() and (f["rate"].to_numpy() == fr).all()
    done = Manifest.load(store.root).coverage(SeriesKey(exchange, "perp", "open_interest", "BTC/USDT"))
    assert done and done[0][0] == START * 1_000_000
    before = len(venue.log)
    assert run(venue, store, _req(exchange, "BTC/USDT", START), now).ok
    oi_again = [r for r in venue.log[before:] if "open-interest" in r.path]
    assert all(int(r.query.get("startTime", r.query.get("begin", 0))) >= now - 20 * MIN for r in oi_again)
