"""Backfill from the Binance archive, end to end against the fake on 127.0.0.1: files under the
archive's own URL layout (zip + .CHECKSUM, built from rows in the documented layout), with 429,
418, 500, dropped connections, truncated bodies and wrong checksums injected. Every run ends
with exactly the expected rows (nothing lost, corrupted or duplicated) or a clear message
naming what is missing."""

from __future__ import annotations

import functools
import io
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from fakevenue import data, publish
from fakevenue.fixtures import RecordingSleep, config_for, run, venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.backfill.__main__ import app
from tapewatch.backfill.manifest import Manifest, SeriesKey
from tapewatch.backfill.run import BackfillRequest
from tapewatch.importer import import_paths
from tapewatch.sources import Hints
from tapewatch.store import Store

NOW = data.ms(date(2024, 3, 1))  # the archive has everything up to 2024-02-29


def _req(first: date, end: date, **kw: object) -> BackfillRequest:
    return BackfillRequest(**{"exchange": "binance", "symbol": "BTC/USDT", "start": data.ms(first) * 1_000_000,
                              "end": data.ms(end) * 1_000_000, "kinds": ("klines",), "interval": "5m", **kw})


def _bars(store: Store, market: str) -> pl.DataFrame:
    return store.read("bar", "binance", market, "BTC/USDT")


def _assert_exact(store: Store, expected: dict[str, pl.DataFrame]) -> None:
    """The store holds exactly the expected bars: same rows, same values, no duplicates."""
    for market, exp in expected.items():
        got = _bars(store, market)
        assert got.height == exp.height, (market, got.height, exp.height)
        assert not got["ts"].is_duplicated().any()
        assert got.equals(exp.select(got.columns)), market


@functools.cache
def _jan_feb() -> tuple[dict[str, bytes], dict[str, pl.DataFrame]]:
    """Built once per test process: the files and the bars they hold."""
    shelf = FakeVenue()  # not started: only holds the files
    expected = {m: publish.klines(shelf, m, "BTC/USDT", date(2024, 1, 1), 34, interval="5m") for m in ("spot", "perp")}
    return shelf.files, expected


@pytest.fixture
def jan_feb(venue: FakeVenue) -> dict[str, pl.DataFrame]:
    """Spot and perp 5m klines for 2024-01-01 … 2024-02-03 on the fake (monthly Jan + dailies)."""
    files, expected = _jan_feb()
    venue.files.update(files)
    return expected


def test_clean_run_imports_exact_rows_and_a_second_run_fetches_nothing(venue: FakeVenue, jan_feb: dict,
                                                                      store: Store) -> None:
    rep = run(venue, store, _req(date(2024, 1, 1), date(2024, 2, 4)), NOW)
    assert rep.ok and not rep.problems() and not rep.warnings()
    _assert_exact(store, jan_feb)
    zips = sorted(r.path for r in venue.requests(r"\.zip$") if r.method == "GET")
    assert zips == sorted(f"data/{d}/{p}" for d in ("spot", "futures/um") for p in (
        "monthly/klines/BTCUSDT/5m/BTCUSDT-5m-2024-01.zip", "daily/klines/BTCUSDT/5m/BTCUSDT-5m-2024-02-01.zip",
        "daily/klines/BTCUSDT/5m/BTCUSDT-5m-2024-02-02.zip", "daily/klines/BTCUSDT/5m/BTCUSDT-5m-2024-02-03.zip"))
    assert len(rep.archive.imported) == 8 and rep.archive.rows_added == 2 * 34 * 288
    assert not list((store.root / ".backfill" / "files").rglob("*.zip"))  # cleaned up after import
    before = len(venue.log)
    again = run(venue, store, _req(date(2024, 1, 1), date(2024, 2, 4)), NOW)
    assert again.ok and len(venue.log) == before and again.archive.rows_added == 0
    _assert_exact(store, jan_feb)


