"""L2 book benchmark: tapewatch's engine against three other books, on the real L2 data, looped.

One command (from the repository root)::

    .venv/bin/python benchmarks/bench_book.py            # 1x and 10x, every implementation
    .venv/bin/python benchmarks/bench_book.py --loops 10 --only tapewatch

Data (benchmarks/shared_data.py says where it is looked for): every L2 stream in ../shared/data —
Binance spot (4 symbols: REST snapshots + depth diffs), Binance USD-M (4 symbols), Coinbase level2
(10 products), Tardis book_snapshot_25 — parsed straight from the recordings (tests/book_ref.py).
Each stream is repeated back to back with its timestamps shifted by its span (+1 s) and its update
ids by their span, so every repetition is a fresh, valid stream (a new snapshot, then diffs). 1x =
``--loops`` repetitions of every stream (default 50, about 2.5 M level updates); 10x = ten times
that.

What is timed, for every implementation alike: applying every level update (snapshot rows reset
the book first) and computing the depth bands 1/2/5/10 % around the mid, base and quote, once for
every second of data time. Turning the data into each implementation's input (a Polars frame for
tapewatch, Python lists for the others) is done outside the timer, chunk by chunk, so the input
never has to be in memory whole. tapewatch also checks every row, applies the venues' sync
rules (buffering, gaps, stale messages) and writes ``book_depth`` rows; the others only keep the
book and sum the bands.

The others: ``sortedcontainers.SortedDict`` per side; the ``order-book`` C extension (cryptofeed's
book; its sorted views are rebuilt when the bands are read); ccxt's ``OrderBook`` (ccxt.pro, the
bisect-sorted lists in ``ccxt.async_support.base.ws.order_book``).

Time is CPU time of the process (``time.process_time``), with Polars and numba held to one
thread: the figure is what one core does, and stays meaningful on a busy machine.

Peak memory: each (implementation, length) runs in its own process; the figure is the peak
resident set during the run minus the resident set just before it (after imports, data loading
and a warm-up), read from /proc (VmHWM after resetting it via /proc/self/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from shared_data import shared_data  # noqa: E402

STREAMS = (  # the files book_ref reads below, relative to the data folder
    "cryptofeed-recordings/BINANCE.http.0.0", "cryptofeed-recordings/BINANCE.ws.1.0",
    "cryptofeed-recordings/BINANCE_FUTURES.http.0.0", "cryptofeed-recordings/BINANCE_FUTURES.ws.1.0",
    "cryptofeed-recordings/COINBASE.ws.28.0", "nautilus-samples/tardis/binance-futures_book_snapshot_25_BTCUSDT.csv",
)

BANDS = (1.0, 2.0, 5.0, 10.0)
SECOND = 1_000_000_000
NULL = -(2**63)
IMPLS = ["tapewatch", "sortedcontainers", "order-book (C)", "ccxt OrderBook"]


# -- data ----------------------------------------------------------------------------------------
def templates() -> list[dict]:
    """Every real L2 stream as numpy arrays, with its spans for looping."""
    import polars as pl

    import book_ref as B

    shared = shared_data(*STREAMS)
    streams = []
    for sym, df in B.binance_books(shared, futures=False).items():
        streams.append(("binance_spot", ("binance", "spot", sym), df))
    for sym, df in B.binance_books(shared, futures=True).items():
        streams.append(("binance_usdm", ("binance", "perp", sym), df))
    for sym, df in B.coinbase_books(shared).items():
        streams.append(("coinbase", ("coinbase", "spot", sym), df))
    streams.append(("tardis", ("binance", "perp", "BTC/USDT"), B.tardis_snapshots(shared, 25)))
    out = []
    for venue, key, df in streams:
        a = {
            "ts": df["ts"].to_numpy(),
            "seq": df["seq"].fill_null(NULL).to_numpy(),
            "first": df["first_seq"].fill_null(NULL).to_numpy(),
            "prev": df["prev_seq"].fill_null(NULL).to_numpy(),
            "side": (df["side"] == "ask").cast(pl.Int8).to_numpy(),
            "price": df["price"].to_numpy(),
            "amount": df["amount"].to_numpy(),
            "snap": df["is_snapshot"].to_numpy(),
        }
        ids = np.concatenate([a[c][a[c] != NULL] for c in ("seq", "first", "prev")])
        span_ids = int(ids.max() - ids.min() + 1) if len(ids) else 0
        # a snapshot row that starts a new snapshot (the others reset nothing)
        prev_snap = np.concatenate([[False], a["snap"][:-1]])
        prev_seq = np.concatenate([[NULL + 1], a["seq"][:-1]])
        a["reset"] = a["snap"] & (~prev_snap | (prev_seq != a["seq"]))
        out.append({
            "venue": venue, "key": key, "arrays": a, "span_ts": int(a["ts"].max() - a["ts"].min()) + SECOND,
            "span_ids": span_ids,
        })
    return out


def chunk(t: dict, first_loop: int, loops: int) -> dict:
    """Repetitions ``first_loop .. first_loop + loops`` of one stream, shifted."""
    a = t["arrays"]
    n = len(a["ts"])
    k = np.repeat(np.arange(first_loop, first_loop + loops, dtype=np.int64), n)
    out = {c: np.tile(v, loops) for c, v in a.items()}
    out["ts"] = out["ts"] + k * t["span_ts"]
    for c in ("seq", "first", "prev"):
        v = out[c]
        out[c] = np.where(v == NULL, NULL, v + k * t["span_ids"])
    return out


def frame(t: dict, c: dict):
    import polars as pl

    ex, mkt, sym = t["key"]
    null = lambda v: pl.Series(v).replace(NULL, None)  # noqa: E731
    return pl.DataFrame({
        "ts": c["ts"], "seq": null(c["seq"]), "first_seq": null(c["first"]), "prev_seq": null(c["prev"]),
        "side": np.where(c["side"] == 1, "ask", "bid"), "price": c["price"], "amount": c["amount"],
        "is_snapshot": c["snap"],
    })


# -- the implementations ---------------------------------------------------------------------------
class Tapewatch:
    def __init__(self, t):
        from tapewatch.book import BookEngine

        # full_depth: sum every level held, as the other books do (by default a band past a
        # snapshot's deepest level is NaN, which they cannot tell)
        self.eng = BookEngine(t["venue"], *t["key"], bands=BANDS, references=("mid",), full_depth=True)
        self.samples = 0
        self.first_end = int(t["arrays"]["ts"].max())
        self.seen: dict[int, float] = {}

    def prepare(self, t, c):
        return frame(t, c)

    def _note(self, r):
        self.samples += r.top.height
        if r.depth.height and len(self.seen) < 1000:
            import polars as pl

            d = r.depth.filter((pl.col("band_pct") == BANDS[-1]) & (pl.col("ts").dt.epoch("ns") <= self.first_end))
            for ts, b, a in zip(d["ts"].dt.epoch("ns").to_list(), d["bid_amount"].to_list(), d["ask_amount"].to_list()):
                self.seen[ts] = b + a

    def run(self, df):
        self._note(self.eng.process(df))

    def close(self):
        self._note(self.eng.finish())


class _RowBook:
    """The shared row loop: reset on a new snapshot, set/remove levels, bands every data second."""

    def __init__(self, t):
        self.next_t = None
        self.samples = 0
        self.fr = [b / 100 for b in BANDS]
        self.first_end = int(t["arrays"]["ts"].max())
        self.seen: dict[int, float] = {}

    def sample(self, nxt):
        b = self.bands()
        if b is not None:
            self.samples += 1
            if nxt <= self.first_end:
                self.seen[nxt] = b[-1][0] + b[-1][1]

    def best_first_bands(self, bids, asks):
        """Bands of two non-empty sides given as (price, size) pairs, best first: per band
        (bid size, ask size, bid notional, ask notional)."""
        mid = (bids[0][0] + asks[0][0]) / 2
        out = []
        for f in self.fr:
            lo, hi = mid * (1 - f), mid * (1 + f)
            bq = bn = aq = an = 0.0
            for p, q in bids:
                if p < lo:
                    break
                bq += q
                bn += p * q
            for p, q in asks:
                if p > hi:
                    break
                aq += q
                an += p * q
            out.append((bq, aq, bn, an))
        return out

    def prepare(self, t, c):
        return (c["ts"].tolist(), c["side"].tolist(), c["price"].tolist(), c["amount"].tolist(),
                c["reset"].tolist())

    def close(self):
        pass


class SortedDictBook(_RowBook):
    def __init__(self, t):
        super().__init__(t)
        from sortedcontainers import SortedDict

        self.bids, self.asks = SortedDict(), SortedDict()

    def bands(self):
        bids, asks = self.bids, self.asks
        if not bids or not asks:
            return None
        bb, ba = bids.peekitem(-1)[0], asks.peekitem(0)[0]
        mid = (bb + ba) / 2
        out = []
        for f in self.fr:
            lo, hi = mid * (1 - f), mid * (1 + f)
            bq = bn = aq = an = 0.0
            for p in bids.irange(minimum=lo):
                q = bids[p]
                bq += q
                bn += p * q
            for p in asks.irange(maximum=hi):
                q = asks[p]
                aq += q
                an += p * q
            out.append((bq, aq, bn, an))
        return out

    def run(self, rows):
        ts, side, price, amount, reset = rows
        bids, asks = self.bids, self.asks
        nxt = self.next_t
        for i in range(len(ts)):
            t = ts[i]
            if nxt is None:
                nxt = -(-t // SECOND) * SECOND
            elif t > nxt:
                self.sample(nxt)
                nxt = -(-t // SECOND) * SECOND
            if reset[i]:
                bids.clear()
                asks.clear()
            book = asks if side[i] else bids
            q = amount[i]
            if q:
                book[price[i]] = q
            else:
                book.pop(price[i], None)
        self.next_t = nxt


class CBook(_RowBook):
    def __init__(self, t):
        super().__init__(t)
        from order_book import OrderBook

        self.ob = OrderBook()
        self._cls = OrderBook

    def bands(self):
        ob = self.ob
        if not len(ob.bids) or not len(ob.asks):
            return None
        return self.best_first_bands(ob.bids.to_list(), ob.asks.to_list())

    def run(self, rows):
        ts, side, price, amount, reset = rows
        nxt = self.next_t
        ob = self.ob
        for i in range(len(ts)):
            t = ts[i]
            if nxt is None:
                nxt = -(-t // SECOND) * SECOND
            elif t > nxt:
                self.sample(nxt)
                nxt = -(-t // SECOND) * SECOND
            if reset[i]:
                ob = self.ob = self._cls()
            book = ob.asks if side[i] else ob.bids
            q = amount[i]
            if q:
                book[price[i]] = q
            else:
                try:
                    del book[price[i]]
                except KeyError:
                    pass
        self.next_t = nxt


class CcxtBook(_RowBook):
    def __init__(self, t):
        super().__init__(t)
        from ccxt.async_support.base.ws.order_book import OrderBook

        self.ob = OrderBook({})

    def bands(self):
        bids, asks = self.ob["bids"], self.ob["asks"]
        if not len(bids) or not len(asks):
            return None
        return self.best_first_bands(bids, asks)

    def run(self, rows):
        ts, side, price, amount, reset = rows
        nxt = self.next_t
        ob = self.ob
        bids, asks = ob["bids"], ob["asks"]
        for i in range(len(ts)):
            t = ts[i]
            if nxt is None:
                nxt = -(-t // SECOND) * SECOND
            elif t > nxt:
                self.sample(nxt)
                nxt = -(-t // SECOND) * SECOND
            if reset[i]:
                ob.reset({})
            (asks if side[i] else bids).store(price[i], amount[i])
        self.next_t = nxt


CLASSES = {"tapewatch": Tapewatch, "sortedcontainers": SortedDictBook, "order-book (C)": CBook,
           "ccxt OrderBook": CcxtBook}


# -- measuring ------------------------------------------------------------------------------------
def _proc_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(impl: str, loops: int, chunk_loops: int) -> dict:
    ts = templates()
    cls = CLASSES[impl]
    warm = cls(ts[0])  # imports, numba cache load
    warm.run(warm.prepare(ts[0], chunk(ts[0], 0, 1)))
    warm.close()
    del warm
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset the peak resident set (VmHWM)
        base = _proc_kib("VmRSS")
    except OSError:
        base = _proc_kib("VmHWM")
    rows = samples = 0
    elapsed = 0.0
    seen: dict[str, dict[str, float]] = {}
    for t in ts:
        book = cls(t)
        for lo in range(0, loops, chunk_loops):
            c = chunk(t, lo, min(chunk_loops, loops - lo))
            data = book.prepare(t, c)
            rows += len(c["ts"])
            del c
            t0 = time.process_time()
            book.run(data)
            elapsed += time.process_time() - t0
            del data
        t0 = time.process_time()
        book.close()
        elapsed += time.process_time() - t0
        samples += book.samples
        seen["/".join(t["key"])] = {str(k): v for k, v in book.seen.items()}
        del book
    peak = _proc_kib("VmHWM")
    return {"impl": impl, "loops": loops, "rows": rows, "seconds": elapsed, "samples": samples,
            "peak_mib": max(0, peak - base) / 1024, "seen": seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", type=int, default=50, help="repetitions of every stream at 1x (default 50)")
    ap.add_argument("--only", action="append", choices=IMPLS, help="run only these implementations")
    ap.add_argument("--no-10x", action="store_true", help="skip the 10x run")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "LOOPS", "CHUNK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, loops, ck = args.child
        print(json.dumps(child(impl, int(loops), int(ck))))
        return
    impls = args.only or IMPLS
    scales = [1] if args.no_10x else [1, 10]
    ts = templates()
    per_loop = sum(len(t["arrays"]["ts"]) for t in ts)
    print(f"real L2 streams: {len(ts)} books, {per_loop:,} level updates per repetition; "
          f"1x = {args.loops} repetitions = {per_loop * args.loops:,} updates")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus; "
          "CPU time of one thread (Polars and numba held to one thread)\n")
    results = {}
    for scale in scales:
        for impl in impls:
            loops = args.loops * scale
            ck = 10 if impl == "tapewatch" else 1
            cmd = [sys.executable, __file__, "--child", impl, str(loops), str(ck)]
            env = {**os.environ, "POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
            if out.returncode:
                print(f"{impl} {scale}x failed:\n{out.stderr[-2000:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results[(impl, scale)] = r
            print(f"  {impl:18s} {scale:>2}x  {r['rows']:>12,} updates  {r['seconds']:8.2f} s  "
                  f"{r['rows'] / r['seconds'] / 1e6:7.2f} M/s  peak +{r['peak_mib']:7.1f} MiB", flush=True)
    print()
    head = (f"{'implementation':18s} | {'updates/s 1x':>13s} | {'updates/s 10x':>13s} | {'peak MiB 1x':>11s} | "
            f"{'peak MiB 10x':>12s} | {'samples 1x':>10s}")
    print(head)
    print("-" * len(head))
    for impl in impls:
        r1, r10 = results.get((impl, 1)), results.get((impl, 10))
        f = lambda r, k: "-" if r is None else (f"{r['rows'] / r['seconds'] / 1e6:10.2f} M" if k == "rate" else f"{r['peak_mib']:.1f}")  # noqa: E731
        print(f"{impl:18s} | {f(r1, 'rate'):>13s} | {f(r10, 'rate'):>13s} | {f(r1, 'mem'):>11s} | {f(r10, 'mem'):>12s} | "
              f"{r1['samples'] if r1 else '-':>10}")
    print("samples: grid seconds written (tapewatch also writes quiet seconds, carried forward) or band\n"
          "computations (the others: one per data second in which a message arrived). Peak memory of\n"
          "tapewatch is mostly its dense windows (2 x 466k ticks for BTC/USDT quoted to 0.01) and one\n"
          "chunk's arrays; it does not grow with the stream.")
    tw = results.get(("tapewatch", 1))
    if tw:
        print("\nsame depth? the 10 % band (bids + asks, base) at every sample point of the first repetition:")
        for impl in impls[1:]:
            other = results.get((impl, 1))
            if not other:
                continue
            same = common = 0
            differ = []
            for book, pts in other["seen"].items():
                mine = tw["seen"].get(book, {})
                for k, v in pts.items():
                    if k in mine:
                        common += 1
                        if abs(mine[k] - v) <= 1e-9 * max(abs(v), 1.0):
                            same += 1
                        elif book not in differ:
                            differ.append(book)
            print(f"  tapewatch vs {impl:18s}: {same}/{common} equal" + (f"; differ on {', '.join(differ)}" if differ else ""))
        print("  (a book that differs: the others apply every diff as it comes, including the Binance diffs a"
              " venue rule says to drop — u below the snapshot's lastUpdateId)")
    tw, cb = results.get(("tapewatch", 1)), results.get(("order-book (C)", 1))
    if tw and cb:
        a, b = tw["rows"] / tw["seconds"], cb["rows"] / cb["seconds"]
        print(f"\ntapewatch / order-book (C): {a / b:.1f}x; goal >= 2 M updates/s: "
              f"{'met' if a >= 2e6 else 'NOT met'} ({a / 1e6:.2f} M/s)")


if __name__ == "__main__":
    main()
