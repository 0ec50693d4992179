"""``tapewatch backfill`` and the gap view of ``tapewatch status``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from tapewatch.backfill.config import load_config
from tapewatch.backfill.gaps import gaps_table, series_status
from tapewatch.backfill.run import BackfillReport, BackfillRequest, parse_list, run_backfill
from tapewatch.commands.common import DEFAULT_STORE_PATH, EndOpt, StoreOpt, console, err_console, friendly
from tapewatch.book.derive import book_sync_status
from tapewatch.commands.data import coverage_table, inventory_table, missing_lines
from tapewatch.errors import TapewatchError
from tapewatch.names import flag_exchange, flag_symbol, interval_name
from tapewatch.store import Store
from tapewatch.timeutil import parse_time


@friendly
def backfill_cmd(
    symbol: Annotated[str, typer.Option(help="Unified symbol: BTC/USDT (Binance, Bybit, OKX), BTC/USD (Coinbase).")],
    start: Annotated[str, typer.Option("--start", help="First day / time, UTC ISO-8601 (e.g. 2024-01-01).")],
    end: EndOpt = None,
    exchange: Annotated[str, typer.Option(help="binance (archive + REST), coinbase, bybit or okx (REST).")] = "binance",
    market: Annotated[str | None, typer.Option(
        help="Comma-separated markets: spot, perp. Default: spot,perp on Binance, spot on Coinbase, perp on Bybit/OKX.")] = None,
    kinds: Annotated[str | None, typer.Option(
        help="Comma-separated: klines, aggtrades, trades, metrics (= oi), bookdepth, funding. "
             "Default: klines,aggtrades,metrics,bookdepth,funding on Binance; klines on Coinbase; oi,funding on Bybit/OKX.")] = None,
    interval: Annotated[str, typer.Option(help="Kline interval (Binance: 1s…1w; Coinbase: 1m, 5m, 15m, 1h, 6h, 1d).")] = "1m",
    concurrency: Annotated[int | None, typer.Option(min=1, help="Archive downloads at once (default 4, or the config's).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", envvar="TAPEWATCH_BACKFILL_CONFIG", help="TOML file: base URLs, retry policy, concurrency.")] = None,
    recheck: Annotated[bool, typer.Option(
        help="Also compare files already imported with their published checksum; re-import re-published ones.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the progress bar (on stderr).")] = True,
    store: StoreOpt = DEFAULT_STORE_PATH,
) -> None:
    """Fill the store from the exchanges for any period, and keep it topped up.

    Binance: the public archive (daily and monthly zips, each verified against its .CHECKSUM,
    imported by the same importers as `tapewatch import`), then ccxt REST for what the archive
    lacks (the last 30 days of open interest, this month's funding). Coinbase candles, Bybit and
    OKX open interest and funding: ccxt REST. What the store already holds is skipped; an
    interrupted run resumes where it stopped. Exit code 1 when anything is missing.
    """
    cfg = load_config(config)
    if concurrency is not None:
        cfg = replace(cfg, concurrency=concurrency)
    req = BackfillRequest(
        exchange=flag_exchange(exchange) or "", symbol=flag_symbol(symbol) or "", start=parse_time(start), end=parse_time(end) if end else None,
        markets=parse_list(market), kinds=parse_list(kinds), interval=interval_name(interval, "--interval"), recheck=recheck,
    )
    st = Store(store)
    report = run_backfill(req, st, cfg, err_console if progress else None)
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: BackfillReport) -> None:
    """Warnings (yellow), failures (red, each naming what is missing), then the one-line summary."""
    for w in report.warnings():
        err_console.print(f"[yellow]note:[/] {w}", highlight=False)
    for p in report.problems():
        err_console.print(f"[bold red]missing:[/] {p}", highlight=False)
    console.print(report.summary(), highlight=False)


@friendly
def status_cmd(
    store: StoreOpt = DEFAULT_STORE_PATH,
    gaps: Annotated[bool, typer.Option(help="Also list each series' range and gaps.")] = True,
) -> None:
    """What the store holds: per kind, venue, market and symbol its rows and time range, and its gaps."""
    st = Store(store)
    console.print(inventory_table(st))
    console.print(coverage_table(st))
    for key, spans in book_sync_status(st):
        for line in missing_lines(key, spans):
            console.print(f"[yellow]no depth:[/] {line}", highlight=False)
    if gaps:
        print_gaps(st)


def print_gaps(store: Store) -> None:
    """The gap table of ``store`` (for ``tapewatch status``)."""
    try:
        console.print(gaps_table(series_status(store), str(store.root)))
    except (duckdb.Error, OSError) as exc:
        raise TapewatchError(f"cannot compute gaps of {store.root}: {exc}") from exc
