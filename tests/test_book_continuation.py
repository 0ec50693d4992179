"""A book carries across imports: a real capture split at a diff boundary into two contiguous
files (the first with the REST snapshot, the second only diffs), imported in two calls in either
order, stores exactly the book_depth of one call with both files, and that depth equals the dict
reference book (tests/book_ref.py) fed the stored deltas. Imported alone, the second file says
which span has no depth, in the import report and in ``tapewatch status``.

Captures: the cryptofeed Binance USD-M recording (REST snapshots + 764 diffs of four books) and
the hftbacktest Binance spot / USD-M captures, whose ``<local ns> <raw JSON>`` lines are rewritten
here as cryptofeed recording lines (the JSON messages unchanged) in the test's tmp dir."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import book_ref as B
from tapewatch.book import BookEngine, state
from tapewatch.book.derive import book_sync_status
from tapewatch.cli import app
from tapewatch.importer import import_paths
from tapewatch.store import Store

HFT_URLS = {
    "spot": ("wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms",
             "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"),
    "usdm": ("wss://fstream.binance.com/stream?streams=btcusdt@depth@0ms",
             "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"),
}


def _seconds(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def split_cryptofeed(rec: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """The USD-M recording split after its 382nd diff: (snapshots + first part, second part)."""
    lines = (rec / "BINANCE_FUTURES.ws.1.0").read_text().splitlines(keepends=True)
    connect = lines[0]
    assert " <-> " in connect
    diffs = [i for i, line in enumerate(lines) if '"depthUpdate"' in line]
    cut = diffs[381] + 1
    a, b = out / "a.ws", out / "b.ws"
    a.write_text("".join(lines[:cut]))
    b.write_text(connect + "".join(lines[cut:]))
    return [rec / "BINANCE_FUTURES.http.0.0", a], [b]


def split_hftbacktest(path: Path, market: str, out: Path) -> tuple[list[Path], list[Path]]:
    """An hftbacktest capture as two cryptofeed recordings, cut halfway through the diffs after the
    snapshot, where the exchange times (E) of the two diffs differ."""
    ws_url, rest_url = HFT_URLS[market]
    events = []
    first = ""
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, _, body = line.rstrip("\n").partition(" ")
            first = first or _seconds(int(ts))
            msg = json.loads(body)
            if "lastUpdateId" in msg:
                events.append((f"{rest_url} -> {_seconds(int(ts))}: {body}\n", None))
            elif msg.get("data", {}).get("e") == "depthUpdate":
                events.append((f"{_seconds(int(ts))}: {body}\n", msg["data"]["E"]))
    snap = next(i for i, (_, e) in enumerate(events) if e is None)
    cut = snap + (len(events) - snap) // 2
    while events[cut][1] == events[cut - 1][1]:
        cut += 1
    a, b = out / "a.rec", out / "b.rec"
    a.write_text(f"{ws_url} <-> {first}\n" + "".join(e for e, _ in events[:cut]))
    b.write_text(f"{ws_url} <-> {first}\n" + "".join(e for e, _ in events[cut:]))
    return [a], [b]


CAPTURES = {
    "cryptofeed-usdm": ("binance_usdm", "perp"),
    "hftbacktest-spot": ("binance_spot", "spot"),
    "hftbacktest-usdm": ("binance_usdm", "perp"),
}


def _split(name: str, shared: Path, out: Path) -> tuple[list[Path], list[Path]]:
    if name == "cryptofeed-usdm":
        return split_cryptofeed(shared / "cryptofeed-recordings", out)
    market = name.split("-")[1]
    return split_hftbacktest(shared / "hftbacktest-binance-ws" / market / "btcusdt_20240808.gz", market, out)


def _depth(store: Store) -> pl.DataFrame:
    return store.read("book_depth").sort("exchange", "market", "symbol", "ts", "band_pct")


@pytest.mark.parametrize("name", list(CAPTURES))
def test_separate_imports_give_the_depth_of_one(shared: Path, tmp_path: Path, name: str) -> None:
    venue, market = CAPTURES[name]
    first, second = _split(name, shared, tmp_path)
    one = Store(tmp_path / "one")
    assert not import_paths(first + second, one).errors
    want = _depth(one)
    assert want.height
    books = sorted(set(want["symbol"]))
    for symbol in books:  # the dict reference fed the same stored deltas
        assert B.assert_store_matches_reference(one, ("binance", market, symbol), venue) >= 10
    for order in ((first, second), (second, first)):
        store = Store(tmp_path / f"two-{order[0] is first}")
        for files in order:
            assert not import_paths(files, store).errors
        got = _depth(store)
        assert got.equals(want), f"{name}: separate imports ({'snapshot first' if order[0] is first else 'diffs first'})"
        assert all(not spans or not spans[-1][2] for _, spans in book_sync_status(store))


def test_resumed_import_reads_only_the_new_diffs(shared: Path, tmp_path: Path) -> None:
    """The second call continues the saved book: it rebuilds nothing of the first file's span."""
    first, second = _split("hftbacktest-spot", shared, tmp_path)
    store = Store(tmp_path / "s")
    import_paths(first, store)
    before = _depth(store)
    report = import_paths(second, store)
    (book,) = report.books
    after = _depth(store)
    new = after.filter(pl.col("ts") > before["ts"].max())
    assert book.added == new.height and book.rows == new.height  # nothing before was written again
    assert before.equals(after.filter(pl.col("ts") <= before["ts"].max()))
    assert book.stats.in_sync and book.stats.snapshots == 1


