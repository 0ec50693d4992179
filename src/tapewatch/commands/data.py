"""``tapewatch import``, ``tapewatch bars`` and ``tapewatch status``: the data path's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from tapewatch import coverage
from tapewatch.backfill.gaps import fmt_span
from tapewatch.bars import bars_from_store
from tapewatch.commands.common import (
    DEFAULT_STORE_PATH, EndOpt, OutOpt, StartOpt, StoreOpt, console, err_console, friendly, write_table,
)
from tapewatch.display import fmt_number
from tapewatch.importer import FileResult, ImportReport, expand, import_files
from tapewatch.errors import TapewatchError
from tapewatch.names import flag_exchange, flag_symbol, interval_name, market_name
from tapewatch.sources import Hints
from tapewatch.sources.base import VOLUME_UNITS
from tapewatch.store import Store
from tapewatch.timeutil import ns_to_iso, parse_time


@friendly
def import_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (walked recursively).")],
    store: StoreOpt = DEFAULT_STORE_PATH,
    exchange: Annotated[str | None, typer.Option(help="Exchange, when the file does not tell (e.g. binance).")] = None,
    market: Annotated[str | None, typer.Option(help="spot, perp or future, when the file does not tell.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Unified symbol such as BTC/USDT, when the file does not tell.")] = None,
    interval: Annotated[str | None, typer.Option(help="Bar interval of a bar file, when it does not tell.")] = None,
    volume_unit: Annotated[
        str | None, typer.Option(help="What an OHLCV file's volume counts: base or quote (default: base for an exchange's OHLCV).")
    ] = None,
) -> None:
    """Import exchange files into the store; the format is recognised from the content.

    Zip, gzip or plain files; CSV with or without header; JSON bodies and recorded exchange
    traffic. Re-importing a file changes nothing. A malformed file is reported (file, row,
    reason) and nothing from it is written.
    """
    if volume_unit and volume_unit not in VOLUME_UNITS:
        raise TapewatchError(f"unknown volume unit {volume_unit!r}; use base or quote")
    hints = Hints(
        exchange=flag_exchange(exchange), market=market and market_name(market, "--market"),
        symbol=flag_symbol(symbol), interval=interval and interval_name(interval, "--interval"),
        volume_unit=volume_unit,
    )
    files = expand(paths)
    st = Store(store)
    with Progress(
        TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
        TimeElapsedColumn(), console=err_console, transient=True, disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("", total=len(files))

        def step(res: FileResult) -> None:
            progress.update(task, advance=1, description=res.path.name)

        report = import_files(files, st, hints, on_file=step)
    print_import_report(report, st)
    if report.errors:
        raise typer.Exit(1)


def print_import_report(report: ImportReport, store: Store) -> None:
    """The import summary: per file its format and rows per kind, the rebuilt books, skips, errors."""
    table = Table(title=f"import into {store.root}", title_justify="left")
    for col, just in (("file", "left"), ("format", "left"), ("kind", "left"), ("rows read", "right"), ("new rows", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for res in report.imported:
        for i, (kind, rows) in enumerate(sorted(res.rows.items())):
            table.add_row(str(res.path) if i == 0 else "", res.format if i == 0 else "", kind,
                          f"{rows:,}", f"{res.added.get(kind, 0):,}")
    if report.imported:
        console.print(table)
    if report.books:
        console.print(books_table(report))
        for d in report.books:
            for line in missing_lines(d.key, d.missing):
                console.print(f"[yellow]no depth:[/] {line}", highlight=False)
    for res in report.imported:
        for note in res.notes:
            console.print(f"[cyan]note[/] {res.path}: {note}", highlight=False)
    for res in report.skipped:
        console.print(f"[yellow]skipped[/] {res.path}: {res.skipped}", highlight=False)
    for res in report.errors:
        err_console.print(f"[bold red]error:[/] {escape(str(res.error))} — nothing from this file was written",
                          highlight=False)
    total = sum(sum(r.added.values()) for r in report.files)
    console.print(
        f"{len(report.imported)} imported, {len(report.skipped)} skipped, {len(report.errors)} failed; "
        f"{total:,} new rows", highlight=False,
    )


def books_table(report: ImportReport) -> Table:
    """The order books the L2 engine rebuilt from imported deltas: depth rows and sync counters."""
    t = Table(title="book_depth from the L2 engine (1 s samples, bands 1/2/5/10 % of mid)", title_justify="left")
    for col in ("book", "depth rows", "new", "snapshots", "updates", "gaps", "resyncs", "crossed", "malformed", "in sync"):
        t.add_column(col, justify="left" if col == "book" else "right")
    for d in report.books:
        s = d.stats
        t.add_row(" ".join(d.key), f"{d.rows:,}", f"{d.added:,}", str(s.snapshots), f"{s.updates:,}", str(s.gaps),
                  str(s.resyncs), str(s.crossed), str(s.malformed), "yes" if s.in_sync else "no")
    return t


def missing_lines(key: tuple[str, str, str], spans: list[tuple[int, int, bool]], most: int = 5) -> list[str]:
    """One sentence per span a book had no depth (the last ``most``; see tapewatch.book.derive)."""
    book = " ".join(key)
    out = []
    for lo, hi, still in spans[-most:]:
        if still:
            out.append(f"{book}: no depth since {_ms(lo)} UTC (last delta {_ms(hi)}): the book is "
                       "out of sync — its diffs have no snapshot before them or messages were lost; import the "
                       "file before them (with its snapshot) or a later snapshot")
        else:
            out.append(f"{book}: no depth from {_ms(lo)} to {_ms(hi)} UTC (diffs before a snapshot, "
                       "or lost messages until the next snapshot)")
    if len(spans) > most:
        out.append(f"{book}: {len(spans) - most} earlier spans without depth")
    return out


def _ms(ns: int) -> str:
    """UTC time of a nanosecond timestamp to the millisecond."""
    return f"{ns_to_iso(ns)}.{ns // 1_000_000 % 1000:03d}"


@friendly
def bars_cmd(
    symbol: Annotated[str, typer.Option(help="Unified symbol, e.g. BTC/USDT.")],
    exchange: Annotated[str, typer.Option(help="Exchange, e.g. binance or coinbase.")] = "binance",
    market: Annotated[str, typer.Option(help="spot, perp or future.")] = "spot",
    interval: Annotated[str, typer.Option(help="Bar interval: 1m, 5m, 15m, 1h, 4h, 1d …")] = "1m",
    start: StartOpt = None,
    end: EndOpt = None,
    out: OutOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
) -> None:
    """Bars from stored trades (taker buy/sell from the aggressor side) or by resampling finer bars."""
    exchange, symbol = flag_exchange(exchange) or "", flag_symbol(symbol) or ""
    market_name(market, "--market")
    interval_name(interval, "--interval")
    st = Store(store)
    lo = parse_time(start) if start else None
    hi = parse_time(end) if end else None
    bars = bars_from_store(st, exchange, market, symbol, interval, lo, hi)
    if lo is not None:
        bars = bars.filter(pl.col("ts").dt.epoch("ns") >= lo)
    if hi is not None:
        bars = bars.filter(pl.col("ts").dt.epoch("ns") < hi)
    if out:
        write_table(bars, out)
        console.print(f"wrote {bars.height:,} bars to {out}", highlight=False)
    else:
        console.print(bars_summary(bars, f"{exchange} {market} {symbol} {interval}"))


def bars_summary(bars: pl.DataFrame, title: str, rows: int = 5) -> Table:
    """A short Rich table: range, count, the last ``rows`` bars with taker split (— where the venue
    gives none); the caption says how many of the bars built are shown. Times are UTC bar opens,
    with seconds when any bar starts off the minute (sub-minute bars)."""
    time_fmt = "%Y-%m-%d %H:%M:%S" if bars.height and (bars["ts"].dt.second() != 0).any() else "%Y-%m-%d %H:%M"
    t = Table(title=f"{title}: {bars.height:,} bars"
              + (f", {bars['ts'].min():{time_fmt}} → {bars['ts'].max():{time_fmt}} UTC" if bars.height else ""),
              title_justify="left")
    cols = ["ts", "open", "high", "low", "close", "volume", "taker_buy_volume", "taker_sell_volume", "quote_volume", "trades"]
    for c in cols:
        t.add_column(c, justify="left" if c == "ts" else "right")
    for row in bars.tail(rows).iter_rows(named=True):
        t.add_row(*[_fmt(row[c], time_fmt) for c in cols])
    if bars.height > rows:
        t.caption = f"showing the last {rows} of {bars.height:,} bars; --out FILE.csv writes them all"
        t.caption_justify = "left"
    return t


def _fmt(v: object, time_fmt: str) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return fmt_number(v)
    if hasattr(v, "strftime"):
        return v.strftime(time_fmt)  # type: ignore[union-attr]
    return str(v)


def inventory_table(store: Store) -> Table:
    inv = store.inventory()
    t = Table(title=f"store {store.root}", title_justify="left")
    for c in ("kind", "exchange", "market", "symbol", "rows", "first (UTC)", "last (UTC)", "days"):
        t.add_column(c, justify="right" if c in ("rows", "days") else "left")
    for r in inv.iter_rows(named=True):
        t.add_row(r["kind"], r["exchange"], r["market"], r["symbol"], f"{r['rows']:,}",
                  f"{r['first']:%Y-%m-%d %H:%M:%S}", f"{r['last']:%Y-%m-%d %H:%M:%S}", str(r["days"]))
    if inv.is_empty():
        t.caption = "empty: run `tapewatch import PATH` or `tapewatch demo`"
    return t


def coverage_table(store: Store, listed: int = 3) -> Table:
    """Per stream (market and source: trades or bars of one interval) what the store holds
    completely: first and last covered time, covered time, and the holes between covered spans."""
    t = Table(title="coverage: spans held completely (bars are built from trades only inside them)",
              title_justify="left")
    for c in ("exchange", "market", "symbol", "source", "from (UTC)", "to (UTC)", "covered", "holes", "largest holes"):
        t.add_column(c, justify="right" if c == "holes" else "left", overflow="fold")
    for cov in coverage.summary(store):
        holes = cov.holes
        largest = sorted(holes, key=lambda h: (h[0] - h[1], h[0]))[:listed]
        t.add_row(cov.exchange, cov.market, cov.symbol, cov.source, ns_to_iso(int(cov.starts[0])),
                  ns_to_iso(int(cov.ends[-1])), fmt_span(cov.covered_ns), f"{len(holes):,}" if holes else "none",
                  "\n".join(f"{ns_to_iso(a)} → {ns_to_iso(b)} ({fmt_span(b - a)})" for a, b in largest))
    if not t.row_count:
        t.caption = ("no coverage recorded: `tapewatch import` records what each file holds, "
                     "`tapewatch live` what it collected")
    return t
