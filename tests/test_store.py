"""The store: partition layout, idempotent and atomic writes, parameterized reads."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from tapewatch.errors import StoreError
from tapewatch.importer import parse_file
from tapewatch.sources import Hints
from tapewatch.store import Store, open_store

DAY = 86_400_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01 00:00 UTC


def trades(ts: list[int], ids: list[str], symbol: str = "BTC/USDT") -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame({
        "exchange": ["binance"] * n, "market": ["spot"] * n, "symbol": [symbol] * n, "ts": ts,
        "price": [100.0 + i for i in range(n)], "amount": [1.0] * n, "taker_side": ["buy"] * n, "trade_id": ids,
    })


def test_layout_and_idempotent_write(store: Store) -> None:
    df = trades([T0, T0 + 1, T0 + DAY + 5], ["1", "2", "3"])
    first = store.write("trade", df)
    again = store.write("trade", df)
    assert (first.offered, first.added, first.partitions) == (3, 3, 2)
    assert again.added == 0
    files = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*.parquet"))
    assert files == [
        "trade/exchange=binance/market=spot/symbol=BTC-USDT/date=2024-01-01/data.parquet",
        "trade/exchange=binance/market=spot/symbol=BTC-USDT/date=2024-01-02/data.parquet",
    ]
    assert store.read("trade").height == 3


def test_republished_rows_replace_old_ones(store: Store) -> None:
    store.write("trade", trades([T0, T0 + 1], ["1", "2"]))
    fixed = trades([T0 + 1], ["2"]).with_columns(pl.lit(999.0).alias("price"))
    store.write("trade", fixed)
    got = store.read("trade")
    # a corrected re-publication of a trade (same venue id) replaces the earlier row: one trade
    # per id, the last one written, never counted twice
    assert got["trade_id"].to_list() == ["1", "2"]
    assert got["price"].to_list() == [100.0, 999.0]


def test_trades_without_an_id_are_told_apart_by_all_their_fields(store: Store) -> None:
    rows = trades([T0, T0, T0 + 1], ["x", "x", "x"]).with_columns(pl.lit(None, dtype=pl.String).alias("trade_id"))
    rows = rows.with_columns(pl.Series("price", [100.0, 100.5, 100.0]))
    store.write("trade", rows)
    store.write("trade", rows)  # an exact re-import adds nothing
    got = store.read("trade")
    # three different trades (same ts, different price; same price, different ts), none merged
    assert got.select("ts", "price").rows() == [(got["ts"][0], 100.0), (got["ts"][0], 100.5), (got["ts"][2], 100.0)]
    assert got["ts"].dt.epoch("ns").to_list() == [T0, T0, T0 + 1]


def test_read_range_and_keys(store: Store) -> None:
    store.write("trade", trades([T0, T0 + DAY, T0 + 2 * DAY], ["1", "2", "3"]))
    store.write("trade", trades([T0], ["9"], symbol="ETH/USDT"))
    got = store.read("trade", symbol="BTC/USDT", start=T0 + 1, end=T0 + 2 * DAY)
    assert got["trade_id"].to_list() == ["2"]
    assert store.read("trade", symbol="ETH/USDT")["trade_id"].to_list() == ["9"]
    assert store.read("trade", exchange="coinbase").height == 0


def test_query_is_parameterized(store: Store) -> None:
    store.write("trade", trades([T0, T0 + 1], ["1", "2"]))
    out = store.query("SELECT count(*) AS n FROM trade WHERE symbol = ? AND price > ?", ["BTC/USDT", 100.5])
    assert out["n"].item() == 1
    # a hostile value stays a value
    out = store.query("SELECT count(*) AS n FROM trade WHERE symbol = ?", ["x' OR '1'='1"])
    assert out["n"].item() == 0


def test_stale_temp_files_are_invisible_and_cleaned(store: Store) -> None:
    store.write("trade", trades([T0], ["1"]))
    part = next(store.root.rglob("data.parquet")).parent
    stale = part / ".data.parquet.deadbeef.tmp"
    stale.write_bytes(b"PAR1 half-written")
    assert store.read("trade").height == 1
    store.write("trade", trades([T0 + 1], ["2"]))
    assert not stale.exists()
    assert pq.read_table(part / "data.parquet").num_rows == 2


def test_rows_without_key_are_refused(store: Store) -> None:
    bad = trades([T0], ["1"]).with_columns(pl.lit(None, dtype=pl.String).alias("symbol"))
    with pytest.raises(StoreError, match="without exchange, market, symbol or ts"):
        store.write("trade", bad)


def test_inventory_and_env_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPEWATCH_STORE", str(tmp_path / "env-store"))
    st = open_store()
    assert st.root == tmp_path / "env-store"
    assert st.inventory().is_empty()
    st.write("trade", trades([T0, T0 + DAY], ["1", "2"]))
    inv = st.inventory()
    assert inv.select("kind", "symbol", "rows", "days").row(0) == ("trade", "BTC/USDT", 2, 2)


def test_query_and_inventory_read_partitions_written_before_a_column_was_added(store: Store) -> None:
    """A store written by an older tapewatch (trade partitions without ``local_ts``) beside new
    partitions: SQL and the inventory still read every row, the old rows with a null ``local_ts``."""
    store.write("trade", trades([T0 + DAY, T0 + DAY + 1], ["3", "4"]))
    old_dir = store.partition_dir("trade", "binance", "spot", "BTC/USDT", "2024-01-01")
    old_dir.mkdir(parents=True)
    old = trades([T0, T0 + 1], ["1", "2"]).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    pq.write_table(old.to_arrow(), old_dir / "data.parquet")
    got = store.query("SELECT trade_id, local_ts IS NULL AS old FROM trade ORDER BY trade_id")
    assert got.rows() == [("1", True), ("2", True), ("3", True), ("4", True)]
    inv = store.inventory()
    assert inv.filter(pl.col("kind") == "trade").get_column("rows").to_list() == [4]


def _capture_trades(shared: Path) -> pl.DataFrame:
    _, batches = parse_file(shared / "hftbacktest-binance-ws/spot/btcusdt_20240808.gz", Hints())
    return next(b.rows for b in batches if b.kind == "trade")


def test_appended_flushes_read_as_one_write_and_stay_few_files(shared: Path, store: Store, tmp_path: Path) -> None:
    """A live collector's flushes: 40 appends of the real capture's trades, in order."""
    rows = _capture_trades(shared)
    assert rows.height == 518 and (rows["ts"] // 86_400_000_000_000).n_unique() == 1  # ts: UTC ns, one day
    chunks = [rows.slice(i * 13, 13) for i in range(40)]  # 520 > 518: the last chunk is short
    for c in chunks:
        store.append("trade", c)
    (part,) = {p.parent for p in store.root.rglob("*.parquet")}
    names = sorted(p.name for p in part.glob("*.parquet"))
    # 40 flushes = 2 × 16 merged into level 1, and 8 left at level 0; no data.parquet yet; the
    # names sort in the order the rows came (the level-1 parts first)
    assert [n.split("-")[2] for n in names] == ["L1"] * 2 + ["L0"] * 8
    ref = Store(tmp_path / "ref")
    ref.write("trade", rows)
    assert store.read("trade").equals(ref.read("trade"))
    # a merge's write survived but its clean-up did not (a crash): no row shows twice
    dup = part / names[0]
    (part / names[0].replace("-L1-", "-L0-")).write_bytes(dup.read_bytes())
    assert store.read("trade").equals(ref.read("trade"))
    # the next write folds every part into data.parquet
    store.write("trade", rows.head(1))
    assert [p.name for p in part.glob("*.parquet")] == ["data.parquet"]
    assert store.read("trade").equals(ref.read("trade"))
    assert pq.read_table(part / "data.parquet").num_rows == 518


def test_an_appended_row_written_again_reads_as_its_newest_version(store: Store) -> None:
    """Live book depth re-writes its last, still open sample: the newer part wins, read or merged."""
    first = trades([T0, T0 + 1], ["1", "2"])
    store.append("trade", first)
    store.append("trade", first.with_columns(pl.when(pl.col("trade_id") == "2").then(250.0).otherwise(pl.col("price")).alias("price")))
    assert store.read("trade")["price"].to_list() == [100.0, 250.0]
    store.write("trade", first.head(1))  # folds the parts into data.parquet, the newest version kept
    assert store.read("trade")["price"].to_list() == [100.0, 250.0]
