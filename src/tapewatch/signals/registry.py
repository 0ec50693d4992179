"""Every factor's declaration, in the order they are computed; the one list the rest derives from.

:data:`FACTORS` runs in this order (a factor may read the outputs of one before it: flow and oi
read price's). Adding a factor = a module with a ``SPEC`` and one line here; the frame loader, the
warm-up, the detector, ``tapewatch signals``' table, the report's panels and the input coverage
follow.
"""

from __future__ import annotations

from tapewatch.config import Config, to_bars
from tapewatch.signals import book, flow, funding, oi, premium, price
from tapewatch.signals.base import SIDES
from tapewatch.signals.inputs import BY_KEY, INPUTS, InputSpec
from tapewatch.signals.spec import FactorSpec, config_value

FACTORS: tuple[FactorSpec, ...] = (price.SPEC, flow.SPEC, premium.SPEC, book.SPEC, oi.SPEC, funding.SPEC)
GRID_INPUTS = ("spot", "perp")  # always read: the bar grid is made of their bars
DETECTOR_WINDOWS = ("detector.cooldown",)  # an event onset at t looks at the firing of this many bars before t


def conditional(factors: tuple[FactorSpec, ...] = FACTORS) -> dict[str, FactorSpec]:
    """The factors with a condition per side (those the detector combines), by name, in order."""
    return {f.name: f for f in factors if f.conditions}


def used_inputs(factors: tuple[FactorSpec, ...] = FACTORS) -> tuple[InputSpec, ...]:
    """The inputs some factor declares (and the grid's, :data:`GRID_INPUTS`), in the order of
    :data:`~tapewatch.signals.inputs.INPUTS`."""
    keys = {k for f in factors for k in f.inputs} | set(GRID_INPUTS)
    unknown = keys - set(BY_KEY)
    if unknown:
        raise ValueError(f"factors declare unknown inputs: {', '.join(sorted(unknown))}")
    return tuple(i for i in INPUTS if i.key in keys)


def used_by(key: str, factors: tuple[FactorSpec, ...] = FACTORS) -> str:
    """The factors that read input ``key``, as text (``price, flow``)."""
    return ", ".join(f.name for f in factors if key in f.inputs)


def warmup_bars(cfg: Config, step: int, factors: tuple[FactorSpec, ...] = FACTORS) -> int:
    """Bars to read before the first requested bar so every value and event onset there is the
    same as with all history: the longest factor lookback plus the detector's cool-down, plus one."""
    look = max((f.lookback(cfg, step) for f in factors), default=0)
    detector = sum(to_bars(config_value(cfg, k), step) for k in DETECTOR_WINDOWS)
    return look + detector + 1


def output_columns(factors: tuple[FactorSpec, ...] = FACTORS, shown: bool = False) -> list[str]:
    """The columns of ``tapewatch signals``' table: ``ts``, each factor's ``table`` columns (only
    its ``shown`` ones with ``shown``: what the command prints on screen), each distribution
    condition, then the two sides."""
    cols = ["ts"] + [c for f in factors for c in (f.shown if shown else f.table)]
    cols += [f.conditions["distribution"] for f in factors if f.conditions]
    return cols + list(SIDES)
