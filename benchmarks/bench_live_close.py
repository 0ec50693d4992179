"""The cost of one `tapewatch live` bar close against how long the session has run.

    .venv/bin/python benchmarks/bench_live_close.py [--bars 1000 10000 50000 100000] [--repeat 3]

Input: the real sample bundled with tapewatch (a year of Binance BTC/USDT spot and perp 5m bars
with the taker split, funding, daily OI; ``tapewatch.sample_data``), written to a temporary store.
For a session that began N bars before the bar being closed (the default config at 5m: its warm-up,
``registry.warmup_bars``, is about 30 days of bars, the flow z-score's history), two ways to close
that one bar, best of ``--repeat``:

- ``from session start`` (what LiveRunner._close did): ``compute_signals`` from the session's first
  bar to the close, so the CVD runs over the session — grows with N;
- ``warm-up + carry`` (what it does now): ``compute_signals`` of the closing bar alone (its warm-up
  read before it) and the CVD continued from the previous close (``continue_cumulative``) —
  the same row, bit for bit, at a cost bounded by the warm-up.

(The sample's klines carry no taker split, so its CVDs are null; the carry's exactness on real
trades is what tests/test_live_alerts.py and tests/test_signals_window.py check.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tapewatch.config import Config
from tapewatch.sample_data import load_sample
from tapewatch.signals.compute import compute_signals
from tapewatch.signals.registry import warmup_bars
from tapewatch.signals.resume import continue_cumulative
from tapewatch.store import Store
from tapewatch.timeutil import interval_ns

STEP = interval_ns("5m")


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``repeat`` calls, seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, nargs="+", default=[1_000, 10_000, 50_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = Config()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        load_sample(store)
        end = 1767225600 * 10**9  # 2026-01-01 00:00 UTC: the close of the bar being closed
        print(f"default config at 5m: warm-up {warmup_bars(cfg, STEP):,} bars")
        print(f"{'bars in session':>16} {'from session start':>20} {'warm-up + carry':>17}")
        for n in args.bars:
            first = end - n * STEP
            old = compute_signals(store, "BTC", "5m", first, end, cfg, end).frame
            prev = compute_signals(store, "BTC", "5m", first, end - STEP, cfg, end - STEP).frame
            _, totals = continue_cumulative(prev, {})
            new, _ = continue_cumulative(compute_signals(store, "BTC", "5m", end - STEP, end, cfg, end).frame, totals)
            assert old.tail(1).equals(new), "the closed bar's row differs"
            t_old = best(lambda: compute_signals(store, "BTC", "5m", first, end, cfg, end), args.repeat)
            t_new = best(lambda: continue_cumulative(
                compute_signals(store, "BTC", "5m", end - STEP, end, cfg, end).frame, totals), args.repeat)
            print(f"{n:>16,} {t_old * 1000:>17.0f} ms {t_new * 1000:>14.0f} ms")


if __name__ == "__main__":
    main()
