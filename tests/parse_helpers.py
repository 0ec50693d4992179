"""Helpers of the importer tests: parse a file through format detection, write a test file,
expect an ImportFormatError."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tapewatch.errors import ImportFormatError
from tapewatch.sources import detect
from tapewatch.sources.base import Batch, Hints, RawFile


def parse(path: Path, hints: Hints | None = None) -> tuple[str, list[Batch]]:
    """The name of the format detected for ``path`` and the batches it parses the file into."""
    raw = RawFile(path)
    fmt = detect(raw)
    assert fmt is not None, f"{path.name} not recognised"
    return fmt.name, fmt.parse(raw, hints or Hints())


def one(path: Path, hints: Hints | None = None) -> pl.DataFrame:
    """The rows of a file that parses into exactly one batch."""
    _, batches = parse(path, hints)
    assert len(batches) == 1
    return batches[0].rows


def write(tmp_path: Path, name: str, text: str) -> Path:
    """``text`` written to ``tmp_path / name`` (folders in ``name`` created)."""
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def raises(path: Path, match: str, row: int | None = None, hints: Hints | None = None) -> ImportFormatError:
    """The ImportFormatError that parsing ``path`` must raise (reason matching ``match``, at
    ``row`` when given)."""
    with pytest.raises(ImportFormatError, match=match) as exc:
        parse(path, hints)
    if row is not None:
        assert exc.value.row == row, str(exc.value)
    return exc.value
