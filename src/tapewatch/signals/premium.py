"""Exchange premium of venue a over venue b (default Coinbase BTC-USD over Binance BTC-USDT).

Per bar [t, t + interval) (``ts`` = t), from the two venues' closes of that same bar:

- ``premium_gap_raw`` (USD) = close_a - close_b;
  ``premium_index_raw`` (%) = gap / close_b * 100.
- ``premium_gap_usdt_adj`` / ``premium_index_usdt_adj``: the same with close_b converted to USD,
  close_b * USDT/USD, where USDT/USD is the last close of a stored USDT/USD bar series
  (``premium.usdt_usd``, first with a value) that closed by the bar close and is at most
  ``premium.usdt_max_age`` old.
- ``premium_gap`` / ``premium_index``: the raw or the adjusted variant (``premium.basis``).
- ``premium_z``: (index_t - mean) / std over the trailing ``premium.history`` ending at t
  (t included; sample std); ``premium_pct_rank`` (0..100): percent of those values <= index_t;
  ``premium_hist_n``: how many values the window held. Both NaN below ``premium.min_history``.
- ``premium_mean_k``: mean of ``premium_index`` over the last K = ``premium.smooth`` bars (all present).

Conditions: ``negative_premium``: ``premium_mean_k < -premium.threshold_pct``;
mirror ``positive_premium``: ``premium_mean_k > +threshold_pct``.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from tapewatch.signals.base import Context, Reading, Side, State, fmt_pct, missing_note, num, safe_div, signed
from tapewatch.signals.spec import FactorSpec, PanelSpec
from tapewatch.signals.window import Rolling

NAME = "premium"
CONDITIONS: dict[Side, str] = {"distribution": "negative_premium", "accumulation": "positive_premium"}


def compute(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Add the premium columns and both conditions."""
    cfg = ctx.cfg.premium
    a, b, usd = pl.col("premium_a_close"), pl.col("premium_b_close"), pl.col("usdt_usd")
    df = df.with_columns(
        (a - b).alias("premium_gap_raw"),
        (safe_div(a - b, b) * 100.0).alias("premium_index_raw"),
        (a - b * usd).alias("premium_gap_usdt_adj"),
        (safe_div(a - b * usd, b * usd) * 100.0).alias("premium_index_usdt_adj"),
    )
    suffix = "raw" if cfg.basis == "raw" else "usdt_adj"
    df = df.with_columns(
        pl.col(f"premium_gap_{suffix}").alias("premium_gap"),
        pl.col(f"premium_index_{suffix}").alias("premium_index"),
    )
    h, hmin, k = ctx.bars(cfg.history), ctx.bars(cfg.min_history), ctx.bars(cfg.smooth)
    x = pl.col("premium_index")
    n = x.is_not_null().cast(pl.Int64).rolling_sum(h, min_samples=1)
    enough = n >= hmin
    hist = Rolling(df, "premium_index", h, ctx.step)
    df = df.with_columns(
        n.alias("premium_hist_n"),
        pl.when(enough).then(safe_div(x - hist.mean(1), hist.std(2))).alias("premium_z"),
        pl.when(enough)
        .then(100.0 * x.rolling_rank(h, method="max", min_samples=1).cast(pl.Float64) / n)
        .alias("premium_pct_rank"),
        Rolling(df, "premium_index", k, ctx.step).mean(k).alias("premium_mean_k"),
    )
    return df.with_columns(
        (pl.col("premium_mean_k") < -cfg.threshold_pct).alias(CONDITIONS["distribution"]),
        (pl.col("premium_mean_k") > cfg.threshold_pct).alias(CONDITIONS["accumulation"]),
    )


