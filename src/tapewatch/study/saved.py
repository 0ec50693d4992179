"""The last parameter sweep of each symbol and interval, saved under the store.

``tapewatch backtest --sweep GRID.toml`` writes ``<store>/_studies/<BASE>-<interval>-sweep.json``
(e.g. ``_studies/BTC-4h-sweep.json``); re-running replaces it (temporary file, fsync, rename: a
reader sees the old file or the new one, never half of one). ``tapewatch serve`` reads it.

The document holds what the sweep ran (the effective configuration, the grid as ``key → values
tried``, the settings and seed), when it ran (``saved_at``, UTC ISO wall-clock time), the data it
ran on (``data``: first bar open and last bar close, UTC ISO, and the number of bars), and per
side the in-sample sweep — every parameter set's ``events`` (n scored), ``hits``, ``hit_rate``,
``base_rate``, exact one-sided ``p_value``, Benjamini–Hochberg ``q_value`` and selection
``score``; the Reality Check and SPA p-values of the best set — with ``significant`` and the
``verdict`` sentence by the study's significance rule (``rule``). Rates are fractions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tapewatch.config import Config
from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, interval_name
from tapewatch.study.result import (
    SideSweep, StudyResult, SweepRow, plain, significance_clause, significance_rule, sweep_significant,
)

STUDIES_DIR = "_studies"
FORMAT = "tapewatch sweep 1"


def sweep_path(store: str | Path, base: str, interval: str) -> Path:
    """Where the sweep of ``base`` (e.g. ``BTC``) at ``interval`` (e.g. ``4h``) is saved in ``store``
    (both names are checked, so the path never leaves ``<store>/_studies``)."""
    return Path(store) / STUDIES_DIR / f"{base_name(base)}-{interval_name(interval)}-sweep.json"


def _grid_axes(rows: tuple[SweepRow, ...]) -> list[dict[str, Any]]:
    """``[{"key": …, "values": [values tried]}]`` in grid order, from the parameter sets of a full grid."""
    axes: dict[str, dict[str, Any]] = {}
    for r in rows:
        for k, v in r.params.items():
            axes.setdefault(k, {}).setdefault(json.dumps(v, sort_keys=True, default=str), v)
    return [{"key": k, "values": list(vals.values())} for k, vals in axes.items()]


def sweep_document(base: str, interval: str, result: StudyResult, cfg: Config,
                   saved_at: datetime | None = None) -> dict[str, Any]:
    """The saved document of a study ``result`` of ``base`` at ``interval`` that ran a sweep with
    configuration ``cfg`` (see the module docstring); ``saved_at``: when it ran (default now, UTC)."""
    if not result.sweeps:
        raise TapewatchError("only a study that ran a parameter sweep (--sweep) is saved")
    i, s = result.inputs, result.settings
    alpha, min_events = float(s["alpha"]), int(s["min_events"])
    when = (saved_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    sides = []
    for sw in result.sweeps:
        best = sw.rows[sw.best_index] if sw.best_index is not None else None
        clause = significance_clause(best.p_value if best else None, alpha, sw, best.events if best else None,
                                     min_events)
        sides.append({**dataclasses.asdict(sw), "significant": sweep_significant(sw), "verdict": f"{sw.side}: {clause}"})
    return plain({
        "format": FORMAT, "saved_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "symbol": base_name(base), "interval": interval_name(interval),
        "config": {"source": i.get("config"), "values": dataclasses.asdict(cfg)},
        "grid": {"file": i.get("grid"), "sets": result.sweeps[0].sets, "axes": _grid_axes(result.sweeps[0].rows)},
        "data": {"start": i.get("start"), "end": i.get("end"), "bars": i.get("bars")},
        "settings": s, "seed": result.seed, "label": result.label,
        "rule": significance_rule(alpha, min_events), "alpha": alpha, "min_events": min_events,
        "sides": sides, "verdict": list(result.verdict),
    })


def save_sweep(store: str | Path, base: str, interval: str, result: StudyResult, cfg: Config,
               saved_at: datetime | None = None) -> Path:
    """Write the sweep of ``result`` (``base`` at ``interval``, configuration ``cfg``) to
    :func:`sweep_path` atomically, replacing an earlier one; returns the path."""
    path = sweep_path(store, base, interval)
    doc = sweep_document(base, interval, result, cfg, saved_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")  # grid order kept
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@dataclass(frozen=True)
class SavedSweep:
    """A saved sweep as read back: the document (``doc``, as written) and its sides as
    :class:`~tapewatch.study.result.SideSweep` (for the shared tables and charts)."""

    path: Path
    doc: dict[str, Any]
    sweeps: tuple[SideSweep, ...]


def load_sweep(store: str | Path, base: str, interval: str) -> SavedSweep | None:
    """The saved sweep of ``base`` at ``interval``, or None when none was saved; a file that is not
    a saved sweep is a TapewatchError naming the file and what is wrong (one line)."""
    path = sweep_path(store, base, interval)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TapewatchError(f"{path}: cannot read the saved sweep ({exc.strerror})") from None
    try:
        doc = json.loads(text)
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a saved sweep (format {doc.get('format')!r}, expected {FORMAT!r})")
        fields = {f.name for f in dataclasses.fields(SideSweep)}
        sweeps = tuple(SideSweep(**{k: v for k, v in side.items() if k in fields and k != "rows"},
                                 rows=tuple(SweepRow(**r) for r in side["rows"])) for side in doc["sides"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TapewatchError(f"{path}: not a readable saved sweep ({exc}); re-run tapewatch backtest --sweep") from None
    return SavedSweep(path, doc, sweeps)
