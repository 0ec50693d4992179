"""``tapewatch demo``: the main job on the real sample bundled with the package."""

from __future__ import annotations

import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

import polars as pl
from rich.panel import Panel

from tapewatch.bars import bars_from_store
from tapewatch.backfill.config import load_config as load_backfill_config
from tapewatch.backfill.run import BackfillRequest, run_backfill
from tapewatch.commands.backfill import print_report
from tapewatch.commands.common import StoreOpt, console, err_console, friendly
from tapewatch.commands.signals import frame_table
from tapewatch.commands.study import demo_section
from tapewatch.scan import render, scan
from tapewatch.signals.compute import compute_signals
from tapewatch.study.settings import load_settings
from tapewatch.timeutil import ns_to_iso, parse_time
from rich.table import Table

from tapewatch.commands.data import bars_summary, print_import_report
from tapewatch.errors import TapewatchError
from tapewatch.importer import import_paths
from tapewatch.store import Store

DEMO_STORE = Path("./tapewatch-demo-data")

# (exchange, market, symbol, interval, what it shows)
DEMO_BARS = [
    ("binance", "spot", "BTC/USDT", "10s", "Binance spot BTC/USDT from real trades (aggressor: is_buyer_maker → taker sold)"),
    ("coinbase", "spot", "SKL/USD", "1m", "Coinbase from recorded match messages (side is the maker's: taker is the opposite)"),
    ("unknown", "perp", "BTC/USD", "1d", "the real BTC perpetual month, 1m bars resampled to 1d (quote volume only)"),
]

FLOW_COLUMNS = ["ts", "close", "spot_taker_buy", "spot_taker_sell", "spot_net_taker", "spot_cvd", "spot_taker_buy_ratio"]
FETCH_DAYS = 7
NS_PER_DAY = 86_400_000_000_000
# what --fetch fills (start/end set per run): every input of the four factors, for BTC
FETCH = (
    BackfillRequest("binance", "BTC/USDT", 0, None, ("spot", "perp"), ("klines", "metrics", "bookdepth", "funding"), "1m"),
    BackfillRequest("coinbase", "BTC/USD", 0, None, ("spot",), ("klines",), "1m"),
)
LACKS = (
    "The bundled sample lacks: a Coinbase BTC-USD series over the same period as a Binance BTC-USDT one "
    "(no premium), Binance `metrics` open interest, `bookDepth` archives, funding history, and a long "
    "series with a taker buy/sell split. Results that need them say so."
)


def sample_dir() -> Path:
    """Folder of the real sample shipped inside the package."""
    return Path(str(resources.files("tapewatch") / "sample"))


@friendly
def demo_cmd(
    store: StoreOpt = DEMO_STORE,
    fetch: Annotated[bool, typer.Option(
        "--fetch", help="Fill the store from the exchanges first (needs internet) and run on that instead of the sample.")] = False,
    start: Annotated[str | None, typer.Option(help="With --fetch: first day, UTC (default: 7 days ago).")] = None,
    end: Annotated[str | None, typer.Option(help="With --fetch: end, UTC, exclusive (default: now).")] = None,
    backfill_config: Annotated[Path | None, typer.Option(
        "--backfill-config", help="With --fetch: backfill TOML (base URLs, retries); see `tapewatch backfill --help`.")] = None,
) -> None:
    """Import the bundled real sample into a store and show what is there: bars, the factors,
    the detector's verdict and the event study with its report.

    Re-running is idempotent: the same files give the same rows. With --fetch, the store is
    first filled from Binance (archive + REST) and Coinbase (REST) for BTC.
    """
    st = Store(store)
    if fetch:
        _fetched(st, start, end, backfill_config)
        return
    console.print(Panel.fit(f"tapewatch demo — real sample: {sample_dir()}\nstore: {st.root}", style="bold"))
    report = import_paths([sample_dir()], st)
    print_import_report(report, st)
    if report.errors:
        raise TapewatchError("the bundled sample failed to import; the package may be damaged")
    console.print(venue_summary(st))
    for exchange, market, symbol, interval, what in DEMO_BARS:
        try:
            bars = bars_from_store(st, exchange, market, symbol, interval)
        except TapewatchError as exc:
            console.print(f"[yellow]{exchange} {market} {symbol}: {exc}[/]")
            continue
        console.print(f"[bold]{what}[/]", highlight=False)
        console.print(bars_summary(bars, f"{exchange} {market} {symbol} {interval}"))
        _flow_line(bars)
    _signals_and_study(st)
    console.print(Panel(LACKS, title="missing inputs", style="yellow"))


