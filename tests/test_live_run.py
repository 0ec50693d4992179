"""`tapewatch live` end to end against the replay exchange serving the real spot and USD-M captures
(4x their pace, 10s bars): the stored trades equal `tapewatch import` of the files, the signals
the runner computed at each bar close equal the batch signals of the same bars on the final store
(no separate live formula), and a local webhook receiver gets exactly the alerts `batch_alerts`
finds on that store for those bars. Half a minute of data fires no event or crossing even with the
short windows below (the one full flow window is a rally bought, not sold): both lists are empty,
and the test says so by comparing them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import aiohttp
import polars as pl
from typer.testing import CliRunner

from tapewatch.alerts.batch import batch_alerts
from tapewatch.alerts.deliver import RetryPolicy
from tapewatch.alerts.secrets import load_webhooks
from tapewatch.alerts.sinks import Dispatcher
from tapewatch.cli import app
from tapewatch.config import config_from_dict
from tapewatch.importer import parse_file
from tapewatch.live.collector import Collector
from tapewatch.live.connection import Backoff, ConnectionLog
from tapewatch.live.endpoints import Endpoint, Endpoints
from tapewatch.live.run import LiveRunner, build_feeds
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import ReplayExchange
from tapewatch.replay.timeline import Feed, read_timeline
from tapewatch.signals.compute import compute_signals
from tapewatch.sources import Hints
from tapewatch.store import Store
from tapewatch.study.settings import StudySettings
from webhook_receiver import Receiver

SPOT = Path("hftbacktest-binance-ws/spot/btcusdt_20240808.gz")
USDM = Path("hftbacktest-binance-ws/usdm/btcusdt_20240808.gz")
STEP = 10_000_000_000
# bars of 2024-08-08 23:54:10 / :20 / :30 UTC: the spot capture's trades run from :15.3 to :43.4,
# so the bar of :40 cannot close (venue clock past :52) before the test stops
LAST_CLOSED = 1723161270 * 10**9
CONFIG = {
    "interval": "10s",
    # short windows so that 10s bars over half a minute of data can fire: flow alone decides
    "flow": {"window": 2, "rally_pct": 0.01},
    "book": {"sustain": 1},
    "detector": {"required": ["flow"], "when_present": [], "unavailable": "skip", "cooldown": 1},
    "alerts": {"crossings": ["flow", "book"], "console": False, "log": "", "retries": 0, "timeout": 5.0,
               "webhooks": [{"name": "hook"}]},
}


def run_live(shared: Path, root: Path, webhooks: dict[str, str], raw: dict[str, Any] = CONFIG,
             until: int = LAST_CLOSED, faults: Faults | None = None, grace: float = 3.0,
             lines: list[str] | None = None) -> tuple[LiveRunner, Store]:
    """`tapewatch live`'s wiring (feeds, collector, runner, dispatcher) against the replay exchange
    serving both captures at 4x, until the bar opening at ``until`` (UTC ns) is closed; ``webhooks``:
    the environment naming each configured webhook's URL; ``lines``: gets every line printed."""
    cfg = config_from_dict(raw)

    async def main() -> LiveRunner:
        exchange = ReplayExchange(read_timeline([shared / SPOT, shared / USDM]), faults, speed=4)
        await exchange.start(port=0)
        ends = {m: Endpoint(exchange.base_url(Feed("binance", m), "ws"), exchange.base_url(Feed("binance", m)))
                for m in ("spot", "perp")}
        endpoints = Endpoints(binance=type(Endpoints().binance)(**ends))
        collector = Collector(Store(root), flush_interval=0.1, backoff=Backoff(0.01, 0.05, random.Random(0)))
        hooks = load_webhooks(cfg.alerts, webhooks)
        out = [] if lines is None else lines
        runner = LiveRunner(collector, "BTC", cfg.interval, cfg, StudySettings(),
                            Dispatcher(None, None, hooks, RetryPolicy.of(cfg.alerts), out.append), out.append, grace)
        try:
            async with aiohttp.ClientSession() as session:
                feeds = build_feeds(cfg, "BTC", endpoints, session, collector, out.append)
                task = asyncio.create_task(runner.run([(f, ConnectionLog()) for f in feeds], session))
                await asyncio.wait_for(exchange.finished(), 15)
                deadline = asyncio.get_running_loop().time() + 60
                while runner.next_bar is None or runner.next_bar <= until:
                    if task.done():  # the runner stopped: its exception, not a wait forever
                        task.result()
                        raise AssertionError("the live runner stopped before closing the bars")
                    if asyncio.get_running_loop().time() > deadline:  # a failure that says why, not a hang
                        raise AssertionError(
                            f"bars not closed after 60 s: next bar {runner.next_bar}, venue clock {runner.venue}, "
                            f"pending gap from {collector.ledger.pending_from()}, written {collector.written}, "
                            f"lines {out[-20:]}")
                    await asyncio.sleep(0.02)
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=30)
                if not done:  # a failure that says where, not a hang
                    raise AssertionError(f"the live runner did not stop within 30 s of its cancel: {task.get_stack()}")
        finally:
            await asyncio.wait_for(exchange.stop(), 30)
        return runner

    return asyncio.run(main()), Store(root)


def test_live_bars_equal_the_batch_signals_and_alerts(shared: Path, tmp_path: Path) -> None:
    with Receiver() as receiver:
        runner, store = run_live(shared, tmp_path / "live", {"TAPEWATCH_WEBHOOK_HOOK": receiver.url("/hook")})
    # (a) every trade of both captures, row for row as `tapewatch import` makes them
    ref = Store(tmp_path / "ref")
    for capture in (SPOT, USDM):
        for b in parse_file(shared / capture, Hints())[1]:
            ref.write(b.kind, b.rows)
    key = ["market", "trade_id"]
    live_trades = store.read("trade").sort(key).drop("local_ts")
    assert live_trades.height == 518 + 469
    assert live_trades.equals(ref.read("trade").sort(key).drop("local_ts"))

    # (b) the rows computed at each bar close are the batch rows of the final store
    live = pl.concat(runner.frames)
    opens = live["ts"].dt.epoch("ns").to_list()
    assert opens == [LAST_CLOSED - 2 * STEP, LAST_CLOSED - STEP, LAST_CLOSED]
    batch = compute_signals(store, "BTC", "10s", None, LAST_CLOSED + STEP, runner.cfg).frame
    assert batch["ts"].dt.epoch("ns").to_list() == opens
    assert live.columns == batch.columns
    diff = [c for c in live.columns if not live[c].equals(batch[c])]
    assert not diff, (diff, live.select(diff).to_dicts(), batch.select(diff).to_dicts())
    # book depth was derived live from the synced deltas of both books: the bars have it
    assert live["book_source"].drop_nulls().len() == 3
    # the premium's Coinbase venue is not in the replay: a missing input, not a crash
    assert live["premium_a_close"].null_count() == 3

    # (c) the webhook got exactly the alerts the batch finds on the same bars
    want = batch_alerts(store, "BTC", "10s", None, LAST_CLOSED + STEP, runner.cfg, StudySettings())
    got = receiver.bodies("/hook")
    assert [a.id for a in runner.alerts] == [a.id for a in want]
    assert sorted(b["id"] for b in got) == sorted(a.id for a in want)
    assert sorted((b["id"], b["summary"]) for b in got) == sorted((a.id, a.summary()) for a in want)


def test_live_command_refuses_bad_options(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["live", "--store", str(tmp_path), "--flush", "0"])
    assert r.exit_code != 0 and "--flush" in r.output
