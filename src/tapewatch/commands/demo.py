"""``tapewatch demo``: the main job on the real sample bundled with the package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import polars as pl
from rich.panel import Panel

from tapewatch.bars import bars_from_store
from tapewatch.commands.common import StoreOpt, console, friendly
from tapewatch.commands.signals import frame_table
from tapewatch.commands.study import demo_section
from tapewatch.scan import render, scan
from tapewatch.signals.compute import compute_signals
from tapewatch.study.settings import load_settings
from tapewatch.timeutil import parse_time
from rich.table import Table

from tapewatch.commands.data import _print_report, bars_summary
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
LACKS = (
    "The bundled sample lacks: a Coinbase BTC-USD series over the same period as a Binance BTC-USDT one "
    "(no premium), Binance `metrics` open interest, `bookDepth` archives, funding history, and a long "
    "series with a taker buy/sell split. Results that need them say so."
)


def sample_dir() -> Path:
    """Folder of the real sample shipped inside the package."""
    return Path(str(resources.files("tapewatch") / "sample"))


@friendly
def demo_cmd(store: StoreOpt = DEMO_STORE) -> None:
    """Import the bundled real sample into a store and show what is there, with bars.

    Re-running is idempotent: the same files give the same rows.
    """
    st = Store(store)
    console.print(Panel.fit(f"tapewatch demo — real sample: {sample_dir()}\nstore: {st.root}", style="bold"))
    report = import_paths([sample_dir()], st)
    _print_report(report, st)
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
