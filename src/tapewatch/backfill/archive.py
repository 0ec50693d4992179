"""The Binance public-data archive (data.binance.vision): which files to fetch, and fetching them.

URL layout (binance-public-data README)::

    <base>/data/<spot|futures/um>/<daily|monthly>/<dataset>/<SYMBOL>/[<interval>/]<file>.zip
    <file> = <SYMBOL>-<interval|dataset>-<YYYY-MM-DD | YYYY-MM>

beside each zip a ``<file>.zip.CHECKSUM``: ``<sha256 hex>  <file>.zip``. Daily files appear the
day after, monthly ones early in the next month. ``metrics`` and ``bookDepth`` are daily only
(USD-M), ``fundingRate`` is monthly only (USD-M).

Plan: per calendar month in the range, the monthly file when the whole month is asked, is over,
and none of its days is already held; otherwise the daily files of the days not held. A monthly
file that is not published (404), or larger than ``max_file_bytes`` (the importer holds one
whole file in memory: BTCUSDT's monthly aggTrades are gigabytes), is replaced by its daily files.

Each file: fetch its ``.CHECKSUM``, stream the zip to ``<store>/.backfill/files/<path>.part``
(resuming an interrupted download), compare SHA-256 (a mismatch is downloaded again, then given
up), rename to ``.zip``, import it through :func:`tapewatch.importer.import_paths` — the same
importers as ``tapewatch import`` — and only then record it in the manifest. A bounded number
of downloads run at once; imports run one at a time in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
from rich.markup import escape

from tapewatch.backfill.http import HttpClient, sha256_file
from tapewatch.backfill.manifest import MANIFEST_DIR, Entry, Manifest, SeriesKey
from tapewatch.backfill.progress import BackfillProgress
from tapewatch.backfill.retry import Banned, GiveUp, NotFound, TransientError, Unreachable
from tapewatch.errors import TapewatchError
from tapewatch.importer import import_paths
from tapewatch.sources import Hints
from tapewatch.store import NS_PER_DAY, Store
from tapewatch.symbols import native_symbol
from tapewatch.timeutil import interval_ns

VENUE = "binance"
MARKET_DIRS = {"spot": "spot", "perp": "futures/um"}
KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
EPOCH = date(1970, 1, 1)
CHECKSUM_TRIES = 3  # downloads of one file whose hash does not match before giving up


@dataclass(frozen=True)
class Dataset:
    """An archive dataset: its directory name, the store kind it fills, where and how it is published."""

    name: str
    kind: str
    markets: tuple[str, ...]
    daily: bool = True
    monthly: bool = True
    interval: bool = False  # klines: one directory per interval


DATASETS: dict[str, Dataset] = {
    "klines": Dataset("klines", "bar", ("spot", "perp"), interval=True),
    "aggtrades": Dataset("aggTrades", "trade", ("spot", "perp")),
    "trades": Dataset("trades", "trade", ("spot", "perp")),
    "metrics": Dataset("metrics", "open_interest", ("perp",), monthly=False),
    "bookdepth": Dataset("bookDepth", "book_depth", ("perp",), monthly=False),
    "funding": Dataset("fundingRate", "funding", ("perp",), daily=False),
}


def day_ns(d: date) -> int:
    """UTC nanoseconds of midnight starting ``d``."""
    return (d - EPOCH).days * NS_PER_DAY


def ns_day(ns: int) -> date:
    """The UTC date containing ``ns``."""
    return EPOCH + timedelta(days=ns // NS_PER_DAY)


def month_after(d: date) -> date:
    """First day of the month after ``d``'s."""
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


@dataclass(frozen=True)
class ArchiveFile:
    """One archive zip: ``first`` is its day (daily) or the first of its month (monthly)."""

    dataset: Dataset
    market: str
    symbol: str
    interval: str | None
    period: str  # "daily" | "monthly"
    first: date

    @property
    def native(self) -> str:
        return native_symbol(self.symbol)

    @property
    def stamp(self) -> str:
        return self.first.isoformat() if self.period == "daily" else self.first.strftime("%Y-%m")

    @property
    def name(self) -> str:
        return f"{self.native}-{self.interval or self.dataset.name}-{self.stamp}.zip"

    @property
    def path(self) -> str:
        """Path below the archive's base URL."""
        parts = ["data", MARKET_DIRS[self.market], self.period, self.dataset.name, self.native]
        if self.interval:
            parts.append(self.interval)
        return "/".join([*parts, self.name])

    @property
    def end(self) -> date:
        """Day after the last day the file covers."""
        return self.first + timedelta(days=1) if self.period == "daily" else month_after(self.first)

    @property
    def key(self) -> SeriesKey:
        """The stored series the file fills (bar intervals as tapewatch spells them)."""
        return SeriesKey(VENUE, self.market, self.dataset.kind, self.symbol, tw_interval(self.interval))

    def series_label(self) -> str:
        """``binance perp BTC/USDT klines 1m``: the dataset of one market and symbol."""
        return " ".join(p for p in (VENUE, self.market, self.symbol, self.dataset.name, self.interval) if p)

    def label(self) -> str:
        """``binance perp BTC/USDT klines 1m 2024-01-01``, for messages."""
        return f"{self.series_label()} {self.stamp}"

    def days(self) -> list[ArchiveFile]:
        """The daily files covering the same days (for a monthly file)."""
        return [ArchiveFile(self.dataset, self.market, self.symbol, self.interval, "daily", d)
                for d in _days(self.first, self.end)]


