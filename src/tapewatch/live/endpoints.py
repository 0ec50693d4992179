"""The ``[endpoints]`` table: where each venue's websocket and REST API live.

One entry per venue and market, each with a ``websocket`` base URL (``ws://`` or ``wss://``)
and a ``rest`` base URL (``http://`` or ``https://``); the venue's own paths are appended
(``/stream?streams=…``, ``/api/v3/depth``, ``/fapi/v1/depth``, the historicalTrades and
Coinbase trades paths of :mod:`tapewatch.live.trades`, the open interest paths of
:mod:`tapewatch.live.polls`; Bybit's and OKX's websocket URLs are not used yet). The defaults are the real
venues; point them at ``tapewatch replay-exchange`` (e.g. ``ws://127.0.0.1:8765/binance-spot``)
to collect from captured traffic. An unknown key or a URL of the wrong scheme is a ConfigError
naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tapewatch.config import ConfigError, build_section
from tapewatch.tomlfile import read_toml


def _url(schemes: tuple[str, ...]) -> Any:
    def check(value: str, where: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(f"{where} must be a {' or '.join(s + '://' for s in schemes)} URL with a host, got {value!r}")
        return value.rstrip("/")

    return check


_WS = {"check": _url(("ws", "wss"))}
_HTTP = {"check": _url(("http", "https"))}


@dataclass(frozen=True)
class Endpoint:
    """Base URLs of one venue and market: ``websocket`` and ``rest`` (no trailing slash)."""

    websocket: str = field(metadata=_WS)
    rest: str = field(metadata=_HTTP)


@dataclass(frozen=True)
class BinanceEndpoints:
    spot: Endpoint = Endpoint("wss://stream.binance.com:9443", "https://api.binance.com")
    perp: Endpoint = Endpoint("wss://fstream.binance.com", "https://fapi.binance.com")


@dataclass(frozen=True)
class CoinbaseEndpoints:
    spot: Endpoint = Endpoint("wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com")


@dataclass(frozen=True)
class BybitEndpoints:
    perp: Endpoint = Endpoint("wss://stream.bybit.com/v5/public/linear", "https://api.bybit.com")  # linear perpetuals


@dataclass(frozen=True)
class OkxEndpoints:
    perp: Endpoint = Endpoint("wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com")  # perpetual swaps


@dataclass(frozen=True)
class Endpoints:
    """Every venue's endpoints; :meth:`of` looks one up by exchange and market."""

    binance: BinanceEndpoints = BinanceEndpoints()
    coinbase: CoinbaseEndpoints = CoinbaseEndpoints()
    bybit: BybitEndpoints = BybitEndpoints()  # REST only so far: the open interest polls
    okx: OkxEndpoints = OkxEndpoints()  # REST only so far: the open interest polls

    def of(self, exchange: str, market: str) -> Endpoint:
        """The endpoint of ``exchange`` / ``market`` (``binance``/``perp``…); ConfigError if none."""
        venue = getattr(self, exchange, None)
        endpoint = getattr(venue, market, None) if venue is not None else None
        if not isinstance(endpoint, Endpoint):
            raise ConfigError(f"no [endpoints] entry for {exchange} {market}")
        return endpoint


def endpoints_from_dict(data: Any, source: str = "config") -> Endpoints:
    """Build and validate :class:`Endpoints` from the ``[endpoints]`` table of a config file."""
    return build_section(Endpoints, data, "endpoints.", source)


def load_endpoints(path: str | Path | None = None) -> Endpoints:
    """The ``[endpoints]`` of the TOML file at ``path`` over the defaults (defaults when None)."""
    if path is None:
        return Endpoints()
    data = read_toml(Path(path), "config file", ConfigError)
    return endpoints_from_dict(data.get("endpoints", {}), str(path))
