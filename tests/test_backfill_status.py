"""``tapewatch status`` with gaps: per series its rows, range and holes, each hole labelled
"not fetched" or "no rows at source" (fetched, and the venue had nothing)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

from fakevenue import data, publish
from fakevenue.fixtures import run, venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.backfill.__main__ import app
from tapewatch.commands import common as commands_common
from tapewatch.backfill.gaps import fmt_span, series_status
from tapewatch.backfill.manifest import SeriesKey
from tapewatch.backfill.run import BackfillRequest
from tapewatch.store import NS_PER_DAY, Store

DAY = NS_PER_DAY


def _ns(d: date) -> int:
    return data.ms(d) * 1_000_000


def test_a_day_missing_from_the_archive_is_a_gap_not_fetched(venue: FakeVenue, store: Store) -> None:
    publish.klines(venue, "spot", "BTC/USDT", date(2024, 1, 1), 2, monthly=False)
    publish.klines(venue, "spot", "BTC/USDT", date(2024, 1, 4), 1, monthly=False)
    rep = run(venue, store, BackfillRequest("binance", "BTC/USDT", start=_ns(date(2024, 1, 1)),
                                            end=_ns(date(2024, 1, 5)), markets=("spot",), kinds=("klines",)),
              data.ms(date(2024, 2, 1)))
    assert rep.ok and "2024-01-03 (1 daily file)" in rep.warnings()[0]
    [st] = series_status(store)
    assert st.key == SeriesKey("binance", "spot", "bar", "BTC/USDT", "1m")
    assert st.rows == 3 * 1440 and st.spacing == 60 * 10**9
    [gap] = st.gaps
    assert (gap.start, gap.end, gap.fetched) == (_ns(date(2024, 1, 3)), _ns(date(2024, 1, 4)), False)
    assert st.missing_points == 1440
    assert st.ranges == [(_ns(date(2024, 1, 1)), _ns(date(2024, 1, 3))), (_ns(date(2024, 1, 4)), _ns(date(2024, 1, 5)))]


def test_irregular_kinds_report_whole_days_without_rows(store: Store) -> None:
    ts = [_ns(date(2024, 1, 1)) + 5, _ns(date(2024, 1, 2)) + 7, _ns(date(2024, 1, 5)) + 9]
    store.write("trade", pl.DataFrame({"exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "ts": ts,
                                       "price": 1.0, "amount": 1.0, "taker_side": "buy", "trade_id": ["1", "2", "3"]}))
    [st] = series_status(store)
    assert st.spacing is None and [(g.start, g.end) for g in st.gaps] == [(_ns(date(2024, 1, 3)), _ns(date(2024, 1, 5)))]


def test_status_command_prints_inventory_and_gaps(venue: FakeVenue, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands_common.console, "width", 250)
    publish.klines(venue, "perp", "BTC/USDT", date(2024, 1, 1), 1, monthly=False)
    publish.klines(venue, "perp", "BTC/USDT", date(2024, 1, 3), 1, monthly=False)
    run(venue, store, BackfillRequest("binance", "BTC/USDT", start=_ns(date(2024, 1, 1)), end=_ns(date(2024, 1, 4)),
                                      markets=("perp",), kinds=("klines",)), data.ms(date(2024, 2, 1)))
    res = CliRunner().invoke(app, ["status", "--store", str(store.root)])
    assert res.exit_code == 0, res.output
    assert "series and gaps" in res.output and "2,880" in res.output
    assert "2024-01-02 00:00:00 → 2024-01-03 00:00:00 (1d, not fetched)" in res.output
    assert fmt_span(DAY + 3600 * 10**9 + 5 * 10**9) == "1d 1h"
    empty = CliRunner().invoke(app, ["status", "--store", str(store.root / "nothing")])
    assert empty.exit_code == 0 and "tapewatch backfill" in empty.output


def test_open_interest_spacing_is_inferred_and_holes_found(store: Store) -> None:
    five = 5 * 60 * 10**9
    ts = [i * five for i in range(300) if not 100 <= i < 112]  # one hour missing
    store.write("open_interest", pl.DataFrame({"exchange": "bybit", "market": "perp", "symbol": "BTC/USDT", "ts": ts,
                                               "oi": 1.0, "oi_value": 2.0}))
    [st] = series_status(store)
    assert st.spacing == five and st.rows == 288
    assert [(g.start, g.end, g.fetched) for g in st.gaps] == [(100 * five, 112 * five, False)]
    assert st.missing_points == 12
