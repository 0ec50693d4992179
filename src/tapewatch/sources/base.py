"""What every importer shares: reading a file (plain, zip or gzip), hints, and row validation.

An importer is a :class:`Format`: ``sniff`` looks at the beginning of the decompressed content
and says whether it is that format; ``parse`` turns the whole file into normalized record
batches, or raises :class:`ImportFormatError` naming the file, the row and the reason. Nothing
is written until a whole file has parsed, so a bad file leaves the store untouched.
"""

from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import polars as pl

from tapewatch.errors import ImportFormatError
from tapewatch.timeutil import epoch_to_ns

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Hints:
    """What the user told ``tapewatch import`` (overrides what a file name suggests)."""

    exchange: str | None = None
    market: str | None = None
    symbol: str | None = None
    interval: str | None = None
    volume_unit: str | None = None  # "base" | "quote": what an OHLCV file's ``volume`` counts


VOLUME_UNITS = ("base", "quote")


@dataclass
class Batch:
    """Normalized rows of one record kind (columns as in tapewatch.schemas, ``ts`` in UTC ns).

    ``notes``: what the user should know about rows imported as given despite a real defect
    (one plain sentence each, with a count).
    """

    kind: str
    rows: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def with_exchange(batches: list[Batch], exchange: str) -> list[Batch]:
    """``batches`` with every row's ``exchange`` set to ``exchange`` (a venue speaking another's
    protocol, e.g. ``binanceus`` files read by the Binance parsers)."""
    return [Batch(b.kind, b.rows.with_columns(pl.lit(exchange).alias("exchange")), b.notes) for b in batches]


def agree(raw: RawFile, what: str, flag: str | None, said: str | None) -> str | None:
    """The value of ``what`` (exchange, market, symbol…): the user's ``--what`` flag, else what
    the file ``said`` (None when neither). A flag that contradicts the file is an error naming both."""
    if flag and said and flag.lower() != said.lower():
        raise ImportFormatError(raw.path, f"--{what} {flag} contradicts the file, which says {what} {said}")
    return flag or said


@dataclass
class RawFile:
    """One input file, decompressed. ``name`` is the inner file name for a zip, else the file name."""

    path: Path
    name: str = field(init=False)
    data: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.name = self.path.name
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise ImportFormatError(self.path, f"cannot read: {exc.strerror}") from exc
        if raw[:4] == b"PK\x03\x04" or self.path.suffix == ".zip":
            self.data, self.name = _unzip(self.path, raw)
        elif raw[:2] == b"\x1f\x8b":
            try:
                self.data = gzip.decompress(raw)
            except (EOFError, OSError, zlib.error) as exc:
                raise ImportFormatError(self.path, f"truncated or corrupt gzip file ({exc})") from exc
            self.name = self.name.removesuffix(".gz")
        else:
            self.data = raw
        if not self.data.strip():
            raise ImportFormatError(self.path, "empty file: no rows")

    @cached_property
    def head(self) -> str:
        """The first 64 KiB as text (undecodable bytes replaced)."""
        return self.data[:HEAD_BYTES].decode("utf-8", errors="replace")

    @cached_property
    def first_lines(self) -> list[str]:
        """Up to the first 5 non-empty lines."""
        return [ln for ln in self.head.splitlines() if ln.strip()][:5]

    @property
    def is_parquet(self) -> bool:
        return self.data[:4] == b"PAR1"

    @property
    def is_arrow(self) -> bool:
        """An Apache Arrow IPC file (Feather v2) or a Feather v1 file."""
        return self.data[:6] == b"ARROW1" or self.data[:4] == b"FEA1"

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            row = self.data[: exc.start].count(b"\n") + 1
            raise ImportFormatError(self.path, "not UTF-8 text", row) from exc


