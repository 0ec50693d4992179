"""Retries, rate limits and bans: one policy shared by archive downloads and ccxt REST calls.

* HTTP 429: the venue asks us to slow down. Its ``Retry-After`` (seconds or an HTTP date) is
  honoured: every request to that venue waits that long, then the request is retried.
* HTTP 418: Binance's IP ban. Nothing more is sent to that venue in this run; the message says
  until when the ban lasts (from ``Retry-After``, or the ``banned until <ms>`` Binance puts in
  the body).
* HTTP 5xx and 408, timeouts, dropped connections, truncated bodies: retried with exponential
  backoff and jitter, at most ``max_attempts`` times.
* A host name that does not resolve, a refused connection, no route to the network: the venue
  is unreachable (offline, a wrong base URL). Not retried, and nothing more is sent to that
  venue in this run, so an offline run ends in seconds with one message instead of retrying
  every file.
* Everything else is not retried.

When retries run out, :class:`GiveUp` names what is missing. Nothing here writes data, so
what was stored before a failure stays valid.
"""

from __future__ import annotations

import asyncio
import errno
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tapewatch.errors import TapewatchError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Times are seconds.

    ``base_delay`` doubles per attempt up to ``max_delay``; the wait is drawn uniformly from
    [delay/2, delay] ("equal jitter"). ``timeout`` bounds connecting and each read.
    A ``Retry-After`` longer than ``max_retry_after`` is not waited for: the request gives up.
    """

    base_delay: float = 1.0
    max_delay: float = 60.0
    max_attempts: int = 6
    timeout: float = 60.0
    max_retry_after: float = 900.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise TapewatchError("retry max_attempts must be at least 1")
        if min(self.base_delay, self.max_delay, self.timeout, self.max_retry_after) < 0:
            raise TapewatchError("retry delays and timeouts must not be negative")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


# -- errors ------------------------------------------------------------------------------------
class TransientError(TapewatchError):
    """A failure worth retrying: 5xx, 408, timeout, dropped connection, truncated body."""


class RateLimited(TransientError):
    """HTTP 429; ``retry_after`` in seconds when the venue said."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Banned(TapewatchError):
    """HTTP 418 (Binance IP ban): stop talking to that venue. ``until``: UTC epoch seconds, if known."""

    def __init__(self, venue: str, url: str, until: float | None) -> None:
        self.venue = venue
        self.url = url
        self.until = until
        super().__init__(f"{venue} banned this IP (HTTP 418 from {url}); {self.until_text()}")

    def until_text(self) -> str:
        if self.until is None:
            return "the ban's end was not given; wait before trying again"
        return f"the ban lasts until {fmt_epoch(self.until)}"


class Unreachable(TapewatchError):
    """The venue's host cannot be reached at all (name not resolved, connection refused, no route):
    stop talking to that venue for this run. ``host`` as ``name:port``."""

    def __init__(self, venue: str, host: str, reason: str) -> None:
        self.venue = venue
        self.host = host
        self.reason = reason
        super().__init__(f"cannot reach {venue} at {host}: {reason}")


# errno values of a connect that cannot succeed by waiting a few seconds, in words
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED: "connection refused", errno.ENETUNREACH: "network unreachable",
                       errno.EHOSTUNREACH: "no route to host", errno.EADDRNOTAVAIL: "address not available"}


