"""Helpers for the book tests and benchmark: real L2 data as book_delta frames, and a reference book.

The parsers here read the raw files in tests/data directly (cryptofeed recordings: REST lines
``URL -> TS: BODY``, websocket lines ``TS: MSG``; the nautilus Binance depth CSVs; the Tardis
incremental_book_L2 CSV) so that the engine is tested on exactly what the venues sent, whatever
the importers do. ``ts`` is the recording (arrival) time. Each frame also keeps the price and
amount *text* (``price_text``, ``amount_text``) so the reference book can work in exact decimals.

:class:`RefBook` is a deliberately plain reference: ``dict`` price → size per side, ``Decimal``
prices, the venue rules written out as the documentation words them, and bands by filtering the
dicts. It shares no code with :mod:`tapewatch.book`. Known range: after a snapshot the book is
known from its deepest bid up and its deepest ask down (the whole book for a full-depth snapshot);
a band whose limit lies past that on a side has NaN amounts there, and each sample also gives
how far from the reference the book is known (%).
"""

from __future__ import annotations

import csv
import math
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import polars as pl

from tapewatch.symbols import unify

INF = Decimal("Infinity")
NAN = float("nan")
COLUMNS = ["exchange", "market", "symbol", "ts", "seq", "first_seq", "prev_seq", "side", "price", "amount",
           "is_snapshot", "price_text", "amount_text"]
SCHEMA = {
    "exchange": pl.String, "market": pl.String, "symbol": pl.String, "ts": pl.Int64, "seq": pl.Int64,
    "first_seq": pl.Int64, "prev_seq": pl.Int64, "side": pl.String, "price": pl.Float64, "amount": pl.Float64,
    "is_snapshot": pl.Boolean, "price_text": pl.String, "amount_text": pl.String,
}


def ns(ts_text: str) -> int:
    return int(Decimal(ts_text.strip()) * 10**9)


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def read_recording(path: Path):
    """Yield ``("rest", url, ts_ns, body)`` and ``("ws", None, ts_ns, msg)`` in file order."""
    with open(path) as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line or line.startswith("wss://") or line.startswith("configuration"):
                continue
            if line.startswith("http"):
                url, _, rest = line.partition(" -> ")
                ts, _, body = rest.partition(": ")
                yield "rest", url, ns(ts), body
            else:
                ts, _, msg = line.partition(": ")
                yield "ws", None, ns(ts), msg


def _level_rows(key, ts, seq, first, prev, side, levels, snap):
    return [(*key, ts, seq, first, prev, side, float(p), float(q), snap, p, q) for p, q in levels]


def binance_books(shared: Path, futures: bool) -> dict[str, pl.DataFrame]:
    """Binance spot (``BINANCE``) or USD-M (``BINANCE_FUTURES``) recordings: the depth REST
    snapshots and ``depthUpdate`` events per symbol, merged in arrival order."""
    stem = "BINANCE_FUTURES" if futures else "BINANCE"
    market = "perp" if futures else "spot"
    d = shared / "cryptofeed-recordings"
    events: list[tuple[int, int, list[tuple]]] = []
    order = 0
    for kind, url, ts, body in read_recording(d / f"{stem}.http.0.0"):
        if kind == "rest" and "/depth?" in url:
            sym = url.split("symbol=")[1].split("&")[0]
            b = json.loads(body)
            key = ("binance", market, unify(sym))
            rows = _level_rows(key, ts, b["lastUpdateId"], None, None, "bid", b["bids"], True)
            rows += _level_rows(key, ts, b["lastUpdateId"], None, None, "ask", b["asks"], True)
            events.append((ts, order, rows))
            order += 1
    for kind, _, ts, msg in read_recording(d / f"{stem}.ws.1.0"):
        m = json.loads(msg)
        data = m.get("data", {})
        if data.get("e") != "depthUpdate":
            continue
        key = ("binance", market, unify(data["s"]))
        pu = data.get("pu")
        rows = _level_rows(key, ts, data["u"], data["U"], pu, "bid", data["b"], False)
        rows += _level_rows(key, ts, data["u"], data["U"], pu, "ask", data["a"], False)
        events.append((ts, order, rows))
        order += 1
    events.sort(key=lambda e: (e[0], e[1]))
    allrows = [r for _, _, rows in events for r in rows]
    df = frame(allrows)
    return {sym: part for (sym,), part in df.group_by(["symbol"], maintain_order=True)}


