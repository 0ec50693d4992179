"""The store: Parquet files partitioned kind / exchange / market / symbol / date, DuckDB over them.

Layout under the store root::

    <kind>/exchange=<ex>/market=<mkt>/symbol=<BASE-QUOTE>/date=<YYYY-MM-DD>/data.parquet

One file per partition. A write merges the new rows into the partition, drops duplicates by the
kind's identifying columns (so importing the same file twice gives the same rows), sorts by
``ts`` and replaces the file atomically (temporary file + fsync + rename): a crash mid-write
leaves the old file or the new one, never a partial one. Queries go through DuckDB with bound
parameters only.

A live collector appends instead (:meth:`Store.append`): each flush becomes a part file
``part-<ns>-L0-<id>.parquet`` beside ``data.parquet`` (``<ns>``: when it was written, so that
the files sort oldest first, as rows with equal ``ts`` are read), written without reading the partition back,
so a flush costs what it adds, not the size of the day. Every ``FANOUT`` parts of a level are
merged into one part of the next level (each row is rewritten about log_FANOUT(flushes) times
in all, and a partition holds at most ``FANOUT`` - 1 parts per level); the next :meth:`write`
folds them all into ``data.parquet``. :meth:`read` drops duplicate identities across the files
of a partition that has parts, so a crash between a merge's write and its clean-up shows no
row twice.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl
import pyarrow.parquet as pq

from tapewatch.errors import StoreError
from tapewatch.names import check_rows, exchange_name, market_name, symbol_name
from tapewatch.schemas import KINDS, RECORD_KINDS, conform, kind, polars_schema
from tapewatch.symbols import path_token

DATA_FILE = "data.parquet"
PART_PREFIX = "part-"  # live parts: part-<written ns, 20 digits>-L<level>-<hex>.parquet
FANOUT = 16  # parts of one level merged into one of the next
DEFAULT_STORE = "./tapewatch-data"
NS_PER_DAY = 86_400_000_000_000
# kinds stored one partition per exchange/market rather than per symbol (thousands of tiny rows)
PER_MARKET_KINDS = {"instrument"}
ALL_SYMBOLS = "_all"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def default_store_path() -> Path:
    """``$TAPEWATCH_STORE`` if set, else ``./tapewatch-data``."""
    return Path(os.environ.get("TAPEWATCH_STORE") or DEFAULT_STORE)


@dataclass(frozen=True)
class WriteResult:
    """Outcome of one write: rows offered, rows new to the store, partitions touched."""

    offered: int
    added: int
    partitions: int


class Store:
    """A tapewatch store rooted at a directory (created on first write)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_path()

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def partition_dir(self, kind_name: str, exchange: str, market: str, symbol: str, date: str) -> Path:
        """Directory of one partition; ``date`` is ``YYYY-MM-DD`` (UTC); ``symbol`` may be ALL_SYMBOLS.

        Every name is checked again here (tapewatch.names; BadName otherwise): whatever a caller
        forgot to check cannot make a path outside the store.
        """
        kind(kind_name)
        _check_keys(exchange, market, None if symbol == ALL_SYMBOLS else symbol, "store partition")
        if not _DATE.fullmatch(date):
            raise StoreError(f"store partition: {date!r} is not a YYYY-MM-DD date")
        return (
            self.root / kind_name / f"exchange={exchange}" / f"market={market}"
            / f"symbol={path_token(symbol)}" / f"date={date}"
        )

    def write(self, kind_name: str, df: pl.DataFrame) -> WriteResult:
        """Merge normalized rows of one kind into the store (idempotent, atomic per partition)."""
        k = kind(kind_name)
        df = conform(kind_name, df)
        if df.is_empty():
            return WriteResult(0, 0, 0)
        if df.select(pl.any_horizontal(pl.col("exchange", "market", "symbol", "ts").is_null().any())).item():
            raise StoreError(f"{kind_name} rows without exchange, market, symbol or ts cannot be stored")
        check_rows(df, f"store write of {kind_name}")  # all of them before any partition is written
        added = parts = 0
        with self._lock():
            for d, part in self._partitions(kind_name, df):
                added += self._merge(k.name, d, part, k.unique_by, k.fallback_by)
                parts += 1
        return WriteResult(df.height, added, parts)

    def append(self, kind_name: str, df: pl.DataFrame) -> WriteResult:
        """Add rows as a new part file per partition (see the module docstring), reading nothing
        back: for a live collector's flushes. ``added`` counts the rows offered (duplicates of
        stored identities are dropped when the parts are merged, and hidden from :meth:`read`)."""
        k = kind(kind_name)
        df = conform(kind_name, df)
        if df.is_empty():
            return WriteResult(0, 0, 0)
        parts = 0
        with self._lock():
            for d, part in self._partitions(kind_name, df):
                d.mkdir(parents=True, exist_ok=True)
                _write_atomic(d, part.sort("ts", maintain_order=True), _part_name(time.time_ns(), 0), k.name)
                self._cascade(k.name, d, k.unique_by, k.fallback_by)
                parts += 1
        return WriteResult(df.height, df.height, parts)

    def _partitions(self, kind_name: str, df: pl.DataFrame) -> Iterator[tuple[Path, pl.DataFrame]]:
        """Checked rows of a kind, split by partition: (directory, its rows)."""
        if df.select(pl.any_horizontal(pl.col("exchange", "market", "symbol", "ts").is_null().any())).item():
            raise StoreError(f"{kind_name} rows without exchange, market, symbol or ts cannot be stored")
        check_rows(df, f"store write of {kind_name}")  # all of them before any partition is written
        df = df.with_columns(
            pl.col("ts").dt.strftime("%Y-%m-%d").alias("__date"),
            (pl.lit(ALL_SYMBOLS) if kind_name in PER_MARKET_KINDS else pl.col("symbol")).alias("__symbol"),
        )
        for (ex, mkt, sym, date), part in df.group_by(["exchange", "market", "__symbol", "__date"]):
            yield self.partition_dir(kind_name, ex, mkt, sym, date), part.drop("__date", "__symbol")

    def _cascade(self, kind_name: str, d: Path, unique_by: tuple[str, ...], fallback_by: tuple[str, ...]) -> None:
        """Merge every ``FANOUT`` parts of a level into one part of the next, level by level."""
        level = 0
        while len(parts := sorted(d.glob(f"{PART_PREFIX}*-L{level}-*.parquet"))) >= FANOUT:
            rows = pl.concat([conform(kind_name, pl.from_arrow(pq.read_table(p))) for p in parts], how="vertical")
            merged = _dedup(rows, unique_by, fallback_by).sort("ts", maintain_order=True)
            oldest = int(parts[0].name.split("-")[1])  # the merged part sorts where its oldest member did
            _write_atomic(d, merged, _part_name(oldest, level + 1), kind_name)
            for p in parts:
                p.unlink()
            level += 1

    def _merge(
        self, kind_name: str, d: Path, new: pl.DataFrame, unique_by: tuple[str, ...], fallback_by: tuple[str, ...] = ()
    ) -> int:
        d.mkdir(parents=True, exist_ok=True)
        for stale in d.glob(".*.tmp"):  # left by a writer killed mid-write; we hold the lock
            stale.unlink()
        target = d / DATA_FILE
        parts = sorted(d.glob(f"{PART_PREFIX}*.parquet"))
        before = 0
        if target.exists() or parts:
            old = pl.concat([conform(kind_name, pl.from_arrow(pq.read_table(p)))
                             for p in ([target] if target.exists() else []) + parts], how="vertical")
            before = _dedup(old, unique_by, fallback_by).height
            new = pl.concat([old, new], how="vertical")
        merged = _dedup(new, unique_by, fallback_by).sort("ts", maintain_order=True)
        _write_atomic(d, merged, DATA_FILE, kind_name)
        for p in parts:  # folded in: a crash before this leaves duplicates that read() drops
            p.unlink()
        return merged.height - before

    # -- reading ---------------------------------------------------------------------------
    def files(
        self,
        kind_name: str,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[Path]:
        """Partition files of a kind, pruned by key and by date range (``start``/``end`` in UTC ns)."""
        kind(kind_name)
        _check_keys(exchange, market, symbol, "store query")
        base = self.root / kind_name
        if not base.is_dir():
            return []
        pattern = "/".join(
            [
                f"exchange={exchange or '*'}",
                f"market={market or '*'}",
                f"symbol={path_token(symbol) if symbol and kind_name not in PER_MARKET_KINDS else '*'}",
                "date=*",
                "*.parquet",
            ]
        )
        out = []
        for p in sorted(base.glob(pattern)):
            day = p.parent.name.removeprefix("date=")
            day_start = _day_ns(day)
            if start is not None and day_start + NS_PER_DAY <= start:
                continue
            if end is not None and day_start >= end:
                continue
            out.append(p)
        return out

    def read(
        self,
        kind_name: str,
        exchange: str | None = None,
        market: str | None = None,
        symbol: str | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> pl.DataFrame:
        """Rows of a kind as a Polars DataFrame sorted by exchange, market, symbol, ``ts`` (rows with
        equal ``ts`` in file order); ``start`` inclusive, ``end`` exclusive (UTC ns).

        Read with a Polars scan of the pruned partition files: several times faster than a DuckDB
        query on millions of rows (book_depth, trades); ad-hoc SQL goes through :meth:`query`.
        """
        files = self.files(kind_name, exchange, market, symbol, start, end)
        if not files:
            return conform(kind_name, pl.DataFrame())
        k = kind(kind_name)
        ts = pl.col("ts").dt.epoch("ns")
        cond = pl.lit(True)
        for col, val in (("exchange", exchange), ("market", market), ("symbol", symbol)):
            if val is not None:
                cond = cond & (pl.col(col) == val)
        if start is not None:
            cond = cond & (ts >= start)
        if end is not None:
            cond = cond & (ts < end)
        try:
            df = (
                pl.scan_parquet([str(f) for f in files], schema=polars_schema(kind_name), hive_partitioning=False,
                                missing_columns="insert")
                .filter(cond)
                .sort("exchange", "market", "symbol", "ts", maintain_order=True)  # files come in path order
                .collect()
            )
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise StoreError(f"cannot read {kind_name} from {self.root}: {exc}") from exc
        if any(f.name != DATA_FILE for f in files):  # live parts: a row may sit in two files
            df = _dedup(df, k.unique_by, k.fallback_by)
        return conform(kind_name, df)

    def query(self, sql: str, params: list[object] | dict[str, object] | None = None) -> pl.DataFrame:
        """Run read-only SQL with every kind available as a view named after it (``trade``, ``bar``…).

        Values must be passed as ``params`` (``?`` or ``$name`` placeholders), never formatted in.
        """
        with duckdb.connect() as con:
            for name in KINDS:
                files = self.files(name)
                rel = (
                    con.read_parquet([str(f) for f in files], hive_partitioning=False, union_by_name=True)
                    if files
                    else con.from_arrow(KINDS[name].schema.empty_table())
                )
                rel.create_view(name)
            return pl.from_arrow(con.sql(sql, params=params or []).to_arrow_table())

    def inventory(self) -> pl.DataFrame:
        """One row per kind / exchange / market / symbol: rows, first and last ts, days present."""
        frames = []
        with duckdb.connect() as con:
            for name in RECORD_KINDS:
                files = self.files(name)
                if not files:
                    continue
                t = con.sql(
                    "SELECT ? AS kind, exchange, market, symbol, count(*) AS rows, min(ts) AS first, "
                    "max(ts) AS last, count(DISTINCT CAST(ts AS DATE)) AS days "
                    "FROM read_parquet(?, hive_partitioning = false, union_by_name = true) GROUP BY ALL ORDER BY ALL",
                    params=[name, [str(f) for f in files]],
                ).to_arrow_table()
                frames.append(pl.from_arrow(t))
        if not frames:
            return pl.DataFrame(
                schema={"kind": pl.String, "exchange": pl.String, "market": pl.String, "symbol": pl.String,
                        "rows": pl.Int64, "first": pl.Datetime("ns", "UTC"), "last": pl.Datetime("ns", "UTC"),
                        "days": pl.Int64}
            )
        return pl.concat(frames, how="vertical_relaxed")

    # -- notebook conveniences -----------------------------------------------------------
    def trades(self, exchange: str, market: str, symbol: str, start: int | None = None, end: int | None = None) -> pl.DataFrame:
        """Normalized trades (``taker_side`` is the aggressor)."""
        return self.read("trade", exchange, market, symbol, start, end)

    def bars(
        self, exchange: str, market: str, symbol: str, interval: str = "1m",
        start: int | None = None, end: int | None = None,
    ) -> pl.DataFrame:
        """Bars at ``interval`` built from stored trades or by resampling stored bars (see tapewatch.bars)."""
        from tapewatch.bars import bars_from_store

        return bars_from_store(self, exchange, market, symbol, interval, start, end)


def _dedup(df: pl.DataFrame, unique_by: tuple[str, ...], fallback_by: tuple[str, ...]) -> pl.DataFrame:
    """One row per identity, the last written winning; rows whose ``unique_by`` columns are all
    null are identified by ``fallback_by`` instead (see schemas.Kind)."""
    if not fallback_by:
        return df.unique(subset=list(unique_by), keep="last", maintain_order=True)
    no_id = pl.all_horizontal(pl.col(c).is_null() for c in unique_by)
    alt = [f"__fallback_{c}" for c in fallback_by]
    return (
        df.with_columns(pl.when(no_id).then(pl.col(c)).alias(a) for c, a in zip(fallback_by, alt))
        .unique(subset=[*unique_by, *alt], keep="last", maintain_order=True)
        .drop(alt)
    )


def _part_name(written_ns: int, level: int) -> str:
    """``part-<written ns>-L<level>-<hex>.parquet``: names sort in the order the rows were written."""
    return f"{PART_PREFIX}{written_ns:020d}-L{level}-{uuid.uuid4().hex[:8]}.parquet"


def _write_atomic(d: Path, rows: pl.DataFrame, name: str, kind_name: str) -> None:
    """Write ``rows`` as ``d/name`` atomically: temporary file, fsync, rename, fsync of the directory."""
    tmp = d / f".{name}.{uuid.uuid4().hex}.tmp"
    pq.write_table(rows.to_arrow().cast(KINDS[kind_name].schema), tmp, compression="zstd")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, d / name)
    dir_fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_keys(exchange: str | None, market: str | None, symbol: str | None, where: str) -> None:
    """Raise BadName unless each given name is valid (they become path parts and glob patterns)."""
    if exchange is not None:
        exchange_name(exchange, where)
    if market is not None:
        market_name(market, where)
    if symbol is not None:
        symbol_name(symbol, where)


def _day_ns(day: str) -> int:
    return (date.fromisoformat(day) - date(1970, 1, 1)).days * NS_PER_DAY


def open_store(path: str | Path | None = None) -> Store:
    """Open (lazily create) the store at ``path`` (default ``$TAPEWATCH_STORE`` or ``./tapewatch-data``)."""
    return Store(path)
