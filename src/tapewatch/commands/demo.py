"""``tapewatch demo``: the main job on the real multi-factor sample bundled with the package.

It writes the sample into the store the other commands read by default (``./tapewatch-data`` or
$TAPEWATCH_STORE), puts the demo configuration beside it (``<store>/tapewatch.toml``, which
``scan``, ``backtest``, ``report`` and ``signals`` then use), and shows on real bars: the premium
in context, taker flow / CVD and funding, which factors the detector uses and why, the verdict
for the latest bar, the event study and a plain-language conclusion.
"""

from __future__ import annotations

import time
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tapewatch.backfill.config import load_config as load_backfill_config
from tapewatch.backfill.run import BackfillRequest, run_backfill
from tapewatch.commands.backfill import print_report
from tapewatch.commands.common import DEFAULT_STORE_PATH, STORE_CONFIG, StoreOpt, console, err_console, friendly
from tapewatch.commands.signals import frame_table
from tapewatch.commands.study import demo_section
from tapewatch.config import Config
from tapewatch.demo_story import POST_GAP_USD, conclusion, premium_points, premium_sentence
from tapewatch.detector import policy_text
from tapewatch.errors import TapewatchError
from tapewatch.sample_data import Loaded, load_sample, sample_dir
from tapewatch.scan import render, scan
from tapewatch.signals.compute import Signals, compute_signals
from tapewatch.store import Store
from tapewatch.study.settings import load_settings
from tapewatch.timeutil import ns_to_iso, parse_time

REPORT = Path("tapewatch-demo-report.html")
FLOW_COLUMNS = ["ts", "close", "spot_taker_buy", "spot_taker_sell", "spot_net_taker", "spot_cvd",
                "spot_taker_buy_ratio", "funding_rate", "oi_change_pct"]
PREMIUM_INTERVAL = "15m"  # the finest bar both premium venues have (Coinbase 15m, Binance 5m)
FETCH_DAYS = 7
NS_PER_DAY = 86_400_000_000_000
# what --fetch fills (start/end set per run): every input of the four factors, for BTC
FETCH = (
    BackfillRequest("binance", "BTC/USDT", 0, None, ("spot", "perp"), ("klines", "metrics", "bookdepth", "funding"), "1m"),
    BackfillRequest("coinbase", "BTC/USD", 0, None, ("spot",), ("klines",), "1m"),
)
# why a factor is or is not used by the demo's detector (the sample's coverage, decided before looking)
FACTOR_WHY = {
    "flow": "spot taker buy/sell split from the Binance 4h klines, every bar of the sample",
    "premium": "Coinbase BTC-USD 15m vs Binance BTC-USDT 5m closes, every bar of the sample",
    "oi": "only daily means of Binance open interest exist here: shown as context (day-over-day change), "
          "not used, since 'OI rising into a dip' needs OI finer than the 1-day rally window",
    "book": "no order-book depth over these months (the only raw L2 in the data is 6 minutes of "
            "2024-08-08): named missing; counts only where present",
}


# what each sample file feeds (src/tapewatch/sample/PROVENANCE.md says more)
FEEDS = {
    "binance_spot_btcusdt_4h": "taker flow / CVD (4h taker split)",
    "binance_spot_btcusdt_5m": "premium (Binance side)",
    "binance_perp_btcusdt_5m": "price (the perp close)",
    "coinbase_spot_btcusd_15m": "premium (Coinbase side)",
    "binance_perp_btcusdt_funding": "funding (context)",
    "binance_perp_btcusdt_oi_1d": "OI, daily means (context)",
}


def demo_config_path() -> Path:
    """The demo configuration shipped with the package."""
    return Path(str(resources.files("tapewatch") / "demo_config.toml"))


@friendly
def demo_cmd(
    store: StoreOpt = DEFAULT_STORE_PATH,
    fetch: Annotated[bool, typer.Option(
        "--fetch", help="Fill the store from the exchanges first (needs internet) and run on that instead of the sample.")] = False,
    start: Annotated[str | None, typer.Option(help="With --fetch: first day, UTC (default: 7 days ago).")] = None,
    end: Annotated[str | None, typer.Option(help="With --fetch: end, UTC, exclusive (default: now).")] = None,
    backfill_config: Annotated[Path | None, typer.Option(
        "--backfill-config", help="With --fetch: backfill TOML (base URLs, retries); see `tapewatch backfill --help`.")] = None,
) -> None:
    """Write the bundled real sample into the store and show, on real bars, the premium in
    context, taker flow / CVD and funding, the detector's configuration and verdict, the event
    study and what it means.

    Re-running is idempotent: the same files give the same rows. Afterwards `tapewatch status`,
    `scan --symbol BTC`, `backtest --symbol BTC` and `report --symbol BTC` work with no flags.
    With --fetch, the store is first filled from Binance (archive + REST) and Coinbase (REST) for BTC.
    """
    st = Store(store)
    if fetch:
        _fetched(st, start, end, backfill_config)
        return
    console.print(Panel.fit(f"tapewatch demo — real multi-factor sample: {sample_dir()}\nstore: {st.root}",
                            style="bold"))
    loaded = load_sample(st)
    console.print(_loaded_table(loaded))
    cfg_path, note = _store_config(st)
    console.print(note, highlight=False)
    cfg, _ = load_settings(cfg_path)
    share, price = _premium_section(st, cfg)
    sig = compute_signals(st, "BTC", cfg.interval, None, None, cfg)
    _flow_section(sig)
    _detector_section(sig)
    verdict = scan(st, "BTC", cfg.interval, "30d", None, cfg, str(cfg_path), max_events=5)
    render(verdict, console)
    console.print(f"[bold]event study on the whole sample ({cfg.interval} bars)[/]")
    study = demo_section(st.root, "BTC", cfg.interval, cfg_path, REPORT)
    lines = conclusion(study.result.periods, study.result.settings.get("alpha", 0.05), share, PREMIUM_INTERVAL, price)
    console.print(Panel("\n\n".join(escape(x) for x in lines), title="what this means", title_align="left"))
    console.print("next: [bold]tapewatch status[/], [bold]tapewatch scan --symbol BTC[/], "
                  "[bold]tapewatch backtest --symbol BTC[/], [bold]tapewatch report --symbol BTC --out report.html[/] "
                  f"(they read {escape(str(st.root))} and its {STORE_CONFIG})", highlight=False)


