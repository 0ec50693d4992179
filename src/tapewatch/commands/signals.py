"""``tapewatch signals`` (per-bar factor table) and ``tapewatch scan`` (verdict for the latest bar)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.markup import escape
from rich.table import Table

from tapewatch.commands.common import (
    DEFAULT_STORE_PATH, EndOpt, OutOpt, StartOpt, StoreOpt, console, friendly, resolve_config, write_table,
)
from tapewatch.config import Config, load_config
from tapewatch.detector import policy_text
from tapewatch.display import fmt_number
from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, interval_name
from tapewatch.scan import render, scan
from tapewatch.signals.compute import compute_signals
from tapewatch.signals.registry import output_columns
from tapewatch.store import open_store
from tapewatch.study.settings import load_settings
from tapewatch.study.wiring import track_records
from tapewatch.timeutil import parse_time

SymbolOpt = Annotated[str, typer.Option("--symbol", help="Base asset, e.g. BTC (markets are set in the config).")]
IntervalOpt = Annotated[str | None, typer.Option(
    "--interval", help="Bar interval: 1m, 5m, 15m, 1h, 4h, 1d … (default: the config's `interval`, 5m).")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="TAPEWATCH_CONFIG",
                 help="TOML file of signal / detector parameters (else <store>/tapewatch.toml, else "
                      "tapewatch/default_config.toml)."),
]
SHOWN = output_columns(shown=True)


def _config(path: Path | None, store: Path) -> tuple[Config, str]:
    path, source = resolve_config(path, store)
    return load_config(path), source


@friendly
def signals_cmd(
    symbol: SymbolOpt = "BTC",
    interval: IntervalOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    out: OutOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
    config: ConfigOpt = None,
    all_columns: Annotated[bool, typer.Option("--all-columns", help="Also write the helper columns.")] = False,
) -> None:
    """Factor values and conditions per bar. A row stamped t (bar open, UTC) uses data up to t + interval."""
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise TapewatchError(f"--out must end in .csv or .parquet, got {out.name!r}")
    symbol = base_name(symbol)
    cfg, source = _config(config, store)
    interval = interval_name(interval or cfg.interval, "--interval")
    sig = compute_signals(
        open_store(store), symbol, interval or cfg.interval,
        parse_time(start) if start else None, parse_time(end) if end else None, cfg,
    )
    table = sig.table(all_columns)
    if out is not None:
        write_table(table, out)
        console.print(f"wrote {table.height} bars × {table.width} columns to {escape(str(out))}", highlight=False)
    else:
        console.print(frame_table(table, SHOWN))
        console.print(f"{table.height} bars; --out FILE.csv|.parquet writes all {table.width} columns", highlight=False)
    events = {s: sum(1 for e in sig.events if e.side == s) for s in ("distribution", "accumulation")}
    console.print(
        f"events: {events['distribution']} distribution, {events['accumulation']} accumulation; "
        f"detector: {escape(policy_text(cfg))}; config: {escape(source)}",
        highlight=False,
    )
    for i in sig.inputs:
        if i.status != "present" or i.note:
            console.print(
                f"[yellow]{i.status}:[/] {escape(f'{i.label} ({i.source}, {i.bars}/{i.total} bars) {i.note}')}",
                highlight=False,
            )


@friendly
def scan_cmd(
    symbol: SymbolOpt = "BTC",
    interval: IntervalOpt = None,
    lookback: Annotated[str, typer.Option("--lookback", help="How far back to list events, e.g. 1d, 7d.")] = "7d",
    end: EndOpt = None,
    events: Annotated[int, typer.Option("--events", min=0, help="Most recent events to show.")] = 10,
    store: StoreOpt = DEFAULT_STORE_PATH,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Verdict for the latest closed bar: each factor, its threshold, whether it holds and why."""
    symbol = base_name(symbol)
    path, source = resolve_config(config, store)
    cfg, settings = load_settings(path)
    interval = interval_name(interval or cfg.interval, "--interval")
    st = open_store(store)
    end_ns = parse_time(end) if end else None
    verdict = scan(st, symbol, interval, lookback, end_ns, cfg, source, max_events=events)
    if verdict.events:  # every event carries this configuration's record as known before it
        records = track_records(st, symbol, interval, cfg, settings, end_ns)
        for e in verdict.events:
            e.annotations["track record"] = records.at(e.side, e.ts).describe()
    if as_json:
        typer.echo(json.dumps(verdict.to_dict(), indent=2, default=str))
    else:
        render(verdict, console)


def frame_table(table: pl.DataFrame, columns: list[str], rows: int = 12) -> Table:
    """The last ``rows`` bars of a signals table, ``columns`` only, as a Rich table (times with
    seconds when any bar starts off the minute)."""
    t = Table(header_style="bold", pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    shown = table.select(columns).tail(rows)
    off_minute = "ts" in shown.columns and shown.height and (shown["ts"].dt.second() != 0).any()
    time_fmt = "%Y-%m-%d %H:%M:%S" if off_minute else "%Y-%m-%d %H:%M"
    for r in shown.iter_rows():
        t.add_row(*[_cell(x, time_fmt) for x in r])
    return t


def _cell(x: object, time_fmt: str) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return fmt_number(x)
    if hasattr(x, "strftime"):
        return x.strftime(time_fmt)  # type: ignore[attr-defined]
    return str(x)
