"""Plain HTTP downloads for the archive: streamed to disk, resumable, under the retry policy.

A download streams into ``<dest>.part`` while hashing it (SHA-256), so memory stays at one
chunk whatever the file size. After an interruption the next attempt (or the next run) asks
for the rest with ``Range``; a server that ignores it simply sends the whole file again. A body
shorter than its ``Content-Length`` or a dropped connection is a :class:`TransientError` and is
retried; what arrived before stays in the ``.part`` file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tapewatch.backfill.retry import (
    HTTPStatusError, NotFound, Retrier, TransientError, Unreachable, VenueGate, check_status, unreachable_reason,
)

CHUNK = 1 << 16
USER_AGENT = "tapewatch-backfill"


@dataclass(frozen=True)
class Downloaded:
    """A finished download: the ``.part`` file, its size in bytes and SHA-256 (hex)."""

    part: Path
    size: int
    sha256: str


def part_path(dest: Path) -> Path:
    """Where the download of ``dest`` accumulates until it is verified."""
    return dest.with_name(dest.name + ".part")


@asynccontextmanager
async def transport_errors(url: str, venue: str) -> AsyncIterator[None]:
    """Turn aiohttp's connection-level failures into TransientError naming the URL, or into
    Unreachable (of ``venue``) when the host cannot be reached at all."""
    try:
        yield
    except aiohttp.ClientPayloadError as exc:
        raise TransientError(f"truncated body from {url} ({exc})") from exc
    except aiohttp.ServerDisconnectedError as exc:
        raise TransientError(f"connection dropped by {url}") from exc
    except aiohttp.ClientConnectorError as exc:
        reason = unreachable_reason(exc)
        if reason is not None:
            port = "" if exc.port in (80, 443, None) else f":{exc.port}"  # as the URL spells the host
            raise Unreachable(venue, f"{exc.host}{port}", reason) from exc
        raise TransientError(f"connection to {url} failed ({exc})") from exc
    except aiohttp.ClientConnectionError as exc:
        raise TransientError(f"connection to {url} failed ({exc})") from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise TransientError(f"timed out waiting for {url}") from exc


class HttpClient:
    """One aiohttp session for one venue, its :class:`VenueGate` and a :class:`Retrier`.

    Use as ``async with HttpClient(...) as http:``.
    """

    def __init__(self, venue: str, retrier: Retrier, gate: VenueGate | None = None, chunk: int = CHUNK) -> None:
        self.venue = venue
        self.retrier = retrier
        self.gate = gate or VenueGate(venue)
        self.chunk = chunk
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        t = self.retrier.policy.timeout
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HttpClient used outside 'async with'")
        return self._session

    def _check(self, resp: aiohttp.ClientResponse, url: str, body: str = "") -> None:
        check_status(resp.status, resp.headers, url, self.venue, body)
        if resp.status == 404:
            raise NotFound(f"{url} is not published (HTTP 404)")
        if not 200 <= resp.status < 300:
            raise HTTPStatusError(f"HTTP {resp.status} {resp.reason or ''} from {url}".rstrip())

    async def get_text(self, url: str, what: str) -> str:
        """The body of ``url`` as text, retried under the policy; NotFound when it is not published."""

        async def once() -> str:
            async with transport_errors(url, self.venue), self.session.get(url) as resp:
                body = await resp.text(errors="replace")
                self._check(resp, url, body)
                return body

        return await self.retrier.run(once, what=what, gate=self.gate)

    async def size(self, url: str, what: str) -> int | None:
        """``Content-Length`` of ``url`` from a HEAD request (None if the server does not say)."""

        async def once() -> int | None:
            async with transport_errors(url, self.venue), self.session.head(url) as resp:
                self._check(resp, url)
                return resp.content_length

        return await self.retrier.run(once, what=what, gate=self.gate)

    async def download(self, url: str, dest: Path, what: str, on_bytes: Callable[[int], None] | None = None) -> Downloaded:
        """Stream ``url`` into ``part_path(dest)``, resuming what an earlier attempt left there."""
        part = part_path(dest)
        part.parent.mkdir(parents=True, exist_ok=True)

        async def once() -> Downloaded:
            offset = part.stat().st_size if part.exists() else 0
            digest = _hash_file(part) if offset else hashlib.sha256()
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            async with transport_errors(url, self.venue), self.session.get(url, headers=headers) as resp:
                if resp.status == 416:  # what we hold is not a prefix of the file any more
                    part.unlink(missing_ok=True)
                    raise TransientError(f"{url}: the partial download no longer matches; starting again")
                self._check(resp, url, "" if resp.status < 400 else await resp.text(errors="replace"))
                if resp.status != 206:
                    offset, digest = 0, hashlib.sha256()
                expected = resp.content_length
                received = 0
                with open(part, "ab" if offset else "wb") as fh:
                    async for chunk in resp.content.iter_chunked(self.chunk):
                        fh.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                    fh.flush()
                    os.fsync(fh.fileno())
                if expected is not None and received != expected:
                    raise TransientError(f"truncated body from {url}: {received:,} of {expected:,} bytes")
                return Downloaded(part, offset + received, digest.hexdigest())

        return await self.retrier.run(once, what=what, gate=self.gate)


def _hash_file(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    return _hash_file(path).hexdigest()