def test_every_injected_failure_is_recovered_without_loss_or_duplicates(venue: FakeVenue, jan_feb: dict,
                                                                       store: Store) -> None:
    venue.fail(r"spot/monthly/.*2024-01\.zip$", "429", 2, retry_after="7")
    venue.fail(r"um/monthly/.*2024-01\.zip\.CHECKSUM$", "429", 1, retry_after="3")
    venue.fail(r"2024-02-01\.zip$", "500", 2)
    venue.fail(r"spot/.*2024-02-02\.zip$", "drop", 2)
    venue.fail(r"um/.*2024-02-02\.zip$", "truncate", 2)
    venue.fail(r"spot/.*2024-02-03\.zip$", "corrupt", 1)  # bytes flipped in transit: checksum catches it
    venue.fail(r"um/.*2024-02-03\.zip\.CHECKSUM$", "badsum", 1)  # a wrong published checksum, then the right one
    venue.fail(r"um/.*2024-02-01\.zip\.CHECKSUM$", "cut", 1)  # truncated checksum text
    venue.fail(r"um/monthly/.*2024-01\.zip$", "503", 1)
    sleep = RecordingSleep()
    rep = run(venue, store, _req(date(2024, 1, 1), date(2024, 2, 4)), NOW, sleep=sleep)
    assert rep.ok, rep.problems()
    _assert_exact(store, jan_feb)
    assert all(f.hits == f.times for f in venue.faults)  # every fault was actually served
    assert max(sleep.calls) >= 6.9  # Retry-After: 7 was honoured
    assert rep.archive.rows_added == 2 * 34 * 288  # each row added once


def test_wrong_checksum_every_time_gives_up_on_that_file_only(venue: FakeVenue, jan_feb: dict, store: Store) -> None:
    venue.fail(r"spot/daily/.*2024-02-02\.zip$", "corrupt", -1)
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 4)), NOW)
    assert not rep.ok
    [(bad, msg)] = rep.archive.failed
    assert bad.stamp == "2024-02-02" and bad.market == "spot"
    assert "checksum mismatch on 3 downloads" in msg and "missing: binance spot BTC/USDT klines 5m 2024-02-02" in msg
    assert "nothing from this file was imported" in msg
    got = _bars(store, "spot")["ts"].dt.date().unique().sort().to_list()
    assert got == [date(2024, 2, 1), date(2024, 2, 3)]  # the other days are in, the bad one is not
    assert _bars(store, "perp").height == 3 * 288
    venue.clear_faults()  # the archive fixes the file: the next run fetches only what is missing
    before = len(venue.requests(r"\.zip$"))
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 4)), NOW)
    assert rep.ok and len(venue.requests(r"\.zip$")) == before + 1
    exp = jan_feb["spot"].filter(pl.col("ts") >= pl.datetime(2024, 2, 1, time_zone="UTC"))
    assert _bars(store, "spot").equals(exp)


def test_persistent_500_gives_up_with_a_message_naming_the_file(venue: FakeVenue, jan_feb: dict, store: Store) -> None:
    venue.fail(r"um/daily/.*2024-02-03\.zip\.CHECKSUM$", "500", -1)
    rep = run(venue, store, _req(date(2024, 2, 3), date(2024, 2, 4)), NOW)
    [(bad, msg)] = rep.archive.failed
    assert bad.market == "perp"
    assert msg.startswith("gave up after 5 attempts: HTTP 500 from http://127.0.0.1")
    assert "missing: checksum of binance perp BTC/USDT klines 5m 2024-02-03" in msg
    assert _bars(store, "spot").height == 288 and _bars(store, "perp").height == 0


