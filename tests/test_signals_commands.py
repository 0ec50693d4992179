"""``tapewatch signals`` and ``tapewatch scan`` as a user runs them (commands registered on a test app)."""

from __future__ import annotations

import csv
import json
import math
import re

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

from _signals_data import market, write_market
from tapewatch.commands.signals import scan_cmd, signals_cmd
from tapewatch.signals.compute import OUTPUT_COLUMNS

app = typer.Typer()
app.command("signals")(signals_cmd)
app.command("scan")(scan_cmd)
runner = CliRunner()


def _flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    from tapewatch.store import Store

    store = Store(tmp_path_factory.mktemp("store"))
    write_market(store, market(first="2022-01-20 00:00:00", minutes=3 * 1440)["records"])
    return store


def test_signals_csv_has_exactly_the_columns(full_store, tmp_path):
    out = tmp_path / "btc.csv"
    res = runner.invoke(app, ["signals", "--symbol", "BTC", "--interval", "5m", "--start", "2022-01-21",
                              "--end", "2022-01-22", "--out", str(out), "--store", str(full_store.root)])
    assert res.exit_code == 0, res.output
    with open(out) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == OUTPUT_COLUMNS
    assert len(rows) == 1 + 288
    assert rows[1][0] == "2022-01-21T00:00:00Z" and rows[-1][0] == "2022-01-21T23:55:00Z"
    assert "wrote 288 bars × 26 columns" in _flat(res.output)
    # perp bars carry no taker split: NaN in the file, and said in the output
    i = OUTPUT_COLUMNS.index("perp_net_taker")
    assert {r[i] for r in rows[1:]} == {"NaN"}
    assert "no taker buy/sell split" in _flat(res.output)


def test_signals_parquet_types(full_store, tmp_path):
    out = tmp_path / "btc.parquet"
    res = runner.invoke(app, ["signals", "--start", "2022-01-21", "--end", "2022-01-21T06:00", "--out", str(out),
                              "--store", str(full_store.root)])
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(out)
    assert df.columns == OUTPUT_COLUMNS and df.height == 72
    assert df.schema["ts"] == pl.Datetime("ns", "UTC")
    for c in ("spot_selling_into_rally", "negative_premium", "ask_heavy_book", "oi_rising_into_dip",
              "distribution", "accumulation"):
        assert df.schema[c] == pl.Boolean
    assert df.get_column("perp_cvd").is_nan().all()


def test_signals_without_out_prints_a_summary(full_store):
    res = runner.invoke(app, ["signals", "--start", "2022-01-21", "--end", "2022-01-21T02:00",
                              "--store", str(full_store.root)])
    assert res.exit_code == 0, res.output
    assert "24 bars" in _flat(res.output) and "detector.unavailable" in _flat(res.output)


def test_missing_inputs_are_listed(tmp_path):
    from tapewatch.store import Store

    store = Store(tmp_path / "s")
    recs = market(first="2022-01-20 00:00:00", minutes=600)["records"]
    write_market(store, {"bar": recs["bar"][:2]})  # perp and spot only
    out = tmp_path / "x.csv"
    res = runner.invoke(app, ["signals", "--out", str(out), "--store", str(store.root)])
    assert res.exit_code == 0, res.output
    for what in ("premium venue a bars", "book depth", "open interest", "funding"):
        assert f"missing: {what}" in _flat(res.output)
    df = pl.read_csv(out)
    assert df.get_column("premium_index").is_nan().all() and df.get_column("oi").is_nan().all()
    assert df.get_column("negative_premium").null_count() == df.height


def test_scan_verdict(full_store):
    res = runner.invoke(app, ["scan", "--symbol", "BTC", "--lookback", "1d", "--store", str(full_store.root)])
    assert res.exit_code == 0, res.output
    out = _flat(res.output)
    assert "latest closed bar 2022-01-22 23:55:00" in out
    assert "Distribution:" in out and "Accumulation:" in out and "Funding:" in out and "Inputs" in out
    assert "detector.unavailable = 'block'" in out

    from rich.console import Console

    from tapewatch.scan import render, scan

    console = Console(width=250, record=True)
    render(scan(full_store, "BTC", "5m", lookback="1d"), console)
    text = console.export_text()
    for cond in ("spot_selling_into_rally", "negative_premium", "ask_heavy_book", "oi_rising_into_dip",
                 "spot_buying_into_decline", "positive_premium", "bid_heavy_book", "oi_falling_into_rally"):
        assert cond in text
    assert re.search(
        r"Premium: [+-]\$[\d,.]+ = [+-]\d\.\d{3}% of price, z [+-]\d\.\d, (lowest|highest) \d+% of", text
    )


