"""Carry the range-cumulative columns (the CVDs) from one computed range into the next.

A factor's ``cumulative`` columns (:class:`~tapewatch.signals.spec.FactorSpec`) are running sums
from the first requested bar. A live loop that computes each batch of newly closed bars with
``start`` = their first bar (reading only the factors' warm-up before it) gets running sums that
restart there; :func:`continue_cumulative` continues them from where the previous range left off,
so each value is the one a single computation from the session's first bar gives — bit for bit:
the sum is accumulated in the same order (previous total, then each bar's value), as polars'
``cum_sum`` does over the whole range.
"""

from __future__ import annotations

import polars as pl

from tapewatch.signals.registry import FACTORS
from tapewatch.signals.spec import FactorSpec

Totals = dict[str, float | None]  # per cumulative column: its last value so far (None: none yet)


def cumulative_columns(factors: tuple[FactorSpec, ...] = FACTORS) -> dict[str, str]:
    """Every range-cumulative column → the column it sums, over ``factors``."""
    return {name: of for f in factors for name, of in f.cumulative.items()}


def continue_cumulative(frame: pl.DataFrame, totals: Totals) -> tuple[pl.DataFrame, Totals]:
    """``frame`` (signal rows computed from its first row on, oldest first) with each cumulative
    column continued from ``totals`` (the running sums at the bar before its first row; a missing
    or None total starts from nothing), and the totals at its last row. A bar whose summed value is
    null stays null and adds nothing, as in the running sum itself."""
    out: Totals = {}
    cols = []
    for name, of in cumulative_columns().items():
        prev = totals.get(name)
        values = frame.get_column(of).cast(pl.Float64)
        if prev is None:
            cum = values.cum_sum()
        else:
            cum = pl.concat([pl.Series([prev], dtype=pl.Float64), values]).cum_sum().slice(1)
        last = cum.drop_nulls()
        out[name] = float(last[-1]) if last.len() else prev
        cols.append(cum.alias(name))
    return frame.with_columns(cols), out
