"""One typed configuration for the signals and the detector, loadable from TOML.

Every parameter lives here with its default; ``default_config.toml`` (next to this module)
documents the same defaults key by key. Durations are either an integer number of bars or a
text duration such as ``"15m"``, ``"1h"``, ``"30d"`` (converted to bars of the interval being
computed, rounded up, at least 1). Percentages are in percent (``0.5`` = 0.5 %).

Loading is strict: an unknown key, a value of the wrong type, a negative or zero window, a
negative threshold or a choice outside the allowed ones raises :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, exchange_name, symbol_name
from tapewatch.timeutil import interval_ns
from tapewatch.tomlfile import read_toml

Duration = int | str
"""A window: ``int`` = number of bars, ``str`` = ``<n><s|m|h|d>`` (e.g. ``"15m"``, ``"30d"``)."""

FACTOR_NAMES = ("flow", "premium", "book", "oi")  # = signals/registry.py's condition factors (a test checks)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}


class ConfigError(TapewatchError):
    """A configuration value or file is invalid; the message names the key."""


def duration_ns(value: Duration, step_ns: int) -> int:
    """Length of a duration in nanoseconds (an int counts bars of ``step_ns``)."""
    if isinstance(value, int):
        return value * step_ns
    m = _DURATION.match(value.strip())
    if not m:
        raise ConfigError(f"bad duration {value!r}: use bars (an integer) or e.g. '15m', '1h', '30d'")
    return int(float(m.group(1)) * _UNIT_NS[m.group(2)])


def to_bars(value: Duration, step_ns: int) -> int:
    """A duration as a whole number of bars of ``step_ns`` (rounded up, at least 1)."""
    if isinstance(value, int):
        return max(1, value)
    return max(1, math.ceil(duration_ns(value, step_ns) / step_ns))


def inert_settings(cfg: Config, interval: str, step_ns: int) -> list[str]:
    """Settings that have no effect at bars of ``interval`` (``step_ns`` long), one sentence each
    naming the key and the interval; empty when every setting matters.

    ``flow.window`` of one bar with ``flow.close_at_extreme``: the close at the W-high of bars
    t-1 .. t is any close above the previous one, which every rally over one bar already is, so
    ``flow.rally_pct`` changes nothing (and the decline side likewise).
    """
    out = []
    w = cfg.flow.window
    two = 2 * step_ns
    hint = f"{two // _UNIT_NS['h']}h" if two % _UNIT_NS["h"] == 0 else f"{two // _UNIT_NS['m']}m"
    if cfg.flow.close_at_extreme and to_bars(w, step_ns) == 1:
        out.append(
            f"flow.window = {w!r} is one {interval} bar: a rally needs a change over the window, and with "
            "flow.close_at_extreme any close above the previous one already counts, so flow.rally_pct has no "
            f"effect at {interval}; use a window of at least 2 bars (e.g. {hint!r}) or set "
            "flow.close_at_extreme = false"
        )
    return out


# -- sections -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketRef:
    """One market of the base asset being analysed: its symbol is ``BASE/quote``."""

    exchange: str = field(metadata={"check": exchange_name})
    market: str = field(default="spot", metadata={"choices": ("spot", "perp", "future")})
    quote: str = field(default="USDT", metadata={"check": base_name})

    def symbol(self, base: str) -> str:
        return f"{base.upper()}/{self.quote.upper()}"

    def describe(self, base: str) -> str:
        return f"{self.exchange} {self.market} {self.symbol(base)}"


@dataclass(frozen=True)
class SeriesRef:
    """A market with a fixed symbol (e.g. the ``USDT/USD`` rate), whatever the base asset."""

    exchange: str = field(metadata={"check": exchange_name})
    symbol: str = field(metadata={"check": symbol_name})
    market: str = field(default="spot", metadata={"choices": ("spot", "perp", "future")})

    def describe(self) -> str:
        return f"{self.exchange} {self.market} {self.symbol}"


@dataclass(frozen=True)
class MarketsConfig:
    """Where spot and perpetual data come from, and which market's close is the price."""

    spot: MarketRef = MarketRef("binance", "spot", "USDT")
    perp: MarketRef = MarketRef("binance", "perp", "USDT")
    # `close` is taken bar by bar from the first of these markets that has a bar
    price: tuple[str, ...] = field(default=("perp", "spot"), metadata={"choices": ("spot", "perp")})


