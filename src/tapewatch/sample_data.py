"""The multi-factor sample bundled with the package (built by scripts/build_sample.py).

Each ``sample/*.parquet`` file holds records of one kind in tapewatch's own schema, the kind
named in the file's Parquet metadata (``tapewatch_kind``). :func:`load_sample` writes them into a
store through :meth:`Store.write`, the path every import takes (idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from tapewatch.errors import TapewatchError
from tapewatch.schemas import KINDS
from tapewatch.store import Store
from tapewatch.timeutil import parse_time

KIND_KEY = "tapewatch_kind"
# the window where flow (4h taker split), premium, funding and daily OI overlap; UTC ns, end exclusive
SAMPLE_START = parse_time("2024-12-31T00:00")
SAMPLE_END = parse_time("2026-01-12T16:00")


@dataclass(frozen=True)
class Loaded:
    """One sample file written to the store: its kind, rows read, rows new to the store, time span."""

    path: Path
    kind: str
    rows: int
    added: int
    first: int  # first and last ts in the file, UTC ns
    last: int


def sample_dir() -> Path:
    """Folder of the real sample shipped inside the package."""
    return Path(str(resources.files("tapewatch") / "sample"))


def sample_files() -> list[Path]:
    """The sample's Parquet files, sorted by name."""
    return sorted(sample_dir().glob("*.parquet"))


def read_sample_file(path: Path) -> tuple[str, pl.DataFrame]:
    """``(kind, records)`` of one sample file; a file without a known kind is an error naming it."""
    try:
        table = pq.read_table(path)
    except OSError as exc:
        raise TapewatchError(f"{path}: cannot read the bundled sample file ({exc})") from exc
    kind = (table.schema.metadata or {}).get(KIND_KEY.encode(), b"").decode()
    if kind not in KINDS:
        raise TapewatchError(f"{path}: no record kind in its metadata; the package may be damaged")
    return kind, pl.from_arrow(table)  # type: ignore[return-value]


def load_sample(store: Store) -> list[Loaded]:
    """Write every sample file into ``store``; re-running adds nothing."""
    out = []
    for path in sample_files():
        kind, df = read_sample_file(path)
        w = store.write(kind, df)
        ts = df.get_column("ts").dt.epoch("ns")
        out.append(Loaded(path, kind, df.height, w.added, int(ts.min()), int(ts.max())))
    return out
