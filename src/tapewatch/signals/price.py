"""Price: the close every factor refers to, its change over W, and W-extremes.

Columns (one row per bar; ``ts`` = bar open time t, values use data < t + interval):

- ``close`` (quote units): close of the bar [t, t + interval), taken bar by bar from the first
  market in ``markets.price`` that has a bar at t (default: Binance perp, else Binance spot).
  ``price_source`` names that market (``perp`` / ``spot``).
- ``price_change_pct`` (%): ``(close_t / close_{t-W} - 1) * 100`` with W = ``oi.window`` in bars
  (the price side of "OI vs price"); NaN when either close is missing.
- ``rally_change_pct`` (%): the same over W = ``flow.window`` (the rally / decline of the flow factor).
- ``close_at_high`` / ``close_at_low``: ``close_t`` is the highest / lowest close of bars
  t-W .. t, W = ``flow.window`` (all W + 1 closes present, else null).
"""

from __future__ import annotations

import polars as pl

from tapewatch.signals.base import Context, pct_change
from tapewatch.signals.spec import FactorSpec


def compute(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Add ``close``, ``price_source``, ``price_change_pct``, ``rally_change_pct``, ``close_at_high/low``."""
    w = ctx.bars(ctx.cfg.flow.window)
    markets = ctx.cfg.markets.price
    source = pl.lit(None, dtype=pl.String)
    for m in reversed(markets):
        source = pl.when(pl.col(f"{m}_close").is_not_null()).then(pl.lit(m)).otherwise(source)
    df = df.with_columns(
        pl.coalesce([pl.col(f"{m}_close") for m in markets]).alias("close"),
        source.alias("price_source"),
    )
    return df.with_columns(
        pct_change("close", ctx.bars(ctx.cfg.oi.window)).alias("price_change_pct"),
        pct_change("close", w).alias("rally_change_pct"),
        (pl.col("close") >= pl.col("close").rolling_max(w + 1, min_samples=w + 1)).alias("close_at_high"),
        (pl.col("close") <= pl.col("close").rolling_min(w + 1, min_samples=w + 1)).alias("close_at_low"),
    )


SPEC = FactorSpec(
    name="price",
    inputs=("spot", "perp"),
    windows=(("flow.window",), ("oi.window",)),
    outputs=("close", "price_source", "price_change_pct", "rally_change_pct", "close_at_high", "close_at_low"),
    table=("close",),
    shown=("close",),
    compute=compute,
)