@dataclass(frozen=True)
class FlowConfig:
    """Spot selling into a rally (mirror: spot buying into a decline); see signals/flow.py."""

    window: Duration = "4h"  # W_rally: the rally / decline and the spot net taker sum are over this
    rally_pct: float = field(default=0.5, metadata={"min": 0.0})  # % change over W_rally that is a rally
    close_at_extreme: bool = True  # a close at the W_rally high (low) also counts as a rally (decline)
    measure: str = field(default="sum", metadata={"choices": ("sum", "z")})
    threshold: float = field(default=0.0, metadata={"min": 0.0})  # selling: measure < -threshold
    z_history: Duration = "30d"  # trailing history of the W-sum for measure = "z"
    z_min_history: Duration = "1d"


@dataclass(frozen=True)
class PremiumConfig:
    """Premium of venue ``a`` over venue ``b``; see signals/premium.py."""

    a: MarketRef = MarketRef("coinbase", "spot", "USD")
    b: MarketRef = MarketRef("binance", "spot", "USDT")
    usdt_usd: tuple[SeriesRef, ...] = (
        SeriesRef("coinbase", "USDT/USD"),
        SeriesRef("kraken", "USDT/USD"),
    )
    usdt_max_age: Duration = "1h"
    basis: str = field(default="raw", metadata={"choices": ("raw", "usdt_adjusted")})
    history: Duration = "30d"  # trailing window of the z-score and percentile rank
    min_history: Duration = "1d"  # fewer observations than this: z and rank are NaN
    smooth: Duration = "15m"  # K: rolling mean of the index tested against the threshold
    threshold_pct: float = field(default=0.05, metadata={"min": 0.0})


@dataclass(frozen=True)
class BookConfig:
    """Order-book bid/ask depth ratio; see signals/book.py."""

    sources: tuple[MarketRef, ...] = (
        MarketRef("binance", "spot", "USDT"),
        MarketRef("binance", "perp", "USDT"),
    )
    reference: str = field(default="mid", metadata={"choices": ("mid", "touch")})
    bands: tuple[float, ...] = field(default=(1.0, 2.0, 5.0, 10.0), metadata={"min": 0.0, "exclusive": True})
    band: float = field(default=2.0, metadata={"min": 0.0, "exclusive": True})
    measure: str = field(default="notional", metadata={"choices": ("notional", "amount")})
    threshold: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    sustain: Duration = "15m"  # K: the ratio must stay beyond the threshold on each of K bars
    max_age: Duration = "5m"  # a depth record older than this at the bar close is not used


@dataclass(frozen=True)
class OIConfig:
    """Open interest against price; see signals/oi.py."""

    source: MarketRef = MarketRef("binance", "perp", "USDT")
    window: Duration = "1h"  # W_oi: OI change and price change (price_change_pct) are over this
    rise_pct: float = field(default=0.5, metadata={"min": 0.0})  # OI change over W_oi above this is rising
    dip_pct: float = field(default=0.0, metadata={"min": 0.0})  # price change over W_oi below -this is a dip
    max_age: Duration = "15m"


@dataclass(frozen=True)
class FundingConfig:
    """Funding rate, shown as context; see signals/funding.py."""

    source: MarketRef = MarketRef("binance", "perp", "USDT")
    max_age: Duration = "9h"


@dataclass(frozen=True)
class DetectorConfig:
    """How the factor conditions combine into distribution / accumulation; see detector.py."""

    required: tuple[str, ...] = field(default=("flow", "premium", "oi"), metadata={"choices": FACTOR_NAMES})
    when_present: tuple[str, ...] = field(default=("book",), metadata={"choices": FACTOR_NAMES})
    # a required factor that is unavailable: "block" = the detector cannot fire (result unknown);
    # "skip" = it fires on the factors that are available (at least one must be)
    unavailable: str = field(default="block", metadata={"choices": ("block", "skip")})
    cooldown: Duration = "1h"  # a firing within this time after the last firing bar is the same event


def period_seconds(value: str, where: str) -> str:
    """Check a wall-clock period such as ``"30s"``, ``"1m"`` (more than 0; not a number of bars)."""
    m = _DURATION.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"{where} must be a period like '30s', '1m' or '1h', got {value!r}")
    return value.strip()


