"""Load on the dashboard over loopback: N concurrent clients for S seconds → latency and errors.

    python benchmarks/bench_serve.py [--clients 50] [--seconds 60]

Builds the demo store in a temporary directory (``tapewatch demo``), starts ``tapewatch serve``
on a free 127.0.0.1 port in a child process (as a user runs it), loads each view once, then
runs ``--clients`` aiohttp clients that each request, in turn and without pause, the page,
``/api/meta``, ``/api/verdict``, ``/api/market`` and ``/api/study`` until ``--seconds`` have
passed. Prints the request count, p50 / p95 / p99 / max latency per endpoint and overall, and
the error count (any non-200 answer or failed connection). Goal: p99 < 200 ms and no error at
50 clients. Only 127.0.0.1 is ever contacted; clients and duration are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

HOST = "127.0.0.1"
PATHS = ("/", "/api/meta", "/api/verdict?symbol=BTC", "/api/market?symbol=BTC", "/api/study?symbol=BTC")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def wait_ready(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(base + "/api/meta") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the server did not come up")
            await asyncio.sleep(0.2)


async def client(session: aiohttp.ClientSession, base: str, until: float, offset: int,
                 out: dict[str, list[float]], errors: list[str]) -> None:
    i = offset
    while time.monotonic() < until:
        path = PATHS[i % len(PATHS)]
        i += 1
        t0 = time.perf_counter()
        try:
            async with session.get(base + path) as r:
                await r.read()
                if r.status != 200:
                    errors.append(f"{path}: HTTP {r.status}")
        except aiohttp.ClientError as exc:
            errors.append(f"{path}: {type(exc).__name__}")
        out[path.split("?")[0]].append(time.perf_counter() - t0)


async def load(base: str, clients: int, seconds: float) -> tuple[dict[str, list[float]], list[str]]:
    async with aiohttp.ClientSession() as warm:  # the first request of a view computes it
        for path in PATHS:
            async with warm.get(base + path) as r:
                await r.read()
                assert r.status == 200, (path, r.status)
    out: dict[str, list[float]] = {p.split("?")[0]: [] for p in PATHS}
    errors: list[str] = []
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(client(session, base, until, k, out, errors) for k in range(clients)))
    return out, errors


def row(name: str, lat: list[float]) -> str:
    ms = np.asarray(lat) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return f"{name:<22}{len(ms):>9,}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}{ms.max():>9.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50, choices=range(1, 201), metavar="1..200")
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    if not 1 <= args.seconds <= 600:
        raise SystemExit("--seconds must be between 1 and 600")
    exe = [sys.executable, "-m", "tapewatch.cli"]
    with tempfile.TemporaryDirectory(prefix="tapewatch-bench-serve-") as tmp:
        store = Path(tmp) / "store"
        env = {**os.environ, "TAPEWATCH_STORE": str(store), "TAPEWATCH_CONFIG": ""}
        subprocess.run([*exe, "demo"], cwd=tmp, env=env, check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        server = subprocess.Popen([*exe, "serve", "--host", HOST, "--port", str(port)], cwd=tmp, env=env,
                                  stdout=subprocess.DEVNULL)
        try:
            base = f"http://{HOST}:{port}"
            asyncio.run(wait_ready(base))
            t0 = time.monotonic()
            out, errors = asyncio.run(load(base, args.clients, args.seconds))
            took = time.monotonic() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    every = [x for v in out.values() for x in v]
    print(f"{args.clients} clients × {args.seconds:g} s on {HOST} (demo store): "
          f"{len(every):,} requests, {len(every) / took:,.0f} per second, {len(errors)} errors")
    print(f"{'endpoint':<22}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, lat in out.items():
        print(row(name, lat))
    print(row("all", every))
    for e in sorted(set(errors))[:10]:
        print("error:", e)


if __name__ == "__main__":
    main()
