"""A year of 1-minute klines for two markets, backfilled from a local fake of the Binance archive.

    python benchmarks/bench_backfill.py [--year 2023] [--months 12] [--concurrency 4]

The fake (tests/fakevenue, on 127.0.0.1) publishes BTCUSDT spot and USD-M 1m klines as the
archive does: one zip + .CHECKSUM per month under data/spot/monthly/klines/… and
data/futures/um/monthly/klines/…, rows in the documented layout (525,600 per market for a
non-leap year). ``tapewatch backfill`` then runs in a child process, with its progress bar on
this terminal, for the first month, the first three and the whole span, each into a new store.
Each child's peak resident memory (``ru_maxrss`` from ``wait4``) is printed: bounded memory
means the year costs about what three months cost, because files stream to disk, are imported one at a
time, and at most ``concurrency`` downloads plus as many verified files wait at once.
Finally the stored rows are counted (and checked for duplicates) with DuckDB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fakevenue import data  # noqa: E402
from fakevenue.server import FakeVenue  # noqa: E402

MARKETS = {"spot": "spot", "perp": "futures/um"}


def publish_year(fv: FakeVenue, year: int, months: int) -> int:
    """Publish ``months`` monthly 1m kline files per market; returns the rows per market."""
    rows = 0
    for m in range(1, months + 1):
        first = date(year, m, 1)
        nxt = date(year + m // 12, m % 12 + 1, 1)
        n = (nxt - first).days * 1440
        rows += n
        for market, path in MARKETS.items():
            frame = data.kline_frame(data.ms(first), n, seed=m)
            fv.add_archive_csv(f"data/{path}/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-{year}-{m:02d}.zip",
                               data.kline_csv(frame, market))
    return rows


def run_child(fv: FakeVenue, store: Path, year: int, months: int, concurrency: int) -> tuple[float, int, str]:
    """Run ``tapewatch backfill`` in a child process; (seconds, peak RSS in bytes, its summary line)."""
    conf = store.parent / f"{store.name}.toml"
    conf.write_text(f'[archive]\nurl = "{fv.url}"\nconcurrency = {concurrency}\n')
    end = date(year + months // 12, months % 12 + 1, 1)
    cmd = [sys.executable, "-m", "tapewatch.backfill", "backfill", "--exchange", "binance", "--symbol", "BTC/USDT",
           "--market", "spot,perp", "--kinds", "klines", "--interval", "1m", "--start", f"{year}-01-01",
           "--end", end.isoformat(), "--config", str(conf), "--store", str(store)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, text=True, env={**os.environ, "COLUMNS": "120"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"backfill failed ({proc.returncode}):\n{text}")
    return seconds, usage.ru_maxrss * 1024, text.strip().splitlines()[-1]  # Linux: ru_maxrss in KiB


def count_rows(store: Path) -> tuple[int, int]:
    """(rows, distinct (market, ts)) of the stored bars."""
    files = [str(p) for p in store.glob("bar/**/data.parquet")]
    with duckdb.connect() as con:
        [(n, distinct)] = con.sql("SELECT count(*), count(DISTINCT (market, ts)) FROM read_parquet(?)",
                                  params=[files]).fetchall()
    return int(n), int(distinct)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--year", type=int, default=2023)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()

    fv = FakeVenue().start()
    t0 = time.perf_counter()
    per_market = publish_year(fv, args.year, args.months)
    size = sum(len(b) for p, b in fv.files.items() if p.endswith(".zip"))
    print(f"fake archive on {fv.url}: {2 * args.months} monthly zips, {size / 1e6:.1f} MB, "
          f"{per_market:,} rows per market (built in {time.perf_counter() - t0:.1f}s)\n")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for months in sorted({1, min(3, args.months), args.months}):
            store = Path(tmp) / f"store-{months}"
            print(f"backfill: {months} month(s) × 2 markets")
            seconds, peak, summary = run_child(fv, store, args.year, months, args.concurrency)
            rows, distinct = count_rows(store)
            expected = 2 * sum((date(args.year + m // 12, m % 12 + 1, 1) - date(args.year, m, 1)).days * 1440
                               for m in range(1, months + 1))
            assert rows == distinct == expected, (rows, distinct, expected)
            results.append((months, rows, seconds, peak))
            print(f"  {summary}\n")
    fv.stop()
    print(f"{'months':>6} {'rows stored':>12} {'time':>8} {'rows/s':>10} {'peak RSS':>10}")
    for months, rows, seconds, peak in results:
        print(f"{months:>6} {rows:>12,} {seconds:>7.1f}s {rows / seconds:>10,.0f} {peak / 2**20:>8.0f} MiB")
    print("(time is the whole child process: interpreter start, downloads, checksum checks, imports; "
          "peak RSS is the child's maximum resident set)")


if __name__ == "__main__":
    main()