@dataclass(frozen=True)
class LiveConfig:
    """What ``tapewatch live`` collects beyond the websocket streams; see tapewatch/live/."""

    oi_period: str = field(default="1m", metadata={"check": period_seconds})  # open interest REST poll period
    funding_period: str = field(default="10m", metadata={"check": period_seconds})  # settled funding REST poll period


ALERT_SIDES = ("distribution", "accumulation")
WEBHOOK_SHAPES = ("generic", "slack", "discord", "telegram")


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook: its name, the payload shape it takes and where its URL comes from. The URL
    itself (it carries a token) is never in the config: it is read from the environment variable
    ``env`` (default ``TAPEWATCH_WEBHOOK_<NAME>``) or from ``alerts.secrets_file``."""

    name: str  # letters, digits, "_" and "-"
    shape: str = field(default="generic", metadata={"choices": WEBHOOK_SHAPES})
    env: str = ""
    chat_id: str = ""  # Telegram only: the chat the bot posts to

    def env_var(self) -> str:
        """The environment variable holding the URL (``my-hook`` → ``TAPEWATCH_WEBHOOK_MY_HOOK``)."""
        return self.env or f"TAPEWATCH_WEBHOOK_{self.name.upper().replace('-', '_')}"


@dataclass(frozen=True)
class AlertsConfig:
    """What raises an alert and where it goes; see tapewatch/alerts/."""

    sides: tuple[str, ...] = field(default=ALERT_SIDES, metadata={"choices": ALERT_SIDES})
    # factors whose own condition starting to hold (a threshold crossing) is also an alert
    crossings: tuple[str, ...] = field(default=(), metadata={"choices": FACTOR_NAMES})
    console: bool = True
    log: str = "alerts.jsonl"  # JSON lines, relative to the store directory; "" = no log file
    # TOML file of `name = "URL"`, readable by its owner only (mode 0600); relative to the config file
    secrets_file: str = ""
    webhooks: tuple[WebhookConfig, ...] = ()
    retries: int = 3  # further attempts after a failed POST
    backoff: float = field(default=1.0, metadata={"min": 0.0})  # seconds before the first retry, doubled each time
    timeout: float = field(default=10.0, metadata={"min": 0.0, "exclusive": True})  # seconds per attempt
    max_wait: float = field(default=60.0, metadata={"min": 0.0})  # longest Retry-After honoured, seconds


@dataclass(frozen=True)
class Config:
    """All signal and detector parameters; ``interval``: the bar interval commands use when no
    ``--interval`` is given (e.g. ``"5m"``, ``"4h"``); ``alerts``: where alerts go; ``live``: what
    ``tapewatch live`` polls."""

    interval: str = "5m"
    markets: MarketsConfig = MarketsConfig()
    flow: FlowConfig = FlowConfig()
    premium: PremiumConfig = PremiumConfig()
    book: BookConfig = BookConfig()
    oi: OIConfig = OIConfig()
    funding: FundingConfig = FundingConfig()
    detector: DetectorConfig = DetectorConfig()
    alerts: AlertsConfig = AlertsConfig()
    live: LiveConfig = LiveConfig()


DEFAULT_CONFIG_FILE = Path(__file__).with_name("default_config.toml")


# -- loading ------------------------------------------------------------------------------------
def load_config(path: str | Path | None = None) -> Config:
    """The configuration in the TOML file at ``path`` over the defaults (defaults when None)."""
    if path is None:
        return Config()
    p = Path(path)
    return config_from_dict(read_toml(p, "config file", ConfigError), source=str(p))


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Build and validate a :class:`Config` from nested dicts (as TOML gives them).

    A ``[study]`` table (event-study settings, tapewatch.study.settings) and an ``[endpoints]``
    table (tapewatch.live.endpoints) may sit in the same file; they are validated here and read
    by ``load_settings`` and ``load_endpoints``.
    """
    if "study" in data:
        from tapewatch.study.settings import settings_from_dict

        data = dict(data)
        settings_from_dict(data.pop("study"), source)
    if "endpoints" in data:  # venue URLs of `tapewatch live`, read by tapewatch.live.endpoints
        from tapewatch.live.endpoints import endpoints_from_dict

        data = dict(data)
        endpoints_from_dict(data.pop("endpoints"), source)
    cfg = build_section(Config, data, "", source)
    _check(cfg, source)
    return cfg


