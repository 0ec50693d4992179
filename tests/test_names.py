"""Names that become store paths or reach queries are checked at every entry point: command-line
flags, config files, the content of imported files and messages, and the store itself."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tapewatch.backfill.config import config_from_dict as backfill_config
from tapewatch.cli import app
from tapewatch.config import ConfigError, config_from_dict
from tapewatch.names import BadName, exchange_name, flag_exchange, flag_symbol, interval_name, symbol_name
from tapewatch.store import Store

runner = CliRunner()

# path-like, glob-like and control-character names
BAD = ["../evil", "..", "a/b", "evil\nname", "evil\x1b[31m", "evil\x00", "bin*", "", " binance", "x" * 40]
BAD_SYMBOLS = ["../../../tmp/evil/USDT", "BTC/USDT/../..", "BTC/USDT\n", "BTC/*", "BTC/US\x1bDT", "../EVIL-USD"]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _one_error_line(res: object, flag: str) -> str:
    """The run failed with exit code 1 and a single ``error: <flag>: …`` line on stderr, no traceback."""
    assert res.exit_code == 1, res.output  # type: ignore[attr-defined]
    err = res.stderr  # type: ignore[attr-defined]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {flag}: ") and "not a valid" in lines[0], err
    assert "Traceback" not in res.output  # type: ignore[attr-defined]
    return lines[0]


def _bar_csv(tmp_path: Path) -> Path:
    p = tmp_path / "bars.csv"
    p.write_text("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                 "taker_buy_quote_volume,ignore\n"
                 "1704067200000,42283.58,42298.62,42261.02,42298.61,35.92724,1704067259999,1519049.09,1327,"
                 "20.98193,887066.82,0\n")
    return p


# -- the rules ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["binance", "binanceus", "aggregate", "unknown", "my-venue_2", "okx"])
def test_well_formed_lowercase_venues_are_accepted_known_or_not(name: str) -> None:
    assert exchange_name(name) == name
    assert flag_exchange(name.upper()) == name  # a flag is lower-cased first


@pytest.mark.parametrize("name", BAD + ["Binance", "-binance", "binance-"])
def test_bad_exchange_names_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(BadName) as err:
        exchange_name(name, "--exchange")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("--exchange: ") and repr(name) in msg
    assert "binance, binanceus, coinbase" in msg  # the known venues are listed as examples


@pytest.mark.parametrize("sym", BAD_SYMBOLS)
def test_bad_symbols_are_refused_whatever_the_spelling(sym: str) -> None:
    with pytest.raises(BadName):
        flag_symbol(sym)


def test_symbol_flags_are_unified_then_checked() -> None:
    assert [flag_symbol(s) for s in ("BTCUSDT", "btc-usdt", "BTC/USDT", "BTC/USD:BTC")] == ["BTC/USDT"] * 3 + ["BTC/USD"]
    assert symbol_name("BTC/USD:BTC") == "BTC/USD:BTC"
    assert [interval_name(i) for i in ("10s", "1m", "4h", "1d", "1w")] == ["10s", "1m", "4h", "1d", "1w"]
    for bad in ("0m", "1", "m", "1mo", "../1m", "1m\n", "1M"):
        with pytest.raises(BadName):
            interval_name(bad)


# -- command-line flags -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", BAD[:8])
def test_import_refuses_a_bad_exchange_and_writes_nothing(name: str, tmp_path: Path) -> None:
    store = tmp_path / "s"
    res = runner.invoke(app, ["import", str(_bar_csv(tmp_path)), "--store", str(store), "--exchange", name,
                              "--market", "spot", "--symbol", "BTC/USDT", "--interval", "1m"])
    _one_error_line(res, "--exchange")
    assert _files(store) == [] and not (tmp_path / "evil").exists()


@pytest.mark.parametrize("sym", BAD_SYMBOLS)
def test_import_refuses_a_bad_symbol_and_writes_nothing(sym: str, tmp_path: Path) -> None:
    store = tmp_path / "s"
    res = runner.invoke(app, ["import", str(_bar_csv(tmp_path)), "--store", str(store), "--exchange", "binance",
                              "--market", "spot", "--symbol", sym, "--interval", "1m"])
    _one_error_line(res, "--symbol")
    assert _files(store) == []


def test_import_with_a_pattern_valid_unknown_venue_works(tmp_path: Path) -> None:
    # the first lines of the bundled real perp month (sample/btc-perp-20211231-20220201_1m.csv.gz)
    path = tmp_path / "perp.csv"
    path.write_text("timestamp,open,high,low,close,volume\n"
                    "2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,2300413.7295\n")
    store = tmp_path / "s"
    res = runner.invoke(app, ["import", str(path), "--store", str(store), "--exchange", "Aggregate",
                              "--market", "perp", "--symbol", "btc-usd", "--interval", "1m"])
    assert res.exit_code == 0, res.output
    rows = Store(store).read("bar")
    assert rows.select("exchange", "market", "symbol", "interval").row(0) == ("aggregate", "perp", "BTC/USD", "1m")
    assert rows["close"].to_list() == [46377.0]
    assert (store / "bar" / "exchange=aggregate" / "market=perp" / "symbol=BTC-USD" / "date=2021-12-31").is_dir()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["import", "FILE", "--market", "../spot"], "--market"),
        (["import", "FILE", "--interval", "../1m"], "--interval"),
        (["bars", "--symbol", "../../../tmp/evil/USDT"], "--symbol"),
        (["bars", "--symbol", "BTC/USDT", "--exchange", "../evil"], "--exchange"),
        (["bars", "--symbol", "BTC/USDT", "--market", "spot\n"], "--market"),
        (["bars", "--symbol", "BTC/USDT", "--interval", "1m/../../x"], "--interval"),
        (["signals", "--symbol", "../BTC"], "--symbol"),
        (["signals", "--interval", "5m\x00"], "--interval"),
        (["scan", "--symbol", "BTC\n"], "--symbol"),
        (["scan", "--interval", "*"], "--interval"),
        (["backtest", "--symbol", "B*"], "--symbol"),
        (["backtest", "--interval", "../5m"], "--interval"),
        (["report", "--symbol", "../../etc"], "--symbol"),
        (["report", "--interval", "5m;"], "--interval"),
        (["backfill", "--symbol", "../../../tmp/evil/USDT", "--start", "2024-01-01"], "--symbol"),
        (["backfill", "--symbol", "BTC/USDT", "--start", "2024-01-01", "--exchange", "../evil"], "--exchange"),
        (["backfill", "--symbol", "BTC/USDT", "--start", "2024-01-01", "--interval", "../1m"], "--interval"),
    ],
)
def test_every_command_checks_its_name_flags(args: list[str], flag: str, tmp_path: Path) -> None:
    store = tmp_path / "s"
    args = [str(_bar_csv(tmp_path)) if a == "FILE" else a for a in args]
    res = runner.invoke(app, [*args, "--store", str(store)])
    _one_error_line(res, flag)
    assert _files(store) == []


# -- config files -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"markets": {"spot": {"exchange": "../evil"}}}, "markets.spot.exchange"),
        ({"markets": {"perp": {"exchange": "binance", "quote": "../USDT"}}}, "markets.perp.quote"),
        ({"premium": {"usdt_usd": [{"exchange": "kraken", "symbol": "USDT/USD\n"}]}}, "premium.usdt_usd[0].symbol"),
        ({"book": {"sources": [{"exchange": "bin\x1bance"}]}}, "book.sources[0].exchange"),
    ],
)
def test_config_names_are_checked(data: dict, key: str) -> None:
    with pytest.raises(BadName) as err:
        config_from_dict(data, "my.toml")
    msg = str(err.value)
    assert msg.startswith(f"my.toml: config key {key!r}: ") and "\n" not in msg


def test_config_names_reach_the_cli_as_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[markets.spot]\nexchange = "../evil"\n')
    res = runner.invoke(app, ["signals", "--config", str(cfg), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "config key 'markets.spot.exchange'" in res.stderr and "'../evil'" in res.stderr


def test_good_config_names_pass_and_quotes_are_upper_cased() -> None:
    cfg = config_from_dict({"markets": {"spot": {"exchange": "binanceus", "quote": "usd"}}})
    assert (cfg.markets.spot.exchange, cfg.markets.spot.quote) == ("binanceus", "USD")
    with pytest.raises(ConfigError):  # other checks still apply
        config_from_dict({"markets": {"spot": {"exchange": "binance", "market": "../spot"}}})


def test_backfill_config_venue_names_are_checked() -> None:
    with pytest.raises(BadName, match=r"\[venues\]: '\.\./evil' is not a valid exchange name"):
        backfill_config({"venues": {"../evil": {"api_base": "http://127.0.0.1:1"}}}, "bf.toml")
    assert "binance" in backfill_config({"venues": {"binance": {"rate_limit_ms": 5}}}).venues


# -- file contents and messages ------------------------------------------------------------------------
TARDIS_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
COINBASE_CONNECT = "wss://ws-feed.pro.coinbase.com <-> 1618677816.8434298\n"
# a real match message of COINBASE.ws.28.0 (cryptofeed recording), its product_id replaced
COINBASE_MATCH = (
    '1618677817.1299179: {"type":"match","trade_id":1568268,"maker_order_id":"cac01d6d-8009-4c33-8e0d-f7f853d7c1bc",'
    '"taker_order_id":"3dec64e4-f6ad-4ca8-ad3f-e5b1a0eb0d06","side":"sell","size":"450","price":"0.791",'
    '"product_id":"PRODUCT","sequence":201390075,"time":"2021-04-17T16:43:37.121358Z"}\n'
)


@pytest.mark.parametrize(
    ("name", "body", "column"),
    [
        ("t.csv", TARDIS_HEADER + "binance,../../../tmp/evil-USDT,1583020803145000,1583020803307160,7,buy,8531.5,0.5\n",
         "symbol"),
        ("t.csv", TARDIS_HEADER + "binance,BTC*USDT/X,1583020803145000,1583020803307160,7,buy,8531.5,0.5\n", "symbol"),
        ("COINBASE.ws.1.0", COINBASE_CONNECT + COINBASE_MATCH.replace("PRODUCT", "../../TMP/EVIL-USD"), "symbol"),
        ("COINBASE.ws.1.0", COINBASE_CONNECT + COINBASE_MATCH.replace("PRODUCT", "SKL-US\\u001bD"), "symbol"),
    ],
)
def test_names_from_file_contents_are_checked_before_anything_is_written(
    name: str, body: str, column: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(body)
    store = tmp_path / "s"
    res = runner.invoke(app, ["import", str(path), "--store", str(store)])
    assert res.exit_code == 1
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {column}: ") and "not a valid symbol name" in err[0]
    assert _files(store) == [] and not (tmp_path / "tmp").exists()


def test_the_good_message_imports(tmp_path: Path) -> None:
    path = tmp_path / "COINBASE.ws.1.0"
    path.write_text(COINBASE_CONNECT + COINBASE_MATCH.replace("PRODUCT", "SKL-USD"))
    res = runner.invoke(app, ["import", str(path), "--store", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    t = Store(tmp_path / "s").read("trade")
    assert t.select("exchange", "symbol", "price", "amount").row(0) == ("coinbase", "SKL/USD", 0.791, 450.0)


# -- the store, last line of defence -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exchange", "market", "symbol", "date"),
    [
        ("../evil", "spot", "BTC/USDT", "2024-01-01"),
        ("binance", "../spot", "BTC/USDT", "2024-01-01"),
        ("binance", "spot", "../../../tmp/evil/USDT", "2024-01-01"),
        ("binance", "spot", "BTC/USDT", "../2024-01-01"),
        ("binance\n", "spot", "BTC/USDT", "2024-01-01"),
    ],
)
def test_store_partition_dir_refuses_bad_names(exchange: str, market: str, symbol: str, date: str,
                                               store: Store) -> None:
    with pytest.raises(Exception, match="not a valid|not a YYYY-MM-DD date"):
        store.partition_dir("trade", exchange, market, symbol, date)


def test_store_write_refuses_bad_rows_before_writing_any(store: Store) -> None:
    rows = pl.DataFrame({
        "exchange": ["binance", "../evil"], "market": ["spot", "spot"], "symbol": ["BTC/USDT", "BTC/USDT"],
        "ts": [1_704_067_200_000_000_000, 1_704_067_201_000_000_000], "price": [1.0, 2.0], "amount": [1.0, 1.0],
        "taker_side": ["buy", "sell"], "trade_id": ["1", "2"],
    })
    with pytest.raises(BadName, match=r"store write of trade, exchange: '\.\./evil'"):
        store.write("trade", rows)
    assert _files(store.root) == [] or all(p.name == ".lock" for p in _files(store.root))
    assert store.write("trade", rows.head(1)).added == 1  # the good row alone is stored


@pytest.mark.parametrize("symbol", ["*", "BTC/*", "../*"])
def test_store_queries_refuse_glob_and_path_names(symbol: str, store: Store) -> None:
    with pytest.raises(BadName):
        store.read("trade", "binance", "spot", symbol)
    with pytest.raises(BadName):
        store.files("trade", exchange=symbol)
