"""One REST GET for the live feeds (depth snapshots, trade recovery), with the venues' rate limits.

A 429 (rate limited) or 418 (IP banned) answer is counted in the feed's log and waited out for
its ``Retry-After`` seconds (1 when absent) before the caller's next try; any other non-200
answer, a connection error or a body that is not JSON is a failed :class:`Reply` with a
one-line reason. Request headers (an API key) are sent as given and never logged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tapewatch.live.connection import FeedLog

RATE_LIMITED = (418, 429)


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds of a ``Retry-After`` header (a number of seconds); 1 when absent or not a number."""
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class Reply:
    """A REST answer: ``body`` (decoded JSON) when ``ok``; ``recv_ns`` its local receive time
    (UTC ns); ``headers`` the response headers; ``reason`` why it failed (empty when ok)."""

    body: Any = None
    recv_ns: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


async def get_json(session: aiohttp.ClientSession, url: str, params: Mapping[str, str], log: FeedLog,
                   headers: Mapping[str, str] | None = None) -> Reply:
    """GET ``url`` with ``params``; 429 / 418 are counted in ``log.refused`` and waited out
    (``Retry-After``) before returning the failed reply."""
    try:
        async with session.get(url, params=dict(params), headers=dict(headers or {})) as r:
            if r.status in RATE_LIMITED:
                log.refused += 1
                wait = retry_after(r.headers)
                await asyncio.sleep(wait)
                return Reply(reason=f"HTTP {r.status} ({'IP banned' if r.status == 418 else 'rate limited'}, waited {wait:g} s)")
            if r.status != 200:
                return Reply(reason=f"HTTP {r.status}: {(await r.text())[:120]}")
            return Reply(await r.json(content_type=None), time.time_ns(), dict(r.headers))
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        return Reply(reason=f"no answer ({type(exc).__name__})")
    except ValueError:
        return Reply(reason="the answer is not JSON")
