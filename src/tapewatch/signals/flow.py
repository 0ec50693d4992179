"""Net taker flow and CVD; the condition *spot selling into a rally* and its mirror.

Per bar [t, t + interval) (``ts`` = t; base units, e.g. BTC):

- ``spot_taker_buy`` / ``spot_taker_sell``: volume bought / sold by takers (aggressors) on the
  spot market (``markets.spot``); sell = volume - buy. NaN where the venue gives no split.
- ``spot_net_taker`` = buy - sell; ``spot_taker_buy_ratio`` = buy / volume (0..1).
- ``spot_cvd``: cumulative sum of ``spot_net_taker`` over the requested range, starting at its
  first bar (bars without a split add nothing and show NaN).
- ``perp_net_taker`` / ``perp_cvd``: the same on the perpetual (``markets.perp``).
- ``spot_net_taker_w``: sum of ``spot_net_taker`` over the last W = ``flow.window`` bars
  (t-W+1 .. t, all present).
- ``spot_flow_z``: z-score of ``spot_net_taker_w`` against its trailing ``flow.z_history``
  (mean and sample std of the window ending at t; at least ``flow.z_min_history`` values).

Conditions (null = unavailable: any value they use is missing at that bar):

- ``spot_selling_into_rally``: a rally — ``rally_change_pct > flow.rally_pct`` (price change over
  W, see price.py; or, with
  ``flow.close_at_extreme``, ``close_at_high``) — while flow < ``-flow.threshold``, where flow is
  ``spot_net_taker_w`` (``flow.measure = "sum"``) or ``spot_flow_z`` (``"z"``).
- ``spot_buying_into_decline`` (mirror): ``rally_change_pct < -rally_pct`` (or ``close_at_low``)
  while flow > ``+threshold``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tapewatch.signals.base import (
    Context, Reading, Side, State, fmt_num, fmt_pct, known, missing_note, num, safe_div, signed,
)
from tapewatch.signals.spec import FactorSpec, PanelSpec
from tapewatch.signals.window import Rolling

NAME = "flow"
CONDITIONS: dict[Side, str] = {
    "distribution": "spot_selling_into_rally",
    "accumulation": "spot_buying_into_decline",
}
CUMULATIVE = {"spot_cvd": "spot_net_taker", "perp_cvd": "perp_net_taker"}  # CVD: running sums from the range start


def compute(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Add the flow columns and both conditions (needs price.compute's columns)."""
    cfg = ctx.cfg.flow
    w = ctx.bars(cfg.window)
    in_range = pl.col("ts") >= ctx.start
    df = df.with_columns(
        pl.col("spot_taker_buy_volume").alias("spot_taker_buy"),
        (pl.col("spot_volume") - pl.col("spot_taker_buy_volume")).alias("spot_taker_sell"),
        (2 * pl.col("spot_taker_buy_volume") - pl.col("spot_volume")).alias("spot_net_taker"),
        safe_div(pl.col("spot_taker_buy_volume"), pl.col("spot_volume")).alias("spot_taker_buy_ratio"),
        (2 * pl.col("perp_taker_buy_volume") - pl.col("perp_volume")).alias("perp_net_taker"),
    )
    df = df.with_columns(
        *[pl.when(in_range).then(pl.col(of)).cum_sum().alias(name) for name, of in CUMULATIVE.items()],
        Rolling(df, "spot_net_taker", w, ctx.step).sum(w).alias("spot_net_taker_w"),
    )
    h, hmin = ctx.bars(cfg.z_history), ctx.bars(cfg.z_min_history)
    z = Rolling(df, "spot_net_taker_w", h, ctx.step)
    df = df.with_columns(
        safe_div(pl.col("spot_net_taker_w") - z.mean(hmin), z.std(hmin)).alias("spot_flow_z")
    )
    flow_col = "spot_net_taker_w" if cfg.measure == "sum" else "spot_flow_z"
    measure = pl.col(flow_col)
    rally = pl.col("rally_change_pct") > cfg.rally_pct
    decline = pl.col("rally_change_pct") < -cfg.rally_pct
    needs = [flow_col, "rally_change_pct"]
    if cfg.close_at_extreme:
        rally = rally | pl.col("close_at_high")
        decline = decline | pl.col("close_at_low")
        needs.append("close_at_high")
    return df.with_columns(
        known(rally & (measure < -cfg.threshold), *needs).alias(CONDITIONS["distribution"]),
        known(decline & (measure > cfg.threshold), *needs).alias(CONDITIONS["accumulation"]),
    )


