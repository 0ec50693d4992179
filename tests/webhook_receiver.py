"""A local webhook receiver for the alert tests: an aiohttp server on 127.0.0.1 in its own thread.

``Receiver(script)`` answers the first requests with the scripted ``(status, headers)`` pairs and
then with 200; ``requests`` records ``(monotonic seconds, path, JSON body)`` of every POST.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web


class Receiver:
    def __init__(self, script: Sequence[tuple[int, dict[str, str]]] = ()) -> None:
        self.script = list(script)
        self.requests: list[tuple[float, str, Any]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]

    def __enter__(self) -> "Receiver":
        self._thread.start()
        assert self._ready.wait(10), "the webhook receiver did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((time.monotonic(), request.path, body))
        status, headers = self.script.pop(0) if self.script else (200, {})
        return web.json_response({"ok": status < 300}, status=status, headers=headers)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
