"""``tapewatch import``: files and directories in, normalized records in the store.

Order-book deltas (snapshots and diffs) are also turned into ``book_depth`` records by the L2
engine (tapewatch.book), per book, over the days the imported deltas touch.

A file named on the command line must be a known format; inside a directory, files of no known
format (READMEs, checksums…) are listed as skipped. A malformed file is reported with file, row
and reason, and nothing from it is written; the other files are still imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tapewatch import coverage
from tapewatch.book.derive import BookKey, DerivedDepth, depth_from_store, merge_spans, touched_books
from tapewatch.errors import ImportFormatError, TapewatchError, UnknownFormatError
from tapewatch.names import BadName, check_rows
from tapewatch.sources import Batch, Hints, RawFile, detect
from tapewatch.store import Store


@dataclass
class FileResult:
    """What happened to one file: its format, rows read and rows new to the store, per kind."""

    path: Path
    format: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None


@dataclass
class ImportReport:
    """All file results of one import run, and the order books rebuilt from imported deltas."""

    files: list[FileResult] = field(default_factory=list)
    books: list[DerivedDepth] = field(default_factory=list)

    @property
    def errors(self) -> list[FileResult]:
        return [f for f in self.files if f.error]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.skipped]

    @property
    def imported(self) -> list[FileResult]:
        return [f for f in self.files if f.format and not f.error]


def expand(paths: Iterable[str | Path]) -> list[tuple[Path, bool]]:
    """Files to import as ``(path, named)``: directories are walked recursively in sorted order;
    ``named`` is True for a file given directly. A path that does not exist is an error."""
    out: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend((Path(root) / f, False) for f in sorted(files) if not f.startswith("."))
        elif p.is_file():
            out.append((p, True))
        else:
            raise TapewatchError(f"{p}: no such file or directory")
    return out


def parse_file(path: Path, hints: Hints) -> tuple[str, list[Batch]]:
    """Recognise and parse one file: ``(format name, batches)``; raises ImportFormatError."""
    raw = RawFile(path)
    fmt = detect(raw)
    if fmt is None:
        first = raw.first_lines[0][:80] if raw.first_lines and not raw.is_parquet else "(binary)"
        raise UnknownFormatError(path, f"unknown format: not a file tapewatch can import (starts {first!r})")
    batches = fmt.parse(raw, hints)
    for b in batches:  # names from the file's content become store paths: check them all first
        try:
            check_rows(b.rows, "")
        except BadName as exc:
            raise ImportFormatError(path, str(exc)) from None
    return fmt.name, batches


def import_paths(
    paths: Iterable[str | Path],
    store: Store,
    hints: Hints | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> ImportReport:
    """Import files and directories into ``store``; ``on_file`` is called after each file (progress)."""
    return import_files(expand(paths), store, hints, on_file)


def import_files(
    files: list[tuple[Path, bool]],
    store: Store,
    hints: Hints | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> ImportReport:
    """Import the ``(path, named)`` list :func:`expand` gives (see :func:`import_paths`)."""
    hints = hints or Hints()
    report = ImportReport()
    books: dict[BookKey, tuple[int, int]] = {}
    for path, named in files:
        res = FileResult(path)
        try:
            res.format, batches = parse_file(path, hints)
            for b in batches:
                res.rows[b.kind] = res.rows.get(b.kind, 0) + b.rows.height
            for b in batches:
                w = store.write(b.kind, b.rows)
                res.added[b.kind] = res.added.get(b.kind, 0) + w.added
                proved = coverage.of_rows(b.kind, b.rows, path.name, coverage.archive_day(res.format, path))
                store.write("coverage", proved)
                if b.kind == "book_delta" and b.rows.height:
                    books = merge_spans(books, touched_books(b.rows))
        except UnknownFormatError as exc:
            if named:
                res.error = str(exc)
            else:
                res.skipped = "unknown format"
        except ImportFormatError as exc:
            res.error = str(exc)
        report.files.append(res)
        if on_file:
            on_file(res)
    # raw depth (snapshots + diffs) becomes book_depth through the L2 engine
    report.books = depth_from_store(store, books)
    return report
