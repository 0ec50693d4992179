"""``tapewatch live``: collect a symbol's markets, keep the store current, alert at each bar close."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from pathlib import Path
from typing import Annotated

import aiohttp
import typer
from rich.markup import escape

from tapewatch.alerts.deliver import RetryPolicy
from tapewatch.alerts.secrets import load_webhooks
from tapewatch.alerts.sinks import Dispatcher, LogSink
from tapewatch.commands.common import DEFAULT_STORE_PATH, StoreOpt, console, friendly, resolve_config, warn
from tapewatch.commands.signals import ConfigOpt, SymbolOpt
from tapewatch.live.collector import Collector
from tapewatch.live.connection import ConnectionLog
from tapewatch.live.endpoints import Endpoint, Endpoints, load_endpoints
from tapewatch.live.polls import rest_pollers
from tapewatch.live.run import LiveRunner, build_feeds
from tapewatch.names import base_name, interval_name
from tapewatch.replay.server import PREFIXES
from tapewatch.store import open_store
from tapewatch.study.settings import load_settings


def _say(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)


@friendly
def live_cmd(
    symbol: SymbolOpt = "BTC",
    config: ConfigOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
    flush: Annotated[float, typer.Option("--flush", help="Seconds between writes to the store.")] = 1.0,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    grace: Annotated[float, typer.Option("--grace", help="Seconds after a bar's close (venue clock) before it is closed.")] = 2.0,
    interval: Annotated[str | None, typer.Option("--interval", help="Bar interval (default: the config's `interval`), e.g. 10s to see bars close on a short replay.")] = None,
    replay: Annotated[int | None, typer.Option("--replay", metavar="PORT", help="Collect from `tapewatch replay-exchange` on 127.0.0.1:PORT instead of the config's [endpoints].")] = None,
) -> None:
    """Collect the config's markets (endpoints from [endpoints], or a local replay exchange with
    --replay) into the store; at each bar close (config `interval`, or --interval) compute the
    signals on the stored data and send the alerts (config [alerts]). Ctrl-C or SIGTERM writes
    what was received and stops."""
    base = base_name(symbol)
    if flush <= 0:
        raise typer.BadParameter(f"must be more than 0, not {flush}", param_hint="--flush")
    if grace < 0:
        raise typer.BadParameter(f"must be 0 or more, not {grace}", param_hint="--grace")
    if duration is not None and duration <= 0:
        raise typer.BadParameter(f"must be more than 0, not {duration}", param_hint="--duration")
    if replay is not None and not 0 < replay < 65536:
        raise typer.BadParameter(f"must be a port number (1–65535), not {replay}", param_hint="--replay")
    path, source = resolve_config(config, store)
    cfg, settings = load_settings(path)
    if interval is not None:
        cfg = dataclasses.replace(cfg, interval=interval_name(interval, "--interval"))
    interval = interval_name(cfg.interval, "config key 'interval'")
    endpoints = load_endpoints(path) if replay is None else _replay_endpoints(replay)
    a = cfg.alerts
    log = LogSink(store / Path(a.log).expanduser()) if a.log else None
    dispatcher = Dispatcher(console if a.console else None, log, load_webhooks(a, base=path.parent if path else None),
                            RetryPolicy.of(a), warn)
    collector = Collector(open_store(store), flush_interval=flush)
    runner = LiveRunner(collector, base, interval, cfg, settings, dispatcher, _say, grace)
    _say(f"config: {source} · {base} {interval} bars · store {store} · Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(runner, endpoints, duration))
    written = ", ".join(f"{n:,} {k}" for k, n in sorted(collector.written.items())) or "nothing"
    bars, alerts = runner.bars_closed, len(runner.alerts)
    _say(f"stopped: wrote {written} rows; {bars} bar{'' if bars == 1 else 's'} closed, "
         f"{alerts} alert{'' if alerts == 1 else 's'}")


def _replay_endpoints(port: int) -> Endpoints:
    """The endpoints of every venue a replay exchange on 127.0.0.1:``port`` serves."""
    def at(prefix: str) -> Endpoint:
        return Endpoint(f"ws://127.0.0.1:{port}{prefix}", f"http://127.0.0.1:{port}{prefix}")

    by = {(f.exchange, f.market): at(p) for f, p in PREFIXES.items()}
    d = Endpoints()
    return Endpoints(dataclasses.replace(d.binance, spot=by["binance", "spot"], perp=by["binance", "perp"]),
                     dataclasses.replace(d.coinbase, spot=by["coinbase", "spot"]),
                     dataclasses.replace(d.bybit, perp=by["bybit", "perp"]), dataclasses.replace(d.okx, perp=by["okx", "perp"]))


async def _main(runner: LiveRunner, endpoints: Endpoints, duration: float | None) -> None:
    """Run until ``duration`` seconds passed, SIGTERM or Ctrl-C; the runner flushes on the way out."""
    async with aiohttp.ClientSession() as session:
        feeds = build_feeds(runner.cfg, runner.base, endpoints, session, runner.collector, _say)
        pollers = rest_pollers(runner.cfg, runner.base, endpoints, session, runner.collector.rows, _say)
        task = asyncio.create_task(runner.run([(f, ConnectionLog()) for f in feeds], session, [p.run for p in pollers]))
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            await asyncio.wait({task}, timeout=duration)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for poller in pollers:
                _say(poller.summary())