def _days(first: date, end: date) -> Iterator[date]:
    d = first
    while d < end:
        yield d
        d += timedelta(days=1)


def plan_files(
    dataset: Dataset, market: str, symbol: str, interval: str | None, first: date, end: date, today: date,
    manifest: Manifest,
) -> list[ArchiveFile]:
    """Archive files for days ``[first, end)`` not already held; nothing from ``today`` on
    (daily files appear the next day). See the module docstring for the rules."""
    out: list[ArchiveFile] = []
    end = min(end, today)
    month = date(first.year, first.month, 1)
    while month < end:
        nxt = month_after(month)
        lo, hi = max(first, month), min(end, nxt)
        monthly = ArchiveFile(dataset, market, symbol, interval, "monthly", month)
        todo = [d for d in _days(lo, hi) if not manifest.covered(monthly.key, day_ns(d), day_ns(d) + NS_PER_DAY)]
        whole_month_todo = lo == month and hi == nxt and len(todo) == (nxt - month).days
        if todo and not dataset.daily:  # fundingRate: only monthly files, published once the month is over
            out.extend([monthly] if nxt <= today else [])
        elif todo and dataset.monthly and whole_month_todo:
            out.append(monthly)
        elif todo:
            out.extend(ArchiveFile(dataset, market, symbol, interval, "daily", d) for d in todo)
        month = nxt
    return out


_PATH = re.compile(
    r"^data/(?P<mkt>spot|futures/um)/(?P<period>daily|monthly)/(?P<ds>[A-Za-z]+)/[A-Z0-9]+/(?:(?P<iv>[0-9a-z]+)/)?"
    r"[A-Z0-9]+-[0-9A-Za-z]+-(?P<stamp>\d{4}-\d{2}(?:-\d{2})?)\.zip$"
)


def imported_files(manifest: Manifest, dataset: Dataset, market: str, symbol: str, interval: str | None,
                   first: date, end: date) -> list[ArchiveFile]:
    """Archive files the manifest says were imported for this series and overlap ``[first, end)``
    (what ``--recheck`` compares with the published checksums)."""
    key = ArchiveFile(dataset, market, symbol, interval, "daily", first).key
    out: dict[str, ArchiveFile] = {}
    for e in manifest.entries:
        m = _PATH.match(e.item)
        if e.source != "archive" or e.key != key or not m or e.end <= day_ns(first) or e.start >= day_ns(end):
            continue
        stamp = m.group("stamp")
        day = date.fromisoformat(stamp if len(stamp) == 10 else stamp + "-01")
        out[e.item] = ArchiveFile(dataset, market, symbol, interval, m.group("period"), day)
    return list(out.values())


def parse_checksum(text: str, name: str, url: str) -> str:
    """The SHA-256 in a ``.CHECKSUM`` body (``<hex>  <name>``); TransientError when unreadable."""
    m = re.match(r"^\s*([0-9a-fA-F]{64})(?:\s+\*?(\S+))?\s*$", text)
    if not m:
        raise TransientError(f"{url}: not a SHA-256 checksum line ({text[:80]!r})")
    if m.group(2) and m.group(2) != name:
        raise TransientError(f"{url}: checksum is for {m.group(2)!r}, not {name!r}")
    return m.group(1).lower()


# -- outcome -----------------------------------------------------------------------------------
@dataclass
class ArchiveReport:
    """What happened to the planned files."""

    imported: list[tuple[ArchiveFile, int, int]] = field(default_factory=list)  # file, rows, new rows
    held: list[ArchiveFile] = field(default_factory=list)
    unchanged: list[ArchiveFile] = field(default_factory=list)  # --recheck: same checksum as imported
    not_published: list[ArchiveFile] = field(default_factory=list)
    failed: list[tuple[ArchiveFile, str]] = field(default_factory=list)
    not_attempted: list[ArchiveFile] = field(default_factory=list)  # venue banned or unreachable first
    banned: Banned | None = None
    unreachable: Unreachable | None = None

    @property
    def rows_added(self) -> int:
        return sum(a for _, _, a in self.imported)

    @property
    def complete(self) -> bool:
        """Nothing failed and nothing was left undone because of a ban."""
        return not self.failed and not self.not_attempted and self.banned is None and self.unreachable is None