def context(row: dict[str, Any], ctx: Context) -> str | None:
    """The premium in its own history, e.g. ``-$91.00 = -0.10% of price, z -2.3, lowest 3% of the last 30d``."""
    gap, idx = num(row.get("premium_gap")), num(row.get("premium_index"))
    if gap is None or idx is None:
        return None
    cfg = ctx.cfg.premium
    text = f"{'-' if gap < 0 else '+'}${abs(gap):,.2f} = {idx:+.3f}% of price"
    z, rank, n = num(row.get("premium_z")), num(row.get("premium_pct_rank")), num(row.get("premium_hist_n"))
    if z is not None:
        text += f", z {z:+.1f}"
    if rank is not None and n:
        full = n >= ctx.bars(cfg.history)
        span = f"the last {ctx.span(cfg.history)}" if full else f"{_days(n * ctx.step)} of history so far"
        if rank <= 50:
            text += f", lowest {share_text(rank)}% of {span}"
        else:
            text += f", highest {share_text(100.0 - rank + 100.0 / n)}% of {span}"
    if cfg.basis == "raw" and num(row.get("premium_index_usdt_adj")) is not None:
        text += f"; USDT/USD-adjusted {fmt_pct(num(row.get('premium_index_usdt_adj')), 3)}"
    return text


def reading(row: dict[str, Any], ctx: Context, side: Side) -> Reading:
    """The condition of ``side`` at one bar, with its numbers and a sentence why."""
    cfg = ctx.cfg.premium
    cond = CONDITIONS[side]
    state = State.of(row.get(cond))
    sign = 1 if side == "distribution" else -1
    mean_k = num(row.get("premium_mean_k"))
    k = ctx.span(cfg.smooth)
    rule = f"mean premium index over {k} {'<' if sign > 0 else '>'} {signed(-sign * cfg.threshold_pct)}%"
    values = {
        "premium_mean_k": mean_k,
        "premium_index": num(row.get("premium_index")),
        "premium_gap": num(row.get("premium_gap")),
        "premium_z": num(row.get("premium_z")),
        "premium_pct_rank": num(row.get("premium_pct_rank")),
    }
    thresholds = {"threshold_pct": -sign * cfg.threshold_pct + 0.0}
    label = f"{cfg.a.exchange} over {cfg.b.exchange}"
    if state is State.UNAVAILABLE:
        keys = ["premium_a", "premium_b"] + (["usdt_usd"] if cfg.basis == "usdt_adjusted" else [])
        note = missing_note(ctx, *keys)
        why = f"no {label} premium for all {k} at this bar" + (f" ({note})" if note else "")
    else:
        ctx_txt = context(row, ctx) or ""
        verb = "below" if sign > 0 else "above"
        ok = "is" if state is State.HOLDS else "is not"
        why = f"{label} premium averages {fmt_pct(mean_k, 3)} over {k}: {ok} {verb} {signed(-sign * cfg.threshold_pct)}%"
        if ctx_txt:
            why += f" (now {ctx_txt})"
    return Reading(NAME, cond, state, values, thresholds, rule, why)


def share_text(share_pct: float) -> str:
    """A tail share in percent as text that never reads 0: whole percent from 1 % on, below that
    rounded *up* to one decimal so "highest X %" stays true (``0.45`` → ``0.5``, ``3.2`` → ``3``)."""
    if share_pct >= 1.0:
        return f"{share_pct:.0f}"
    return f"{max(0.1, math.ceil(share_pct * 10 - 1e-9) / 10):.1f}"


def _days(ns: float) -> str:
    days = ns / 86_400e9
    return f"{days:.1f} days" if days >= 1 else f"{ns / 3_600e9:.1f} hours"



SPEC = FactorSpec(
    name=NAME,
    inputs=("premium_a", "premium_b", "usdt_usd"),
    windows=(("premium.history",), ("premium.smooth",)),
    outputs=("premium_gap_raw", "premium_index_raw", "premium_gap_usdt_adj", "premium_index_usdt_adj", "premium_gap",
             "premium_index", "premium_hist_n", "premium_z", "premium_pct_rank", "premium_mean_k",
             *CONDITIONS.values()),
    table=("premium_gap", "premium_index", "premium_z", "premium_pct_rank"),
    shown=("premium_index",),
    conditions=CONDITIONS,
    compute=compute,
    reading=reading,
    panel=PanelSpec("premium index (venue a − venue b, % of price)", (("premium index", "premium_index"),), "%",
                    ("premium.threshold_pct", "-premium.threshold_pct"), note="no bars of both premium venues"),
)
