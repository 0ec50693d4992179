"""Offline, a backfill fails fast and honestly: a host name that does not resolve or a refused
connection is not retried per file, the run says so in one line within seconds, and the progress
bar counts only what succeeded.

The hosts: ``127.0.0.1`` on a port nobody listens on (connection refused) and
``nonexistent.invalid`` (RFC 6761: never resolves; the test network guard answers it as a
resolver would, without asking one). The retry policy is the real default (6 attempts, 1 s
doubling): the time limit proves nothing is retried.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fakevenue import data, publish
from fakevenue.fixtures import run, venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.backfill.retry import Retrier, RetryPolicy, Unreachable, VenueGate, unreachable_reason
from tapewatch.backfill.run import BackfillRequest
from tapewatch.cli import app
from tapewatch.store import Store

LIMIT_S = 30.0


def _closed_port() -> int:
    """A loopback port nobody listens on: bound, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _offline_config(tmp_path: Path, base: str) -> Path:
    """Every base URL (archive and each venue's ccxt API) at ``base``; the default retry policy."""
    cfg = tmp_path / "offline.toml"
    cfg.write_text(f'[archive]\nurl = "{base}"\n'
                   + "".join(f'[venues.{v}]\napi_base = "{base}"\n' for v in ("binance", "coinbase", "bybit", "okx")))
    return cfg


BASES = {
    "connection refused": lambda: f"http://127.0.0.1:{_closed_port()}",
    "name does not resolve": lambda: "http://nonexistent.invalid",
}
REASONS = {"connection refused": "refused", "name does not resolve": "does not resolve"}


@pytest.mark.parametrize("case", list(BASES))
def test_backfill_offline_says_so_in_one_line_quickly(case: str, tmp_path: Path) -> None:
    cfg = _offline_config(tmp_path, BASES[case]())
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["backfill", "--symbol", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-08",
                                   "--config", str(cfg), "--store", str(tmp_path / "s")])
    elapsed = time.monotonic() - t0
    assert elapsed < LIMIT_S, elapsed
    assert res.exit_code == 1, res.output
    problems = [ln for ln in res.stderr.splitlines() if ln.startswith("missing:")]
    assert len(problems) == 1, res.stderr
    line = problems[0]
    assert "cannot reach" in line and REASONS[case] in line and "not fetched:" in line, line
    assert "retrying" not in res.stderr and "gave up after" not in res.stderr
    # the bar: nothing done, everything planned counted as not fetched
    bars = {ln.split()[0]: ln for ln in res.stderr.splitlines() if ln.split()[:1] in (["archive"], ["rest"])}
    assert set(bars) == {"archive", "rest"}, res.stderr
    for row, text in bars.items():
        done, total = text.split()[1].split("/")
        assert done == "0" and int(total) > 0 and f"· {total} not fetched" in text, text
    assert "0 archive files imported (0 new rows)" in res.stdout


@pytest.mark.parametrize("case", list(BASES))
def test_demo_fetch_offline_stops_with_one_error_line(case: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _offline_config(tmp_path, BASES[case]())
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["demo", "--fetch", "--start", "2024-01-01", "--end", "2024-01-08",
                                   "--backfill-config", str(cfg), "--store", str(tmp_path / "s")])
    elapsed = time.monotonic() - t0
    assert elapsed < LIMIT_S, elapsed
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: demo --fetch: cannot reach "), res.stderr
    assert REASONS[case] in errors[0]
    assert "Traceback" not in res.output and not (tmp_path / "tapewatch-demo-report.html").exists()


def test_an_unreachable_venue_is_tried_once_and_then_not_at_all() -> None:
    calls = []

    async def refused() -> None:
        calls.append(1)
        raise Unreachable("binance", "127.0.0.1:1", "connection refused")

    async def main() -> tuple[Exception, Exception]:
        gate = VenueGate("binance")
        r = Retrier(RetryPolicy())  # the default: 6 attempts
        errs = []
        for _ in range(2):
            try:
                await r.run(refused, what="a file", gate=gate)
            except Unreachable as exc:
                errs.append(exc)
        return errs[0], errs[1]

    first, second = asyncio.run(main())
    assert calls == [1] and first is second  # one attempt in all; the second call never ran


def test_what_counts_as_unreachable() -> None:
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    wrapped = RuntimeError("ccxt ExchangeNotAvailable")
    wrapped.__cause__ = dns
    assert "does not resolve" in (unreachable_reason(wrapped) or "")
    assert "refused" in (unreachable_reason(ConnectionRefusedError(111, "Connection refused")) or "").lower()
    assert unreachable_reason(TimeoutError("slow")) is None  # slow is retried, not given up
    assert unreachable_reason(ConnectionResetError(104, "reset")) is None


def test_progress_counts_only_the_files_that_arrived(venue: FakeVenue, store: Store) -> None:  # noqa: F811
    publish.klines(venue, "spot", "BTC/USDT", date(2024, 2, 1), 3, interval="5m", monthly=False)
    venue.fail(r"2024-02-02\.zip", "500", -1)  # one day fails every time
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=150, color_system=None)
    req = BackfillRequest("binance", "BTC/USDT", data.ms(date(2024, 2, 1)) * 1_000_000,
                          data.ms(date(2024, 2, 4)) * 1_000_000, ("spot",), ("klines",), "5m")
    rep = run(venue, store, req, data.ms(date(2024, 3, 1)), console=console)
    assert len(rep.archive.imported) == 2 and len(rep.archive.failed) == 1
    final = [ln for ln in out.getvalue().splitlines() if "archive" in ln and "files" in ln][-1]
    assert "2/3" in final and "· 1 not fetched" in final, final
