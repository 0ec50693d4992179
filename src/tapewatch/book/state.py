"""A book's engine state, saved between imports so that the next import resumes it exactly.

A stream's REST snapshot and its diffs often come in different files (one file per day, or a
snapshot taken once at the start of a long recording): the file imported today continues the
book left by yesterday's. :func:`dump` turns a :class:`~tapewatch.book.engine.BookEngine` into
plain arrays (its state vector, the window's non-empty levels and block sums, the overflow
levels, the diffs buffered while out of sync, its counters and the spans it had no depth) and
:func:`load` rebuilds the same engine from them, byte for byte: fed the same rows afterwards,
it writes the same depth as the engine that never stopped. The arrays go to a ``.npz`` file
(:func:`save`, :func:`read`; no pickle). A state saved with other engine options (bands,
interval, venue rule…) is not loaded: the caller rebuilds from the start instead.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from tapewatch.book._jit import level_dict, njit
from tapewatch.book.core import WIDTH
from tapewatch.book.engine import BookEngine
from tapewatch.book.validate import Rows

VERSION = 1


def config(eng: BookEngine) -> str:
    """The options that shape an engine's output, as JSON (a saved state loads only into an engine
    with the same)."""
    return json.dumps({
        "version": VERSION, "rule": eng.rule.name, "key": eng.key, "interval": eng.interval,
        "bps": eng.bps.tolist(), "refs": eng.refs.tolist(), "max_window": eng.max_window,
        "window_pct": eng.window_pct, "max_pending_rows": eng.max_pending_rows, "max_carry": eng.max_carry,
        "full_depth": eng.full_depth,
    }, sort_keys=True)


@njit
def _fill(d, ticks, sizes) -> None:
    for i in range(len(ticks)):
        d[ticks[i]] = sizes[i]


def _dict_arrays(d) -> tuple[np.ndarray, np.ndarray]:
    keys = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
    return keys, np.array([d[int(k)] for k in keys], dtype=np.float64)


def dump(eng: BookEngine) -> dict[str, np.ndarray]:
    """The engine's whole state as named arrays (see the module docstring)."""
    side, idx = np.nonzero(eng.qty)
    bt, bq = _dict_arrays(eng.ovb)
    at, aq = _dict_arrays(eng.ova)
    out = {
        "config": np.array(config(eng)),
        "ist": eng.ist.copy(),
        "decimals": np.array(-1 if eng.decimals is None else eng.decimals, dtype=np.int64),
        "win_side": side.astype(np.int8), "win_index": idx.astype(np.int64), "win_size": eng.qty[side, idx],
        "aux": eng.aux.copy(), "ovb_tick": bt, "ovb_size": bq, "ova_tick": at, "ova_size": aq,
        "last_key": np.array(eng._last_key if eng._last_key is not None else [], dtype=np.int64),
        "rows_seen": np.array(eng._rows_seen, dtype=np.int64),
        "malformed": np.array(json.dumps(dict(eng._malformed))),
        "missing": np.array(eng._missing, dtype=np.int64).reshape(-1, 2),
        "has_carry": np.array(eng._carry is not None),
    }
    if eng._carry is not None:
        out.update({f"carry_{f}": getattr(eng._carry, f) for f in Rows.FIELDS})
    return out


def load(state: dict[str, np.ndarray], eng: BookEngine) -> bool:
    """Put a :func:`dump` ed state into the fresh engine ``eng``; False (``eng`` untouched) when it
    was saved with other options."""
    if str(state["config"]) != config(eng):
        return False
    ist = state["ist"].astype(np.int64)
    eng.ist[:] = ist
    d = int(state["decimals"])
    eng.decimals = None if d < 0 else d
    eng.qty = np.zeros((2, int(ist[WIDTH]) if d >= 0 else 0), dtype=np.float64)
    eng.qty[state["win_side"], state["win_index"]] = state["win_size"]
    eng.aux = state["aux"].copy()
    eng.ovb, eng.ova = level_dict(), level_dict()
    _fill(eng.ovb, state["ovb_tick"], state["ovb_size"])
    _fill(eng.ova, state["ova_tick"], state["ova_size"])
    k = state["last_key"].tolist()
    eng._last_key = (k[0], k[1], k[2], k[3], bool(k[4])) if k else None
    eng._rows_seen = int(state["rows_seen"])
    eng._malformed.update(json.loads(str(state["malformed"])))
    eng._missing = [(int(a), int(b)) for a, b in state["missing"]]
    if bool(state["has_carry"]):
        eng._carry = Rows(*(state[f"carry_{f}"].copy() for f in Rows.FIELDS))
    return True


def save(path: Path, state: dict[str, np.ndarray]) -> None:
    """Write a state to ``path`` (``.npz``) atomically: a temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **state)
    os.replace(tmp, path)


def read(path: Path) -> dict[str, np.ndarray]:
    """A state written by :func:`save`."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
