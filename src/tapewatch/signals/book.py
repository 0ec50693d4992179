"""Order-book bid/ask depth: delta and ratio per band; the condition *ask-heavy book*.

Per bar [t, t + interval) (``ts`` = t), from the last stored ``book_depth`` record strictly before
the bar close t + interval, at most ``book.max_age`` old, of the first source in ``book.sources``
that has one (``book_source`` names it):

- ``book_delta_<b>`` = bids - asks within b % of the reference price (``book.reference``), in
  quote units (``book.measure = "notional"``) or base units (``"amount"``);
- ``book_ratio_<b>`` = (bids - asks) / (bids + asks), in [-1, 1];
- ``book_ratio_k_max`` / ``book_ratio_k_min``: the highest / lowest ratio of band ``book.band``
  over the last K bars (all present).

Bands are ``book.bands`` (1, 2, 5, 10); ``book_ratio_1``, ``_2``, ``_5`` always exist (NaN when
not computed). A band reaching past the book's known range (``book_bid_known_pct`` /
``book_ask_known_pct``: how far from the reference the stored snapshot reached, e.g. about 0.35 %
for a 1,000-level Binance BTC snapshot) has no depth (never a smaller sum): its ratio is missing
and the reading says the band is out of range. Condition on band ``book.band`` over the last K = ``book.sustain`` bars:
``ask_heavy_book``: ratio < ``-book.threshold`` on each of the K bars (all present);
mirror ``bid_heavy_book``: ratio > ``+threshold`` on each.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from tapewatch.signals.base import Context, Reading, Side, State, missing_note, num, safe_div, signed
from tapewatch.signals.spec import FactorSpec, PanelSpec
from tapewatch.signals.spec import band_tag as tag

NAME = "book"
CONDITIONS: dict[Side, str] = {"distribution": "ask_heavy_book", "accumulation": "bid_heavy_book"}
ALWAYS = (1.0, 2.0, 5.0)


def compute(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    """Add ``book_delta_<b>``, ``book_ratio_<b>`` and both conditions."""
    cfg = ctx.cfg.book
    cols = []
    for b in cfg.bands:
        bid, ask = pl.col(f"book_bid_{cfg.measure}_{tag(b)}"), pl.col(f"book_ask_{cfg.measure}_{tag(b)}")
        cols += [(bid - ask).alias(f"book_delta_{tag(b)}"), safe_div(bid - ask, bid + ask).alias(f"book_ratio_{tag(b)}")]
    cols += [pl.lit(None, dtype=pl.Float64).alias(f"book_ratio_{tag(b)}") for b in ALWAYS if b not in cfg.bands]
    df = df.with_columns(cols)
    k = ctx.bars(cfg.sustain)
    r = pl.col(f"book_ratio_{tag(cfg.band)}")
    df = df.with_columns(
        r.rolling_max(k, min_samples=k).alias("book_ratio_k_max"),
        r.rolling_min(k, min_samples=k).alias("book_ratio_k_min"),
    )
    return df.with_columns(
        (pl.col("book_ratio_k_max") < -cfg.threshold).alias(CONDITIONS["distribution"]),
        (pl.col("book_ratio_k_min") > cfg.threshold).alias(CONDITIONS["accumulation"]),
    )


def reading(row: dict[str, Any], ctx: Context, side: Side) -> Reading:
    """The condition of ``side`` at one bar, with its numbers and a sentence why."""
    cfg = ctx.cfg.book
    cond = CONDITIONS[side]
    state = State.of(row.get(cond))
    sign = 1 if side == "distribution" else -1
    col = f"book_ratio_{tag(cfg.band)}"
    ratio = num(row.get(col))
    k = ctx.span(cfg.sustain)
    heavy = "ask" if sign > 0 else "bid"
    limit = signed(-sign * cfg.threshold)
    rule = f"{cfg.band:g}% depth ratio {'<' if sign > 0 else '>'} {limit} on every bar of {k}"
    worst = num(row.get("book_ratio_k_max" if sign > 0 else "book_ratio_k_min"))
    values = {col: ratio, "book_ratio_k_max" if sign > 0 else "book_ratio_k_min": worst,
              f"book_delta_{tag(cfg.band)}": num(row.get(f"book_delta_{tag(cfg.band)}"))}
    thresholds = {"threshold": -sign * cfg.threshold + 0.0}
    src = row.get("book_source")
    now = "n/a" if ratio is None else f"{ratio:+.3f}"
    known = {s: num(row.get(f"book_{s}_known_pct")) for s in ("bid", "ask")}
    values.update({f"book_{s}_known_pct": v for s, v in known.items()})
    short = {s: v for s, v in known.items() if v is not None and v < cfg.band}
    if state is State.UNAVAILABLE and ratio is None and short:
        reach = " and ".join(f"{s}s to {v:.2f}%" for s, v in short.items())
        why = (f"band {cfg.band:g}% is beyond the book's known range ({reach} of {cfg.reference}): no "
               f"{cfg.band:g}% depth; choose a narrower book.band or deeper snapshots")
    elif state is State.UNAVAILABLE:
        note = missing_note(ctx, "book")
        why = f"no fresh {cfg.band:g}% book depth on every bar of {k}" + (f" ({note})" if note else "")
    elif state is State.HOLDS:
        why = f"{heavy}s outweigh within {cfg.band:g}%: ratio {now} now, beyond {limit} on every bar of {k}"
    else:
        edge = "highest" if sign > 0 else "lowest"
        why = f"{cfg.band:g}% depth ratio {now} now, {edge} {worst:+.3f} over {k}: not {heavy}-heavy throughout"
    if src:
        why += f" [{src}]"
    return Reading(NAME, cond, state, values, thresholds, rule, why)


SPEC = FactorSpec(
    name=NAME,
    inputs=("book",),
    windows=(("book.sustain",),),
    outputs=("book_delta_{band}", "book_ratio_{band}", *(f"book_ratio_{tag(b)}" for b in ALWAYS),
             "book_ratio_k_max", "book_ratio_k_min", *CONDITIONS.values()),
    table=tuple(f"book_ratio_{tag(b)}" for b in ALWAYS),
    shown=("book_ratio_2",),
    conditions=CONDITIONS,
    compute=compute,
    reading=reading,
    panel=PanelSpec("book ratio within {cfg.book.band:g} % ((bids − asks) / (bids + asks))",
                    (("book ratio {cfg.book.band:g} %", "book_ratio_{band}"),), "",
                    ("book.threshold", "-book.threshold"), note="no book_depth records"),
)
