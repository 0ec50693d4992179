"""Errors tapewatch reports to users as one clear line instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class TapewatchError(Exception):
    """Base class: the message is meant for the user, as is."""


class ImportFormatError(TapewatchError):
    """A file could not be imported; names the file, the row (1-based line) and the reason."""

    def __init__(self, path: str | Path, reason: str, row: int | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.row = row
        where = f"{self.path}, row {row}" if row is not None else self.path
        super().__init__(f"{where}: {reason}")


class UnknownFormatError(ImportFormatError):
    """The content of a file matches no format tapewatch knows."""


class SkipFileError(ImportFormatError):
    """A file tapewatch recognises but cannot import honestly without more information (the
    reason says what is missing): listed as skipped inside a directory walk, an error when named."""


class StoreError(TapewatchError):
    """The store on disk could not be read or written."""
