"""From ``book_delta`` rows to the engine's arrays: row checks, the tick grid, message boundaries.

Each row is checked (vectorised, Polars/numpy) before the kernel sees it. A malformed row gets a
reason (:data:`REASONS`) and is counted; it never stops the stream:

* a row of another exchange / market / symbol is left out (it does not belong to this book);
* any other malformed row (missing ts, side, price, amount or is_snapshot; unknown side; NaN,
  infinite or non-positive price; NaN, infinite or negative amount; a sync id the venue rule
  needs; a price off every decimal grid) makes its whole message unusable, and the engine
  discards the book: applying the rest of the message would leave a book that silently differs
  from the venue's.

Prices become integer ticks on the finest decimal grid the data needs
(``tick = round(price * 10**decimals)``, ``decimals`` <= 12), found from the data itself; so
``0.3513`` and ``0.35130000`` are the same level and band limits are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from tapewatch.book.rules import NULL, Rule
from tapewatch.errors import TapewatchError

MAX_DECIMALS = 12
MAX_TICK = 2**62 // 20001  # keeps (bid + ask) * 20000 inside int64 in the band limits

OK = 0
WRONG_KEY = 1
MISSING_KEY = 2
MISSING_TS = 3
MISSING_SIDE = 4
BAD_SIDE = 5
MISSING_PRICE = 6
NAN_PRICE = 7
NONPOSITIVE_PRICE = 8
MISSING_AMOUNT = 9
NAN_AMOUNT = 10
NEGATIVE_AMOUNT = 11
MISSING_SNAPSHOT_FLAG = 12
MISSING_SEQ = 13
MISSING_FIRST_SEQ = 14
MISSING_PREV_SEQ = 15
OFF_GRID = 16
PRICE_TOO_LARGE = 17

REASONS = {
    WRONG_KEY: "row of another exchange/market/symbol",
    MISSING_KEY: "missing exchange, market or symbol",
    MISSING_TS: "missing ts",
    MISSING_SIDE: "missing side",
    BAD_SIDE: "unknown side (expected 'bid' or 'ask')",
    MISSING_PRICE: "missing price",
    NAN_PRICE: "NaN or infinite price",
    NONPOSITIVE_PRICE: "price <= 0",
    MISSING_AMOUNT: "missing amount",
    NAN_AMOUNT: "NaN or infinite amount",
    NEGATIVE_AMOUNT: "negative amount",
    MISSING_SNAPSHOT_FLAG: "missing is_snapshot",
    MISSING_SEQ: "missing seq (update id) that the venue rule needs",
    MISSING_FIRST_SEQ: "missing first_seq (Binance U) on a diff",
    MISSING_PREV_SEQ: "missing prev_seq (Binance USD-M pu) on a diff",
    OFF_GRID: f"price not on any decimal grid of at most {MAX_DECIMALS} places",
    PRICE_TOO_LARGE: "price too large for the tick grid",
}
REQUIRED = ("ts", "side", "price", "amount", "is_snapshot")
KEYS = ("exchange", "market", "symbol")


class BookDataError(TapewatchError):
    """A malformed book_delta row, raised only in strict mode (otherwise counted and reported)."""


@dataclass
class Rows:
    """Checked rows of one chunk, aligned arrays (ids NULL where null)."""

    ts: np.ndarray  # int64 ns
    seq: np.ndarray
    first: np.ndarray
    prev: np.ndarray
    snap: np.ndarray  # bool
    bad: np.ndarray  # bool: malformed (the message holding it cannot be applied)
    side: np.ndarray  # int8: 0 bid, 1 ask, -1 malformed
    tick: np.ndarray  # int64 price on the grid of ``decimals``
    size: np.ndarray  # float64
    row: np.ndarray  # int64: row number in the caller's frame (-1 for rows carried over)

    FIELDS = ("ts", "seq", "first", "prev", "snap", "bad", "side", "tick", "size", "row")

    def __len__(self) -> int:
        return len(self.size)

    def slice(self, start: int) -> "Rows":
        return Rows(*(getattr(self, f)[start:].copy() for f in self.FIELDS))

    @staticmethod
    def concat(a: "Rows", b: "Rows") -> "Rows":
        return Rows(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in Rows.FIELDS))


@dataclass
class Messages:
    """Message ``m`` is rows ``start[m]:start[m + 1]``; the other arrays hold its ids and flags."""

    start: np.ndarray
    ts: np.ndarray
    seq: np.ndarray
    first: np.ndarray
    prev: np.ndarray
    snap: np.ndarray
    bad: np.ndarray

    def __len__(self) -> int:
        return len(self.start) - 1


def messages(r: Rows) -> Messages:
    """Split rows into messages: a new one begins wherever ts, seq, first_seq, prev_seq or
    is_snapshot changes from the row before."""
    n = len(r)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return Messages(np.zeros(1, dtype=np.int64), z, z, z, z, np.zeros(0, bool), np.zeros(0, bool))
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for a in (r.ts, r.seq, r.first, r.prev, r.snap):
        change[1:] |= a[1:] != a[:-1]
    starts = np.flatnonzero(change).astype(np.int64)
    bad = np.maximum.reduceat(r.bad.astype(np.int8), starts).astype(bool)
    return Messages(
        np.append(starts, n).astype(np.int64), r.ts[starts], r.seq[starts], r.first[starts],
        r.prev[starts], r.snap[starts], bad,
    )


def needed_decimals(prices: np.ndarray, start: int = 0) -> np.ndarray:
    """Per price, the fewest decimals (>= ``start``) that put it on the grid; MAX_DECIMALS + 1 when
    none does."""
    out = np.full(len(prices), MAX_DECIMALS + 1, dtype=np.int64)
    todo = np.ones(len(prices), dtype=bool)
    for d in range(start, MAX_DECIMALS + 1):
        if not todo.any():
            break
        x = prices[todo] * (10.0**d)
        on = np.abs(x - np.rint(x)) <= np.maximum(1e-6, 8 * np.spacing(np.abs(x)))
        idx = np.flatnonzero(todo)[on]
        out[idx] = d
        todo[idx] = False
    return out


def issue_frame(rows: np.ndarray, ts: np.ndarray, reasons: np.ndarray, values: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": rows.astype(np.int64),
            "ts": np.where(ts == NULL, 0, ts).astype(np.int64),
            "reason": [REASONS[int(r)] for r in reasons],
            "value": values,
        },
        schema={"row": pl.Int64, "ts": pl.Int64, "reason": pl.String, "value": pl.String},
    ).with_columns(pl.when(pl.Series(ts == NULL)).then(None).otherwise(pl.col("ts")).alias("ts"))


def prepare(df: pl.DataFrame, rule: Rule, key: dict[str, str | None], decimals: int | None
            ) -> tuple[Rows, int | None, pl.DataFrame | None]:
    """Check rows and put prices on the tick grid: (rows, decimals, issues or None).

    ``decimals`` is the grid so far (None before the first price); it only ever grows. Rows of
    another exchange/market/symbol are left out of ``rows``; every malformed row is in ``issues``
    (``row`` = its index in ``df``, ``ts``, ``reason``, ``value``). Vectorised numpy: a clean
    chunk costs a handful of column conversions.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise TapewatchError(f"book_delta rows lack column(s) {', '.join(missing)}")
    n = df.height
    ts_dtype = df.schema["ts"]
    if ts_dtype == pl.Datetime:
        ts_e = pl.col("ts").dt.epoch("ns")
    elif ts_dtype.is_integer():
        ts_e = pl.col("ts").cast(pl.Int64)
    else:
        raise TapewatchError(f"book_delta ts must be a datetime or integer nanoseconds, got {ts_dtype}")
    side_e = pl.col("side") if df.schema["side"] == pl.String else pl.col("side").cast(pl.String, strict=False)
    ids = [
        (pl.col(c).cast(pl.Int64, strict=False).fill_null(NULL) if c in df.columns else pl.lit(NULL, dtype=pl.Int64)).alias(c)
        for c in ("seq", "first_seq", "prev_seq")
    ]
    keyed = [k for k in KEYS if key.get(k) is not None and k in df.columns]
    # one pass over the frame: every column the engine reads, and the null flags
    conv = df.select(
        ts_e.fill_null(NULL).alias("ts"),
        ts_e.is_null().alias("_ts_null"),
        pl.when(side_e == "bid").then(0).when(side_e == "ask").then(1).otherwise(-1).cast(pl.Int8).alias("side"),
        side_e.is_null().alias("_side_null"),
        pl.col("price").cast(pl.Float64, strict=False).fill_null(np.nan).alias("price"),
        pl.col("price").is_null().alias("_price_null"),
        pl.col("amount").cast(pl.Float64, strict=False).fill_null(np.nan).alias("amount"),
        pl.col("amount").is_null().alias("_amount_null"),
        pl.col("is_snapshot").fill_null(False).cast(pl.Boolean).alias("snap"),
        pl.col("is_snapshot").is_null().alias("_snap_null"),
        *ids,
        *((pl.col(k) != key[k]).fill_null(False).alias(f"_wrong_{k}") for k in keyed),
        *(pl.col(k).is_null().alias(f"_nokey_{k}") for k in keyed),
    )
    col = lambda c: conv.get_column(c).to_numpy()  # noqa: E731
    ts = col("ts").astype(np.int64, copy=False)
    side = col("side").astype(np.int8, copy=False)
    price = col("price").astype(np.float64, copy=False)
    amount = col("amount").astype(np.float64, copy=False)
    snap = col("snap").astype(bool, copy=False)
    seq, first, prev = col("seq"), col("first_seq"), col("prev_seq")
    side_s = df.get_column("side")
    ts_null, side_null, price_null, amount_null, snap_null = (
        (m if m.any() else None) for m in (col(c) for c in ("_ts_null", "_side_null", "_price_null", "_amount_null", "_snap_null"))
    )

    checks: list[tuple[np.ndarray, int]] = []  # in order of precedence
    checks += [(col(f"_wrong_{k}"), WRONG_KEY) for k in keyed]
    checks += [(col(f"_nokey_{k}"), MISSING_KEY) for k in keyed]
    if ts_null is not None:
        checks.append((ts_null, MISSING_TS))
    if side_null is not None:
        checks.append((side_null, MISSING_SIDE))
    checks.append((side < 0, BAD_SIDE))
    if price_null is not None:
        checks.append((price_null, MISSING_PRICE))
    with np.errstate(invalid="ignore"):
        checks.append((~np.isfinite(price), NAN_PRICE))
        checks.append((price <= 0, NONPOSITIVE_PRICE))
        if amount_null is not None:
            checks.append((amount_null, MISSING_AMOUNT))
        checks.append((~np.isfinite(amount), NAN_AMOUNT))
        checks.append((amount < 0, NEGATIVE_AMOUNT))
    if snap_null is not None:
        checks.append((snap_null, MISSING_SNAPSHOT_FLAG))
    diff = ~snap
    if rule.snapshot_needs_seq:
        checks.append((snap & (seq == NULL), MISSING_SEQ))
    if rule.diff_needs_seq:
        checks.append((diff & (seq == NULL), MISSING_SEQ))
    if rule.diff_needs_first_seq:
        checks.append((diff & (first == NULL), MISSING_FIRST_SEQ))
    if rule.diff_needs_prev_seq:
        checks.append((diff & (prev == NULL), MISSING_PREV_SEQ))
    reason = np.zeros(n, dtype=np.int8)
    for mask, code in reversed(checks):  # the first failing check names the row
        if mask.any():
            reason[mask] = code

    ok = reason == OK
    d = 0 if decimals is None else decimals
    if ok.any():
        need = needed_decimals(price[ok], d)
        off = need > MAX_DECIMALS
        if off.any():
            reason[np.flatnonzero(ok)[off]] = OFF_GRID
            ok = reason == OK
            need = need[~off]
        if len(need):
            d = int(max(d, need.max()))
    tick = np.zeros(n, dtype=np.int64)
    if ok.any():
        x = np.rint(price[ok] * (10.0**d))
        big = x > MAX_TICK
        if big.any():
            reason[np.flatnonzero(ok)[big]] = PRICE_TOO_LARGE
            ok = reason == OK
            x = x[~big]
        tick[ok] = x.astype(np.int64)
    bad = ~ok
    issues = None
    rows = np.arange(n, dtype=np.int64)
    if bad.any():
        idx = np.flatnonzero(bad)
        issues = issue_frame(idx, ts[idx], reason[idx], _values(df, side_s, idx, reason[idx]))
        keep = reason != WRONG_KEY
        if not keep.all():
            ts, seq, first, prev, snap = ts[keep], seq[keep], first[keep], prev[keep], snap[keep]
            side, tick, amount, reason, rows = side[keep], tick[keep], amount[keep], reason[keep], rows[keep]
        bad = reason != OK
        side = np.where(bad, np.int8(-1), side).astype(np.int8)
    out = Rows(ts=ts, seq=seq, first=first, prev=prev, snap=snap, bad=bad, side=side, tick=tick,
               size=amount, row=rows)
    return out, (d if ok.any() or decimals is not None else None), issues


def _values(df: pl.DataFrame, side_s: pl.Series, idx: np.ndarray, reason: np.ndarray) -> list[str]:
    """The offending value of each malformed row, as text (the first 10,000; counts stay exact)."""
    sub = df[idx[:10_000]]
    side_sub = side_s.gather(idx[:10_000])
    cols = {c: sub.get_column(c).to_list() for c in ("price", "amount", *KEYS) if c in sub.columns}
    sides = side_sub.to_list()
    out = []
    for j, r in enumerate(reason[:10_000].tolist()):
        if r in (WRONG_KEY, MISSING_KEY):
            out.append("/".join(str(cols[k][j]) if k in cols and cols[k][j] is not None else "null" for k in KEYS))
        elif r in (MISSING_SIDE, BAD_SIDE):
            out.append("" if sides[j] is None else str(sides[j]))
        elif r in (MISSING_PRICE, NAN_PRICE, NONPOSITIVE_PRICE, OFF_GRID, PRICE_TOO_LARGE):
            out.append(str(cols["price"][j]))
        elif r in (MISSING_AMOUNT, NAN_AMOUNT, NEGATIVE_AMOUNT):
            out.append(str(cols["amount"][j]))
        else:
            out.append("")
    return out + [""] * (len(reason) - len(out))
