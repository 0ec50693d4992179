"""`tapewatch live` killed with SIGKILL mid-collection and started again, as a user would, against
the replay exchange (real captures, real commands, 127.0.0.1): the store stays readable with no
row twice, and the restarted collector fetches by REST the trades the killed one had not stored,
so the store ends with exactly the rows `tapewatch import` makes of the captures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from tapewatch.errors import StoreError
from tapewatch.importer import parse_file
from tapewatch.sources import Hints
from tapewatch.store import Store

SPOT = Path("hftbacktest-binance-ws/spot/btcusdt_20240808.gz")
USDM = Path("hftbacktest-binance-ws/usdm/btcusdt_20240808.gz")
CLI = "from tapewatch.cli import app; app()"
KEY = ["market", "trade_id"]


def _trades(store: Path) -> pl.DataFrame:
    """The stored trades, read while another process may be writing (a part merged away between
    listing and reading is read again)."""
    for _ in range(20):
        try:
            return Store(store).read("trade")
        except StoreError:
            time.sleep(0.05)
    return Store(store).read("trade")


def test_sigkill_then_restart_loses_and_duplicates_no_trade(shared: Path, tmp_path: Path) -> None:
    # USD-M historicalTrades wants a key header (the replay checks it is there, as the venue does)
    env = dict(os.environ, COLUMNS="400", TAPEWATCH_BINANCE_API_KEY="replay-key")
    server = subprocess.Popen([sys.executable, "-c", CLI, "replay-exchange", "--port", "0", "--speed", "2",
                               str(shared / SPOT), str(shared / USDM)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    store = tmp_path / "live-data"
    live_args = [sys.executable, "-c", CLI, "live", "--symbol", "BTC", "--interval", "10s", "--store", str(store),
                 "--flush", "0.5"]
    try:
        assert server.stdout is not None
        port = server.stdout.readline().split("ws://127.0.0.1:", 1)[1].split("/", 1)[0]
        first = subprocess.Popen([*live_args, "--replay", port], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=env)
        deadline = time.monotonic() + 60
        while _trades(store).height < 150:  # mid-capture: the spot capture alone has 518
            assert first.poll() is None and time.monotonic() < deadline, "live stopped or stored nothing"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        killed = _trades(store)
        # readable, nothing twice, and per market the ids stored so far are one unbroken run
        assert killed.select(KEY).is_unique().all()
        for market, ids in killed.group_by("market"):
            got = sorted(int(i) for i in ids["trade_id"])
            assert got == list(range(got[0], got[0] + len(got))), market
        second = subprocess.run([*live_args, "--replay", port, "--duration", "25"], capture_output=True, text=True,
                                env=env, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
    finally:
        server.kill()
        server.communicate()
    ref = Store(tmp_path / "ref")
    for capture in (SPOT, USDM):
        for b in parse_file(shared / capture, Hints())[1]:
            ref.write(b.kind, b.rows)
    final = Store(store).read("trade").sort(KEY).drop("local_ts")
    assert final.height == 518 + 469, second.stdout
    assert final.equals(ref.read("trade").sort(KEY).drop("local_ts"))
    # the trades the killed process had received but not stored came back by REST, one line per gap
    # (none when the kill fell right after a flush)
    recovered = [int(ln.split(": missed on the stream, ")[1].split()[0]) for ln in second.stdout.splitlines()
                 if "recovered by REST" in ln]
    assert "lost" not in second.stdout
    after = ref.read("trade").join(killed.select(KEY), on=KEY, how="anti")  # the trades stored after the kill
    assert sum(recovered) <= after.height