def _store_config(st: Store) -> tuple[Path, str]:
    """Write the demo configuration to ``<store>/tapewatch.toml`` unless a different one is there;
    returns the config the demo uses and a sentence saying what happened."""
    src = demo_config_path()
    target = st.root / STORE_CONFIG
    text = src.read_text(encoding="utf-8")
    if target.is_file() and target.read_text(encoding="utf-8") != text:
        return src, (f"config: kept your {target} (the next commands use it); the demo itself uses {src}")
    target.write_text(text, encoding="utf-8")
    return target, f"config: {target} (the demo's; the next commands find it there)"


def _loaded_table(loaded: list[Loaded]) -> Table:
    t = Table(title="the sample, written to the store", title_justify="left", header_style="bold", pad_edge=False)
    for c in ("file", "kind", "rows", "new rows", "from (UTC)", "to (UTC)", "feeds"):
        t.add_column(c, justify="right" if c in ("rows", "new rows") else "left")
    for x in loaded:
        t.add_row(x.path.name, x.kind, f"{x.rows:,}", f"{x.added:,}", ns_to_iso(x.first)[:16], ns_to_iso(x.last)[:16],
                  FEEDS.get(x.path.stem, ""))
    return t


def _premium_section(st: Store, cfg: Config) -> tuple[float, float]:
    """The post's −$91 and the latest premium, each as % of price, z and percentile; returns the
    share of bars at or below the post's gap and the latest price (USD)."""
    frame = compute_signals(st, "BTC", PREMIUM_INTERVAL, None, None, cfg).frame
    post, last, share, n = premium_points(frame)
    console.print(f"[bold]the Coinbase–Binance premium ({PREMIUM_INTERVAL} bars, {n:,} with both venues)[/]")
    if last is None:
        raise TapewatchError("the sample has no bar with both premium venues; the package may be damaged")
    console.print(f"  the post's −${-POST_GAP_USD:,.0f} at the latest price (${last.price:,.0f}) is "
                  f"{POST_GAP_USD / last.price * 100:+.3f} % of price; a gap at or below it on {share:.1%} of bars",
                  highlight=False)
    if post is not None and post.ts != last.ts:
        console.print(f"  latest such bar: {escape(premium_sentence(post, PREMIUM_INTERVAL))}", highlight=False)
    console.print(f"  latest bar: {escape(premium_sentence(last, PREMIUM_INTERVAL))}", highlight=False)
    if cfg.interval != PREMIUM_INTERVAL:
        console.print(f"  (the detector below reads the same premium on its {cfg.interval} bars, at their closes and "
                      f"against 30 days of {cfg.interval} bars, so its latest z and percentile differ from these)",
                      highlight=False)
    return share, last.price


def _flow_section(sig: Signals) -> None:
    console.print(f"[bold]taker flow / CVD, funding and daily OI change ({sig.interval} bars, latest 6)[/]")
    t = sig.table()
    console.print(frame_table(t, FLOW_COLUMNS, rows=6))
    buy, sell = t.get_column("spot_taker_buy").sum(), t.get_column("spot_taker_sell").sum()
    console.print(f"  whole sample: takers bought {buy:,.0f} BTC and sold {sell:,.0f} BTC on Binance spot "
                  f"(net {buy - sell:+,.0f}); funding from {t.get_column('funding_rate').min() * 100:+.4f} % "
                  f"to {t.get_column('funding_rate').max() * 100:+.4f} % per 8h", highlight=False)


def _detector_section(sig: Signals) -> None:
    """Which factors the detector uses and why, from the configuration and the inputs' coverage."""
    d = sig.config.detector
    lines = [f"rule: {policy_text(sig.config)}"]
    for f in ("flow", "premium", "oi", "book"):
        role = "required" if f in d.required else "when present" if f in d.when_present else "not used"
        lines.append(f"{f} — {role}: {FACTOR_WHY[f]}")
    missing = [i.label for i in sig.inputs if i.status == "missing"]
    if missing:
        lines.append(f"missing over the sample: {', '.join(missing)}")
    console.print(Panel("\n".join(escape(x) for x in lines), title="the detector on this sample", title_align="left"))


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
    demo_section(st.root, "BTC", "5m", None, REPORT, reps=200, start=lo, end=hi)