def coinbase_books(shared: Path) -> dict[str, pl.DataFrame]:
    """Coinbase level2 ``snapshot`` + ``l2update`` per product (no sequence numbers in level2)."""
    rows: list[tuple] = []
    for kind, _, ts, msg in read_recording(shared / "cryptofeed-recordings" / "COINBASE.ws.28.0"):
        m = json.loads(msg)
        t = m.get("type")
        if t == "snapshot":
            key = ("coinbase", "spot", unify(m["product_id"]))
            rows += _level_rows(key, ts, None, None, None, "bid", m["bids"], True)
            rows += _level_rows(key, ts, None, None, None, "ask", m["asks"], True)
        elif t == "l2update":
            key = ("coinbase", "spot", unify(m["product_id"]))
            for side, p, q in m["changes"]:
                rows += _level_rows(key, ts, None, None, None, "bid" if side == "buy" else "ask", [(p, q)], False)
    df = frame(rows)
    return {sym: part for (sym,), part in df.group_by(["symbol"], maintain_order=True)}


def tardis_deribit(shared: Path) -> pl.DataFrame:
    """Tardis ``incremental_book_L2`` (deribit BTC-PERPETUAL); ts = local_timestamp (µs → ns)."""
    rows = []
    with open(shared / "nautilus-samples" / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv") as fh:
        for r in csv.DictReader(fh):
            ts = int(r["local_timestamp"]) * 1000
            rows += _level_rows(("deribit", "perp", "BTC/USD"), ts, None, None, None, r["side"],
                                [(r["price"], r["amount"])], r["is_snapshot"] == "true")
    return frame(rows)


def tardis_snapshots(shared: Path, depth: int = 25) -> pl.DataFrame:
    """Tardis ``book_snapshot_N`` (binance-futures BTCUSDT): every CSV line is a whole top-N book,
    given here as snapshot rows with ``seq`` = line number (each line replaces the book)."""
    rows = []
    path = shared / "nautilus-samples" / "tardis" / f"binance-futures_book_snapshot_{depth}_BTCUSDT.csv"
    with open(path) as fh:
        for line_no, r in enumerate(csv.DictReader(fh), start=2):
            ts = int(r["local_timestamp"]) * 1000
            for side, name in (("ask", "asks"), ("bid", "bids")):
                levels = [(r[f"{name}[{i}].price"], r[f"{name}[{i}].amount"]) for i in range(depth)
                          if r.get(f"{name}[{i}].price")]
                rows += _level_rows(("binance", "perp", "BTC/USDT"), ts, line_no, None, None, side, levels, True)
    return frame(rows)


def nautilus_binance(shared: Path) -> pl.DataFrame:
    """The Binance USD-M BTCUSDT depth snapshot CSV followed by its update CSV."""
    rows = []
    d = shared / "nautilus-samples" / "binance"
    for name in ("btcusdt-depth-snap.csv", "btcusdt-depth-update.csv"):
        with open(d / name) as fh:
            for r in csv.DictReader(fh):
                snap = r["update_type"] == "snap"
                rows += _level_rows(
                    ("binance", "perp", "BTC/USDT"), int(r["timestamp"]) * 1_000_000, int(r["last_update_id"]),
                    None if snap else int(r["first_update_id"]), None if snap else int(r["pu"]),
                    "bid" if r["side"] == "b" else "ask", [(r["price"], r["qty"])], snap,
                )
    return frame(rows)


# -- the reference book ------------------------------------------------------------------------
@dataclass
class Msg:
    ts: int
    seq: int | None
    first: int | None
    prev: int | None
    snap: bool
    rows: list[tuple[str, Decimal, Decimal]]
    bad: bool = False


def split_messages(df: pl.DataFrame) -> list[Msg]:
    """Consecutive rows with equal (ts, seq, first_seq, prev_seq, is_snapshot) form one message."""
    out: list[Msg] = []
    last = None
    for r in df.iter_rows(named=True):
        k = (r["ts"], r["seq"], r["first_seq"], r["prev_seq"], r["is_snapshot"])
        if k != last:
            out.append(Msg(r["ts"], r["seq"], r["first_seq"], r["prev_seq"], bool(r["is_snapshot"]), []))
            last = k
        out[-1].rows.append((r["side"], Decimal(r["price_text"]), Decimal(r["amount_text"])))
    return out


@dataclass
class RefBook:
    """Plain dict book with the venue rules spelled out; records a sample at every grid point."""

    venue: str
    bands: tuple = (1, 2, 5, 10)
    references: tuple = ("mid",)
    interval: int = 1_000_000_000
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    state: str = "none"  # none | await | live
    last: int | None = None
    pending: list = field(default_factory=list)
    next_t: int | None = None
    prev_snap_seq: object = "x"  # seq of the previous message when it was a snapshot
    crossed: bool = False
    samples: dict = field(default_factory=dict)  # ts -> (top, {(ref, band): (ba, aa, bn, an)})
    gaps: int = 0
    stale: int = 0
    resyncs: int = 0
    ever: bool = False
    full_depth: bool = False  # every snapshot holds the whole book
    known_bid: Decimal = INF  # the book is known for bids >= this (-INF: whole side; INF: nothing)
    known_ask: Decimal = -INF

    # the rule for one message
    def action(self, m: Msg, cont: bool) -> str:
        if m.bad:
            return "bad"
        if m.snap:
            if cont:
                return "cont"
            if (self.venue != "tardis" and self.state != "none" and m.seq is not None and self.last is not None
                    and m.seq <= self.last):
                return "ignore"
            return "snapshot"
        if self.state == "none":
            return "wait"
        if self.venue == "binance_spot":
            # drop u <= lastUpdateId; first must have U <= lastUpdateId+1 <= u; then U == prev u + 1
            if m.seq <= self.last:
                return "stale"
            return "apply" if m.first <= self.last + 1 else "gap"
        if self.venue == "binance_usdm":
            if self.state == "await":
                if m.seq < self.last:
                    return "stale"
                return "apply" if m.first <= self.last else "gap"
            if m.seq <= self.last:
                return "stale"
            return "apply" if m.prev == self.last else "gap"
        if self.venue == "coinbase":
            if m.seq is None or self.last is None:
                return "apply"
            if m.seq <= self.last:
                return "stale"
            return "apply" if m.seq == self.last + 1 else "gap"
        return "apply"

    def _apply(self, m: Msg) -> None:
        for side, p, q in m.rows:
            book = self.bids if side == "bid" else self.asks
            if q == 0:
                book.pop(p, None)
            else:
                book[p] = q

    def _applied(self, m: Msg) -> None:
        if self.venue in ("binance_spot", "binance_usdm") or (self.venue == "coinbase" and m.seq is not None):
            self.last = m.seq
        self.state = "live"

    def _know(self, m: Msg) -> None:
        if self.full_depth or (self.venue == "coinbase" and m.seq is None):
            self.known_bid, self.known_ask = -INF, INF
            return
        self.known_bid = min([self.known_bid] + [p for side, p, _ in m.rows if side == "bid"])
        self.known_ask = max([self.known_ask] + [p for side, p, _ in m.rows if side == "ask"])

    def _discard(self) -> None:
        self.known_bid, self.known_ask = INF, -INF
        self.bids.clear()
        self.asks.clear()
        self.state = "none"
        self.last = None
        self.crossed = False

    def usable(self) -> bool:
        return self.state != "none" and not self.crossed and bool(self.bids) and bool(self.asks)

    def sample(self):
        bb, ba = max(self.bids), min(self.asks)
        top = (bb, self.bids[bb], ba, self.asks[ba])
        out = {}
        for ref in self.references:
            for b in self.bands:
                f = Decimal(b) / 100
                if ref == "mid":
                    mid = (bb + ba) / 2
                    lo, hi = mid * (1 - f), mid * (1 + f)
                    rb = ra = mid
                else:
                    lo, hi = bb * (1 - f), ba * (1 + f)
                    rb, ra = bb, ba
                bid = [(p, q) for p, q in self.bids.items() if p >= lo]
                ask = [(p, q) for p, q in self.asks.items() if p <= hi]
                bq, bn = (sum(q for _, q in bid), sum(p * q for p, q in bid)) if lo >= self.known_bid else (NAN, NAN)
                aq, an = (sum(q for _, q in ask), sum(p * q for p, q in ask)) if hi <= self.known_ask else (NAN, NAN)
                kb = float("inf") if self.known_bid == -INF else max(0.0, float((rb - self.known_bid) / rb * 100))
                ka = float("inf") if self.known_ask == INF else max(0.0, float((self.known_ask - ra) / ra * 100))
                out[(ref, b)] = (bq, aq, bn, an, kb, ka)
        return top, out

    def feed(self, msgs: list[Msg]) -> None:
        for m in msgs:
            cont = m.snap and self.prev_snap_seq != "x" and self.prev_snap_seq == m.seq
            a = self.action(m, cont)
            if self.next_t is None:
                self.next_t = -(-m.ts // self.interval) * self.interval
            elif m.ts > self.next_t:
                if a not in ("gap", "bad", "cont") and self.usable():
                    s = self.sample()
                    t = self.next_t
                    while t < m.ts:
                        self.samples[t] = s
                        t += self.interval
                self.next_t = -(-m.ts // self.interval) * self.interval
            if a == "bad":
                self._discard()
                self.pending = []
            elif a == "wait":
                if self.venue != "tardis":
                    self.pending.append(m)
            elif a == "stale":
                self.stale += 1
            elif a == "gap":
                self.gaps += 1
                self._discard()
                self.pending = [m] if self.venue != "tardis" else []
            elif a == "apply":
                self._apply(m)
                self._applied(m)
            elif a == "snapshot":
                if self.ever and self.state == "none":
                    self.resyncs += 1
                self.ever = True
                self.bids.clear()
                self.asks.clear()
                self.known_bid, self.known_ask = INF, -INF
                self._apply(m)
                self._know(m)
                self.last = m.seq
                self.state = "await" if self.venue.startswith("binance") else "live"
                self.crossed = False
                buffered, self.pending = self.pending, []
                if self.venue != "tardis" and (self.venue != "coinbase" or m.seq is not None):
                    for i, k in enumerate(buffered):
                        if k.snap or k.bad or (self.venue == "coinbase" and k.seq is None):
                            continue
                        b = self.action(k, False)
                        if b == "apply":
                            self._apply(k)
                            self._applied(k)
                        elif b == "stale":
                            self.stale += 1
                        else:
                            self.gaps += 1
                            self._discard()
                            self.pending = buffered[i:]
                            break
            elif a == "cont":
                if self.state != "none":
                    self._apply(m)
                    self._know(m)
            if a in ("apply", "snapshot", "cont") and self.state != "none":
                self.crossed = bool(self.bids) and bool(self.asks) and max(self.bids) >= min(self.asks)
            self.prev_snap_seq = m.seq if m.snap else "x"
            self.last_ts = m.ts

    def finish(self, until: int) -> None:
        if self.next_t is not None and self.usable():
            s = self.sample()
            t = self.next_t
            while t <= until:
                self.samples[t] = s
                t += self.interval


def to_frame(msgs: list[Msg], like: pl.DataFrame) -> pl.DataFrame:
    """Messages back to book_delta rows (key taken from ``like``)."""
    ex, mkt, sym = like["exchange"][0], like["market"][0], like["symbol"][0]
    rows = [
        (ex, mkt, sym, m.ts, m.seq, m.first, m.prev, side, float(p), float(q), m.snap, str(p), str(q))
        for m in msgs for side, p, q in m.rows
    ]
    return frame(rows)


def snapshot_of(book: "RefBook", ts: int, seq: int | None) -> Msg:
    """A snapshot message holding ``book``'s levels (what a REST snapshot taken then would say)."""
    rows = [("bid", p, q) for p, q in sorted(book.bids.items(), reverse=True)]
    rows += [("ask", p, q) for p, q in sorted(book.asks.items())]
    return Msg(ts, seq, None, None, True, rows)


def engine_samples(depth: pl.DataFrame, top: pl.DataFrame) -> dict:
    """Engine output in the reference's shape: ts -> (top, {(ref, band): (ba, aa, bn, an)})."""
    out: dict = {}
    tops = {r["ts"]: r for r in top.with_columns(pl.col("ts").dt.epoch("ns")).iter_rows(named=True)}
    for r in depth.with_columns(pl.col("ts").dt.epoch("ns")).iter_rows(named=True):
        t = r["ts"]
        if t not in out:
            tp = tops[t]
            out[t] = ((tp["bid_price"], tp["bid_amount"], tp["ask_price"], tp["ask_amount"]), {})
        out[t][1][(r["reference"], int(r["band_pct"]) if r["band_pct"].is_integer() else r["band_pct"])] = (
            r["bid_amount"], r["ask_amount"], r["bid_notional"], r["ask_notional"], r["bid_known_pct"],
            r["ask_known_pct"])
    return out


def close(a: float, b, rel: float = 1e-9) -> bool:
    """Equal within ``rel``; NaN equals NaN (a band past the known range), inf equals inf."""
    b = float(b)
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def assert_same_samples(engine: dict, ref: dict, only: set | None = None, known: bool = True) -> None:
    """Same sample points, and at each the same top of book and band depths (with ``only``: at
    those points, which both must have); with ``known=False`` the known ranges are not compared."""
    if only is None:
        keys = set(ref)
        assert set(engine) == keys, (
            f"sample points differ: engine-only {sorted(set(engine) - keys)[:5]}, "
            f"reference-only {sorted(keys - set(engine))[:5]}"
        )
    else:
        keys = set(only)
        assert keys <= set(engine) and keys <= set(ref), (
            f"missing points: engine {sorted(keys - set(engine))[:5]}, reference {sorted(keys - set(ref))[:5]}")
    for t in keys:
        (etop, eb), (rtop, rb) = engine[t], ref[t]
        assert etop[0] == float(rtop[0]) and etop[2] == float(rtop[2]), (t, etop, rtop)
        assert close(etop[1], rtop[1]) and close(etop[3], rtop[3]), (t, etop, rtop)
        assert set(eb) == set(rb), (t, set(eb), set(rb))
        for k in rb:
            for x, y in zip(eb[k][: 6 if known else 4], rb[k]):
                assert close(x, y), (t, k, eb[k], rb[k])


def stored_reference(store, key: tuple[str, str, str], venue: str) -> RefBook:
    """The reference book fed a book's stored book_delta rows (in stored order), finished at its
    last message, sampling the ``mid`` bands."""
    raw = store.read("book_delta", *key).with_columns(
        pl.col("ts").dt.epoch("ns"),
        pl.col("price").map_elements(repr, return_dtype=pl.String).alias("price_text"),
        pl.col("amount").map_elements(repr, return_dtype=pl.String).alias("amount_text"),
    )
    ref = RefBook(venue, references=("mid",))
    ref.feed(split_messages(raw))
    ref.finish(ref.last_ts)
    return ref


def assert_store_matches_reference(store, key: tuple[str, str, str], venue: str) -> int:
    """The stored book_depth of a book equals, at every sample point, the reference fed the
    stored deltas (amounts, notionals, known ranges); returns the number of sample points."""
    ref = stored_reference(store, key, venue)
    depth = store.read("book_depth", *key)
    ts = sorted(set(depth["ts"].dt.epoch("ns").to_list()))
    tops = pl.DataFrame([(t, *map(float, ref.samples[t][0])) for t in ts if t in ref.samples],
                        schema=["ts", "bid_price", "bid_amount", "ask_price", "ask_amount"], orient="row",
                        ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    assert set(depth["reference"].unique()) <= {"mid"}
    assert_same_samples(engine_samples(depth, tops), ref.samples)
    return len(ts)
