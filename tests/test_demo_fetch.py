"""`tapewatch demo --fetch`: the store filled from the exchanges first — here the local fake
venues on 127.0.0.1 (Binance archive layout + ccxt REST), never the internet."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fakevenue import data, publish, venues
from fakevenue.fixtures import venue  # noqa: F401
from fakevenue.server import FakeVenue
from tapewatch.cli import app
from tapewatch.store import Store

runner = CliRunner()
FIRST = date(2024, 1, 1)


def test_demo_fetch_fills_every_factor_input_then_scans_and_studies(
    venue: FakeVenue, shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    for market in ("spot", "perp"):
        publish.klines(venue, market, "BTC/USDT", FIRST, 2, seed=11)
    oi = publish.metrics(venue, "BTC/USDT", FIRST, 2)
    depth = publish.book_depth(venue, "BTC/USDT", FIRST, 2)
    publish.funding(venue, "BTC/USDT", [FIRST])
    candles = data.candles_with_gaps(data.ms(FIRST), 2 * 1440)
    venues.install_coinbase(venue, shared / "cryptofeed-recordings", candles.to_numpy())
    cfg = tmp_path / "backfill.toml"
    cfg.write_text(
        f'[archive]\nurl = "{venue.url}"\n[retry]\nbase_delay = 0.001\nmax_delay = 0.004\nmax_attempts = 3\n'
        + "".join(f'[venues.{v}]\napi_base = "{venue.url}"\nrate_limit_ms = 1\n' for v in ("binance", "coinbase"))
    )
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["demo", "--fetch", "--start", "2024-01-01", "--end", "2024-01-03",
                              "--backfill-config", str(cfg), "--store", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    st = Store(tmp_path / "s")
    got = {(r["kind"], r["exchange"], r["market"]): r["rows"] for r in st.inventory().iter_rows(named=True)}
    assert got[("bar", "binance", "spot")] == got[("bar", "binance", "perp")] == 2 * 1440
    assert got[("bar", "coinbase", "spot")] == candles.height  # minutes without trades stay gaps
    assert got[("open_interest", "binance", "perp")] == oi.height
    assert got[("book_depth", "binance", "perp")] == depth.height
    out = " ".join(res.output.split())
    assert "event study on the fetched period" in out and "report:" in out
    assert (tmp_path / "tapewatch-demo-report.html").is_file()
    # the fetched inputs feed the factors: none of them is listed as missing
    for name in ("spot bars", "perp bars", "premium venue a bars", "book depth", "open interest"):
        assert f"missing: {name}" not in out, name
