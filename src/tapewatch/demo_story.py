"""The demo's plain-language parts: the premium in context and the conclusion of the event study.

Kept apart from the event study's own wording (tapewatch.study.result): these sentences answer
the readers of a post that says "the Coinbase premium is −$91, distribution": what does −91
mean, and what do the data say about the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from statsmodels.stats.multitest import multipletests

from tapewatch.study.result import PeriodStats, SideStats, p_text, pct, pct_range
from tapewatch.timeutil import ns_to_iso

POST_GAP_USD = -91.0  # the premium quoted in the post the demo answers (Coinbase − Binance, USD)


@dataclass(frozen=True)
class PremiumPoint:
    """The premium at one bar, in context.

    ``ts``: bar open (UTC ns); ``gap`` (USD) and ``index`` (% of the Binance price) of that bar's
    closes; ``z`` and ``rank`` (0..100) against the trailing 30 days ending at the bar (no
    look-ahead); ``sample_rank``: percent of all bars of the sample whose index is <= this one
    (context only: it uses the whole sample, later bars included).
    """

    ts: int
    gap: float
    index: float
    price: float  # Binance close of the bar (USD(T))
    z: float | None
    rank: float | None
    sample_rank: float


def premium_points(frame: pl.DataFrame) -> tuple[PremiumPoint | None, PremiumPoint | None, float, int]:
    """``(latest bar with the post's gap or lower, latest bar, share of bars at or below the post's
    gap, bars with a premium)`` from a signals frame (``ts`` Datetime, premium columns)."""
    df = (
        frame.filter(pl.col("premium_gap").is_not_null() & pl.col("premium_gap").is_not_nan())
        .select(
            pl.col("ts").dt.epoch("ns"), "premium_gap", "premium_index", "premium_b_close",
            pl.col("premium_z", "premium_pct_rank").fill_nan(None),
            (100.0 * pl.col("premium_index").rank(method="max") / pl.len()).alias("sample_rank"),
        )
    )
    if df.is_empty():
        return None, None, 0.0, 0
    low = df.filter(pl.col("premium_gap") <= POST_GAP_USD)
    post = PremiumPoint(*low.row(-1)) if low.height else None
    return post, PremiumPoint(*df.row(-1)), low.height / df.height, df.height


def premium_sentence(p: PremiumPoint, interval: str) -> str:
    """``2025-11-21 14:15 UTC (15m bar): −$91.20 = −0.105 % of price ($86,880), z −2.1 and lowest 4 %
    of the trailing 30 days, lowest 6 % of the whole sample``."""
    sign = "−" if p.gap < 0 else "+"
    text = f"{ns_to_iso(p.ts)} UTC ({interval} bar): {sign}${abs(p.gap):,.2f} = {p.index:+.3f} % of price (${p.price:,.0f})"
    if p.z is not None and p.rank is not None:
        text += f", z {p.z:+.1f} and {_rank_words(p.rank)} of the trailing 30 days"
    return text + f", {_rank_words(p.sample_rank)} of the whole sample"


def _rank_words(rank: float) -> str:
    return f"lowest {rank:.0f} %" if rank <= 50 else f"highest {100 - rank:.0f} %"


def adjusted_p(periods: tuple[PeriodStats, ...]) -> dict[tuple[str, str], float]:
    """Holm-adjusted p-values of every test the in-sample period reports (each side × each outcome),
    keyed by ``(side, outcome)``: the correction for looking at several outcomes at once."""
    ins = next((p for p in periods if p.role in ("in-sample", "all")), None)
    if ins is None:
        return {}
    keys, ps = [], []
    for s in ins.sides:
        for o in s.outcomes:
            if o.p_value is not None:
                keys.append((s.side, o.outcome))
                ps.append(o.p_value)
    if not ps:
        return {}
    adj = multipletests(ps, method="holm")[1]
    return {k: float(v) for k, v in zip(keys, adj)}


def conclusion(periods: tuple[PeriodStats, ...], alpha: float, share_post_gap: float, interval: str,
               price: float) -> list[str]:
    """The answer to the post's readers, in plain sentences, from the study's periods; ``share_post_gap``:
    the share of ``interval`` bars with a gap at or below the post's; ``price``: the latest price (USD)."""
    adj = adjusted_p(periods)
    n_tests = len(adj)
    ins = next((p for p in periods if p.role in ("in-sample", "all")), None)
    oos = next((p for p in periods if p.role == "out-of-sample"), None)
    lines = [
        f"What does −$91 mean? On these months a Coinbase–Binance gap of −$91 or lower happened on "
        f"{share_post_gap:.1%} of {interval} bars ({POST_GAP_USD / price * 100:+.3f} % of the latest price, ${price:,.0f}): "
        f"{'unusual but not rare' if share_post_gap >= 0.01 else 'rare'}. It is a reading to put beside its own "
        "history (z, percentile), not a signal on its own.",
    ]
    if ins is None:
        return lines + ["The event study has no period to report."]
    for s in ins.sides:
        lines.append(_side_conclusion(s, ins, adj, n_tests, alpha, oos))
    held = [s.side for s in ins.sides if _holds(s, adj, alpha, oos)]
    if held:
        lines.append(f"So: on these months {' and '.join(held)} preceded the claimed move more often than chance, "
                     "in-sample after the adjustment and again out of sample. Worth watching, with its track record beside it.")
    else:
        lines.append("So: on these months the pattern did not reliably precede the claimed move once chance and the "
                     "number of tests are accounted for. A single −$91 print is context to look up, not a call to act on.")
    return lines


