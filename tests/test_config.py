"""The typed config: documented defaults, TOML loading, and clear errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tapewatch.config import (
    DEFAULT_CONFIG_FILE, Config, ConfigError, MarketRef, SeriesRef, config_from_dict, load_config, to_bars,
)
from tapewatch.errors import TapewatchError


def _toml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "tapewatch.toml"
    p.write_text(text)
    return p


def test_the_documented_default_file_is_the_defaults():
    assert load_config(DEFAULT_CONFIG_FILE) == Config()
    assert load_config(None) == Config()
    text = DEFAULT_CONFIG_FILE.read_text()
    for section in ("[markets]", "[flow]", "[premium]", "[book]", "[oi]", "[funding]", "[detector]"):
        assert section in text


def test_a_file_overrides_only_what_it_names(tmp_path):
    cfg = load_config(_toml(tmp_path, """
[flow]
window = 24
rally_pct = 1
[premium]
a = { exchange = "kraken", quote = "USD" }
usdt_usd = [{ exchange = "bitstamp", symbol = "USDT/USD" }]
[detector]
required = ["flow", "oi"]
when_present = ["premium", "book"]
unavailable = "skip"
"""))
    assert cfg.flow.window == 24 and cfg.flow.rally_pct == 1.0 and isinstance(cfg.flow.rally_pct, float)
    assert cfg.flow.measure == "sum"  # untouched default
    assert cfg.premium.a == MarketRef("kraken", "spot", "USD")
    assert cfg.premium.usdt_usd == (SeriesRef("bitstamp", "USDT/USD"),)
    assert cfg.detector.required == ("flow", "oi") and cfg.detector.unavailable == "skip"
    assert cfg.oi == Config().oi


@pytest.mark.parametrize(
    "data,key",
    [
        ({"windw": "1h"}, "'windw'"),
        ({"flow": {"raly_pct": 1.0}}, "'flow.raly_pct' (did you mean 'flow.rally_pct'?)"),
        ({"premium": {"a": {"exchange": "coinbase", "quot": "USD"}}}, "'premium.a.quot'"),
        ({"book": {"sources": [{"exchange": "binance", "venue": "x"}]}}, "'book.sources[0].venue'"),
    ],
)
def test_unknown_key_is_named(data, key):
    with pytest.raises(ConfigError, match="unknown config key") as exc:
        config_from_dict(data)
    assert key in str(exc.value)


@pytest.mark.parametrize(
    "data,key",
    [
        ({"flow": {"window": -3}}, "flow.window"),
        ({"oi": {"window": 0}}, "oi.window"),
        ({"premium": {"history": "-30d"}}, "premium.history"),
        ({"book": {"sustain": "0m"}}, "book.sustain"),
        ({"detector": {"cooldown": "soon"}}, "detector.cooldown"),
        ({"flow": {"z_history": 1.5}}, "flow.z_history"),
    ],
)
def test_negative_or_bad_window_is_named(data, key):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data)
    assert f"'{key}'" in str(exc.value)
    assert "positive" in str(exc.value) or "number of bars" in str(exc.value)


@pytest.mark.parametrize(
    "data,key,expect",
    [
        ({"premium": {"threshold_pct": "high"}}, "premium.threshold_pct", "must be a number"),
        ({"flow": {"rally_pct": True}}, "flow.rally_pct", "must be a number"),
        ({"book": {"threshold": [0.1]}}, "book.threshold", "must be a number"),
        ({"oi": {"rise_pct": -0.5}}, "oi.rise_pct", "at least 0"),
        ({"book": {"threshold": 1.5}}, "book.threshold", "at most 1"),
        ({"flow": {"close_at_extreme": "yes"}}, "flow.close_at_extreme", "true or false"),
        ({"flow": {"measure": "mean"}}, "flow.measure", "one of sum, z"),
        ({"detector": {"required": ["flow", "vibes"]}}, "detector.required[1]", "one of flow, premium, book, oi"),
        ({"detector": {"required": "flow"}}, "detector.required", "must be a list"),
        ({"book": {"bands": [1, 0]}}, "book.bands[1]", "greater than 0"),
        ({"markets": {"spot": "binance"}}, "markets.spot", "must be a table"),
        ({"premium": {"a": {"quote": "USD"}}}, "premium.a", "needs exchange"),
    ],
)
def test_wrong_type_or_range_is_named(data, key, expect):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data)
    assert f"'{key}'" in str(exc.value) and expect in str(exc.value)


def test_rules_across_keys():
    with pytest.raises(ConfigError, match="'book.band'"):
        config_from_dict({"book": {"band": 3}})
    with pytest.raises(ConfigError, match="'detector.when_present' repeats book"):
        config_from_dict({"detector": {"required": ["flow", "book"]}})
    with pytest.raises(ConfigError, match="'markets.price'"):
        config_from_dict({"markets": {"price": []}})


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(_toml(tmp_path, "[flow\nwindow = 3"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.toml")
    p = _toml(tmp_path, "[oi]\nwindow = -1\n")
    with pytest.raises(TapewatchError) as exc:
        load_config(p)
    assert str(p) in str(exc.value) and "'oi.window'" in str(exc.value)


def test_durations_become_bars():
    five = 300_000_000_000
    assert to_bars("1h", five) == 12
    assert to_bars("30d", five) == 8640
    assert to_bars("7m", five) == 2  # rounded up
    assert to_bars("30s", five) == 1  # at least one bar
    assert to_bars(12, five) == 12
