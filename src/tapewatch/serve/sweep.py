"""The dashboard's sweep section: the sweep ``tapewatch backtest --sweep`` saved for a symbol and
interval (:mod:`tapewatch.study.saved`), or a line saying none was saved and how to run one.

The table and the chart are the report's (:func:`tapewatch.report.sweep_table`,
:func:`tapewatch.report.sweep_figure`); the numbers are the saved file's, as saved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from tapewatch.report import sweep_figure, sweep_table
from tapewatch.study.forward import PriceBars
from tapewatch.study.result import sweep_summary
from tapewatch.study.saved import STUDIES_DIR, SavedSweep
from tapewatch.timeutil import ns_to_iso, parse_time

TOP = 20  # parameter sets listed per side, best selection score first


def sweep_command(base: str, interval: str) -> str:
    """The command that runs (and saves) a sweep of ``base`` at ``interval``."""
    return f"tapewatch backtest --symbol {base} --interval {interval} --sweep GRID.toml"


def sweep_view(saved: SavedSweep | None, base: str, interval: str, bars: PriceBars,
               figure: Callable[[go.Figure], dict[str, Any]]) -> dict[str, Any]:
    """What the page shows of the saved sweep of ``base`` at ``interval``.

    ``bars``: the store's price bars of that symbol and interval now (to say whether the sweep is
    older than the store's latest data); ``figure``: Plotly figure → JSON. Without a saved sweep:
    ``{"present": false, "line": …, "command": …}``. With one: the saved document's header
    (``saved_at``, ``data`` span, ``grid``, ``config`` source, ``seed``, ``label``, ``rule``,
    ``ranked_on``: which bars the sets were ranked on), per
    side the saved numbers (``sides``: Reality Check / SPA p, ``significant``, ``verdict``, every
    set's row) plus the one-line ``summary``; ``stale``: None, or a line saying how many bars the
    store holds after the sweep's data; ``table`` (HTML, the top sets by score) and ``figure``.
    """
    command = sweep_command(base, interval)
    if saved is None:
        return {"present": False, "command": command,
                "line": f"No parameter sweep was run for {base} {interval} on this store. Run `{command}` "
                        "(GRID.toml: a [grid] table naming config keys and the values to try, e.g. "
                        "\"premium.threshold_pct\" = [0.03, 0.05, 0.1]) and reload this page."}
    doc = saved.doc
    end = parse_time(doc["data"]["end"])
    closes = bars.ts + bars.step_ns
    newer = int((closes > end).sum())
    stale = None
    if newer:
        stale = (f"This sweep is older than the store's data: it ran on bars up to {doc['data']['end']}, and the "
                 f"store now has {newer:,} more {interval} bar{'s' if newer != 1 else ''} (to "
                 f"{ns_to_iso(int(closes[-1]))} UTC). Run `{command}` again to include them.")
    sides = [{**side, "summary": sweep_summary(sw)} for side, sw in zip(doc["sides"], saved.sweeps)]
    settings = doc["settings"]
    ranked_on = (f"sets ranked on the in-sample first {1 - settings['holdout']:.0%} of the bars"
                 if settings["split"] == "holdout" else "sets ranked on all the bars")
    return {
        "present": True, "path": f"{STUDIES_DIR}/{saved.path.name}", "command": command,
        "saved_at": doc["saved_at"], "data": doc["data"], "grid": doc["grid"], "config": doc["config"]["source"],
        "seed": doc["seed"], "label": doc["label"], "rule": doc["rule"], "alpha": doc["alpha"],
        "ranked_on": ranked_on, "stale": stale, "newer_bars": newer, "sides": sides,
        "table": sweep_table(saved.sweeps, TOP), "figure": figure(sweep_figure(saved.sweeps)),
    }