def test_418_stops_the_venue_says_until_when_and_keeps_what_was_stored(venue: FakeVenue, jan_feb: dict,
                                                                        store: Store) -> None:
    venue.fail(r"um/daily/.*2024-02-02\.zip$", "418", 1, retry_after="3600")
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 4)), NOW, concurrency=1)
    assert not rep.ok and rep.archive.banned is not None
    [msg] = rep.problems()
    assert "binance archive banned this IP (HTTP 418" in msg and "the ban lasts until 20" in msg
    assert "not fetched: binance perp BTC/USDT klines 5m 2024-02-02 → 2024-02-03 (2 daily files)" in msg
    after_ban = [r for r in venue.log[venue.log.index(venue.requests(r"418|2024-02-02\.zip$")[-1]) + 1:]]
    assert after_ban == []  # nothing was sent after the 418
    done = Manifest.load(store.root).coverage(SeriesKey("binance", "spot", "bar", "BTC/USDT", "5m"))
    assert done and _bars(store, "spot").height == 3 * 288  # stored before the ban: kept and recorded
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 4)), NOW)  # the ban is over
    assert rep.ok
    _assert_exact(store, {m: f.filter(pl.col("ts") >= pl.datetime(2024, 2, 1, time_zone="UTC"))
                          for m, f in jan_feb.items()})


def test_monthly_file_not_published_falls_back_to_daily_files(venue: FakeVenue, store: Store) -> None:
    exp = publish.klines(venue, "spot", "BTC/USDT", date(2024, 2, 1), 29, interval="1h", monthly=False)
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 3, 1), markets=("spot",), interval="1h"), NOW)
    assert rep.ok and len(rep.archive.imported) == 29
    assert [(r.method, r.status) for r in venue.requests(r"monthly/")] == [("HEAD", 404)]
    got = _bars(store, "spot")
    assert got.equals(exp.select(got.columns)) and got.height == 29 * 24


def test_days_not_in_the_archive_are_reported_not_failed(venue: FakeVenue, store: Store) -> None:
    publish.klines(venue, "spot", "BTC/USDT", date(2024, 1, 3), 2, interval="5m", monthly=False)
    rep = run(venue, store, _req(date(2024, 1, 1), date(2024, 1, 5), markets=("spot",)), NOW)
    assert rep.ok and len(rep.archive.imported) == 2
    assert rep.warnings() == ["not in the archive (HTTP 404; not published yet, or before the listing): "
                              "binance spot BTC/USDT klines 5m 2024-01-01 → 2024-01-02 (2 daily files)"]


def test_an_interrupted_download_resumes_with_range(venue: FakeVenue, jan_feb: dict, store: Store) -> None:
    path = "data/spot/daily/klines/BTCUSDT/5m/BTCUSDT-5m-2024-02-01.zip"
    part = store.root / ".backfill" / "files" / (path + ".part")
    part.parent.mkdir(parents=True)
    half = len(venue.files[path]) // 2
    part.write_bytes(venue.files[path][:half])  # what a killed run left behind
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 2), markets=("spot",)), NOW)
    assert rep.ok
    [req] = venue.requests(r"2024-02-01\.zip$")
    assert req.range == f"bytes={half}-" and req.status == 200
    assert rep.archive.imported[0][1] == 288 and not part.exists()


def test_all_archive_datasets_become_their_record_kinds(venue: FakeVenue, store: Store) -> None:
    oi = publish.metrics(venue, "BTC/USDT", date(2024, 1, 30), 2)
    depth = publish.book_depth(venue, "BTC/USDT", date(2024, 1, 30), 2)
    funding = publish.funding(venue, "BTC/USDT", [date(2024, 1, 1)])
    rep = run(venue, store, _req(date(2024, 1, 30), date(2024, 2, 1), markets=("perp",),
                                 kinds=("metrics", "bookdepth", "funding")), NOW)
    assert rep.ok, rep.problems()
    assert store.read("open_interest", "binance", "perp", "BTC/USDT").equals(oi)
    got = store.read("book_depth", "binance", "perp", "BTC/USDT").sort("ts", "band_pct")
    assert got.select(depth.columns).equals(depth) and got["bid_known_pct"].is_null().all()
    got_f = store.read("funding", "binance", "perp", "BTC/USDT")
    assert got_f.select(funding.columns).equals(funding) and got_f["mark_price"].is_null().all()


