"""Backfill settings: defaults for the real venues, overridable by a TOML file (``--config``).

Example (every key optional)::

    [archive]
    url = "https://data.binance.vision"   # Binance public-data archive
    concurrency = 4                        # downloads at once
    keep_files = false                     # keep verified zips after import
    max_file_mb = 512                      # a bigger monthly zip is fetched as daily files

    [rest]
    oi_history_days = 30                   # Binance openInterestHist keeps 30 days

    [retry]
    base_delay = 1.0                       # seconds; doubles per attempt, with jitter
    max_delay = 60.0
    max_attempts = 6
    timeout = 60.0                         # connect / read timeout, seconds
    max_retry_after = 900.0                # longest Retry-After waited for

    [venues.binance]                       # also coinbase, bybit, okx
    api_base = "http://127.0.0.1:8080"     # every ccxt API URL https://HOST/p → <api_base>/HOST/p
    rate_limit_ms = 50                     # ccxt rateLimit
    [venues.binance.urls]                  # or single keys of ccxt's urls["api"]
    fapiData = "https://fapi.binance.com/futures/data"

Base URLs otherwise come from ccxt's own ``urls``; nothing inside ccxt is edited.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tapewatch.backfill.retry import RetryPolicy
from tapewatch.errors import TapewatchError
from tapewatch.names import exchange_name
from tapewatch.tomlfile import read_toml

ARCHIVE_URL = "https://data.binance.vision"


@dataclass(frozen=True)
class VenueConfig:
    """URL and rate overrides for one venue's ccxt client."""

    api_base: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    rate_limit_ms: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackfillConfig:
    """Everything a backfill run is configured by."""

    archive_url: str = ARCHIVE_URL
    concurrency: int = 4
    keep_files: bool = False
    max_file_mb: float | None = 512.0
    oi_history_days: int = 30
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    venues: dict[str, VenueConfig] = field(default_factory=dict)

    def venue(self, name: str) -> VenueConfig:
        """The overrides for ``name`` (none when not configured)."""
        return self.venues.get(name, VenueConfig())


def load_config(path: str | Path | None) -> BackfillConfig:
    """Defaults, overridden by the TOML file at ``path`` (if given). Unknown keys are errors."""
    if path is None:
        return BackfillConfig()
    p = Path(path)
    data = read_toml(p, "config", invalid=" is not valid TOML")
    return config_from_dict(data, str(p))


def config_from_dict(data: dict[str, Any], origin: str = "config") -> BackfillConfig:
    """Build a BackfillConfig from parsed TOML (the layout in this module's docstring)."""
    _only(data, {"archive", "rest", "retry", "venues"}, origin)
    archive = _table(data, "archive", origin)
    rest = _table(data, "rest", origin)
    _only(archive, {"url", "concurrency", "keep_files", "max_file_mb"}, f"{origin} [archive]")
    _only(rest, {"oi_history_days"}, f"{origin} [rest]")
    retry_t = _table(data, "retry", origin)
    _only(retry_t, {f.name for f in fields(RetryPolicy)}, f"{origin} [retry]")
    venues: dict[str, VenueConfig] = {}
    for name, table in _table(data, "venues", origin).items():
        where = f"{origin} [venues.{exchange_name(name, f'{origin} [venues]')}]"
        if not isinstance(table, dict):
            raise TapewatchError(f"{where} must be a table")
        _only(table, {f.name for f in fields(VenueConfig)}, where)
        venues[name] = VenueConfig(**table)
    try:
        cfg = BackfillConfig(
            archive_url=str(archive.get("url", ARCHIVE_URL)).rstrip("/"),
            concurrency=int(archive.get("concurrency", 4)),
            keep_files=bool(archive.get("keep_files", False)),
            max_file_mb=float(archive.get("max_file_mb", 512.0)),
            oi_history_days=int(rest.get("oi_history_days", 30)),
            retry=RetryPolicy(**{k: (int(v) if k == "max_attempts" else float(v)) for k, v in retry_t.items()}),
            venues=venues,
        )
    except (TypeError, ValueError) as exc:
        raise TapewatchError(f"{origin}: bad value ({exc})") from exc
    if cfg.concurrency < 1:
        raise TapewatchError(f"{origin}: archive concurrency must be at least 1")
    return cfg


def _table(data: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    t = data.get(name, {})
    if not isinstance(t, dict):
        raise TapewatchError(f"{origin}: [{name}] must be a table")
    return t


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TapewatchError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
