"""Open interest against price; the condition *OI rising into a dip* and its mirror.

Per bar [t, t + interval) (``ts`` = t), from the perpetual's ``open_interest`` records
(``oi.source``; Binance ``metrics`` rows every 5 minutes):

- ``oi`` (base units): the last record strictly before the bar close t + interval, at most
  ``oi.max_age`` old (NaN otherwise); ``oi_value`` the same record's value in quote units.
- ``oi_change_pct`` (%): ``(oi_t / oi_{t-W} - 1) * 100``, W = ``oi.window`` in bars.

Conditions, with ``price_change_pct`` over the same W (see price.py); null when either change is
missing (W is shorter than ``flow.window``: the dips are the pullbacks within a rally):
``oi_rising_into_dip``: ``oi_change_pct > +oi.rise_pct`` while ``price_change_pct < -oi.dip_pct``;
mirror ``oi_falling_into_rally``: ``oi_change_pct < -rise_pct`` while ``price_change_pct > +dip_pct``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tapewatch.signals.base import (
    Context, Reading, Side, State, fmt_pct, known, missing_note, num, pct_change, signed,
)
from tapewatch.signals.spec import FactorSpec, PanelSpec

NAME = "oi"
CONDITIONS: dict[Side, str] = {"distribution": "oi_rising_into_dip", "accumulation": "oi_falling_into_rally"}


def compute(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Add ``oi_change_pct`` and both conditions (``oi`` comes aligned from frame.py)."""
    cfg = ctx.cfg.oi
    df = df.with_columns(pct_change("oi", ctx.bars(cfg.window)).alias("oi_change_pct"))
    d, p = pl.col("oi_change_pct"), pl.col("price_change_pct")
    return df.with_columns(
        known((d > cfg.rise_pct) & (p < -cfg.dip_pct), "oi_change_pct", "price_change_pct").alias(
            CONDITIONS["distribution"]
        ),
        known((d < -cfg.rise_pct) & (p > cfg.dip_pct), "oi_change_pct", "price_change_pct").alias(
            CONDITIONS["accumulation"]
        ),
    )


def reading(row: dict[str, Any], ctx: Context, side: Side) -> Reading:
    """The condition of ``side`` at one bar, with its numbers and a sentence why."""
    cfg = ctx.cfg.oi
    cond = CONDITIONS[side]
    state = State.of(row.get(cond))
    sign = 1 if side == "distribution" else -1
    d, p = num(row.get("oi_change_pct")), num(row.get("price_change_pct"))
    span = ctx.span(cfg.window)
    rule = (
        f"OI change over {span} {'>' if sign > 0 else '<'} {signed(sign * cfg.rise_pct)}% while price change "
        f"{'<' if sign > 0 else '>'} {signed(-sign * cfg.dip_pct)}%"
    )
    values = {"oi_change_pct": d, "price_change_pct": p, "oi": num(row.get("oi"))}
    thresholds = {"rise_pct": sign * cfg.rise_pct + 0.0, "dip_pct": -sign * cfg.dip_pct + 0.0}
    if state is State.UNAVAILABLE:
        what = [n for n, v in (("OI change", d), ("price change", p)) if v is None]
        note = missing_note(ctx, "oi") if d is None else ""
        why = f"{' and '.join(what) or 'an input'} missing at this bar" + (f" ({note})" if note else "")
    else:
        verb = ("rising", "dip") if sign > 0 else ("falling", "rally")
        ok = "" if state is State.HOLDS else "not "
        why = f"OI {fmt_pct(d)} and price {fmt_pct(p)} over {span}: OI {ok}{verb[0]} into a {verb[1]}"
    return Reading(NAME, cond, state, values, thresholds, rule, why)


SPEC = FactorSpec(
    name=NAME,
    inputs=("oi",),
    windows=(("oi.window",),),
    outputs=("oi_change_pct", *CONDITIONS.values()),
    table=("oi", "oi_change_pct", "price_change_pct"),
    shown=("oi_change_pct",),
    conditions=CONDITIONS,
    compute=compute,
    reading=reading,
    panel=PanelSpec("open interest vs price (change over W, %)",
                    (("OI change", "oi_change_pct"), ("price change", "price_change_pct")), "%",
                    ("oi.rise_pct",), note="no open-interest records"),
)
