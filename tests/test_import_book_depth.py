"""`tapewatch import` of raw depth (REST snapshots + websocket diffs in separate recording files)
writes book_depth through the L2 engine. The stored deltas are the raw lines stamped with the
exchange's event time (E), so the dict reference book (tests/book_ref.py) is fed those stored
rows; at every sample point the stored bands must equal the reference's. (The engine against the
reference on the raw lines with their recording times is tests/test_book_real.py.)"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import book_ref as B
from tapewatch.importer import import_paths
from tapewatch.store import Store


@pytest.mark.parametrize("futures", [False, True], ids=["binance-spot", "binance-usdm"])
def test_imported_recordings_give_reference_depth(shared: Path, tmp_path: Path, futures: bool) -> None:
    rec = shared / "cryptofeed-recordings"
    name = "BINANCE_FUTURES" if futures else "BINANCE"
    store = Store(tmp_path / "s")
    # the diffs first, the snapshots after: the engine sees them in stored (time) order anyway
    report = import_paths([rec / f"{name}.ws.1.0", rec / f"{name}.http.0.0"], store)
    assert not report.errors
    books = B.binance_books(shared, futures=futures)  # the books the raw lines hold
    assert {d.key[2] for d in report.books} >= set(books)
    for symbol in books:
        key = ("binance", "perp" if futures else "spot", symbol)
        assert B.assert_store_matches_reference(store, key, "binance_usdm" if futures else "binance_spot")
        stats = next(d.stats for d in report.books if d.key[2] == symbol)
        assert stats.gaps == 0 and stats.in_sync


def test_reimport_rebuilds_the_same_depth(shared: Path, tmp_path: Path) -> None:
    rec = shared / "cryptofeed-recordings"
    store = Store(tmp_path / "s")
    import_paths([rec / "COINBASE.ws.28.0"], store)
    first = store.read("book_depth")
    again = import_paths([rec / "COINBASE.ws.28.0"], store)
    assert sum(d.added for d in again.books) == 0
    assert store.read("book_depth").equals(first)
    assert first.select(pl.col("symbol").n_unique()).item() == 10
