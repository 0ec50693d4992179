"""The README's offline try, as a user runs it: `tapewatch replay-exchange` in one process and
`tapewatch live --replay PORT` in another, both real commands on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tapewatch.importer import parse_file
from tapewatch.sources import Hints
from tapewatch.store import Store

SPOT = Path("hftbacktest-binance-ws/spot/btcusdt_20240808.gz")
USDM = Path("hftbacktest-binance-ws/usdm/btcusdt_20240808.gz")
OI = Path("reqwest-binance-usdm-oi/openInterest_BTCUSDT.json")
CLI = "from tapewatch.cli import app; app()"


def test_live_against_the_replay_exchange_from_the_command_line(shared: Path, tmp_path: Path) -> None:
    env = dict(os.environ, COLUMNS="400")
    server = subprocess.Popen([sys.executable, "-c", CLI, "replay-exchange", "--port", "0", "--speed", "4",
                               *(str(shared / p) for p in (SPOT, USDM, OI))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        port = int(first.split("ws://127.0.0.1:", 1)[1].split("/", 1)[0])
        store = tmp_path / "live-data"
        live = subprocess.run([sys.executable, "-c", CLI, "live", "--symbol", "BTC", "--replay", str(port),
                               "--interval", "10s", "--duration", "15", "--store", str(store)],
                              capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.kill()
        server.communicate()
    out = live.stdout
    assert live.returncode == 0, live.stderr + out
    assert "BTC 10s bars" in out.splitlines()[0]
    # the spot capture's trades run from 23:54:15.3 to :43.4: the bars of :10, :20 and :30 close
    for bar in ("23:54:10", "23:54:20", "23:54:30"):
        assert f"BTC 10s bar 2024-08-08 {bar} closed" in out, out
    assert "open interest BTCUSDT: " in out and "stopped: wrote " in out
    ref = Store(tmp_path / "ref")
    for capture in (SPOT, USDM):
        for b in parse_file(shared / capture, Hints())[1]:
            ref.write(b.kind, b.rows)
    key = ["market", "trade_id"]
    got = Store(store).read("trade").sort(key).drop("local_ts")
    assert got.height == 518 + 469 and got.equals(ref.read("trade").sort(key).drop("local_ts"))
    oi = Store(store).read("open_interest")
    assert oi["oi"].to_list() == [70056.543]  # the recorded body, polled and stored once


def test_live_refuses_a_bad_replay_port_or_interval(tmp_path: Path) -> None:
    for args, hint in ((["--replay", "0"], "--replay"), (["--interval", "7q"], "--interval")):
        r = subprocess.run([sys.executable, "-c", CLI, "live", "--store", str(tmp_path), *args],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and hint in r.stdout + r.stderr
        assert "Traceback" not in r.stdout + r.stderr
