"""The declaration every factor makes once: what it reads, how far back, what it writes.

Like a zipline Pipeline term (``inputs``, ``window_length``, ``outputs``), each factor module ends
with a :class:`FactorSpec`; ``signals/registry.py`` lists them in computation order, and the
frame loader, the warm-up, the detector, the signals table, the report's panels and the input
coverage all read that list instead of keeping their own.

Windows are dotted config keys (``"flow.window"``); a *chain* of keys is a window of windows
(a rolling statistic of a rolling sum), whose bar counts add up. Column names may contain
``{band}``: it stands for each configured book band's tag (``book.bands``; 0.5 → ``0_5``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tapewatch.config import Config, Duration, to_bars
from tapewatch.signals.base import Context, Reading, Side


def config_value(cfg: Config, key: str) -> Any:
    """The value of a dotted config key (``"premium.threshold_pct"``); a leading ``-`` negates it."""
    sign = -1 if key.startswith("-") else 1
    node: Any = cfg
    for part in key.lstrip("-").split("."):
        node = getattr(node, part)
    return -node if sign < 0 else node


def band_tag(band: float) -> str:
    """Column suffix of a book band: 1 → ``1``, 0.5 → ``0_5``."""
    return f"{band:g}".replace(".", "_")


def expand(names: tuple[str, ...], cfg: Config) -> tuple[str, ...]:
    """Column names with ``{band}`` replaced by each configured book band's tag, in order."""
    out: list[str] = []
    for n in names:
        out += [n.format(band=band_tag(b)) for b in cfg.book.bands] if "{band}" in n else [n]
    return tuple(out)


@dataclass(frozen=True)
class PanelSpec:
    """A factor's row under the price in the HTML report.

    ``title`` and the series labels / columns are ``str.format`` templates over ``cfg`` (the
    configuration) and ``band`` (the tag of ``book.band``); ``lines``: dotted config keys drawn as
    dashed thresholds (``-key`` for the mirror); ``note``: shown when no input has a reason.
    """

    title: str
    series: tuple[tuple[str, str], ...]  # (label, column)
    unit: str = ""
    lines: tuple[str, ...] = ()
    note: str = "no data"


@dataclass(frozen=True)
class FactorSpec:
    """One factor, declared once.

    ``inputs``: the frame inputs it reads (``spot``, ``premium_a``, ``book`` …; see
    ``signals/inputs.py``); ``windows``: chains of config keys whose bar counts add up to how far
    back a value at t looks (the warm-up is their maximum); ``outputs``: every column
    ``compute`` adds; ``table``: the columns it contributes to ``tapewatch signals``' table, in order
    (may name input columns or another factor's outputs); ``shown``: those of them the command
    prints on screen; ``conditions``: the condition column per side (empty for context-only factors);
    ``cumulative``: the outputs that are running sums over the requested range (from its first bar;
    the CVDs), each → the column it sums; ``compute`` adds the outputs to a frame, ``reading``
    explains a side's condition at one bar; ``panel``: its report row (None = none).
    """

    name: str
    inputs: tuple[str, ...]
    windows: tuple[tuple[str, ...], ...] = ()
    outputs: tuple[str, ...] = ()
    table: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()
    conditions: dict[Side, str] = field(default_factory=dict)
    cumulative: dict[str, str] = field(default_factory=dict)
    compute: Callable[[pl.DataFrame, Context], pl.DataFrame] | None = None
    reading: Callable[[dict[str, Any], Context, Side], Reading] | None = None
    panel: PanelSpec | None = None

    def columns(self, cfg: Config) -> tuple[str, ...]:
        """The columns ``compute`` writes under ``cfg`` (``{band}`` expanded, each once)."""
        return tuple(dict.fromkeys(expand(self.outputs, cfg)))

    def lookback(self, cfg: Config, step: int) -> int:
        """Bars before t that a value at t may use: the longest chain of windows, in bars."""
        chains = [sum(to_bars(_duration(cfg, k), step) for k in chain) for chain in self.windows]
        return max(chains, default=0)


def _duration(cfg: Config, key: str) -> Duration:
    value = config_value(cfg, key)
    if not isinstance(value, (int, str)):
        raise TypeError(f"config key {key!r} is not a window")
    return value