def test_scan_json_is_the_verdict_structure(full_store):
    res = runner.invoke(app, ["scan", "--json", "--lookback", "2d", "--store", str(full_store.root)])
    assert res.exit_code == 0, res.output
    v = json.loads(res.output)
    assert v["base"] == "BTC" and v["bar_open"] == "2022-01-22 23:55:00"
    for side in ("distribution", "accumulation"):
        d = v["decisions"][side]
        assert d["fires"] in (True, False, None)
        assert [r["factor"] for r in d["readings"]] == ["flow", "premium", "book", "oi"]
        for r in d["readings"]:
            assert set(r) == {"factor", "condition", "state", "values", "thresholds", "rule", "why"}
    assert {i["input"] for i in v["inputs"]} >= {"spot bars", "perp bars", "book depth", "open interest"}


def test_bad_config_is_one_clear_line(full_store, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[premium]\nthreshold_pct = 'high'\n")
    res = runner.invoke(app, ["scan", "--config", str(cfg), "--store", str(full_store.root)])
    assert res.exit_code == 1
    assert "'premium.threshold_pct'" in _flat(res.output) and "Traceback" not in res.output


def test_scan_with_an_empty_store_says_what_is_missing(tmp_path):
    res = runner.invoke(app, ["scan", "--store", str(tmp_path / "empty")])
    assert res.exit_code == 1
    assert "no spot or perp data for BTC" in _flat(res.output)


def test_scan_events_listed_with_their_annotations(tmp_path):
    """An event's annotations (filled later with its track record) appear as columns."""
    from rich.console import Console

    from tapewatch.scan import render, scan
    from tapewatch.store import Store

    store = Store(tmp_path / "s")
    write_market(store, market(first="2022-01-20 00:00:00", minutes=2 * 1440, seed=2)["records"])
    from tapewatch.config import config_from_dict

    loose = config_from_dict({"detector": {"required": ["oi"], "when_present": []}, "oi": {"rise_pct": 0.1}})
    v = scan(store, "BTC", "5m", lookback="2d", config=loose, max_events=3)
    assert v.events and len(v.events) <= 3
    assert v.events[0].ts >= v.events[-1].ts  # newest first
    v.events[0].annotations["track record"] = "n=12, hit 58%"
    console = Console(width=200, record=True)
    render(v, console)
    text = console.export_text()
    assert "track record" in text and "n=12, hit 58%" in text
    assert not math.isnan(v.close or math.nan)


def test_scan_command_shows_each_events_measured_track_record(tmp_path):
    """`tapewatch scan` fills every event's track record from the stored history (issue 4)."""
    from tapewatch.store import Store
    from tapewatch.study.settings import load_settings
    from tapewatch.study.wiring import track_records

    store = Store(tmp_path / "s")
    write_market(store, market(first="2022-01-20 00:00:00", minutes=2 * 1440, seed=2)["records"])
    cfg_file = tmp_path / "loose.toml"
    cfg_file.write_text('[detector]\nrequired = ["oi"]\nwhen_present = []\n[oi]\nrise_pct = 0.1\n'
                        '[study]\nmove_pct = 0.3\nmove_window = "4h"\n')
    res = runner.invoke(app, ["scan", "--json", "--lookback", "2d", "--config", str(cfg_file), "--store", str(store.root)])
    assert res.exit_code == 0, res.output
    cfg, settings = load_settings(cfg_file)
    records = track_records(store, "BTC", "5m", cfg, settings)
    events = json.loads(res.output)["events"]
    assert events
    for e in events:  # each event's own point-in-time record
        assert e["annotations"]["track record"] == records.at(e["side"], e["ts"]).describe()
        assert e["annotations"]["track record"].startswith("before this event: ")
    # and the human rendering shows the column
    res = runner.invoke(app, ["scan", "--lookback", "2d", "--config", str(cfg_file), "--store", str(store.root)])
    assert res.exit_code == 0 and "track record" in _flat(res.output)
