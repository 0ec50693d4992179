"""The [endpoints] table: defaults are the real venues, overrides are checked key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

import tapewatch
from tapewatch.config import ConfigError, load_config
from tapewatch.live.endpoints import Endpoint, Endpoints, load_endpoints


def test_defaults_are_the_real_venues_and_match_default_config() -> None:
    e = Endpoints()
    assert e.of("binance", "spot") == Endpoint("wss://stream.binance.com:9443", "https://api.binance.com")
    assert e.of("binance", "perp") == Endpoint("wss://fstream.binance.com", "https://fapi.binance.com")
    assert e.of("coinbase", "spot") == Endpoint("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com")
    assert e.of("bybit", "perp") == Endpoint("wss://stream.bybit.com/v5/public/linear", "https://api.bybit.com")
    assert e.of("okx", "perp") == Endpoint("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com")
    documented = Path(tapewatch.__file__).parent / "default_config.toml"
    assert load_endpoints(documented) == e
    load_config(documented)  # the signal config accepts the [endpoints] table beside it


def test_an_override_keeps_the_other_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[endpoints]\nbinance.spot = { websocket = "ws://127.0.0.1:8765/binance-spot/", '
                   'rest = "http://127.0.0.1:8765/binance-spot" }\n')
    e = load_endpoints(cfg)
    assert e.of("binance", "spot") == Endpoint("ws://127.0.0.1:8765/binance-spot", "http://127.0.0.1:8765/binance-spot")
    assert e.of("binance", "perp") == Endpoints().of("binance", "perp")
    assert load_endpoints(None) == Endpoints()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('binance.spot = { websocket = "https://x", rest = "https://y" }', r"'endpoints\.binance\.spot\.websocket' must be a ws:// or wss:// URL"),
        ('binance.spot = { websocket = "wss://x", rest = "ftp://y" }', r"'endpoints\.binance\.spot\.rest' must be a http:// or https:// URL"),
        ('kraken.spot = { websocket = "wss://x", rest = "https://y" }', r"unknown config key 'endpoints\.kraken'"),
        ('coinbase.perp = { websocket = "wss://x", rest = "https://y" }', r"unknown config key 'endpoints\.coinbase\.perp'"),
        ('binance.spot = { websocket = "wss://x" }', r"'endpoints\.binance\.spot' needs rest"),
    ],
)
def test_bad_entries_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[endpoints]\n" + toml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_endpoints(cfg)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


def test_no_entry_for_a_market_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no \\[endpoints\\] entry for coinbase perp"):
        Endpoints().of("coinbase", "perp")
