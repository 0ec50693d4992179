"""Output a person reads, checked through the CLI with stdout and stderr not terminals (CliRunner):
errors stay on one line whatever their length, brackets survive in errors and help, ``bars``
says when it shows fewer rows than it built, sub-minute bars show seconds, prices print in full."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from rich.console import Console
from typer.testing import CliRunner

from tapewatch.cli import app
from tapewatch.commands.signals import frame_table
from tapewatch.display import fmt_number

runner = CliRunner()
# real Binance spot trades (see tests/data/PROVENANCE.md)
TRADES = Path(__file__).parent / "data" / "nautilus-samples" / "binance" / "btcusdt-trades.parquet"


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_an_error_with_a_long_path_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*[f"a-rather-long-folder-name-{i}" for i in range(8)], "nope.csv")
    assert len(str(deep)) > 200
    res = runner.invoke(app, ["import", str(deep), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1
    assert res.stderr == f"error: {deep}: no such file or directory\n"


def test_brackets_in_an_error_are_kept(tmp_path: Path) -> None:
    odd = tmp_path / "[bold]x[/bold] [grid].csv"
    res = runner.invoke(app, ["import", str(odd), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1 and res.stderr == f"error: {odd}: no such file or directory\n"


def test_help_keeps_bracketed_words() -> None:
    out = _flat(runner.invoke(app, ["backtest", "--help"]).output)
    assert "Grid TOML: [grid] key = [values to try]." in out
    assert "and the [study] table" in out
    assert "and the [study] table" in _flat(runner.invoke(app, ["report", "--help"]).output)


def _expected_bars(step_ns: int) -> pl.DataFrame:
    """Bars from the raw parquet, independently: open/close by trade order, per UTC bar start (ns)."""
    t = pl.from_arrow(pq.read_table(TRADES))  # timestamp (ms, UTC), trade_id, price, quantity, buyer_maker
    start = t["timestamp"].dt.epoch("ns") // step_ns * step_ns
    return (t.with_columns(start.alias("start"))
            .group_by("start", maintain_order=True)
            .agg(pl.col("price").first().alias("open"), pl.col("price").last().alias("close"))
            .sort("start"))


def test_bars_say_how_many_they_show_and_keep_seconds(tmp_path: Path) -> None:
    store = str(tmp_path / "s")
    assert runner.invoke(app, ["import", str(TRADES), "--store", store]).exit_code == 0
    res = runner.invoke(app, ["bars", "--symbol", "BTC/USDT", "--interval", "1s", "--store", store])
    assert res.exit_code == 0, res.output
    exp = _expected_bars(1_000_000_000)
    out = res.stdout
    assert f"showing the last 5 of {exp.height} bars" in out
    last = exp.row(-1, named=True)
    stamp = pl.Series([last["start"]]).cast(pl.Datetime("ns", "UTC")).dt.strftime("%Y-%m-%d %H:%M:%S")[0]
    assert stamp.endswith(":46") and f"│ {stamp} │" in out  # seconds shown, not cut to the minute
    assert f"{last['close']:,}" in out and f"{last['open']:,}" in out  # e.g. 39,491.76 in full
    # 10 s bars: all of them fit, so no "showing" caption; times keep their seconds
    res10 = runner.invoke(app, ["bars", "--symbol", "BTC/USDT", "--interval", "10s", "--store", store])
    exp10 = _expected_bars(10_000_000_000)
    assert exp10.height <= 5 and "showing the last" not in res10.stdout
    assert "00:00:10 │" in res10.stdout and f"{exp10.height} bars" in res10.stdout


def test_small_and_large_prices_print_in_full(tmp_path: Path) -> None:
    # a real Coinbase SKL-BTC match (COINBASE.ws.28.0) at 0.00001305, and a BTC trade at 108888.12
    rec = tmp_path / "COINBASE.ws.1.0"
    rec.write_text(
        "wss://ws-feed.pro.coinbase.com <-> 1618677816.8434298\n"
        '1618677817.1295161: {"type":"match","trade_id":280232,"maker_order_id":"2a0da34e-61f7-4c36-88e5-c9dd15927b16",'
        '"taker_order_id":"3c82abaa-c01e-4608-be59-6a1e69742891","side":"sell","size":"985","price":"0.00001305",'
        '"product_id":"SKL-BTC","sequence":177100030,"time":"2021-04-17T16:43:37.089723Z"}\n')
    big = tmp_path / "t.csv"
    big.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                   "binance,BTCUSDT,1735689600000000,1735689600100000,1,buy,108888.12,0.00001234\n")
    store = str(tmp_path / "s")
    assert runner.invoke(app, ["import", str(rec), str(big), "--store", store]).exit_code == 0
    small = runner.invoke(app, ["bars", "--exchange", "coinbase", "--symbol", "SKL/BTC", "--store", store]).stdout
    assert "0.00001305" in small and "e-0" not in small
    large = runner.invoke(app, ["bars", "--symbol", "BTC/USDT", "--store", store]).stdout
    assert "108,888.12" in large and "0.00001234" in large and "e+" not in large and "e-0" not in large


def test_number_format() -> None:
    cases = {0.00001234: "0.00001234", 108888.12: "108,888.12", 1234567.891: "1,234,567.891",
             0.1 + 0.2: "0.3", -1234.5: "-1,234.5", 5.0: "5", 123456789012345.0: "123,456,789,012,345"}
    assert {v: fmt_number(v) for v in cases} == cases
    assert fmt_number(float("nan")) == "NaN"
    assert (fmt_number(0.000012345, 4, sign=True), fmt_number(-2.5, 4, sign=True)) == ("+0.00001234", "-2.5")


def test_signal_tables_show_prices_in_full_and_sub_minute_seconds() -> None:
    table = pl.DataFrame({"ts": pl.Series([10_000_000_000, 20_000_000_000]).cast(pl.Datetime("ns", "UTC")),
                          "close": [108888.12, 0.00001234]})
    buf = io.StringIO()
    Console(file=buf, width=200).print(frame_table(table, ["ts", "close"]))
    text = buf.getvalue()
    assert "108,888.12" in text and "0.00001234" in text and "1970-01-01 00:00:10" in text and "e+" not in text