def build_section(cls: type, data: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "(top level)"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: config key {where!r} must be a table, got {_show(data)}")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{source}: unknown config key {prefix + key!r}{hint}; "
                f"known keys in {where}: {', '.join(known)}"
            )
    kwargs = {}
    for name, f in known.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name, dict(f.metadata), source)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field of a reference table is absent
        missing = [f.name for f in fields(cls) if f.name not in kwargs and _required(f)]
        raise ConfigError(f"{source}: config key {where!r} needs {', '.join(missing) or 'more keys'} ({exc})") from None


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def _convert(value: Any, hint: Any, key: str, meta: dict[str, Any], source: str) -> Any:
    origin = get_origin(hint)
    if is_dataclass(hint):
        return build_section(hint, value, key + ".", source)
    if origin in (Union, types.UnionType):  # Duration = int | str
        return _duration(value, key, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: config key {key!r} must be a list, got {_show(value)}")
        (item,) = get_args(hint)[:1]
        return tuple(_convert(v, item, f"{key}[{i}]", meta, source) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: config key {key!r} must be true or false, got {_show(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: config key {key!r} must be an integer, got {_show(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{source}: config key {key!r} must be a number, got {_show(value)}")
        _range(float(value), key, meta, source)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: config key {key!r} must be text, got {_show(value)}")
        if "check" in meta:  # names that become store paths (tapewatch.names)
            return meta["check"](value, f"{source}: config key {key!r}")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: config key {key!r} must be one of {', '.join(choices)}; got {value!r}")
        return value
    raise ConfigError(f"{source}: config key {key!r} has an unsupported type")  # pragma: no cover


def _range(v: float, key: str, meta: dict[str, Any], source: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (v < lo or (meta.get("exclusive") and v == lo)):
        rel = "greater than" if meta.get("exclusive") else "at least"
        raise ConfigError(f"{source}: config key {key!r} must be {rel} {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise ConfigError(f"{source}: config key {key!r} must be at most {hi:g}, got {v:g}")


def _duration(value: Any, key: str, source: str) -> Duration:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(
            f"{source}: config key {key!r} must be a number of bars or a duration like '1h', got {_show(value)}"
        )
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"{source}: config key {key!r} must be a positive number of bars, got {value}")
        return value
    m = _DURATION.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(
            f"{source}: config key {key!r} must be a positive duration like '15m', '1h', '30d' "
            f"or a number of bars, got {value!r}"
        )
    return value.strip()


def _check(cfg: Config, source: str) -> None:
    """Rules that involve more than one key (and the interval's form)."""
    try:
        interval_ns(cfg.interval)
    except TapewatchError as exc:
        raise ConfigError(f"{source}: config key 'interval': {exc}") from None
    if cfg.book.band not in cfg.book.bands:
        raise ConfigError(
            f"{source}: config key 'book.band' ({cfg.book.band:g}) must be one of book.bands "
            f"({', '.join(f'{b:g}' for b in cfg.book.bands)})"
        )
    both = set(cfg.detector.required) & set(cfg.detector.when_present)
    if both:
        raise ConfigError(
            f"{source}: config key 'detector.when_present' repeats {', '.join(sorted(both))} "
            "from detector.required; a factor is either required or used when present"
        )
    if not cfg.detector.required and not cfg.detector.when_present:
        raise ConfigError(f"{source}: config key 'detector.required' is empty and so is detector.when_present")
    for key, values in (("markets.price", cfg.markets.price), ("book.sources", cfg.book.sources)):
        if not values:
            raise ConfigError(f"{source}: config key {key!r} must list at least one market")
    _check_alerts(cfg.alerts, source)


def _check_alerts(a: AlertsConfig, source: str) -> None:
    if a.retries < 0:
        raise ConfigError(f"{source}: config key 'alerts.retries' must be 0 or more, got {a.retries}")
    names = [w.name for w in a.webhooks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{source}: config key 'alerts.webhooks' names {', '.join(twice)} more than once")
    for w in a.webhooks:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", w.name):
            raise ConfigError(f"{source}: config key 'alerts.webhooks' name {w.name!r}: use letters, digits, _ and - only")
        if w.env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", w.env):  # never echoed: it may be a pasted URL
            raise ConfigError(f"{source}: config key 'alerts.webhooks' {w.name!r}: env must name an environment "
                              "variable (letters, digits, _), not hold the URL")
        if w.shape == "telegram" and not w.chat_id:
            raise ConfigError(f"{source}: config key 'alerts.webhooks' {w.name!r} is a telegram webhook and needs chat_id")


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
