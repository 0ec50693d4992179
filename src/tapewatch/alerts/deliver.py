"""POST a JSON payload to a webhook with bounded retries; never raises, never shows the URL.

:func:`post` tries once, then up to ``retries`` more times after a connection error, a timeout,
HTTP 429 or a 5xx answer, waiting ``backoff`` seconds before the first retry and doubling each
time; a 429's ``Retry-After`` (seconds or an HTTP date, or Telegram / Discord's ``retry_after``
in the JSON body) is honoured instead, up to ``max_wait`` seconds. Any other 4xx is final. The
outcome is a :class:`Delivery` whose ``error`` text names the webhook but never its URL or token
(:func:`tapewatch.alerts.secrets.redact`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Any

import aiohttp

from tapewatch.alerts.secrets import Webhook, redact
from tapewatch.config import AlertsConfig


@dataclass(frozen=True)
class RetryPolicy:
    """Retries after the first attempt, backoff and per-attempt timeout in seconds, the longest
    Retry-After honoured in seconds."""

    retries: int = 3
    backoff: float = 1.0
    timeout: float = 10.0
    max_wait: float = 60.0

    @classmethod
    def of(cls, cfg: AlertsConfig) -> "RetryPolicy":
        return cls(cfg.retries, cfg.backoff, cfg.timeout, cfg.max_wait)


@dataclass(frozen=True)
class Delivery:
    """The outcome of one POST: ``ok``, attempts made, the last HTTP status (None: no answer) and,
    on failure, why (the URL never appears in it)."""

    webhook: str
    ok: bool
    attempts: int
    status: int | None
    error: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"webhook {self.webhook!r}: delivered (HTTP {self.status}, attempt {self.attempts})"
        tries = f"{self.attempts} attempt" + ("s" if self.attempts != 1 else "")
        return f"webhook {self.webhook!r}: not delivered after {tries}: {self.error}"


Sleep = Callable[[float], Awaitable[Any]]


async def post(session: aiohttp.ClientSession, hook: Webhook, body: Mapping[str, Any], policy: RetryPolicy,
               sleep: Sleep = asyncio.sleep) -> Delivery:
    """POST ``body`` as JSON to ``hook``'s URL (see the module docstring); never raises."""
    status: int | None = None
    error = ""
    attempt = 0
    for attempt in range(1, policy.retries + 2):
        wait: float | None = None
        try:
            async with session.post(hook.url.reveal(), json=body,
                                    timeout=aiohttp.ClientTimeout(total=policy.timeout)) as resp:
                status = resp.status
                if status < 300:
                    return Delivery(hook.name, True, attempt, status)
                text = await resp.text(errors="replace")
                error = f"HTTP {status}"
                if status == 429:
                    wait = retry_after(resp.headers, text)
                elif status < 500 and status != 408:
                    return Delivery(hook.name, False, attempt, status, f"{error} (not retried)")
        except asyncio.TimeoutError:
            status, error = None, f"no answer within {policy.timeout:g} s"
        except aiohttp.ClientConnectorError as exc:
            status, error = None, f"cannot connect ({exc.os_error.strerror or type(exc.os_error).__name__})"
        except Exception as exc:  # noqa: BLE001 — a delivery failure must never reach the caller
            status, error = None, redact(f"{type(exc).__name__}: {exc}", [hook.url])
        if attempt <= policy.retries:
            delay = policy.backoff * 2 ** (attempt - 1) if wait is None else min(wait, policy.max_wait)
            await sleep(delay)
    return Delivery(hook.name, False, attempt, status, error)


def retry_after(headers: Mapping[str, str], body: str) -> float | None:
    """Seconds to wait from a 429: the ``Retry-After`` header (seconds or an HTTP date), else a
    JSON body's ``retry_after`` (Discord) or ``parameters.retry_after`` (Telegram); None if none."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                pass
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for v in (data.get("retry_after"), (data.get("parameters") or {}).get("retry_after")):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return max(0.0, float(v))
    return None
