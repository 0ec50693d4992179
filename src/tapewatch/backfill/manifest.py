"""What backfill has completed, kept beside the store so a later run skips it.

``<store>/.backfill/manifest.jsonl``: one JSON object per completed unit of work — an archive
file imported, or a REST window written — appended (and fsynced) only after its rows are in
the store. A run killed between the store write and the append redoes that unit, which the
store's de-duplication makes harmless; a line cut short by a crash is ignored when read.

Coverage is kept per :class:`SeriesKey` (venue, market, store kind, symbol, interval) as
merged half-open ``[start, end)`` ranges in UTC nanoseconds: "these times were fetched and the
store holds whatever the source had for them" — which, for Coinbase candles, can be nothing.
"""

from __future__ import annotations

import json
import os
import threading
from bisect import insort
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tapewatch.timeutil import ns_to_iso

MANIFEST_DIR = ".backfill"
MANIFEST_FILE = "manifest.jsonl"
Range = tuple[int, int]


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One stored series: venue, market, store kind (``bar``, ``open_interest``…), unified
    symbol and, for bars, the interval (``""`` otherwise)."""

    venue: str
    market: str
    kind: str
    symbol: str
    interval: str = ""

    def label(self) -> str:
        """``binance perp BTC/USDT bar 1m``."""
        return " ".join(p for p in (self.venue, self.market, self.symbol, self.kind, self.interval) if p)


@dataclass(frozen=True)
class Entry:
    """One completed unit: ``[start, end)`` of ``key`` (UTC ns) and where it came from."""

    key: SeriesKey
    start: int
    end: int
    source: str  # "archive" | "rest" | "store" (found complete in the store already)
    item: str = ""  # archive path or REST method
    sha256: str = ""
    rows: int = 0
    added: int = 0
    at: str = ""

    def to_json(self) -> str:
        d = asdict(self)
        d["key"] = asdict(self.key)
        return json.dumps(d, separators=(",", ":"))

    @staticmethod
    def from_json(line: str) -> Entry:
        d: dict[str, Any] = json.loads(line)
        return Entry(**{**d, "key": SeriesKey(**d["key"])})


@dataclass
class Manifest:
    """The manifest of one store; thread-safe appends."""

    root: Path
    entries: list[Entry] = field(default_factory=list)
    _coverage: dict[SeriesKey, list[Range]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_DIR / MANIFEST_FILE

    @classmethod
    def load(cls, store_root: str | Path) -> Manifest:
        """Read the manifest of the store at ``store_root`` (empty if none)."""
        m = cls(Path(store_root))
        if m.path.exists():
            with open(m.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = Entry.from_json(line)
                    except (ValueError, TypeError, KeyError):
                        continue  # a line cut short by a crash
                    m._remember(entry)
        return m

    def _remember(self, entry: Entry) -> None:
        self.entries.append(entry)
        ranges = self._coverage.setdefault(entry.key, [])
        insort(ranges, (entry.start, entry.end))
        self._coverage[entry.key] = merge(ranges)

    def add(self, entry: Entry) -> None:
        """Record a completed unit (after its rows are in the store)."""
        if not entry.at:
            entry = replace(entry, at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(entry.to_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._remember(entry)

    def coverage(self, key: SeriesKey) -> list[Range]:
        """Merged completed ranges of ``key``."""
        return list(self._coverage.get(key, []))

    def covered(self, key: SeriesKey, start: int, end: int) -> bool:
        """True when ``[start, end)`` is entirely completed."""
        return not self.uncovered(key, start, end)

    def uncovered(self, key: SeriesKey, start: int, end: int) -> list[Range]:
        """The parts of ``[start, end)`` not yet completed, in order."""
        return subtract([(start, end)], self._coverage.get(key, []))

    def sha256_of(self, item: str) -> str | None:
        """The checksum recorded for an archive file when it was last imported, if any."""
        for entry in reversed(self.entries):
            if entry.item == item and entry.sha256:
                return entry.sha256
        return None

    def keys(self) -> list[SeriesKey]:
        return sorted(self._coverage)


def merge(ranges: list[Range]) -> list[Range]:
    """Sorted, non-overlapping union of ``ranges`` (touching ranges join)."""
    out: list[Range] = []
    for a, b in sorted(ranges):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(ranges: list[Range], minus: list[Range]) -> list[Range]:
    """``ranges`` without ``minus`` (both lists of half-open ranges)."""
    out: list[Range] = []
    cut = merge(minus)
    for a, b in merge(ranges):
        cur = a
        for c, d in cut:
            if d <= cur or c >= b:
                continue
            if c > cur:
                out.append((cur, c))
            cur = max(cur, d)
            if cur >= b:
                break
        if cur < b:
            out.append((cur, b))
    return out


def describe_ranges(ranges: list[Range], limit: int = 4) -> str:
    """``2024-01-01 00:00:00 → 2024-01-03 00:00:00, …`` (at most ``limit`` ranges, then a count)."""
    parts = [f"{ns_to_iso(a)} → {ns_to_iso(b)}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"and {len(ranges) - limit} more")
    return ", ".join(parts)