def _holds(s: SideStats, adj: dict[tuple[str, str], float], alpha: float, oos: PeriodStats | None) -> bool:
    """Significant in-sample after the Holm adjustment, and above the base rate out of sample."""
    p_adj = adj.get((s.side, s.label.outcome))
    o = next((x for x in oos.sides if x.side == s.side), None) if oos is not None else None
    return (p_adj is not None and p_adj <= alpha and o is not None and o.label.value is not None
            and o.label.base is not None and o.label.value > o.label.base)


def _side_conclusion(s: SideStats, ins: PeriodStats, adj: dict[tuple[str, str], float], n_tests: int,
                     alpha: float, oos: PeriodStats | None) -> str:
    lab = s.label
    if s.episodes == 0 or lab.events == 0:
        return f"{s.side.capitalize()}: never fired (or never scorable) in the in-sample part; nothing to conclude."
    p_adj = adj.get((s.side, lab.outcome))
    beats = lab.value is not None and lab.base is not None and lab.value > lab.base
    sig = p_adj is not None and p_adj <= alpha
    text = (
        f"{s.side.capitalize()} fired {s.episodes} time{'s' if s.episodes != 1 else ''} in-sample; {lab.hits} of {lab.events} scored events were "
        f"followed by a {lab.outcome} ({pct(lab.value)}, CI {pct_range(lab.ci_low, lab.ci_high)}) against "
        f"{pct(lab.base)} for any bar; {p_text(lab.p_value)}, adjusted {p_text(p_adj)} after "
        f"adjusting for the {n_tests} tests (Holm). "
    )
    if sig:
        text += "That is more often than chance would give"
    elif beats:
        text += "More often than the base rate, but not by more than chance could give"
    else:
        text += "No more often than the base rate"
    if oos is not None:
        o = next((x for x in oos.sides if x.side == s.side), None)
        if o is not None and o.label.events:
            text += (f"; on the untouched out-of-sample part: {o.label.hits} of {o.label.events} "
                     f"({pct(o.label.value)} vs base {pct(o.label.base)}, {p_text(o.label.p_value)})")
        else:
            text += "; the untouched out-of-sample part has no scored event of this side"
    return text + "."
