"""Sampling the book on a fixed time grid into ``book_depth`` (and ``quote``) rows.

Grid points are the multiples of the interval (epoch-aligned, UTC: 1 s → every whole second).
The row stamped ``t`` describes the book after every message with ``ts <= t`` — "a value stamped
t uses data up to t". A point is written when the first message with ``ts > t`` arrives (so all
messages at ``t`` are in), and only if the book is usable at that moment:

* in sync (a snapshot applied, no gap since), with both sides present and not crossed;
* and the arriving message does not reveal a gap or a malformed message: then the missing
  messages fell somewhere before it, so the points since the last good message are not written
  either;
* not in the middle of a snapshot that spans several messages.

A quiet book is carried forward: if nothing arrives for 5 s, the next message writes the five
points in between (for a sequenced venue that message proves nothing was missed), for at most
``max_carry`` (a day by default) after the last message. At the end of
a stream, :meth:`tapewatch.book.BookEngine.finish` writes the points up to the last message (or
up to an end time the caller vouches for, e.g. the end of a daily file).

Bands are computed once per book change and reused for every grid point until the next message.
Each ``book_depth`` row also carries ``bid_known_pct`` / ``ask_known_pct``, how far from its
reference the book is known; a band past that has NaN amounts on that side
(:func:`tapewatch.book.bands.mask_unknown`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tapewatch.book._jit import njit
from tapewatch.book.bands import REFERENCES, band_sums, mask_unknown
from tapewatch.book.core import best_ask, best_bid, level_size
from tapewatch.schemas import conform

TOP_FIELDS = 4  # bid price, bid size, ask price, ask size
BAND_FIELDS = 6  # bid amount, ask amount, bid notional, ask notional, bid / ask known range (%)


@njit
def ceil_grid(ts: int, interval: int) -> int:
    """The first grid point at or after ``ts``."""
    return -((-ts) // interval) * interval


@njit
def fill_sample(qty, aux, ist, ovb, ova, scale: float, bps, refs, top, bands) -> None:
    """Top of book into ``top`` and every reference's bands into ``bands[ref]``."""
    bb = best_bid(ist)
    ba = best_ask(ist)
    top[0] = bb / scale
    top[1] = level_size(qty, ist, ovb, ova, 0, bb)
    top[2] = ba / scale
    top[3] = level_size(qty, ist, ovb, ova, 1, ba)
    for j in range(len(refs)):
        band_sums(qty, aux, ist, ovb, ova, scale, bb, ba, bps, refs[j], bands[j])
        mask_unknown(ist, bb, ba, bps, refs[j], bands[j])


_EMPTY: dict[str, pl.DataFrame] = {}
_TS = pl.Datetime("ns", "UTC")


def _empty(kind: str) -> pl.DataFrame:
    if kind not in _EMPTY:
        # the columns _keyed makes: derived rows have no local receive time
        _EMPTY[kind] = conform(kind, pl.DataFrame()).drop("local_ts", strict=False)
    return _EMPTY[kind]


def _keyed(key: dict[str, str | None], cols: dict, order: list, ts_col: str = "ts") -> pl.DataFrame:
    df = pl.DataFrame(cols)
    return df.select(
        *(pl.lit(key.get(k), dtype=pl.String).alias(k) for k in ("exchange", "market", "symbol")),
        pl.col(ts_col).cast(_TS).alias("ts"),
        *order,
    )


def depth_frame(key: dict[str, str | None], ts: np.ndarray, bands: np.ndarray, bps: np.ndarray,
                refs: np.ndarray) -> pl.DataFrame:
    """``book_depth`` rows: one per sample, reference and band (``bands`` shape (n, refs, bands, 4)),
    ordered by ts, then reference, then band."""
    n, nr, nb = bands.shape[0], len(refs), len(bps)
    if n == 0:
        return _empty("book_depth")
    parts = []
    for j in range(nr):
        flat = bands[:, j].reshape(n * nb, BAND_FIELDS)
        cols = {
            "ts": np.repeat(ts, nb),
            "band_pct": np.tile(bps / 100.0, n),
            "bid_amount": flat[:, 0],
            "ask_amount": flat[:, 1],
            "bid_notional": flat[:, 2],
            "ask_notional": flat[:, 3],
            "bid_known_pct": flat[:, 4],
            "ask_known_pct": flat[:, 5],
        }
        parts.append(_keyed(key, cols, [
            "band_pct", pl.lit(REFERENCES[int(refs[j])], dtype=pl.String).alias("reference"),
            "bid_amount", "ask_amount", "bid_notional", "ask_notional", "bid_known_pct", "ask_known_pct",
        ]))
    out = parts[0] if nr == 1 else pl.concat(parts).sort("ts", maintain_order=True)
    return out


def top_frame(key: dict[str, str | None], ts: np.ndarray, top: np.ndarray) -> pl.DataFrame:
    """``quote`` rows (best bid / ask and their sizes) at the same sample points."""
    if len(ts) == 0:
        return _empty("quote")
    cols = {"ts": ts, "bid_price": top[:, 0], "bid_amount": top[:, 1], "ask_price": top[:, 2],
            "ask_amount": top[:, 3]}
    return _keyed(key, cols, ["bid_price", "bid_amount", "ask_price", "ask_amount"])
