"""Running a live component in a test until a condition holds, then stopping it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


async def run_until(work: Coroutine[Any, Any, Any], done: Callable[[], object], timeout: float) -> None:
    """Run ``work`` as a task until ``done()`` is true (checked every 10 ms; a TimeoutError, failing
    the test, after ``timeout`` seconds), then cancel it and wait for it to end."""
    task = asyncio.create_task(work)

    async def wait() -> None:
        while not done():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