def test_diffs_without_their_snapshot_say_what_is_missing(shared: Path, tmp_path: Path) -> None:
    first, second = _split("hftbacktest-usdm", shared, tmp_path)
    store = Store(tmp_path / "s")
    report = import_paths(second, store)
    (book,) = report.books
    deltas = store.read("book_delta").get_column("ts").dt.epoch("ns")
    assert book.rows == 0 and not book.stats.in_sync
    assert book.missing == [(deltas.min(), deltas.max(), True)]  # the whole second file, still open
    assert book_sync_status(store) == [(("binance", "perp", "BTC/USDT"), book.missing)]
    runner = CliRunner()
    out = runner.invoke(app, ["status", "--store", str(store.root)], terminal_width=200)
    assert out.exit_code == 0, out.output
    sec, ms = divmod(deltas.min() // 10**6, 1000)
    since = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{ms:03d}"
    assert f"binance perp BTC/USDT: no depth since {since} UTC" in " ".join(out.output.split())
    # the first file arrives: the book syncs from its snapshot and the span closes
    import_paths(first, store)
    (spans,) = [s for _, s in book_sync_status(store)]
    assert all(not open_ for _, _, open_ in spans)


@pytest.mark.parametrize("max_window", [1024, 1 << 20], ids=["overflow", "window"])
def test_saved_state_resumes_the_engine_exactly(shared: Path, tmp_path: Path, max_window: int) -> None:
    """An engine stopped halfway, saved to a file and loaded into a new one writes the same depth
    as one that never stopped (a 1,024-tick window keeps most levels in the overflow maps)."""
    deltas = B.binance_books(shared, futures=True)["SUSHI/USDT"].drop("price_text", "amount_text")
    opts = dict(bands=(1, 2, 5, 10), references=("mid", "touch"), max_window=max_window)
    key = ("binance", "perp", "SUSHI/USDT")
    whole = BookEngine("binance_usdm", *key, **opts)
    want = pl.concat([whole.process(deltas).depth, whole.finish().depth])
    cut = deltas.height // 2
    first = BookEngine("binance_usdm", *key, **opts)
    part = first.process(deltas.head(cut)).depth
    state.save(tmp_path / "s.npz", state.dump(first))
    resumed = BookEngine("binance_usdm", *key, **opts)
    assert state.load(state.read(tmp_path / "s.npz"), resumed)
    got = pl.concat([part, resumed.process(deltas.slice(cut)).depth, resumed.finish().depth])
    assert got.equals(want) and want.height
    assert resumed.stats == whole.stats
    if max_window == 1024:
        assert len(resumed.ovb) + len(resumed.ova) > 0
    other = BookEngine("binance_usdm", *key, **{**opts, "bands": (1, 2)})
    assert not state.load(state.read(tmp_path / "s.npz"), other)  # saved with other bands: not loaded


def test_a_day_appended_in_parts_is_fed_to_the_engine_once(shared: Path, tmp_path: Path) -> None:
    """`tapewatch live` appends each flush as a part file: the day's deltas, in three parts, must
    reach the book engine once each (as one write does), not once per file."""
    from tapewatch.book.derive import update_book
    from tapewatch.importer import parse_file
    from tapewatch.sources import Hints

    _, batches = parse_file(shared / "hftbacktest-binance-ws/spot/btcusdt_20240808.gz", Hints())
    deltas = next(b.rows for b in batches if b.kind == "book_delta").sort("ts", maintain_order=True)
    key = ("binance", "spot", "BTC/USDT")
    lo = int(deltas["ts"].min())  # parsed rows: ts in UTC ns
    one, parts = Store(tmp_path / "one"), Store(tmp_path / "parts")
    one.write("book_delta", deltas)
    third = deltas.height // 3
    for chunk in (deltas.slice(0, third), deltas.slice(third, third), deltas.slice(2 * third)):
        parts.append("book_delta", chunk)
    assert len(parts.files("book_delta")) == 3
    want, got = update_book(one, key, lo), update_book(parts, key, lo, append=True)
    assert got.stats.messages == want.stats.messages and got.stats.updates == want.stats.updates
    assert parts.read("book_depth").equals(one.read("book_depth"))