def _unzip(path: Path, raw: bytes) -> tuple[bytes, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise ImportFormatError(path, f"zip holds {len(members)} files; expected exactly one")
            return zf.read(members[0]), members[0].filename
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ImportFormatError(path, f"truncated or corrupt zip file ({exc})") from exc


class Format(Protocol):
    """An importer for one file format."""

    name: str

    def sniff(self, raw: RawFile) -> bool:
        """True when the content is this format."""

    def parse(self, raw: RawFile, hints: Hints) -> list[Batch]:
        """All records of the file, or ImportFormatError."""


# -- CSV ---------------------------------------------------------------------------------------
_NUMBER = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")


def looks_numeric(token: str) -> bool:
    return bool(_NUMBER.match(token.strip()))


def read_csv_strings(
    raw: RawFile, columns: list[str], has_header: bool, optional: Collection[str] = ()
) -> pl.DataFrame:
    """Read a CSV as strings with the given column names, checking every row's column count.

    Only ``optional`` columns may be empty. Adds ``__row``: the 1-based line number in the file,
    for error messages.
    """
    text = raw.text()
    lines = text.splitlines()
    expected = len(columns)
    if sum(1 for ln in lines if ln.strip()) < (2 if has_header else 1):
        raise ImportFormatError(raw.path, "empty file: no data rows")
    try:
        df = pl.read_csv(
            io.StringIO(text),
            has_header=False,
            skip_rows=1 if has_header else 0,
            new_columns=columns,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except pl.exceptions.PolarsError as exc:
        for i, line in enumerate(lines[1 if has_header else 0 :], start=2 if has_header else 1):
            if line.strip() and line.count(",") + 1 != expected:
                raise ImportFormatError(
                    raw.path, f"wrong column count: {line.count(',') + 1} columns, expected {expected}", i
                ) from exc
        raise ImportFormatError(raw.path, f"cannot parse CSV ({exc})") from exc
    if df.width != expected:
        raise ImportFormatError(raw.path, f"wrong column count: {df.width} columns, expected {expected}", 1)
    if df.is_empty():
        raise ImportFormatError(raw.path, "empty file: no data rows")
    offset = 2 if has_header else 1
    df = df.with_row_index("__row", offset=offset).with_columns(pl.col("__row").cast(pl.Int64))
    # a line with fewer separators is read with trailing nulls by some readers: reject it
    required = [c for c in columns if c not in optional]
    bad = df.filter(pl.any_horizontal(pl.col(required).is_null()))
    if not bad.is_empty():
        row = bad.row(0, named=True)
        line_no = int(row["__row"])
        found = lines[line_no - 1].count(",") + 1
        if found != expected:
            raise ImportFormatError(raw.path, f"wrong column count: {found} columns, expected {expected}", line_no)
        col = next(c for c in required if row[c] is None)
        raise ImportFormatError(raw.path, f"empty {col}", line_no)
    return df


# -- value checks ------------------------------------------------------------------------------
def to_float(df: pl.DataFrame, cols: list[str], raw: RawFile) -> pl.DataFrame:
    """Cast string columns to Float64; a non-numeric value is an error naming its row."""
    out = df
    for c in cols:
        cast = out.get_column(c).cast(pl.Float64, strict=False)
        bad = out.filter(cast.is_null() & out.get_column(c).is_not_null() | cast.is_nan())
        if not bad.is_empty():
            raise ImportFormatError(raw.path, f"non-numeric {c} {bad.get_column(c)[0]!r}", row_of(bad))
        out = out.with_columns(cast.alias(c))
    return out


def to_int(df: pl.DataFrame, cols: list[str], raw: RawFile) -> pl.DataFrame:
    """Cast string columns to Int64 (accepting ``123.0``); a non-integer is an error naming its row."""
    out = df
    for c in cols:
        src = out.get_column(c)
        cast = src.cast(pl.Int64, strict=False)
        if src.dtype == pl.String:
            cast = cast.fill_null(src.cast(pl.Float64, strict=False).cast(pl.Int64, strict=False))
        bad = out.filter(cast.is_null() & src.is_not_null())
        if not bad.is_empty():
            raise ImportFormatError(raw.path, f"non-integer {c} {bad.get_column(c)[0]!r}", row_of(bad))
        out = out.with_columns(cast.alias(c))
    return out


def to_bool(df: pl.DataFrame, col: str, raw: RawFile) -> pl.DataFrame:
    """Cast ``true``/``false`` text (any case) to Boolean; anything else is an error naming its row."""
    s = df.get_column(col)
    if s.dtype == pl.Boolean:
        return df
    low = s.cast(pl.String).str.to_lowercase().str.strip_chars()
    bad = df.filter(~low.is_in(["true", "false"]))
    if not bad.is_empty():
        raise ImportFormatError(raw.path, f"{col} must be true or false, got {bad.get_column(col)[0]!r}", row_of(bad))
    return df.with_columns((low == "true").alias(col))


def epoch_column(df: pl.DataFrame, col: str, raw: RawFile) -> pl.DataFrame:
    """Epoch integers in s/ms/µs/ns (judged per value) in ``col`` become ``ts`` in UTC ns."""
    df = to_int(df, [col], raw)
    return df.with_columns(epoch_to_ns(df.get_column(col)).alias("ts"))


def datetime_column(df: pl.DataFrame, col: str, raw: RawFile) -> pl.DataFrame:
    """Date-time text (``2023-01-01 00:05:00``, ISO with or without zone, or a trailing `` UTC``) in
    ``col`` becomes ``ts`` (UTC ns)."""
    s = df.get_column(col).str.strip_chars().str.replace(r"Z$|\+00:00$| UTC$", "").str.replace("T", " ")
    parsed = s.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False)
    bad = df.filter(parsed.is_null())
    if not bad.is_empty():
        raise ImportFormatError(raw.path, f"bad timestamp {bad.get_column(col)[0]!r}", row_of(bad))
    return df.with_columns(parsed.cast(pl.Int64).alias("ts"))


def time_column(df: pl.DataFrame, col: str, raw: RawFile) -> pl.DataFrame:
    """``col`` (epoch integers of any unit, or UTC date-time text) becomes ``ts`` in UTC ns."""
    if df.get_column(col).str.contains(r"^\s*\d+\s*$").all():
        return epoch_column(df, col, raw)
    return datetime_column(df, col, raw)


def check_nonnegative(df: pl.DataFrame, cols: list[str], raw: RawFile) -> None:
    """Prices, sizes and volumes must be >= 0."""
    for c in cols:
        bad = df.filter(pl.col(c) < 0)
        if not bad.is_empty():
            raise ImportFormatError(raw.path, f"negative {c} {bad.get_column(c)[0]}", row_of(bad))


def check_ordered(df: pl.DataFrame, raw: RawFile, by: list[str] | None = None) -> None:
    """``ts`` must not go backwards (within each group of ``by``)."""
    prev = pl.col("ts").shift(1)
    if by:
        prev = prev.over(by)
    bad = df.filter(pl.col("ts") < prev)
    if not bad.is_empty():
        raise ImportFormatError(raw.path, "timestamps out of order (earlier than the row before)", row_of(bad))


def row_of(bad: pl.DataFrame) -> int | None:
    """Line number of the first row of ``bad`` (None when the rows carry none)."""
    return int(bad.get_column("__row")[0]) if "__row" in bad.columns else None
