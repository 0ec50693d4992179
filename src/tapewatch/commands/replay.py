"""``tapewatch replay-exchange``: serve real captures over the venues' protocols on one port."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from tapewatch.commands.common import console, friendly
from tapewatch.importer import expand
from tapewatch.replay.faults import Faults
from tapewatch.replay.server import DEPTH_PATHS, ReplayExchange
from tapewatch.replay.timeline import BODY_PATHS, Timeline, read_timeline
from tapewatch.replay.trades import TRADES_PATHS


@friendly
def replay_exchange_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Capture files or directories: raw Binance websocket captures, cryptofeed recordings, saved Binance USD-M openInterest or fundingRate bodies.")],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: any free port).")] = 8765,
    speed: Annotated[float, typer.Option(help="N times the captured pace; 0 sends as fast as possible.")] = 1.0,
    drop: Annotated[int, typer.Option(help="Withhold this many messages of each feed...")] = 0,
    drop_at: Annotated[int, typer.Option(help="...starting at this message (0-based, every channel).")] = 0,
    gap_at: Annotated[int | None, typer.Option(help="Withhold this book update (0-based among depth diffs / l2update): a sequence gap.")] = None,
    stale_at: Annotated[int | None, typer.Option(help="After this many messages a feed goes silent with its sockets open, until a client reconnects.")] = None,
    rest_error: Annotated[int | None, typer.Option(help="Answer REST with 429 (rate limit) or 418 (IP ban)...")] = None,
    rest_errors: Annotated[int, typer.Option(help="...for this many first requests...")] = 1,
    retry_after: Annotated[int, typer.Option(help="...with this Retry-After (seconds).")] = 1,
    snapshot_delay: Annotated[float, typer.Option(help="Answer each depth snapshot after this many seconds.")] = 0.0,
    cut_at: Annotated[int | None, typer.Option(help="At this message (0-based, every channel) close every socket of the feed...")] = None,
    cut: Annotated[int, typer.Option(help="...and let this many messages go by unsent while no one is connected (lost).")] = 0,
    trades_error: Annotated[int | None, typer.Option(help="Answer every REST trades request with this HTTP status.")] = None,
    ping_interval: Annotated[float | None, typer.Option(help="Ping every websocket this often (seconds); no pong in time closes it.")] = None,
) -> None:
    """Serve captured venue traffic on 127.0.0.1 over the venues' real websocket and REST protocols.

    Binance spot and USD-M: combined-stream websocket, REST depth snapshots and historicalTrades
    (USD-M: also recorded open interest and funding bodies); Coinbase Exchange: websocket after a subscribe message
    and REST trades. The REST trades are the captured websocket trades re-shaped into the venue's
    REST answer. Messages are sent exactly as captured, at the
    captured pace times --speed, with the faults asked for. Stop with Ctrl-C.
    """
    faults = Faults(drop=drop, drop_at=drop_at, gap_at=gap_at, stale_at=stale_at, rest_error=rest_error,
                    rest_errors=rest_errors, retry_after=retry_after, snapshot_delay=snapshot_delay,
                    cut_at=cut_at, cut=cut, trades_error=trades_error)
    if speed < 0:
        raise typer.BadParameter(f"must be 0 or more, not {speed}", param_hint="--speed")
    if ping_interval is not None and ping_interval <= 0:
        raise typer.BadParameter(f"must be more than 0, not {ping_interval}", param_hint="--ping-interval")
    timeline = read_timeline([p for p, _ in expand(paths)])
    if not timeline.feeds:
        raise typer.BadParameter("the files hold no websocket messages or depth snapshots", param_hint="PATHS")
    try:
        asyncio.run(_serve(ReplayExchange(timeline, faults, speed, ping_interval), port))
    except KeyboardInterrupt:
        console.print("Replay exchange stopped.")


async def _serve(exchange: ReplayExchange, port: int) -> None:
    await exchange.start(port=port)
    try:
        _announce(exchange, exchange.timeline)
        await asyncio.Event().wait()  # until Ctrl-C cancels the run
    finally:
        await exchange.stop()


def _announce(exchange: ReplayExchange, timeline: Timeline) -> None:
    """One line per feed: what it serves and where."""
    for feed in timeline.feeds:
        n = len(timeline.messages.get(feed, []))
        if feed.exchange == "binance":
            snaps = len(timeline.snapshots.get(feed, []))
            where = (f"websocket {exchange.base_url(feed, 'ws')}/stream?streams=..., "
                     f"REST {exchange.base_url(feed)}{DEPTH_PATHS[feed.market]} ({snaps:,} depth snapshot{'' if snaps == 1 else 's'}) "
                     f"and {TRADES_PATHS[feed.market]}")
        elif feed.exchange == "coinbase":
            where = f"websocket {exchange.base_url(feed, 'ws')} (send a subscribe message), REST /products/{{id}}/trades"
        else:
            where = "REST"
        recorded = [f"{exchange.base_url(feed)}{path} (recorded, {', '.join(sorted(timeline.bodies[feed, path]))})"
                    for path in BODY_PATHS.get(feed, ()) if (feed, path) in timeline.bodies]
        if recorded:
            where += (" " if where == "REST" else ", ") + ", ".join(recorded)
        console.print(f"Serving {feed.label}: {n:,} messages, {where}", highlight=False, soft_wrap=True)
    console.print(f"Speed {exchange.speed:g}x (0 = as fast as possible). Stop with Ctrl-C.", highlight=False)