def _fetched(st: Store, start: str | None, end: str | None, backfill_config: Path | None) -> None:
    """Backfill BTC from the exchanges, then the factors, the verdict and the event study on it (5 m bars)."""
    now = time.time_ns()
    lo = parse_time(start) if start else now - now % NS_PER_DAY - FETCH_DAYS * NS_PER_DAY
    hi = parse_time(end) if end else None
    cfg = load_backfill_config(backfill_config)
    console.print(Panel.fit(f"tapewatch demo --fetch: BTC from Binance and Coinbase since {ns_to_iso(lo)} UTC\n"
                            f"store: {st.root}", style="bold"))
    ok = True
    for req in FETCH:
        report = run_backfill(replace(req, start=lo, end=hi), st, cfg, err_console)
        if report.offline and report.fetched_nothing:  # no network: say so once, and stop
            raise TapewatchError(f"demo --fetch: {report.offline_line()}")
        print_report(report)
        ok &= report.ok
    if not ok:
        console.print("[yellow]some inputs could not be fetched (listed above); the factors that need them show as unavailable[/]")
    end_ns = hi if hi is not None else now
    verdict = scan(st, "BTC", "5m", f"{max(1, (end_ns - lo) // NS_PER_DAY)}d", hi, None, "defaults", max_events=5)
    render(verdict, console)
    console.print("[bold]event study on the fetched period (5 m bars)[/]")
    demo_section(st.root, "BTC", "5m", None, Path("tapewatch-demo-report.html"), start=lo, end=hi)


def _signals_and_study(st: Store) -> None:
    """Factors and the detector on the sample, then the event study and the report."""
    cfg_path = Path(str(resources.files("tapewatch") / "demo_config.toml"))
    cfg, _ = load_settings(cfg_path)
    # taker flow / CVD: the sample's Binance spot trades (46 s of 2021-01-08), 10 s bars
    flow = compute_signals(st, "BTC", "10s", parse_time("2021-01-08T00:00"), parse_time("2021-01-08T00:01"), cfg)
    console.print("[bold]taker flow and CVD from the real Binance spot trades (10 s bars)[/]")
    console.print(frame_table(flow.table(), FLOW_COLUMNS, rows=6))
    # the detector on the real perp month, 1 h bars: which factors the sample can and cannot feed
    month = parse_time("2022-01-01T00:00"), parse_time("2022-02-01T00:00")
    verdict = scan(st, "BTC", "1h", "31d", month[1], cfg, str(cfg_path), max_events=5)
    render(verdict, console)
    console.print("[bold]event study on the real perp month, January 2022 (1 h bars)[/]")
    demo_section(st.root, "BTC", "1h", cfg_path, Path("tapewatch-demo-report.html"), start=month[0], end=month[1])


def venue_summary(store: Store) -> Table:
    """The store per kind / venue / market: symbols, rows and time range (``tapewatch status`` lists each symbol)."""
    inv = (
        store.inventory()
        .group_by("kind", "exchange", "market")
        .agg(pl.col("symbol").n_unique().alias("symbols"), pl.col("rows").sum(), pl.col("first").min(),
             pl.col("last").max())
        .sort("kind", "exchange", "market")
    )
    t = Table(title=f"what the store holds ({store.root})", title_justify="left")
    for c in ("kind", "exchange", "market", "symbols", "rows", "from (UTC)", "to (UTC)"):
        t.add_column(c, justify="right" if c in ("symbols", "rows") else "left")
    for r in inv.iter_rows(named=True):
        t.add_row(r["kind"], r["exchange"], r["market"], str(r["symbols"]), f"{r['rows']:,}",
                  f"{r['first']:%Y-%m-%d %H:%M}", f"{r['last']:%Y-%m-%d %H:%M}")
    return t


def _flow_line(bars: pl.DataFrame) -> None:
    if bars.get_column("taker_buy_volume").null_count() == bars.height:
        console.print("  taker split: not in this source (— above)")
        return
    buy = bars.get_column("taker_buy_volume").sum()
    sell = bars.get_column("taker_sell_volume").sum()
    console.print(
        f"  taker buy {buy:,.4f}, taker sell {sell:,.4f}, net {buy - sell:+,.4f} "
        f"(buy ratio {buy / (buy + sell):.1%})", highlight=False,
    )
