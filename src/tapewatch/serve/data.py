"""What the dashboard shows, computed from the store with the library's own calls.

Every request names a :class:`View` (base asset, bar interval, optional ``[start, end)`` range in
UTC ns), checked by :func:`parse_view` with :mod:`tapewatch.names`. The expensive parts — the
event study behind the market chart and the study tab — are cached per (view, config file
mtime, store stamp); the store stamp (:meth:`Dashboard.stamp`) is the newest modification time
and count of the spot / perp partition files, so a bar written by ``tapewatch live`` makes a new
entry. Only Parquet files are read (never a lock on the store): the writer is never blocked.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.utils import PlotlyJSONEncoder

from tapewatch.commands.common import resolve_config
from tapewatch.config import Config
from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, interval_name
from tapewatch.report import FactorPanel, header_lines, hits_figure, market_figure, returns_figure, study_table
from tapewatch.scan import scan
from tapewatch.store import Store
from tapewatch.study.forward import format_duration
from tapewatch.serve.sweep import sweep_view
from tapewatch.study.run import Study
from tapewatch.study.saved import load_sweep, sweep_path
from tapewatch.study.settings import StudySettings, load_settings
from tapewatch.study.wiring import DetectorStudy, explain_events, prepare, study_detector, track_records
from tapewatch.timeutil import ns_to_iso, parse_time

T = TypeVar("T")
SIDES = ("distribution", "accumulation")
INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")  # offered in the selector; any valid interval is accepted


class BadRequest(TapewatchError):
    """A request parameter that cannot be served (answered with 400 and this one-line message)."""


@dataclass(frozen=True)
class View:
    """What one request asks for: ``base`` asset, bar ``interval``, ``[start, end)`` in UTC ns (None = open)."""

    base: str
    interval: str
    start: int | None = None
    end: int | None = None


def parse_view(params: Mapping[str, str], known: tuple[str, ...], default_interval: str) -> View:
    """The view named by query ``params`` (``symbol``, ``interval``, ``start``, ``end``); BadRequest
    (one line) for an invalid or unknown symbol, a bad interval, a bad time or an inverted range."""
    raw = params.get("symbol") or (known[0] if known else "BTC")
    base = base_name(raw, "symbol")
    if base not in known:
        raise BadRequest(f"symbol: {base!r} has no spot or perp data in the store (known: {', '.join(known) or 'none'})")
    interval = interval_name(params.get("interval") or default_interval, "interval")
    start = parse_time(params["start"]) if params.get("start") else None
    end = parse_time(params["end"]) if params.get("end") else None
    if start is not None and end is not None and start >= end:
        raise BadRequest(f"range: start {params['start']} is not before end {params['end']}")
    return View(base, interval, start, end)


def context_panels(frame: pl.DataFrame, cfg: Config) -> tuple[FactorPanel, ...]:
    """The dashboard's panels beyond the report's: the premium's z-score (dashed: ±2, the usual
    band) and percentile rank over its trailing window, and how far from mid the order book is
    known on each side (dashed: the band the book ratio reads; past it the ratio is NaN)."""
    def col(name: str) -> np.ndarray:
        if name not in frame.columns:
            return np.full(frame.height, np.nan)
        return frame.get_column(name).cast(pl.Float64).fill_null(float("nan")).to_numpy()

    return (
        FactorPanel("premium z-score (dashed: ±2)", {"premium z": col("premium_z")}, "z", (2.0, -2.0),
                    note="no premium index"),
        FactorPanel("premium percentile rank over its trailing window", {"premium percentile": col("premium_pct_rank")},
                    "%", (5.0, 95.0), note="no premium index"),
        FactorPanel(f"book: known distance from mid (dashed: the {cfg.book.band:g} % band)",
                    {"bids known to": col("book_bid_known_pct"), "asks known to": col("book_ask_known_pct")}, "%",
                    (cfg.book.band,), note="no book_depth records"),
    )


def what_followed(study: Study, i: int) -> str:
    """``then: 4h +0.52 %, 24h −1.30 %, 3d not yet known``: the close-to-close returns after bar
    ``i`` at the study's horizons, measured from that bar's close."""
    fw = study.forward
    parts = []
    for j, h in enumerate(fw.horizons_ns):
        r = float(fw.returns[i, j])
        parts.append(f"{format_duration(h)} {'not yet known' if not np.isfinite(r) else f'{r * 100:+.2f} %'}")
    return "then: " + ", ".join(parts)


class _Cache:
    """A small LRU of computed values; one computation per key at a time (concurrent requests wait)."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()
        self._size = size

    def peek(self, key: Any) -> Any:
        """The cached value of ``key`` or None."""
        with self._guard:
            return self._items.get(key)

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._guard:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._items:
                    return self._items[key]
            value = compute()
            with self._guard:
                self._items[key] = value
                while len(self._items) > self._size:
                    self._items.popitem(last=False)
                self._locks.pop(key, None)
            return value


