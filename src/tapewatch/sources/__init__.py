"""Importers, one module per venue family; the format of a file is recognised from its content.

Order matters only where two formats could claim the same content: the most specific first.
"""

from __future__ import annotations

from tapewatch.sources import (
    binance_api, binance_archive, coinbase, ohlcv, recordings, series, tables, tardis, ws_capture,
)
from tapewatch.sources.base import Batch, Format, Hints, RawFile

FORMATS: list[Format] = [
    *recordings.FORMATS,
    *ws_capture.FORMATS,
    *binance_api.FORMATS,
    *coinbase.FORMATS,
    *tardis.FORMATS,
    *binance_archive.FORMATS,
    *series.FORMATS,
    *ohlcv.FORMATS,
    *tables.FORMATS,
]


def detect(raw: RawFile) -> Format | None:
    """The format whose ``sniff`` accepts the file, or None when none does."""
    for fmt in FORMATS:
        if fmt.sniff(raw):
            return fmt
    return None


__all__ = ["Batch", "FORMATS", "Format", "Hints", "RawFile", "detect"]
