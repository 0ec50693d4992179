"""``tapewatch backtest`` (the event study) and ``tapewatch report`` (HTML + PNG figures)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tapewatch.commands.common import (
    DEFAULT_STORE_PATH, EndOpt, StartOpt, StoreOpt, console, friendly, resolve_config,
)
from tapewatch.config import Config
from tapewatch.detector import policy_text
from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, interval_name
from tapewatch.report import write_report
from tapewatch.store import open_store
from tapewatch.study.result import PeriodStats, StudyResult, p_text, pct, pct_range, sweep_summary
from tapewatch.study.run import Study
from tapewatch.study.saved import save_sweep
from tapewatch.study.settings import load_settings
from tapewatch.study.sweep import load_grid
from tapewatch.study.wiring import DetectorStudy, explain_events, prepare, study_detector
from tapewatch.timeutil import parse_time

SymbolOpt = Annotated[str, typer.Option("--symbol", help="Base asset, e.g. BTC (markets are set in the config).")]
IntervalOpt = Annotated[str | None, typer.Option(
    "--interval", help="Bar interval: 1m, 5m, 15m, 1h … (default: the config's `interval`, 5m).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="TAPEWATCH_CONFIG",
                 help="TOML file: signal / detector parameters, and the [study] table (horizons, label, "
                      "bootstrap draws, split); else <store>/tapewatch.toml, else the defaults."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of the rotation and bootstrap draws (default: study.seed, 0).")]


def _run(store: Path, symbol: str, interval: str | None, start: str | None, end: str | None, config: Path | None,
         sweep: Path | None, seed: int | None) -> tuple[DetectorStudy, Study, Config]:
    symbol = base_name(symbol)
    path, source = resolve_config(config, store)
    cfg, settings = load_settings(path)
    interval = interval_name(interval or cfg.interval, "--interval")
    console.print(f"config: {escape(source)} · {symbol} · {interval} bars", highlight=False)
    console.print(f"detector: {escape(policy_text(cfg))}", highlight=False)
    grid = load_grid(sweep) if sweep is not None else [{}]
    ds = prepare(open_store(store), symbol, interval, parse_time(start) if start else None,
                 parse_time(end) if end else None, cfg, grid)
    if ds.blocked and all(n == len(ds.bars) for n in ds.unknown.values()):
        raise TapewatchError(
            f"the detector could not tell on any of the {len(ds.bars):,} {interval} bars of {ds.base}: required "
            f"{', '.join(ds.blocked)}; choose an --interval (or --start/--end) where these inputs exist "
            "(tapewatch status lists them) or a config whose detector.required leaves them out")
    return ds, study_detector(ds, cfg, settings, grid, seed, source, sweep), cfg


def print_result(result: StudyResult) -> None:
    """The verdict first, then one table per period and the sweep summary."""
    console.print(Panel("\n".join(escape(v) for v in result.verdict) or "no events", title="verdict",
                        title_align="left", style="bold"))
    console.print(f"label: {escape(result.label)}; events counted at least {result.inputs.get('episode_gap', 'n/a')} "
                  "apart (no shared outcome bars)", highlight=False)
    for period in result.periods:
        console.print(_period_table(period))
    for sw in result.sweeps:
        console.print(
            escape(sweep_summary(sw)), highlight=False)
    for m in result.inputs.get("missing_inputs") or []:
        console.print(f"[yellow]missing:[/] {escape(m)}", highlight=False)
    for w in result.inputs.get("inert_settings") or []:
        console.print(f"[yellow]no effect:[/] {escape(w)}", highlight=False)



def _period_table(period: PeriodStats) -> Table:
    t = Table(title=f"{period.name} · {period.start} → {period.end} · {period.bars:,} bars · "
                    f"block {period.block_bars} bars · {period.reps:,} draws",
              title_justify="left", header_style="bold", pad_edge=False)
    for col in ("side", "outcome", "events", "after events", f"{period.confidence:.0%} CI", "base", "p", "net mean"):
        t.add_column(col, justify="left" if col in ("side", "outcome") else "right")
    for s in period.sides:
        for o in s.outcomes:
            d = 0 if o.kind == "hit" else 2
            t.add_row(s.side, o.outcome, str(o.events), pct(o.value, d), pct_range(o.ci_low, o.ci_high, d),
                      pct(o.base, d), p_text(o.p_value), "" if o.kind == "hit" else pct(o.net_mean, 2))
    return t


@friendly
def backtest_cmd(
    symbol: SymbolOpt = "BTC",
    interval: IntervalOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    config: ConfigOpt = None,
    sweep: Annotated[Path | None, typer.Option(
        "--sweep", help="Grid TOML: [grid] key = [values to try]. The sweep is also saved under the store "
                        "(_studies/<SYMBOL>-<interval>-sweep.json) for tapewatch serve.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full result as JSON to this file.")] = None,
    seed: SeedOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
) -> None:
    """Event study: did distribution / accumulation precede pullbacks / rallies more often than usual?

    Forward returns and the move label start at the close of the signal bar; the base rate is every
    bar of the same period; p-values are exact one-sided tests with matching bounds; a sweep
    is corrected for multiple testing; the final part is held out. Same inputs + seed → same JSON.
    """
    ds, study, cfg = _run(store, symbol, interval, start, end, config, sweep, seed)
    print_result(study.result)
    if sweep is not None and not study.result.sweeps:
        console.print("the grid has one parameter set: a single configuration, not saved as a sweep", highlight=False)
    elif sweep is not None:
        saved = save_sweep(store, ds.base, ds.interval, study.result, cfg)
        console.print(f"sweep saved to {escape(str(saved))} (tapewatch serve shows it; the next sweep of "
                      f"{ds.base} {ds.interval} replaces it)", highlight=False)
    if json_out is not None:
        study.result.write_json(json_out)
        console.print(f"wrote {escape(str(json_out))}", highlight=False)


@friendly
def report_cmd(
    symbol: SymbolOpt = "BTC",
    out: Annotated[Path, typer.Option("--out", help="HTML file to write (self-contained, opens offline).")] = Path(
        "report.html"),
    png: Annotated[Path | None, typer.Option("--png", help="Also write each figure as PNG into this folder.")] = None,
    interval: IntervalOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    config: ConfigOpt = None,
    sweep: Annotated[Path | None, typer.Option("--sweep", help="Grid TOML to sweep (the best set is drawn).")] = None,
    seed: SeedOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
) -> None:
    """HTML report: price with distribution / accumulation markers, one panel per factor, the
    event-study table and forward-return distributions (Plotly, inlined)."""
    ds, study, cfg = _run(store, symbol, interval, start, end, config, sweep, seed)
    hover = explain_events(ds, cfg, study.events)  # the readings at each event bar (base configuration's thresholds)
    res = write_report(study, out, ds.factors, title=f"tapewatch · {ds.base} {ds.interval} event study", png_dir=png,
                       hover=hover)
    console.print(Panel("\n".join(escape(v) for v in study.result.verdict) or "no events", title="verdict",
                        title_align="left", style="bold"))
    console.print(f"wrote {escape(str(res.html))}", highlight=False)
    if png is not None:
        if res.png_error:
            console.print(f"[yellow]no PNG figures:[/] {escape(res.png_error)}", highlight=False)
        else:
            console.print(f"wrote {len(res.pngs)} PNG figures to {escape(str(png))}", highlight=False)


def demo_section(
    store: Path, symbol: str, interval: str, config: Path | None, out: Path, reps: int | None = None,
    start: int | None = None, end: int | None = None,
) -> Study:
    """For ``tapewatch demo``: the backtest result on the demo store, the report, and the study.

    ``config``: the same TOML the demo's signals use (None = defaults); ``reps``: bootstrap draws
    (None = the config's); ``start``/``end``: the period studied (UTC ns; None = all stored).
    """
    cfg, settings = load_settings(config)
    if reps is not None:
        settings = dataclasses.replace(settings, reps=reps)
    ds = prepare(open_store(store), symbol, interval, start, end, cfg)
    study = study_detector(ds, cfg, settings, [{}], None, str(config) if config else "defaults")
    console.print(f"detector: {escape(policy_text(cfg))}", highlight=False)
    print_result(study.result)
    res = write_report(study, out, ds.factors, title=f"tapewatch demo · {ds.base} {interval} event study",
                       hover=explain_events(ds, cfg, study.events))
    console.print(f"report: {escape(str(res.html.resolve()))}", highlight=False)
    return study
