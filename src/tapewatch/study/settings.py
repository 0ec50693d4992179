"""Event-study settings: the label fixed before looking, the bootstrap, the out-of-sample split.

They live in the ``[study]`` table of the same TOML file as the signal configuration
(``--config FILE``); :func:`load_settings` reads both. Durations follow the signal config: an
integer number of bars or text such as ``"1h"``, ``"24h"``. Percentages are in percent
(``2.0`` = 2 %). Loading is strict: an unknown key or a bad value raises ``ConfigError``
naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tapewatch.config import Config, ConfigError, Duration, build_section, config_from_dict, duration_ns
from tapewatch.tomlfile import read_toml

SPLITS = ("holdout", "walk_forward", "none")
MOVE_FROM = ("close", "peak")


@dataclass(frozen=True)
class StudySettings:
    """How a configuration's events are scored (defaults in brackets).

    ``horizons`` [1h, 4h, 24h]: forward returns are measured from the close of the signal bar to
    the close ``h`` later. ``move_pct`` / ``move_window`` [2 %, 24h]: the label — a distribution
    event is a hit when price falls at least ``move_pct`` % within ``move_window`` (a "pullback"),
    an accumulation event when it rises that much (a "rally"). ``move_from`` ["close"]: the fall is
    measured from the signal bar's close ("close") or as the largest peak-to-trough drawdown within
    the window ("peak"). ``reps`` draws (rotations of the events for the return tests, bootstrap
    draws for the median bounds), ``confidence`` of the one-sided bounds, ``alpha`` the
    significance level (one-sided, in the direction the signal claims) and the BH false discovery
    rate. ``split``: "holdout" keeps the final ``holdout`` fraction of bars untouched;
    "walk_forward" selects on an expanding window and scores the next of ``folds`` chunks; "none".
    ``min_events``: a parameter set needs this many scored events to be tested at all: fewer, and it
    is left out of Benjamini–Hochberg, the Reality Check / SPA and the choice of the best set, and
    a single configuration is reported as "too few events to test".
    ``spa_bucket``: the per-bar differentials are summed into buckets of this length for the
    Reality Check / SPA.
    ``cost_bps`` [10 = 0.10 %]: the round-trip cost in basis points; each forward return is also
    reported net of it in the direction the signal claims (distribution = short: ``-return - cost``;
    accumulation = long: ``return - cost``). ``regime_window`` ["30d"]: each bar is "bull" when the
    close rose over this window ending at its close (trailing return > 0), "bear" when not, "unknown"
    when the window reaches before the first bar; hit and base rates are also reported per regime.
    """

    horizons: tuple[Duration, ...] = ("1h", "4h", "24h")
    move_pct: float = field(default=2.0, metadata={"min": 0.0, "exclusive": True})
    move_window: Duration = "24h"
    move_from: str = field(default="close", metadata={"choices": MOVE_FROM})
    reps: int = 1000
    confidence: float = field(default=0.95, metadata={"min": 0.0, "max": 1.0, "exclusive": True})
    alpha: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0, "exclusive": True})
    seed: int = 0
    split: str = field(default="holdout", metadata={"choices": SPLITS})
    holdout: float = field(default=0.3, metadata={"min": 0.0, "max": 1.0, "exclusive": True})
    folds: int = 4
    min_events: int = 5
    spa_bucket: Duration = "4h"
    cost_bps: float = field(default=10.0, metadata={"min": 0.0})
    regime_window: Duration = "30d"

    def __post_init__(self) -> None:
        for key, value, low in (("reps", self.reps, 10), ("folds", self.folds, 2), ("min_events", self.min_events, 1)):
            if value < low:
                raise ConfigError(f"config key 'study.{key}' must be at least {low}, got {value}")
        if self.holdout >= 1.0 or self.confidence >= 1.0 or self.alpha >= 1.0:
            raise ConfigError("config keys 'study.holdout', 'study.confidence', 'study.alpha' must be below 1")
        if self.seed < 0:
            raise ConfigError(f"config key 'study.seed' must be 0 or more, got {self.seed}")
        if not self.horizons:
            raise ConfigError("config key 'study.horizons' must list at least one horizon")

    def horizons_ns(self, step_ns: int) -> tuple[int, ...]:
        """The forward-return horizons in nanoseconds (an int horizon counts bars of ``step_ns``)."""
        return tuple(duration_ns(h, step_ns) for h in self.horizons)

    def move_window_ns(self, step_ns: int) -> int:
        """The label window in nanoseconds."""
        return duration_ns(self.move_window, step_ns)

    def episode_gap_ns(self, step_ns: int) -> int:
        """The longest outcome window (the move window or the longest horizon) in nanoseconds:
        counted events are at least this far apart, so no two share an outcome bar."""
        return max(self.move_window_ns(step_ns), *self.horizons_ns(step_ns))

    def regime_window_ns(self, step_ns: int) -> int:
        """The bull / bear look-back in nanoseconds."""
        return duration_ns(self.regime_window, step_ns)

    def spa_bucket_ns(self, step_ns: int) -> int:
        """The Reality Check / SPA bucket in nanoseconds."""
        return duration_ns(self.spa_bucket, step_ns)


def settings_from_dict(data: dict[str, Any], source: str = "config") -> StudySettings:
    """Build and validate :class:`StudySettings` from the ``[study]`` table (as TOML gives it)."""
    try:
        return build_section(StudySettings, data, "study.", source)
    except ConfigError as exc:
        if str(exc).startswith(source):
            raise
        raise ConfigError(f"{source}: {exc}") from None


def load_settings(path: str | Path | None = None) -> tuple[Config, StudySettings]:
    """The signal configuration and the study settings from one TOML file (defaults when None).

    The ``[study]`` table holds :class:`StudySettings`; every other key is the signal
    configuration of :mod:`tapewatch.config`.
    """
    if path is None:
        return Config(), StudySettings()
    p = Path(path)
    data = read_toml(p, "config file", ConfigError)
    study = data.pop("study", {})
    return config_from_dict(data, source=str(p)), settings_from_dict(study, source=str(p))