def _figure(fig: go.Figure) -> dict[str, Any]:
    """A Plotly figure as plain JSON: arrays as lists (not base64 typed arrays, so the page can
    extend them live), NaN as null (a gap)."""
    return _lists(json.loads(json.dumps(fig.to_dict(), cls=PlotlyJSONEncoder)))


def _lists(obj: Any) -> Any:
    """``obj`` with every base64 typed-array spec (``{"dtype", "bdata"[, "shape"]}``) as a list."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if obj.get("shape"):
                arr = arr.reshape([int(n) for n in str(obj["shape"]).split(",")])
            if arr.dtype.kind == "f":
                return np.where(np.isfinite(arr), arr, None).tolist()
            return arr.tolist()
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_lists(v) for v in obj]
    return obj


class Dashboard:
    """The dashboard's queries over one store (``config``: as ``--config``; None = the store's or defaults)."""

    def __init__(self, store: Path, config: Path | None = None) -> None:
        self.store = Store(store)
        self.config_path, self.config_source = resolve_config(config, Path(store))
        self._cache = _Cache()
        self._stamp: tuple[float, tuple[Any, ...]] = (0.0, ())
        self._stamp_lock = threading.Lock()

    # -- configuration and store state -----------------------------------------------------
    def config(self) -> tuple[Config, StudySettings]:
        """The configuration and study settings (re-read when the file changes)."""
        return self._cache.get(("config", self._config_mtime()), lambda: load_settings(self.config_path))

    def _config_mtime(self) -> float:
        try:
            return self.config_path.stat().st_mtime if self.config_path else 0.0
        except OSError:
            return 0.0

    def symbols(self) -> tuple[str, ...]:
        """Base assets with spot or perp partition files under the configured venues."""
        return self._cache.get(("symbols", self.stamp()), self._symbols)

    def _symbols(self) -> tuple[str, ...]:
        out = set()
        for f in self._partitions():
            token = f.parent.parent.name.removeprefix("symbol=")
            out.add(token.split("-")[0].split("_")[0].split("/")[0].upper())
        return tuple(sorted(b for b in out if b.isalnum()))

    def _partitions(self) -> list[Path]:
        cfg, _ = self.config()
        return [f for ref in (cfg.markets.spot, cfg.markets.perp) for kind in ("bar", "trade")
                for f in self.store.files(kind, ref.exchange, ref.market)]

    def stamp(self, refresh: bool = False, max_age: float = 2.0) -> tuple[Any, ...]:
        """(newest mtime in ns, number of files, config mtime) of the spot / perp bar and trade
        partitions, as last read; re-read when ``refresh`` (the server's poller, every 0.25 s) or
        when older than ``max_age`` seconds. One reader at a time; the others take the last value."""
        checked, value = self._stamp
        if not refresh and value and time.monotonic() - checked < max_age:
            return value
        if not self._stamp_lock.acquire(blocking=not value):
            return value
        try:
            newest, count = 0, 0
            for f in self._partitions():
                try:
                    newest = max(newest, f.stat().st_mtime_ns)
                except OSError:
                    continue
                count += 1
            value = (newest, count, self._config_mtime())
            self._stamp = (time.monotonic(), value)
            return value
        finally:
            self._stamp_lock.release()

    def view(self, params: Mapping[str, str]) -> View:
        """The checked view of a request's query parameters (see :func:`parse_view`)."""
        cfg, _ = self.config()
        return parse_view(params, self.symbols(), cfg.interval)

    # -- verdict -----------------------------------------------------------------------------
    def verdict(self, v: View, records: bool = True) -> dict[str, Any]:
        """The latest closed bar's verdict as ``tapewatch scan --json`` gives it (events of the
        last 30 days); with ``records``, each event's and (``record``, per side) the latest bar's
        point-in-time track record of this configuration (about a second more on a year of bars)."""
        return self._cache.get(("verdict", v, records, self.stamp()), lambda: self._verdict(v, records))

    def _verdict(self, v: View, records: bool) -> dict[str, Any]:
        cfg, settings = self.config()
        verdict = scan(self.store, v.base, v.interval, "30d", v.end, cfg, self.config_source)
        if not records:
            return verdict.to_dict()
        track = track_records(self.store, v.base, v.interval, cfg, settings, v.end)
        for e in verdict.events:
            e.annotations["track record"] = track.at(e.side, e.ts).describe()
        out = verdict.to_dict()
        out["record"] = {side: track.at(side, verdict.bar_ts).describe() for side in SIDES}
        return out

    # -- the study behind the charts ------------------------------------------------------------
    def study(self, v: View) -> tuple[Study, DetectorStudy]:
        """The event study of the view (and the prepared detector inputs), cached."""
        return self._cache.get(("study", v, self.stamp()), lambda: self._study(v))

    def _study(self, v: View) -> tuple[Study, DetectorStudy]:
        cfg, settings = self.config()
        ds = prepare(self.store, v.base, v.interval, v.start, v.end, cfg)
        return study_detector(ds, cfg, settings, [{}], None, self.config_source), ds

    def market(self, v: View) -> dict[str, Any]:
        """The market figure (price with events, one row per factor) as Plotly JSON, and the
        events (time in ms, side, close, explanation) for live updates."""
        def build() -> dict[str, Any]:
            study, ds = self.study(v)
            cfg, _ = self.config()
            hover = {side: [f"{text}<br>{what_followed(study, int(i))}" for i, text in zip(pos, lines)]
                     for side, pos in study.events.items()
                     for lines in [explain_events(ds, cfg, {side: pos})[side]]}
            bars = study.forward.bars
            events = [{"t": int(bars.ts[i]) // 1_000_000, "side": side, "close": float(bars.close[i]), "text": text}
                      for side, pos in study.events.items() for i, text in zip(pos, hover.get(side, []))]
            panels = (*ds.factors, *context_panels(ds.frame, cfg))
            return {"figure": _figure(market_figure(study, panels, hover=hover)), "events": events,
                    "last": int(bars.ts[-1]) // 1_000_000 if len(bars.ts) else None,
                    "missing": list(ds.missing)}
        return self._cache.get(("market", v, self.stamp()), build)

    def study_view(self, v: View) -> dict[str, Any]:
        """The study tab: verdict lines, what it ran on, the tables (HTML), hit-rate and
        forward-return figures."""
        def build() -> dict[str, Any]:
            study, _ = self.study(v)
            r = study.result
            return {
                "verdict": list(r.verdict), "label": r.label, "header": header_lines(r), "notes": list(r.notes),
                "tables": "".join(study_table(p, r.settings.get("cost_bps")) for p in r.periods),
                "hits": _figure(hits_figure(r)), "returns": _figure(returns_figure(study)),
            }
        return self._cache.get(("studyview", v, self.stamp()), build)

    def sweep(self, v: View) -> dict[str, Any]:
        """The sweep section (:func:`tapewatch.serve.sweep.sweep_view`): the sweep saved by
        ``tapewatch backtest --sweep`` for the view's symbol and interval (its date range aside),
        whether the store has bars after its data, or how to run one."""
        study, _ = self.study(View(v.base, v.interval))
        return sweep_view(load_sweep(self.store.root, v.base, v.interval), v.base, v.interval, study.forward.bars,
                          _figure)

    def _saved_mtime(self, what: str, v: View) -> int | None:
        """For ``sweep``: the saved sweep file's modification time (a new sweep is a new answer)."""
        if what != "sweep":
            return None
        try:
            return sweep_path(self.store.root, v.base, v.interval).stat().st_mtime_ns
        except OSError:
            return None

    def json(self, what: str, v: View) -> bytes:
        """``verdict``, ``market``, ``study`` or ``sweep`` of the view as JSON bytes (serialised once
        per store stamp, and per saved sweep file)."""
        build = {"verdict": self.verdict, "market": self.market, "study": self.study_view, "sweep": self.sweep}[what]
        return self._cache.get(("json", what, v, self.stamp(), self._saved_mtime(what, v)),
                               lambda: json.dumps(build(v), allow_nan=False, separators=(",", ":")).encode())

    def cached_json(self, what: str, v: View) -> bytes | None:
        """:meth:`json` if it is already computed for the current store stamp, else None (never blocks)."""
        return self._cache.peek(("json", what, v, self.stamp(), self._saved_mtime(what, v)))

    def live(self, v: View, records: bool = True) -> dict[str, Any]:
        """For the live stream: the store stamp, the verdict of the latest closed bar (track records
        only with ``records``), that bar (``t`` = open time in UTC ms, ``close``) and the recent
        events (``t`` in ms, newest first)."""
        verdict = self.verdict(v, records)
        return {"stamp": list(self.stamp()), "verdict": verdict,
                "bar": {"t": verdict["bar_ts"] // 1_000_000, "close": verdict["close"]},
                "events": [{"t": e["ts"] // 1_000_000, "side": e["side"], "close": e["close"],
                            "text": f"{e['side']} at {ns_to_iso(e['ts'])}: {e['decision']['reason']}"}
                           for e in verdict["events"]]}
