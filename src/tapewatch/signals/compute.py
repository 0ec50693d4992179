"""Signals for one base asset: inputs from the store → factors → detector, on one bar grid.

``compute_signals(store, "BTC", "5m")`` returns every column of every factor (see the factor
modules for definitions) for the requested bars, the detector's events and which inputs were
missing. ``Signals.table()`` is the table ``tapewatch signals`` writes: exactly
:data:`OUTPUT_COLUMNS`, ``ts`` = bar open time (UTC), floats NaN where an input is missing,
conditions null where unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapewatch import detector
from tapewatch.config import Config, ConfigError, inert_settings
from tapewatch.detector import Event
from tapewatch.errors import TapewatchError
from tapewatch.signals.base import Context
from tapewatch.signals.frame import Aligned, InputStatus, input_status, load
from tapewatch.signals.registry import output_columns
from tapewatch.store import Store
from tapewatch.timeutil import interval_ns

OUTPUT_COLUMNS = output_columns()
TIME_COLUMNS = ("ts", "funding_time")


@dataclass(frozen=True)
class Signals:
    """Signals of ``base`` at ``interval``.

    ``frame``: one row per bar of the requested range, ``ts`` = bar open (Datetime ns UTC), every
    column the factors define (nulls where missing); ``inputs``: coverage of each input;
    ``events``: detector events starting in the range, oldest first; ``context``: parameters.
    """

    base: str
    interval: str
    config: Config
    context: Context
    frame: pl.DataFrame
    inputs: tuple[InputStatus, ...]
    events: tuple[Event, ...]

    @property
    def missing(self) -> list[InputStatus]:
        """Inputs with no value at any bar of the range."""
        return [i for i in self.inputs if i.status == "missing"]

    def table(self, all_columns: bool = False) -> pl.DataFrame:
        """The output table: :data:`OUTPUT_COLUMNS` (then every other column if ``all_columns``),
        float nulls as NaN, conditions as nullable booleans."""
        cols = OUTPUT_COLUMNS + ([c for c in self.frame.columns if c not in OUTPUT_COLUMNS] if all_columns else [])
        df = self.frame.select(cols)
        floats = [c for c, t in df.schema.items() if t.is_float()]
        return df.with_columns(pl.col(floats).fill_null(float("nan")))


def compute_frame(aligned: Aligned, cfg: Config) -> tuple[pl.DataFrame, Context]:
    """Factors and detector over aligned inputs (warm-up rows included, ``ts`` Int64 ns)."""
    ctx = Context(cfg, aligned.base, aligned.interval, aligned.step, aligned.start, dict(aligned.notes))
    df = aligned.frame
    for f in aligned.factors:
        if f.compute is not None:
            df = f.compute(df, ctx)
    return detector.combine(df, cfg), ctx


def compute_signals(
    store: Store,
    symbol: str,
    interval: str = "5m",
    start: int | None = None,
    end: int | None = None,
    config: Config | None = None,
    now: int | None = None,
) -> Signals:
    """Signals of ``symbol`` (the base asset, ``BTC``; ``BTC/USDT`` is read as ``BTC``) for bars
    with open time in [start, end) (UTC ns; None = all stored), closed by ``now`` (default: the clock)."""
    cfg = config or Config()
    if start is not None and end is not None and end <= start:
        raise TapewatchError("the end of the range must be after its start")
    inert = inert_settings(cfg, interval, interval_ns(interval))
    if inert:
        raise ConfigError(inert[0])
    base = symbol.split("/")[0].split("-")[0].upper()
    aligned = load(store, base, interval, cfg, start, end, now)
    full, ctx = compute_frame(aligned, cfg)
    events = tuple(e for e in detector.find_events(full, ctx) if e.ts >= ctx.start)
    frame = full.filter(pl.col("ts") >= ctx.start)
    inputs = input_status(frame, aligned)
    frame = frame.with_columns(pl.col(c).cast(pl.Datetime("ns", "UTC")) for c in TIME_COLUMNS)
    return Signals(base, interval, cfg, ctx, frame, inputs, events)
