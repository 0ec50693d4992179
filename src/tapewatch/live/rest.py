"""One REST GET for the live feeds, with the venues' rate-limit answers honoured.

A 429 (too many requests) or 418 (IP banned) is counted in :attr:`FeedLog.refused` and answered
by waiting the ``Retry-After`` seconds the venue sent (1 s when it sent none or no number) before
returning, so that the caller's next request comes after it. Any other failure (another status,
no connection, a body that is not JSON) is returned as a one-line reason; nothing is raised.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from tapewatch.live.connection import FeedLog

RATE_LIMITED = (418, 429)


def retry_after(headers: Any) -> float:
    """Seconds of a ``Retry-After`` header (a number of seconds); 1 when absent or not a number."""
    try:
        return max(0.0, float(headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


async def get_json(session: aiohttp.ClientSession, url: str, params: dict[str, str],
                   log: FeedLog) -> tuple[Any, int] | str:
    """GET ``url`` with ``params``: (the JSON body, its receive time in UTC ns), or the reason it
    failed (see the module docstring; a 429 / 418 is answered after its ``Retry-After``)."""
    try:
        async with session.get(url, params=params) as r:
            if r.status in RATE_LIMITED:
                log.refused += 1
                await asyncio.sleep(retry_after(r.headers))
                return f"HTTP {r.status} (rate limited)"
            if r.status != 200:
                return f"HTTP {r.status}"
            return await r.json(content_type=None), time.time_ns()
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        return f"no answer ({type(exc).__name__})"
    except ValueError:
        return "the body is not JSON"
