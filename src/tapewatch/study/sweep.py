"""Parameter grids and their event sets.

A grid file is TOML with a ``[grid]`` table; every leaf is a list of the values to try, keys are
configuration keys, dotted or as nested tables (a key whose value is itself a list is swept with
a list of lists)::

    [grid]
    window = ["30m", "1h"]
    "flow.rally_pct" = [0.3, 0.5, 1.0]
    [grid.premium]
    threshold_pct = [0.03, 0.05]

gives 2 × 3 × 2 = 12 parameter sets, in file order with the last key varying fastest.

Evaluation is plain: an ``EventFn`` maps one parameter set (``{"window": "1h", ...}``) to the
per-bar firing of each side (``{"distribution": bool array, "accumulation": bool array}``); the
sweep calls it once per set and keeps only the counted episode starts (``events.collapse``, then
``events.thin``), so per set the work is the firing mask, a cool-down and the thinning — all
statistics are then batched over sets.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tapewatch.config import ConfigError
from tapewatch.study.events import collapse, thin
from tapewatch.tomlfile import read_toml

Params = dict[str, Any]
EventFn = Callable[[Params], Mapping[str, Any]]
"""Parameter set → per-bar firing of each side (bool / 0-1 / null-for-unknown arrays, one per bar)."""
Cooldown = int | Callable[[Params], int]
"""The cool-down in nanoseconds, fixed or as a function of the parameter set."""

MAX_SETS = 10_000  # the bootstrap keeps reps × sets × outcomes floats per side


def _flatten(table: Mapping[str, Any], prefix: str, source: str) -> list[tuple[str, list[Any]]]:
    out: list[tuple[str, list[Any]]] = []
    for key, value in table.items():
        name = prefix + key
        if isinstance(value, Mapping):
            out.extend(_flatten(value, name + ".", source))
        elif isinstance(value, list) and value:
            out.append((name, value))
        else:
            raise ConfigError(f"{source}: grid key {name!r} must be a non-empty list of values to try, got {value!r}")
    return out


def grid_from_dict(data: Mapping[str, Any], source: str = "grid") -> list[Params]:
    """The parameter sets of a grid given as (nested) dicts; ``data`` may hold a ``grid`` table."""
    table = data.get("grid", data) if isinstance(data, Mapping) else data
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{source}: needs a [grid] table with at least one key")
    unknown = [k for k in data if k != "grid"] if "grid" in data else []
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key {unknown[0]!r}; put the swept keys under [grid]")
    axes = _flatten(table, "", source)
    size = int(np.prod([len(v) for _, v in axes]))
    if size > MAX_SETS:
        raise ConfigError(f"{source}: the grid has {size:,} parameter sets; at most {MAX_SETS:,} are allowed")
    names = [k for k, _ in axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in axes))]


def load_grid(path: str | Path) -> list[Params]:
    """The parameter sets of a grid TOML file (ConfigError naming the file and key when malformed)."""
    p = Path(path)
    data = read_toml(p, "grid file", ConfigError)
    return grid_from_dict(data, source=str(p))


def event_sets(
    ts: NDArray[np.int64],
    event_fn: EventFn,
    grid: Sequence[Params],
    cooldown: Cooldown,
    gap_ns: int = 0,
) -> dict[str, list[NDArray[np.intp]]]:
    """Episode-start positions of every side for every parameter set (same order as ``grid``),
    thinned to counted events at least ``gap_ns`` apart (:func:`~tapewatch.study.events.thin`).

    The sides are those the function returns for the first set; a side missing for a later set
    has no events there.
    """
    out: dict[str, list[NDArray[np.intp]]] = {}
    empty = np.arange(0)
    for n, params in enumerate(grid):
        fired = event_fn(params)
        if n == 0:
            out = {side: [] for side in fired}
        cd = cooldown(params) if callable(cooldown) else cooldown
        for side, found in out.items():
            mask = fired.get(side)
            if mask is not None and len(mask) != len(ts):
                raise ValueError(f"event function returned {len(mask)} values for {side}, expected {len(ts)} bars")
            found.append(empty if mask is None else thin(ts, collapse(ts, mask, cd), gap_ns))
    return out