# -- fetching ----------------------------------------------------------------------------------
@dataclass
class ArchiveBackfill:
    """Fetch, verify and import archive files into ``store``.

    ``recheck``: also look at files the manifest says are done, and import them again when the
    published checksum changed (the archive re-publishes corrected files).
    """

    store: Store
    manifest: Manifest
    http: HttpClient
    base_url: str
    progress: BackfillProgress
    concurrency: int = 4
    keep_files: bool = False
    recheck: bool = False
    max_file_bytes: int | None = None
    report: ArchiveReport = field(default_factory=ArchiveReport)

    @property
    def workdir(self) -> Path:
        return download_dir(self.store.root)

    def url(self, f: ArchiveFile) -> str:
        return f"{self.base_url.rstrip('/')}/{f.path}"

    async def run(self, files: list[ArchiveFile]) -> ArchiveReport:
        """Process ``files`` (bounded concurrency); returns the report (also in ``self.report``)."""
        self.progress.plan("archive", len(files))
        sem = asyncio.Semaphore(self.concurrency)
        ready: asyncio.Queue[tuple[ArchiveFile, Path, str] | None] = asyncio.Queue(maxsize=self.concurrency)
        importer = asyncio.create_task(self._import_worker(ready))
        try:
            await asyncio.gather(*(self._fetch_one(f, sem, ready) for f in files))
        finally:
            await ready.put(None)
            await importer
        return self.report

    async def _fetch_one(self, f: ArchiveFile, sem: asyncio.Semaphore, ready: asyncio.Queue) -> None:
        """One file, holding a download slot until it is queued for import (which bounds the
        verified files waiting on disk); a monthly file not published yet becomes its days."""
        async with sem:
            fallback = await self._process(f, ready)
        if fallback:
            self.progress.plan("archive", len(fallback))
            await asyncio.gather(*(self._fetch_one(d, sem, ready) for d in fallback))

    async def _process(self, f: ArchiveFile, ready: asyncio.Queue) -> list[ArchiveFile]:
        if self.http.gate.banned is not None or self.http.gate.down is not None:
            return self._finish(f, self.report.not_attempted, ok=False)
        if not self.recheck and self._store_holds(f):
            self.manifest.add(Entry(f.key, day_ns(f.first), day_ns(f.end), "store", f.path))
            return self._finish(f, self.report.held)
        try:
            if f.period == "monthly" and f.dataset.daily and await self._too_large(f):
                raise _TooLarge
            zip_path, digest = await self._fetch_verified(f)
        except (NotFound, _TooLarge):
            if f.period == "monthly" and f.dataset.daily:
                self.progress.plan("archive", -1)  # replaced by its daily files
                return [d for d in f.days() if not self.manifest.covered(d.key, day_ns(d.first), day_ns(d.end))]
            return self._finish(f, self.report.not_published, ok=False)
        except Banned as exc:
            self.report.banned = self.report.banned or exc
            return self._finish(f, self.report.not_attempted, ok=False)
        except Unreachable as exc:
            self.report.unreachable = self.report.unreachable or exc
            return self._finish(f, self.report.not_attempted, ok=False)
        except GiveUp as exc:
            self.report.failed.append((f, str(exc)))
            self.progress.log(f"[red]failed[/] {escape(str(exc))}")
            self.progress.missed("archive")
            return []
        if zip_path is None:
            return self._finish(f, self.report.unchanged)
        await ready.put((f, zip_path, digest))
        return []

    async def _too_large(self, f: ArchiveFile) -> bool:
        if self.max_file_bytes is None:
            return False
        size = await self.http.size(self.url(f), f"size of {f.label()}")
        return size is not None and size > self.max_file_bytes

    def _finish(self, f: ArchiveFile, bucket: list[ArchiveFile], ok: bool = True) -> list[ArchiveFile]:
        """Put ``f`` in ``bucket``; the progress bar counts it as done only when ``ok`` (held)."""
        bucket.append(f)
        if ok:
            self.progress.done("archive")
        else:
            self.progress.missed("archive")
        return []

    async def _fetch_verified(self, f: ArchiveFile) -> tuple[Path | None, str]:
        """The verified zip on disk and its SHA-256; (None, sha) when ``recheck`` finds the
        published file unchanged since it was imported. A checksum mismatch is downloaded
        again (with the checksum fetched again) before giving up."""
        url = self.url(f)
        dest = self.workdir / f.path
        what = f"{f.label()} ({url})"
        mismatches: list[str] = []
        expected = ""
        for _ in range(CHECKSUM_TRIES):
            expected = await self._checksum(f, url, what)
            if self.recheck and self.manifest.sha256_of(f.path) == expected:
                return None, expected
            if dest.exists():  # verified by an earlier run that was stopped before importing it
                if sha256_file(dest) == expected:
                    return dest, expected
                dest.unlink()
            got = await self.http.download(url, dest, what, self.progress.add_bytes)
            if got.sha256 == expected:
                got.part.replace(dest)
                return dest, expected
            got.part.unlink(missing_ok=True)
            mismatches.append(got.sha256)
            self.progress.log(f"[yellow]checksum mismatch[/] {f.name}: published {expected[:16]}…, "
                              f"downloaded {got.sha256[:16]}… ({got.size:,} bytes)")
        raise GiveUp(what, f"checksum mismatch on {len(mismatches)} downloads: the published SHA-256 is "
                           f"{expected}, the downloads hashed to {', '.join(mismatches)}; nothing from this file "
                           "was imported", len(mismatches))

    async def _checksum(self, f: ArchiveFile, url: str, what: str) -> str:
        """The published SHA-256 of ``f`` (retrying unreadable checksum bodies like other transient failures)."""

        async def once() -> str:
            text = await self.http.get_text(url + ".CHECKSUM", f"checksum of {what}")
            return parse_checksum(text, f.name, url + ".CHECKSUM")

        return await self.http.retrier.run(once, what=f"checksum of {what}", gate=self.http.gate)

    async def _import_worker(self, ready: asyncio.Queue) -> None:
        while (item := await ready.get()) is not None:
            f, zip_path, digest = item
            try:
                rows, added = await asyncio.to_thread(self._import, f, zip_path, digest)
            except TapewatchError as exc:
                self.report.failed.append((f, str(exc)))
                self.progress.log(f"[red]failed[/] {escape(str(exc))}")
                self.progress.missed("archive")
            else:
                self.report.imported.append((f, rows, added))
                self.progress.done("archive")

    def _import(self, f: ArchiveFile, zip_path: Path, digest: str) -> tuple[int, int]:
        hints = Hints(exchange=VENUE, market=f.market, symbol=f.symbol, interval=f.interval)
        res = import_paths([zip_path], self.store, hints).files[0]
        if res.error:
            raise TapewatchError(f"{f.label()}: {res.error} — nothing from this file was imported")
        rows, added = sum(res.rows.values()), sum(res.added.values())
        self.manifest.add(Entry(f.key, day_ns(f.first), day_ns(f.end), "archive", f.path, digest, rows, added))
        if not self.keep_files:
            zip_path.unlink(missing_ok=True)
        return rows, added

    def _store_holds(self, f: ArchiveFile) -> bool:
        """True when the store already has every bar of the file's days (klines only: other
        datasets have no fixed row count, so only the manifest says they are done)."""
        interval = f.key.interval
        if f.dataset.kind != "bar" or not interval or NS_PER_DAY % interval_ns(interval):
            return False
        per_day = NS_PER_DAY // interval_ns(interval)
        for d in _days(f.first, f.end):
            part = self.store.partition_dir("bar", VENUE, f.market, f.symbol, d.isoformat()) / "data.parquet"
            if not part.exists():
                return False
            table = pq.read_table(part, columns=["interval"], filters=[("interval", "=", interval)])
            if table.num_rows < per_day:
                return False
        return True


class _TooLarge(Exception):
    """A monthly file above ``max_file_bytes``: take its daily files instead."""


def download_dir(store_root: Path) -> Path:
    """Where archive files are downloaded to, below the store."""
    return Path(store_root) / MANIFEST_DIR / "files"


def tidy_downloads(store_root: Path, manifest: Manifest) -> None:
    """Delete downloads of files already imported: a run killed between recording an import and
    deleting its zip leaves one behind."""
    workdir = download_dir(store_root)
    if not workdir.is_dir():
        return
    done = {e.item for e in manifest.entries if e.source != "rest"}
    for p in [*workdir.rglob("*.zip"), *workdir.rglob("*.zip.part")]:
        if p.relative_to(workdir).as_posix().removesuffix(".part") in done:
            p.unlink(missing_ok=True)


def tw_interval(interval: str | None) -> str:
    """A Binance kline interval as the store spells it (``1w`` → ``7d``; ``""`` for None)."""
    if not interval:
        return ""
    return "7d" if interval == "1w" else interval


