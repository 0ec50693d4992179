"""Backfill building blocks without a server: archive URL layout and planning, checksums, the
retry policy (429 / 418 / backoff), the manifest's coverage arithmetic, config and URL overrides."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import date
from pathlib import Path

import pytest

from fakevenue.fixtures import RecordingSleep
from tapewatch.backfill.archive import DATASETS, ArchiveFile, parse_checksum, plan_files
from tapewatch.backfill.config import BackfillConfig, VenueConfig, config_from_dict, load_config
from tapewatch.backfill.manifest import Entry, Manifest, SeriesKey, merge, subtract
from tapewatch.backfill.rest import VENUES, ccxt_symbol, make_exchange, override_urls
from tapewatch.backfill.retry import (
    Banned, GiveUp, RateLimited, Retrier, RetryPolicy, TransientError, VenueGate, check_status, parse_retry_after,
)
from tapewatch.backfill.run import BackfillRequest, make_plan
from tapewatch.errors import TapewatchError
from tapewatch.store import NS_PER_DAY

DAY = NS_PER_DAY


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days * DAY


# -- archive layout ------------------------------------------------------------------------------
def test_archive_paths_follow_the_published_layout() -> None:
    kl = ArchiveFile(DATASETS["klines"], "spot", "BTC/USDT", "1m", "daily", date(2024, 1, 1))
    assert kl.path == "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-01.zip"
    kl_m = ArchiveFile(DATASETS["klines"], "perp", "BTC/USDT", "1h", "monthly", date(2024, 2, 1))
    assert kl_m.path == "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02.zip"
    assert (kl_m.first, kl_m.end) == (date(2024, 2, 1), date(2024, 3, 1))
    agg = ArchiveFile(DATASETS["aggtrades"], "spot", "ETH/USDT", None, "daily", date(2023, 5, 6))
    assert agg.path == "data/spot/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2023-05-06.zip"
    met = ArchiveFile(DATASETS["metrics"], "perp", "BTC/USDT", None, "daily", date(2024, 1, 1))
    assert met.path == "data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-01.zip"
    fr = ArchiveFile(DATASETS["funding"], "perp", "BTC/USDT", None, "monthly", date(2024, 1, 1))
    assert fr.path == "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip"
    bd = ArchiveFile(DATASETS["bookdepth"], "perp", "BTC/USDT", None, "daily", date(2024, 1, 1))
    assert bd.path == "data/futures/um/daily/bookDepth/BTCUSDT/BTCUSDT-bookDepth-2024-01-01.zip"


def _plan(ds: str, first: date, end: date, today: date, manifest: Manifest, interval: str | None = "1m") -> list[str]:
    return [f.path.rsplit("/", 1)[1] for f in
            plan_files(DATASETS[ds], "spot" if ds == "klines" else "perp", "BTC/USDT", interval, first, end, today, manifest)]


def test_plan_takes_the_monthly_file_only_for_a_whole_finished_month(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    # Jan whole + Feb 1-2: monthly Jan, daily Feb
    assert _plan("klines", date(2024, 1, 1), date(2024, 2, 3), date(2024, 6, 1), m) == [
        "BTCUSDT-1m-2024-01.zip", "BTCUSDT-1m-2024-02-01.zip", "BTCUSDT-1m-2024-02-02.zip"]
    # a month started mid-way: daily files only
    assert len(_plan("klines", date(2024, 1, 15), date(2024, 2, 1), date(2024, 6, 1), m)) == 17
    # the current month: daily files up to yesterday, nothing for today
    assert _plan("klines", date(2024, 6, 1), date(2024, 7, 1), date(2024, 6, 3), m) == [
        "BTCUSDT-1m-2024-06-01.zip", "BTCUSDT-1m-2024-06-02.zip"]
    # metrics and bookDepth exist daily only
    assert len(_plan("metrics", date(2024, 1, 1), date(2024, 2, 1), date(2024, 6, 1), m, None)) == 31
    # fundingRate exists monthly only, once the month is over
    assert _plan("funding", date(2024, 1, 10), date(2024, 3, 5), date(2024, 3, 5), m, None) == [
        "BTCUSDT-fundingRate-2024-01.zip", "BTCUSDT-fundingRate-2024-02.zip"]


def test_plan_skips_what_the_manifest_holds_and_goes_daily_around_it(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    key = SeriesKey("binance", "spot", "bar", "BTC/USDT", "1m")
    m.add(Entry(key, _day(date(2024, 1, 10)), _day(date(2024, 1, 12)), "archive", "x"))
    names = _plan("klines", date(2024, 1, 1), date(2024, 2, 1), date(2024, 6, 1), m)
    assert len(names) == 29 and "BTCUSDT-1m-2024-01-10.zip" not in names and "BTCUSDT-1m-2024-01-11.zip" not in names
    m.add(Entry(key, _day(date(2024, 1, 1)), _day(date(2024, 2, 1)), "archive", "y"))
    assert _plan("klines", date(2024, 1, 1), date(2024, 2, 1), date(2024, 6, 1), m) == []


def test_checksum_lines() -> None:
    h = "ab" * 32
    assert parse_checksum(f"{h}  BTCUSDT-1m-2024-01.zip\n", "BTCUSDT-1m-2024-01.zip", "u") == h
    assert parse_checksum(h.upper(), "x.zip", "u") == h
    with pytest.raises(TransientError, match="not a SHA-256"):
        parse_checksum(h[:40], "x.zip", "u")  # truncated
    with pytest.raises(TransientError, match="checksum is for"):
        parse_checksum(f"{h}  other.zip", "x.zip", "u")


# -- retry policy --------------------------------------------------------------------------------
def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = 1_704_067_200.0  # 2024-01-01 00:00:00 UTC
    assert parse_retry_after("Mon, 01 Jan 2024 00:02:00 GMT", now) == pytest.approx(120)


def test_statuses_map_to_the_policy() -> None:
    check_status(200, {}, "u", "v")
    check_status(404, {}, "u", "v")  # not the policy's business
    with pytest.raises(RateLimited) as rl:
        check_status(429, {"retry-after": "12"}, "http://x/y", "binance")
    assert rl.value.retry_after == 12 and "Retry-After 12s" in str(rl.value)
    with pytest.raises(TransientError, match="HTTP 503"):
        check_status(503, {}, "http://x/y", "binance")
    with pytest.raises(Banned) as ban:
        check_status(418, {"Retry-After": "3600"}, "http://x/y", "binance")
    assert ban.value.until == pytest.approx(time.time() + 3600, abs=5)
    assert "banned" in str(ban.value) and "until 20" in str(ban.value)
    with pytest.raises(Banned) as ban2:  # no header: Binance's body says until when
        check_status(418, {}, "u", "binance", '{"code":-1003,"msg":"Way too many requests; IP banned until 1704153600000."}')
    assert ban2.value.until == 1_704_153_600 and "2024-01-02 00:00:00 UTC" in str(ban2.value)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    p = RetryPolicy(base_delay=1, max_delay=8)
    rng = random.Random(1)
    for attempt, cap in ((1, 1), (2, 2), (3, 4), (4, 8), (9, 8)):
        waits = [p.backoff(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= w <= cap for w in waits)
        assert max(waits) - min(waits) > cap / 4  # jittered, not fixed


def test_retrier_honours_retry_after_then_gives_up_naming_what_is_missing() -> None:
    sleep = RecordingSleep()
    retrier = Retrier(RetryPolicy(base_delay=0.001, max_attempts=3), sleep=sleep, rng=random.Random(0))
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RateLimited("HTTP 429", 30)
        raise TransientError("HTTP 502 from http://x")

    with pytest.raises(GiveUp) as exc:
        asyncio.run(retrier.run(flaky, what="binance spot BTC/USDT bar 1m 2024-01-01", gate=VenueGate("binance")))
    assert len(calls) == 3
    assert any(s >= 29.9 for s in sleep.calls), sleep.calls  # the 429's Retry-After was waited out
    assert str(exc.value) == ("gave up after 3 attempts: HTTP 502 from http://x; "
                              "missing: binance spot BTC/USDT bar 1m 2024-01-01")


def test_retry_after_beyond_the_limit_is_a_clear_give_up() -> None:
    retrier = Retrier(RetryPolicy(max_retry_after=60), sleep=RecordingSleep())

    async def limited() -> None:
        raise RateLimited("HTTP 429 rate limited (Retry-After 3600s)", 3600)

    with pytest.raises(GiveUp, match="longer than the 60s this run waits"):
        asyncio.run(retrier.run(limited, what="x", gate=VenueGate("v")))


def test_a_ban_stops_every_later_request_to_that_venue() -> None:
    gate = VenueGate("binance")
    retrier = Retrier(RetryPolicy(), sleep=RecordingSleep())
    calls = []

    async def banned() -> None:
        calls.append(1)
        raise Banned("binance", "http://x", None)

    with pytest.raises(Banned):
        asyncio.run(retrier.run(banned, what="x", gate=gate))
    with pytest.raises(Banned, match="ban's end was not given"):
        asyncio.run(retrier.run(banned, what="y", gate=gate))
    assert len(calls) == 1  # nothing sent after the ban


# -- manifest ------------------------------------------------------------------------------------
def test_range_arithmetic() -> None:
    assert merge([(5, 7), (1, 3), (3, 4), (6, 9)]) == [(1, 4), (5, 9)]
    assert subtract([(0, 10)], [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert subtract([(0, 10)], [(0, 10)]) == []


def test_manifest_survives_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    key = SeriesKey("binance", "perp", "open_interest", "BTC/USDT")
    m.add(Entry(key, 0, DAY, "archive", "a", "ff" * 32, 288, 288))
    with open(m.path, "a") as fh:
        fh.write('{"key": {"venue": "binance", "mar')  # killed mid-append
    again = Manifest.load(tmp_path)
    assert again.covered(key, 0, DAY) and not again.covered(key, 0, 2 * DAY)
    assert again.uncovered(key, 0, 3 * DAY) == [(DAY, 3 * DAY)]
    assert again.sha256_of("a") == "ff" * 32


# -- config and ccxt URLs ------------------------------------------------------------------------
def test_config_file_overrides_and_rejects_unknown_keys(tmp_path: Path) -> None:
    p = tmp_path / "bf.toml"
    p.write_text('[archive]\nurl = "http://127.0.0.1:9/"\nconcurrency = 2\n[retry]\nbase_delay = 0.5\nmax_attempts = 3\n'
                 '[venues.binance]\napi_base = "http://127.0.0.1:9"\nrate_limit_ms = 5\n')
    cfg = load_config(p)
    assert cfg.archive_url == "http://127.0.0.1:9" and cfg.concurrency == 2
    assert cfg.retry.base_delay == 0.5 and cfg.retry.max_attempts == 3
    assert cfg.venue("binance").rate_limit_ms == 5 and cfg.venue("okx") == VenueConfig()
    with pytest.raises(TapewatchError, match="unknown key.*concurency"):
        config_from_dict({"archive": {"concurency": 3}})
    p.write_text("[archive\n")
    with pytest.raises(TapewatchError, match="not valid TOML"):
        load_config(p)


def test_ccxt_urls_are_overridden_per_instance_not_in_ccxt() -> None:
    import ccxt.async_support as ccxt_async

    api = {"public": "https://api.binance.com/api/v3", "fapiData": "https://fapi.binance.com/futures/data"}
    assert override_urls(api, VenueConfig(api_base="http://127.0.0.1:1")) == {
        "public": "http://127.0.0.1:1/api.binance.com/api/v3",
        "fapiData": "http://127.0.0.1:1/fapi.binance.com/futures/data"}
    assert override_urls(api, VenueConfig(urls={"public": "http://h/p"}))["public"] == "http://h/p"
    with pytest.raises(TapewatchError, match="unknown ccxt url key"):
        override_urls(api, VenueConfig(urls={"nope": "http://h"}))
    cfg = BackfillConfig(venues={"okx": VenueConfig(api_base="http://127.0.0.1:1")}).venue("okx")
    ex = make_exchange(VENUES["okx"], cfg, RetryPolicy(timeout=3))
    assert ex.urls["api"]["rest"] == "http://127.0.0.1:1/www.okx.com" and ex.timeout == 3000
    assert isinstance(ex, ccxt_async.okx)
    assert ccxt_async.okx().urls["api"]["rest"] == "https://{hostname}"  # ccxt itself untouched
    cb = make_exchange(VENUES["coinbase"], VenueConfig(api_base="http://127.0.0.1:1"), RetryPolicy())
    assert cb.urls["api"]["public"] == "http://127.0.0.1:1/api.exchange.coinbase.com"
    assert ccxt_symbol("BTC/USDT", "perp") == "BTC/USDT:USDT" and ccxt_symbol("BTC/USD", "spot") == "BTC/USD"


# -- request validation --------------------------------------------------------------------------
def test_requests_that_cannot_be_met_are_clear_errors(tmp_path: Path) -> None:
    m, cfg, now = Manifest(tmp_path), BackfillConfig(), _day(date(2024, 6, 1))
    start = _day(date(2024, 1, 1))

    def plan(**kw: object):  # type: ignore[no-untyped-def]
        return make_plan(BackfillRequest(**{"exchange": "binance", "symbol": "BTC/USDT", "start": start, **kw}), cfg, m, now)

    with pytest.raises(TapewatchError, match="aggtrades or trades, not both"):
        plan(kinds=("aggtrades", "trades"))
    with pytest.raises(TapewatchError, match="unknown kind 'candels'"):
        plan(kinds=("candels",))
    with pytest.raises(TapewatchError, match="coinbase backfill has no oi"):
        plan(exchange="coinbase", symbol="BTC/USD", kinds=("oi",))
    with pytest.raises(TapewatchError, match="klines come in 1m, 5m, 15m, 1h, 6h, 1d"):
        plan(exchange="coinbase", symbol="BTC/USD", interval="3m")
    with pytest.raises(TapewatchError, match="--start must be before --end"):
        plan(end=start)
    p = plan(markets=("spot",), kinds=("metrics", "klines"))
    assert p.notes == ["binance has no spot oi; skipped"] and p.rest == []
    assert {f.dataset.name for f in p.archive} == {"klines"}
    # Binance OI through REST only for the last 30 days
    p = plan(markets=("perp",), kinds=("metrics",))
    assert len(p.rest) == 1 and p.rest[0].start >= now - 30 * DAY and p.rest[0].end == now