def test_store_already_holding_the_days_skips_the_download(venue: FakeVenue, jan_feb: dict, store: Store,
                                                           tmp_path: Path) -> None:
    name = "BTCUSDT-5m-2024-02-02.zip"
    local = tmp_path / name
    local.write_bytes(venue.files[f"data/spot/daily/klines/BTCUSDT/5m/{name}"])
    import_paths([local], store, Hints(market="spot"))  # imported by hand with `tapewatch import`
    rep = run(venue, store, _req(date(2024, 2, 2), date(2024, 2, 3), markets=("spot",)), NOW)
    assert rep.ok and [f.stamp for f in rep.archive.held] == ["2024-02-02"] and venue.requests(r"\.zip") == []


def test_recheck_reimports_a_republished_file(venue: FakeVenue, store: Store) -> None:
    publish.klines(venue, "spot", "BTC/USDT", date(2024, 2, 1), 1, interval="5m", monthly=False)
    assert run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 2), markets=("spot",)), NOW).ok
    fixed = publish.klines(venue, "spot", "BTC/USDT", date(2024, 2, 1), 1, interval="5m", monthly=False,
                           seed=99)  # re-published
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 2), markets=("spot",)), NOW)
    assert rep.ok and not venue.requests(r"\.zip$")[1:]  # without --recheck: nothing fetched
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 2), markets=("spot",), recheck=True), NOW)
    assert rep.ok and len(rep.archive.imported) == 1
    _assert_exact(store, {"spot": fixed})
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 2), markets=("spot",), recheck=True), NOW)
    assert rep.ok and len(rep.archive.unchanged) == 1 and not rep.archive.imported


def test_progress_bar_shows_files_bytes_and_eta(venue: FakeVenue, jan_feb: dict, store: Store) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=150, color_system=None)
    rep = run(venue, store, _req(date(2024, 2, 1), date(2024, 2, 4)), NOW, console=console)
    assert rep.ok
    text = out.getvalue()
    assert "archive" in text and "6/6" in text and "files" in text and "kB" in text and "ETA" in text


def test_cli_exit_codes_and_messages(venue: FakeVenue, jan_feb: dict, tmp_path: Path) -> None:
    cfg = config_for(venue)
    conf = tmp_path / "bf.toml"
    conf.write_text(f'[archive]\nurl = "{cfg.archive_url}"\n[retry]\nbase_delay = 0.001\nmax_delay = 0.002\n'
                    "max_attempts = 2\n")
    args = ["backfill", "--symbol", "BTC/USDT", "--start", "2024-02-01", "--end", "2024-02-03", "--kinds", "klines",
            "--interval", "5m",
            "--config", str(conf), "--store", str(tmp_path / "s"), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 archive files imported (1,152 new rows)" in res.output
    venue.fail(r"2024-02-03\.zip", "500", -1)
    res = CliRunner().invoke(app, [*args[:6], "2024-02-04", *args[7:]])  # --end 2024-02-04
    assert res.exit_code == 1
    assert "missing:" in res.output and "gave up after 2 attempts: HTTP 500" in res.output
    assert "binance spot BTC/USDT klines 5m 2024-02-03" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["status", "--store", str(tmp_path / "s")])
    assert res.exit_code == 0 and "series and gaps" in res.output and "not fetched" not in res.output


def test_a_monthly_file_above_the_size_limit_is_fetched_as_daily_files(venue: FakeVenue, jan_feb: dict,
                                                                       store: Store) -> None:
    rep = run(venue, store, _req(date(2024, 1, 1), date(2024, 2, 1), markets=("perp",)), NOW, max_file_mb=0.05)
    assert rep.ok and len(rep.archive.imported) == 31
    assert [r.method for r in venue.requests(r"monthly/")] == ["HEAD"]  # looked at its size, did not download it
    exp = jan_feb["perp"].filter(pl.col("ts") < pl.datetime(2024, 2, 1, time_zone="UTC"))
    _assert_exact(store, {"perp": exp})