def reading(row: dict[str, Any], ctx: Context, side: Side) -> Reading:
    """The condition of ``side`` at one bar, with its numbers and a sentence why."""
    cfg = ctx.cfg.flow
    span = ctx.span(cfg.window)
    cond = CONDITIONS[side]
    state = State.of(row.get(cond))
    sign = 1 if side == "distribution" else -1
    chg = num(row.get("rally_change_pct"))
    extreme = row.get("close_at_high" if sign > 0 else "close_at_low")
    flow_col = "spot_net_taker_w" if cfg.measure == "sum" else "spot_flow_z"
    flow = num(row.get(flow_col))
    flow_txt = f"{fmt_num(flow)} {ctx.base}" if cfg.measure == "sum" else f"z {fmt_num(flow)}"
    move, extreme_word, taker = ("rally", "high", "sold") if sign > 0 else ("decline", "low", "bought")
    rule = (
        f"price change over {span} {'>' if sign > 0 else '<'} {signed(sign * cfg.rally_pct)}%"
        + (f" (or close at the {extreme_word} of {span})" if cfg.close_at_extreme else "")
        + f", and spot net taker {'sum' if cfg.measure == 'sum' else 'z'} over {span} "
        + f"{'<' if sign > 0 else '>'} {signed(-sign * cfg.threshold)}"
    )
    values = {"rally_change_pct": chg, flow_col: flow, "spot_net_taker": num(row.get("spot_net_taker"))}
    thresholds = {"rally_pct": sign * cfg.rally_pct, "flow": -sign * cfg.threshold + 0.0}
    if state is State.UNAVAILABLE:
        what = [n for n, v in (("price change", chg), ("spot taker split", flow)) if v is None]
        note = missing_note(ctx, "spot") if flow is None else missing_note(ctx, *ctx.cfg.markets.price)
        why = f"{' and '.join(what) or 'an input'} missing at this bar" + (f" ({note})" if note else "")
    else:
        moved = chg is not None and (chg > cfg.rally_pct if sign > 0 else chg < -cfg.rally_pct)
        is_move = moved or (cfg.close_at_extreme and bool(extreme))
        flows = flow is not None and (flow < -cfg.threshold if sign > 0 else flow > cfg.threshold)
        move_txt = f"price {fmt_pct(chg)} over {span}" + (f", close at the {extreme_word} of {span}" if extreme else "")
        flow_txt = f"spot takers net {flow_txt} over {span}"
        if state is State.HOLDS:
            why = f"{move_txt} while {flow_txt}: takers {taker} into the {move}"
        elif not is_move:
            why = f"no {move}: {move_txt}"
        else:
            why = f"{move_txt} but {flow_txt}" + ("" if flows else f": takers not net {taker}")
    return Reading(NAME, cond, state, values, thresholds, rule, why)


SPEC = FactorSpec(
    name=NAME,
    inputs=("spot", "perp"),
    windows=(("flow.window", "flow.z_history"),),
    outputs=("spot_taker_buy", "spot_taker_sell", "spot_net_taker", "spot_taker_buy_ratio", "perp_net_taker",
             "spot_cvd", "perp_cvd", "spot_net_taker_w", "spot_flow_z", *CONDITIONS.values()),
    table=("spot_taker_buy", "spot_taker_sell", "spot_net_taker", "spot_cvd", "spot_taker_buy_ratio",
           "perp_net_taker", "perp_cvd"),
    shown=("spot_net_taker",),
    conditions=CONDITIONS,
    cumulative=CUMULATIVE,
    compute=compute,
    reading=reading,
    panel=PanelSpec("taker flow: cumulative net taker volume (CVD)",
                    (("spot CVD", "spot_cvd"), ("perp CVD", "perp_cvd")), "base units",
                    note="no taker buy/sell split in the stored bars"),
)
