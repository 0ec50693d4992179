"""A fake of the exchanges on 127.0.0.1: the Binance archive's URL layout and REST endpoints,
with injectable failures. Runs in a background thread with its own event loop, so the code
under test (or a subprocess) can talk to it like to the real hosts.

REST paths are ``/<real host>/<real path>``: the backfill config's ``api_base`` rewrites every
ccxt URL ``https://HOST/PATH`` to ``<server>/HOST/PATH``. Archive paths are the archive's own
(``/data/spot/daily/klines/...``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Any]

ACTIONS = ("429", "418", "500", "503", "drop", "truncate", "cut", "corrupt", "badsum", "slow", "hang")


@dataclass
class Fault:
    """Apply ``action`` to the next ``times`` requests whose path matches ``pattern`` (-1: all)."""

    pattern: re.Pattern[str]
    action: str
    times: int = 1
    retry_after: str | None = None
    delay: float = 0.0
    hits: int = 0

    def active(self) -> bool:
        return self.times < 0 or self.hits < self.times


@dataclass
class Logged:
    """One request: what was asked and what the fake did (``fault``: the injected action, if any)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    range: str | None = None
    fault: str | None = None
    at: float = field(default_factory=time.monotonic)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zip_bytes(inner_name: str, text: str) -> bytes:
    """A zip holding one file, as the archive publishes them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(inner_name, text)
    return buf.getvalue()


def checksum_line(data: bytes, name: str) -> str:
    """``<sha256>  <name>`` as in the archive's ``.CHECKSUM`` files."""
    return f"{hashlib.sha256(data).hexdigest()}  {name}\n"


@dataclass
class FakeVenue:
    """Serve archive files and REST handlers; see the module docstring."""

    files: dict[str, bytes] = field(default_factory=dict)
    routes: dict[str, Handler] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[Logged] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- content ---------------------------------------------------------------------------
    def add_archive_csv(self, path: str, csv_text: str) -> bytes:
        """Publish ``path`` (``data/.../NAME.zip``) holding ``NAME.csv`` and its ``.CHECKSUM``."""
        name = path.rsplit("/", 1)[1]
        data = zip_bytes(name.removesuffix(".zip") + ".csv", csv_text)
        self.add_file(path, data)
        return data

    def add_file(self, path: str, data: bytes) -> None:
        path = path.lstrip("/")
        with self._lock:
            self.files[path] = data
            self.files[path + ".CHECKSUM"] = checksum_line(data, path.rsplit("/", 1)[1]).encode()

    def route(self, path: str, handler: Handler) -> None:
        """Serve ``/<path>`` (``host/real/path``) by ``handler(request)`` → JSON-able, or a web.Response."""
        self.routes[path.lstrip("/")] = handler

    def fail(self, pattern: str, action: str, times: int = 1, retry_after: str | None = None, delay: float = 0.0) -> Fault:
        """Inject a failure (see ACTIONS) on paths matching the regex ``pattern``."""
        assert action in ACTIONS, action
        fault = Fault(re.compile(pattern), action, times, retry_after, delay)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests(self, pattern: str = "") -> list[Logged]:
        rx = re.compile(pattern)
        with self._lock:
            return [r for r in self.log if rx.search(r.path)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeVenue:
        ready = threading.Event()
        self.port = free_port()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(client_max_size=1 << 20)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True, name="fakevenue")
        self._thread.start()
        assert ready.wait(10), "fake venue did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- serving ---------------------------------------------------------------------------
    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.active() and f.pattern.search(path):
                    f.hits += 1
                    return f
        return None

    def _record(self, request: web.Request, path: str, status: int, fault: str | None) -> None:
        with self._lock:
            self.log.append(Logged(request.method, path, dict(request.query), status, request.headers.get("Range"), fault))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lstrip("/")
        body, status, ctype = self._content(request, path)
        fault = self._fault_for(path)
        self._record(request, path, int(fault.action) if fault and fault.action.isdigit() else status,
                     fault.action if fault else None)
        if fault is not None:
            return await self._apply(fault, request, path, body, status, ctype)
        return await self._send(request, body, status, ctype)

    def _content(self, request: web.Request, path: str) -> tuple[bytes, int, str]:
        with self._lock:
            data = self.files.get(path)
        if data is not None:
            return data, 200, "text/plain" if path.endswith(".CHECKSUM") else "application/zip"
        handler = self.routes.get(path)
        if handler is None:
            return b'{"code":-1,"msg":"not found"}', 404, "application/json"
        out = handler(request)
        if isinstance(out, tuple):  # (status, payload)
            status, payload = out
            return json.dumps(payload).encode(), status, "application/json"
        return json.dumps(out).encode(), 200, "application/json"

    async def _send(self, request: web.Request, body: bytes, status: int, ctype: str) -> web.StreamResponse:
        rng = request.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and status == 200:
            start = int(m.group(1))
            if start >= len(body):
                return web.Response(status=416)
            return web.Response(body=body[start:], status=206, content_type=ctype,
                                headers={"Content-Range": f"bytes {start}-{len(body) - 1}/{len(body)}"})
        return web.Response(body=body, status=status, content_type=ctype)

    async def _apply(self, fault: Fault, request: web.Request, path: str, body: bytes, status: int,
                     ctype: str) -> web.StreamResponse:
        act = fault.action
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if act == "429":
            return web.json_response({"code": -1003, "msg": "Too many requests; current limit is 1200 request weight per "
                                      "1 MINUTE."}, status=429, headers=headers)
        if act == "418":
            return web.json_response({"code": -1003, "msg": "Way too many requests; IP(127.0.0.1) banned until "
                                      "1704153600000. Please use the websocket for live updates to avoid bans."},
                                     status=418, headers=headers)
        if act in ("500", "503"):
            return web.Response(text="<html><body>Internal error</body></html>", status=int(act), content_type="text/html")
        if act == "hang":
            await asyncio.sleep(fault.delay)
            return await self._send(request, body, status, ctype)
        if act == "drop":
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if act == "cut":  # a complete response whose body is only the first half (Content-Length matches)
            return web.Response(body=body[: len(body) // 2], status=status, content_type=ctype)
        if act == "corrupt":
            flipped = bytes(b ^ 0xFF if i % 97 == 13 else b for i, b in enumerate(body))
            return await self._send(request, flipped, status, ctype)
        if act == "badsum":
            name = path.rsplit("/", 1)[1].removesuffix(".CHECKSUM")
            return web.Response(text=checksum_line(b"something else", name), content_type="text/plain")
        resp = web.StreamResponse(status=status, headers={"Content-Type": ctype, "Content-Length": str(len(body))})
        await resp.prepare(request)
        if act == "truncate":
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        # slow: the whole body, in small pieces with pauses (a download that is easy to interrupt)
        for i in range(0, len(body), 4096):
            await resp.write(body[i:i + 4096])
            await asyncio.sleep(fault.delay)
        await resp.write_eof()
        return resp
