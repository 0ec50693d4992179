"""One feed replayed to its connected clients, paced like the capture.

A feed has one replay position shared by all its connections: a message goes to the clients
connected when its turn comes (each gets the messages of the streams or products it asked for),
and while no client is connected the replay waits (at speed 0 as well as in real time), so a
client that reconnects carries on where the feed stood, as with a real venue whose clock never
stopped for it (a ``cut`` fault is the exception: it closes every socket and lets messages go
by unsent, see :mod:`~tapewatch.replay.faults`). Pacing: message i is sent (ts_i - ts_0) / speed after message 0 of its run
(a run restarts after a wait, and at each new capture file); speed 0 sends as fast as possible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from tapewatch.replay.faults import Faults
from tapewatch.replay.timeline import Message


@dataclass(eq=False)
class Client:
    """One connected websocket and the messages it wants; ``stalled`` once a stale fault froze it."""

    ws: web.WebSocketResponse
    wants: Callable[[Message], bool]
    stalled: bool = False


class FeedPump:
    """Sends a feed's messages to its clients; ``position`` = messages past so far (sent or withheld)."""

    def __init__(self, messages: list[Message], faults: Faults, speed: float) -> None:
        self.messages = messages
        self.faults = faults
        self.speed = speed
        self.position = 0
        self.clients: set[Client] = set()
        self.finished = asyncio.Event()
        self._stale_done = faults.stale_at is None
        self._cut_done = faults.cut_at is None
        self._task: asyncio.Task[None] | None = None
        depth = [i for i, m in enumerate(messages) if m.is_depth]
        self._depth_index = {i: n for n, i in enumerate(depth)}
        if not messages:
            self.finished.set()

    def join(self, client: Client) -> None:
        """Add a client and make sure the replay runs."""
        self.clients.add(client)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def leave(self, client: Client) -> None:
        self.clients.discard(client)

    async def stop(self) -> None:
        """Cancel the replay (server shutdown)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _live(self) -> list[Client]:
        return [c for c in self.clients if not c.stalled]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        anchor: tuple[float, int, int] | None = None  # (loop time, capture ts, source) of the run's start
        while self.position < len(self.messages) and self._live():
            i = self.position
            msg = self.messages[i]
            if not self._stale_done and i == self.faults.stale_at:
                self._stale_done = True
                for c in self.clients:
                    c.stalled = True
                return
            if not self._cut_done and i == self.faults.cut_at:
                self._cut_done = True
                self.position = min(len(self.messages), i + self.faults.cut)
                clients, self.clients = list(self.clients), set()
                for c in clients:
                    await c.ws.close(code=1001, message=b"connection cut")
                continue
            if self.speed > 0:
                if anchor is None or anchor[2] != msg.source:
                    anchor = (loop.time(), msg.ts, msg.source)
                due = anchor[0] + (msg.ts - anchor[1]) / 1e9 / self.speed
                await asyncio.sleep(max(0.0, due - loop.time()))
            else:
                await asyncio.sleep(0)  # let REST requests and new connections in
            self.position = i + 1
            if self.faults.withheld(i, self._depth_index.get(i)):
                continue
            for c in self._live():
                if c.wants(msg) and not c.ws.closed:
                    try:
                        await c.ws.send_str(msg.raw)
                    except ConnectionError:
                        self.leave(c)
        if self.position >= len(self.messages):
            self.finished.set()