def unreachable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` (or an exception it was raised from) says the host cannot be reached, or None.

    A failed name lookup (``socket.gaierror``) or a connect refused / without a route; timeouts
    and dropped connections are not (they are retried).
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return f"the host name does not resolve ({e.strerror or e}): no network, or a wrong URL"
        if isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS:
            return f"{_UNREACHABLE_ERRNOS[e.errno]}: no network, the venue is down, or a wrong URL"
        os_error = getattr(e, "os_error", None)  # aiohttp.ClientConnectorError keeps the OSError aside
        e = os_error if isinstance(os_error, OSError) and id(os_error) not in seen else (e.__cause__ or e.__context__)
    return None


class NotFound(TapewatchError):
    """HTTP 404: the file or resource is not published."""


class HTTPStatusError(TapewatchError):
    """Any other non-success status: not retried."""


class GiveUp(TapewatchError):
    """Retries ran out (or the failure was not retryable): ``what`` is missing, ``reason`` why."""

    def __init__(self, what: str, reason: str, attempts: int) -> None:
        self.what = what
        self.reason = reason
        self.attempts = attempts
        tries = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
        super().__init__(f"gave up{tries}: {reason}; missing: {what}")


def fmt_epoch(seconds: float) -> str:
    """UTC ``YYYY-MM-DD HH:MM:SS UTC`` of epoch seconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- status codes ------------------------------------------------------------------------------
_BANNED_UNTIL = re.compile(r"banned until (\d{12,14})")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date); None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_status(status: int, headers: Mapping[str, str], url: str, venue: str, body: str = "") -> None:
    """Raise for the statuses the retry policy handles (418, 429, 408, 5xx); return for any other.

    ``headers`` is looked up case-insensitively for ``Retry-After``.
    """
    if status not in (408, 418, 429) and status < 500:
        return
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    if status == 418:
        until = time.time() + retry_after if retry_after is not None else None
        m = _BANNED_UNTIL.search(body or "")
        if until is None and m:
            until = int(m.group(1)) / 1000
        raise Banned(venue, url, until)
    if status == 429:
        said = f"Retry-After {retry_after:g}s" if retry_after is not None else "no Retry-After"
        raise RateLimited(f"HTTP 429 rate limited by {venue} at {url} ({said})", retry_after)
    raise TransientError(f"HTTP {status} from {url}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


# -- per-venue state ---------------------------------------------------------------------------
@dataclass
class VenueGate:
    """What every request to one venue must respect: a ban, and a pause after a 429."""

    venue: str
    banned: Banned | None = None
    down: Unreachable | None = None  # the venue could not be reached: nothing more is tried
    _resume_at: float = 0.0  # time.monotonic()

    def check(self) -> None:
        """Raise the venue's ban, or that it is unreachable, if so."""
        if self.banned is not None:
            raise self.banned
        if self.down is not None:
            raise self.down

    def pause(self, seconds: float) -> None:
        """No request to this venue before ``seconds`` from now."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def wait(self, sleep: Sleep) -> None:
        """Wait out a pause (one sleep), then check the ban."""
        self.check()
        remaining = self._resume_at - time.monotonic()
        if remaining > 0:
            await sleep(remaining)
        self.check()


@dataclass
class Retrier:
    """Runs a request under the policy. ``sleep`` and ``rng`` are injectable for tests;
    ``on_retry(what, error, wait)`` is told about every retry (progress / logs)."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_retry: Callable[[str, Exception, float], None] | None = None

    async def run(self, fn: Callable[[], Awaitable[T]], *, what: str, gate: VenueGate) -> T:
        """``await fn()`` until it succeeds. Banned bans the gate, Unreachable marks it down (both
        re-raised at once, as is NotFound); other failures end in GiveUp naming ``what``."""
        attempt = 0
        while True:
            attempt += 1
            await gate.wait(self.sleep)
            try:
                return await fn()
            except Banned as exc:
                gate.banned = gate.banned or exc
                raise
            except Unreachable as exc:
                gate.down = gate.down or exc
                raise
            except RateLimited as exc:
                wait = exc.retry_after if exc.retry_after is not None else self.policy.backoff(attempt, self.rng)
                if wait > self.policy.max_retry_after:
                    raise GiveUp(what, f"{exc}; that is longer than the {self.policy.max_retry_after:g}s "
                                       "this run waits (retry.max_retry_after)", attempt) from exc
                gate.pause(wait)
                error: Exception = exc
            except TransientError as exc:
                wait = self.policy.backoff(attempt, self.rng)
                error = exc
            except NotFound:
                raise
            except HTTPStatusError as exc:
                raise GiveUp(what, str(exc), attempt) from exc
            if attempt >= self.policy.max_attempts:
                raise GiveUp(what, str(error), attempt) from error
            if self.on_retry:
                self.on_retry(what, error, wait)
            if not isinstance(error, RateLimited):
                await self.sleep(wait)
