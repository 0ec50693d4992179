"""A backfill killed with SIGKILL — mid-download, mid-import, mid-REST — and run again ends with
exactly the rows of an uninterrupted run: nothing lost, nothing duplicated, no partial files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl

from fakevenue import data, publish, venues
from fakevenue.fixtures import recordings, run, venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.backfill.manifest import MANIFEST_DIR, MANIFEST_FILE
from tapewatch.backfill.run import BackfillRequest
from tapewatch.schemas import KINDS
from tapewatch.store import Store

TESTS = Path(__file__).resolve().parent
NOW = data.ms(date(2024, 3, 1))
LAUNCH = ("import sys; sys.path.insert(0, {tests!r}); from fakevenue import netguard; netguard.install(); "
          "from tapewatch.backfill.__main__ import app; app()")


def _config(fv: FakeVenue, path: Path) -> Path:
    path.write_text(
        f'[archive]\nurl = "{fv.url}"\nconcurrency = 3\n'
        "[retry]\nbase_delay = 0.001\nmax_delay = 0.004\nmax_attempts = 5\ntimeout = 5.0\n"
        f'[venues.coinbase]\napi_base = "{fv.url}"\nrate_limit_ms = 1\n'
    )
    return path


def _start(store: Path, conf: Path, args: list[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", LAUNCH.format(tests=str(TESTS)), "backfill", *args, "--config", str(conf),
           "--store", str(store), "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            return True
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("backfill neither finished nor reached the kill point")


def _manifest_lines(store: Path) -> int:
    p = store / MANIFEST_DIR / MANIFEST_FILE
    return p.read_text().count("\n") if p.exists() else 0


def _partial_download(store: Path) -> bool:
    files = store / MANIFEST_DIR / "files"
    return files.is_dir() and any(_size(p) > 0 for p in files.rglob("*.part"))


def _size(path: Path) -> int:
    """Size of a file the running backfill may rename or delete at any moment (0 once gone)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _all_rows(store: Store) -> dict[str, pl.DataFrame]:
    return {k: store.read(k) for k in KINDS if store.files(k)}


def _assert_same_rows(got: Store, want: Store) -> None:
    a, b = _all_rows(got), _all_rows(want)
    assert a.keys() == b.keys()
    for kind in a:
        assert a[kind].height == b[kind].height, kind
        assert a[kind].equals(b[kind]), kind


def _finish(proc_args: tuple[Path, Path, list[str]]) -> str:
    store, conf, args = proc_args
    p = _start(store, conf, args)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out.decode()
    return out.decode()


def test_sigkill_during_archive_backfill_then_rerun_gives_exactly_the_uninterrupted_rows(
        venue: FakeVenue, tmp_path: Path) -> None:
    for market in ("spot", "perp"):
        publish.klines(venue, market, "BTC/USDT", date(2024, 1, 1), 12, monthly=False)
    publish.metrics(venue, "BTC/USDT", date(2024, 1, 1), 12)
    args = ["--symbol", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-13", "--kinds", "klines,metrics"]
    want = Store(tmp_path / "uninterrupted")
    rep = run(venue, want, BackfillRequest("binance", "BTC/USDT", start=data.ms(date(2024, 1, 1)) * 1_000_000,
                                           end=data.ms(date(2024, 1, 13)) * 1_000_000, kinds=("klines", "metrics")), NOW)
    assert rep.ok and rep.archive.rows_added == 12 * (2 * 1440 + 288)

    venue.fail(r"\.zip$", "slow", -1, delay=0.004)  # downloads take a while: easy to cut in the middle
    store = tmp_path / "killed"
    conf = _config(venue, tmp_path / "bf.toml")
    kills = 0
    for point in (lambda: _partial_download(store),            # mid-download, nothing imported yet
                  lambda: _manifest_lines(store) >= 4,         # after some imports, others in flight
                  lambda: _partial_download(store) and _manifest_lines(store) >= 16):
        kills += _kill_when(_start(store, conf, args), point)
    assert kills == 3, "the backfill finished before it could be interrupted"
    out = _finish((store, conf, args))
    assert "archive files imported" in out
    _assert_same_rows(Store(store), want)
    leftovers = list((store / MANIFEST_DIR / "files").rglob("*.*"))
    assert [p for p in leftovers if p.is_file()] == []  # no .part or .zip left behind
    assert "0 archive files imported" in _finish((store, conf, args))  # and a further run has nothing to do


def test_sigkill_during_rest_backfill_then_rerun_gives_exactly_the_uninterrupted_rows(
        venue: FakeVenue, recordings: Path, tmp_path: Path) -> None:
    start = data.ms(date(2024, 1, 1))
    candles = data.candles_with_gaps(start, 2 * 1440)
    venues.install_coinbase(venue, recordings, candles.to_numpy())
    end = start + 2 * data.DAY_MS
    want = Store(tmp_path / "uninterrupted")
    rep = run(venue, want, BackfillRequest("coinbase", "BTC/USD", start=start * 1_000_000, end=end * 1_000_000), NOW)
    assert rep.ok and rep.rest.added == candles.height

    venue.fail("candles", "hang", -1, delay=0.08)
    store = tmp_path / "killed"
    conf = _config(venue, tmp_path / "bf.toml")
    args = ["--exchange", "coinbase", "--symbol", "BTC/USD", "--start", "2024-01-01", "--end", "2024-01-03"]
    kills = sum(_kill_when(_start(store, conf, args), lambda n=n: _manifest_lines(store) >= n) for n in (2, 6))
    assert kills == 2
    _finish((store, conf, args))
    _assert_same_rows(Store(store), want)


def test_sigkill_at_arbitrary_moments(venue: FakeVenue, tmp_path: Path) -> None:
    """Killed a fixed time after its first request, wherever it is then (download, import, store
    write), twice, then run to the end."""
    for market in ("spot", "perp"):
        publish.klines(venue, market, "BTC/USDT", date(2024, 1, 1), 6, monthly=False)
    want = Store(tmp_path / "uninterrupted")
    assert run(venue, want, BackfillRequest("binance", "BTC/USDT", start=data.ms(date(2024, 1, 1)) * 1_000_000,
                                            end=data.ms(date(2024, 1, 7)) * 1_000_000, kinds=("klines",)), NOW).ok
    venue.fail(r"\.zip$", "slow", -1, delay=0.01)  # at least ~0.7 s of downloads
    store = tmp_path / "killed"
    conf = _config(venue, tmp_path / "bf.toml")
    args = ["--symbol", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-07", "--kinds", "klines"]
    for after in (0.05, 0.3):
        seen = len(venue.log)

        def moment(seen: int = seen, after: float = after) -> bool:
            new = venue.log[seen:]
            return bool(new) and time.monotonic() - new[0].at >= after

        assert _kill_when(_start(store, conf, args), moment), "finished before the kill"
    _finish((store, conf, args))
    _assert_same_rows(Store(store), want)
