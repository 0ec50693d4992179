"""From the store and the detector to the study's plain inputs.

``prepare(store, "BTC", "5m", start, end, cfg, grid)`` computes the detector's signals
(``tapewatch.signals.frame.load`` once per distinct set of inputs, then
``tapewatch.signals.compute.compute_frame`` per parameter set) and returns:

* the price bars the labels are measured on: the signal frame's ``close`` (bar by bar from the
  first market of ``markets.price`` that has a bar) with that same market's high and low;
* an event function: parameter set → the ``distribution`` / ``accumulation`` columns (null =
  unknown counts as not fired), on those bars (factors are recomputed only when a non-detector
  key changes from one set to the next; a grid that varies ``detector.*`` keys last is cheap);
* the cool-down of each set (``detector.cooldown`` in whole bars, as the detector counts it);
* the factor panels for the report (from the base configuration's frame).

Parameter sets are dotted configuration keys (``{"premium.threshold_pct": 0.1}``) applied over
the base configuration and validated like a config file. The study period is the bars with open
time in ``[start, end)``; earlier stored bars are read as warm-up for the rolling windows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tapewatch import detector
from tapewatch.config import Config, ConfigError, config_from_dict, inert_settings, to_bars
from tapewatch.errors import TapewatchError
from tapewatch.report import FactorPanel
from tapewatch.signals.compute import compute_frame
from tapewatch.signals.frame import Aligned, InputStatus, input_status, load
from tapewatch.signals.registry import FACTORS, used_inputs, warmup_bars
from tapewatch.signals.spec import FactorSpec, band_tag, config_value
from tapewatch.store import Store
from tapewatch.study.forward import PriceBars
from tapewatch.study.run import Study, TrackRecords, run_study, track_record
from tapewatch.study.settings import StudySettings
from tapewatch.study.sweep import EventFn, Params
from tapewatch.signals.base import Context
from tapewatch.timeutil import interval_ns, ns_to_iso

SIDE_COLUMNS = ("distribution", "accumulation")
# Configuration keys that change what `signals.frame.load` reads from the store (as the inputs
# declare them); a grid that sweeps one of them reloads the inputs, any other key reuses one load.
INPUT_KEYS = tuple(k for i in used_inputs() for k in i.config)


def _plain(x: Any) -> Any:
    """A config value as TOML would give it (dicts and lists)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def config_with(cfg: Config, params: Params, source: str = "grid") -> Config:
    """``cfg`` with the dotted keys of ``params`` replaced, validated (ConfigError names the key)."""
    data = _plain(cfg)
    for key, value in params.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"{source}: unknown config key {key!r}")
            node = node[p]
        if leaf not in node:
            raise ConfigError(f"{source}: unknown config key {key!r}")
        node[leaf] = value
    return config_from_dict(data, source=source)


def _input_key(cfg: Config) -> str:
    plain = _plain(cfg)
    picked = {}
    for key in INPUT_KEYS:
        node: Any = plain
        for part in key.split("."):
            node = node[part]
        picked[key] = node
    return json.dumps(picked, sort_keys=True)


@dataclass(frozen=True)
class DetectorStudy:
    """The study's inputs computed from the store (see the module docstring)."""

    base: str
    interval: str
    bars: PriceBars
    event_fn: EventFn
    configs: dict[str, Config]  # canonical params JSON → configuration
    frame: pl.DataFrame  # the base configuration's signal frame on ``bars`` (ts Int64 ns)
    factors: tuple[FactorPanel, ...]
    missing: tuple[str, ...]  # inputs with no data in the range: "label (source): why"
    unknown: dict[str, int]  # per side: bars where the detector could not tell (base configuration)
    blocked: tuple[str, ...] = ()  # required factors unavailable on every bar, each with why
    warnings: tuple[str, ...] = ()  # sweep sets with a setting that has no effect at this interval

    def cooldown_ns(self, params: Params) -> int:
        """The cool-down of a parameter set in ns (``detector.cooldown`` in whole bars)."""
        step = self.bars.step_ns
        return to_bars(self.configs[_canon(params)].detector.cooldown, step) * step


def _canon(params: Params) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _price_hl(store: Store, cfg: Config, base: str, interval: str, frame: pl.DataFrame) -> pl.DataFrame:
    """``ts, close, high, low``: the high and low of the market that gave each bar's close."""
    ts = frame.get_column("ts")
    lo, hi = int(ts.min()), int(ts.max()) + interval_ns(interval)
    out = frame.select("ts", "close", "price_source").with_columns(
        pl.lit(None, dtype=pl.Float64).alias("high"), pl.lit(None, dtype=pl.Float64).alias("low"))
    for name in cfg.markets.price:
        ref = getattr(cfg.markets, name)
        try:
            bars = store.bars(ref.exchange, ref.market, ref.symbol(base), interval, lo, hi)
        except TapewatchError:
            continue
        hl = bars.select(pl.col("ts").cast(pl.Int64), pl.col("high").alias("__h"), pl.col("low").alias("__l"))
        out = out.join(hl.unique("ts", keep="last"), on="ts", how="left").with_columns(
            pl.when(pl.col("price_source") == name).then(pl.col("__h")).otherwise(pl.col("high")).alias("high"),
            pl.when(pl.col("price_source") == name).then(pl.col("__l")).otherwise(pl.col("low")).alias("low"),
        ).drop("__h", "__l")
    return out.drop("price_source")


def factor_panels(
    frame: pl.DataFrame, cfg: Config, why: dict[str, str] | None = None, factors: Sequence[FactorSpec] = FACTORS,
) -> tuple[FactorPanel, ...]:
    """One report panel per factor that declares one, in registry order, from a signal frame
    aligned with the study bars; ``why``: per input key (``spot``, ``premium_a``, ``book``…) why it
    is missing, shown on a panel with no value (the first of the factor's inputs that has one)."""
    why = why or {}
    band = band_tag(cfg.book.band)

    def col(name: str) -> np.ndarray:
        if name not in frame.columns:
            return np.full(frame.height, np.nan)
        return frame.get_column(name).cast(pl.Float64).fill_null(float("nan")).to_numpy()

    panels = []
    for f in factors:
        p = f.panel
        if p is None:
            continue
        series = {label.format(cfg=cfg, band=band): col(c.format(cfg=cfg, band=band)) for label, c in p.series}
        lines = tuple(float(config_value(cfg, k)) for k in p.lines)
        note = next((why[k] for k in f.inputs if why.get(k)), p.note)
        panels.append(FactorPanel(p.title.format(cfg=cfg, band=band), series, p.unit, lines, note))
    return tuple(panels)


def prepare(
    store: Store,
    symbol: str,
    interval: str,
    start: int | None,
    end: int | None,
    cfg: Config,
    grid: Sequence[Params] = ({},),
) -> DetectorStudy:
    """Signals, price bars and an event function for the study (times UTC ns, ``end`` exclusive)."""
    base = symbol.split("/")[0].split("-")[0].upper()
    step = interval_ns(interval)
    configs = {_canon(p): config_with(cfg, p) for p in grid}
    warnings = _inert(configs, interval, step)
    loads: dict[str, Aligned] = {}
    for key in dict.fromkeys(_input_key(c) for c in configs.values()):
        group = [c for c in configs.values() if _input_key(c) == key]
        widest = max(group, key=lambda c: warmup_bars(c, step))
        loads[key] = load(store, base, interval, widest, start, end)

    last: dict[str, pl.DataFrame] = {}  # the factor frame of the previous set, by everything but [detector]

    def frame_of(c: Config) -> pl.DataFrame:
        aligned = loads[_input_key(c)]
        key = json.dumps({k: v for k, v in _plain(c).items() if k != "detector"}, sort_keys=True)
        if key in last:  # only detector keys changed: recombine the factor conditions
            return detector.combine(last[key], c)
        full, _ = compute_frame(aligned, c)
        full = full.filter(pl.col("ts") >= aligned.start)
        last.clear()
        last[key] = full
        return full

    base_frame = frame_of(cfg)
    if end is not None:
        base_frame = base_frame.filter(pl.col("ts") < end)
    priced = _price_hl(store, cfg, base, interval, base_frame).filter(pl.col("close").is_not_null())
    if priced.is_empty():
        raise TapewatchError(f"no {interval} bars with a close for {base} in the requested range")
    bars = PriceBars.from_frame(priced, interval)
    keep = priced.select("ts")
    frame = keep.join(base_frame, on="ts", how="left")

    def event_fn(params: Params) -> dict[str, np.ndarray]:
        c = configs[_canon(params)]
        f = frame if c == cfg else keep.join(frame_of(c).select("ts", *SIDE_COLUMNS), on="ts", how="left")
        return {s: f.get_column(s).fill_null(False).to_numpy() for s in SIDE_COLUMNS}

    statuses = input_status(base_frame, loads[_input_key(cfg)])
    missing = tuple(f"{i.label} ({i.source}): {i.note}" for i in statuses if i.status == "missing" or i.unsplit)
    unknown = {s: int(frame.get_column(s).is_null().sum()) for s in SIDE_COLUMNS}
    why = {i.key: f"{i.label}: {i.note}" if i.note else f"{i.label}: none in the period" for i in statuses if i.status == "missing"}
    return DetectorStudy(base, interval, bars, event_fn, configs, frame, factor_panels(frame, cfg, why), missing, unknown,
                         never_available(frame, cfg, statuses), warnings)


def never_available(frame: pl.DataFrame, cfg: Config, statuses: Sequence[InputStatus]) -> tuple[str, ...]:
    """The required factors whose condition is unavailable on every bar of ``frame``, each as
    ``"flow (spot bars: no taker buy/sell split in these bars…)"`` from its inputs' notes."""
    notes = {i.key: f"{i.label}: {i.note}" if i.note else f"{i.label} on {i.bars:,} of {i.total:,} bars"
             for i in statuses}
    if cfg.premium.basis == "raw":
        notes.pop("usdt_usd", None)
    out = []
    for f in cfg.detector.required:
        col = detector.condition_column(f, "distribution")
        if frame.height and frame.get_column(col).null_count() == frame.height:
            why = "; ".join(notes[k] for k in detector.FACTORS[f].inputs if k in notes)
            out.append(f"{f} ({why})")
    return tuple(out)


def explain_events(ds: DetectorStudy, cfg: Config, events: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """Per side, one line per event (``events``: positions in the study bars) for the report's
    hover: when, the close, the detector's decision and each factor's reason at that bar."""
    ctx = Context(cfg, ds.base, ds.interval, ds.bars.step_ns, int(ds.bars.ts[0]) if len(ds.bars.ts) else 0)
    out: dict[str, list[str]] = {}
    for side, pos in events.items():
        lines = []
        for i in np.asarray(pos, dtype=np.int64):
            d = detector.evaluate(ds.frame.row(int(i), named=True), ctx, side)  # type: ignore[arg-type]
            reasons = "<br>".join(f"{r.factor} {r.state.value}: {r.why}" for r in d.readings)
            lines.append(f"<b>{side}</b> {ns_to_iso(int(ds.bars.ts[i]))} UTC, close {ds.bars.close[i]:,.2f}<br>"
                         f"{d.reason}<br>{reasons}")
        out[side] = lines
    return out


def _inert(configs: dict[str, Config], interval: str, step: int) -> tuple[str, ...]:
    """Settings without effect at ``interval``: an error for a single configuration, one warning per
    parameter set of a sweep (sets that differ only in an inert key are the same detector)."""
    found = {key: inert_settings(c, interval, step) for key, c in configs.items()}
    if len(configs) == 1:
        (problems,) = found.values()
        if problems:
            raise ConfigError(problems[0])
        return ()
    return tuple(f"parameter set {key}: {p}" for key, problems in found.items() for p in problems)


def track_records(store: Store, symbol: str, interval: str, cfg: Config, settings: StudySettings,
                  end: int | None = None) -> TrackRecords:
    """This configuration's point-in-time records on the stored history before ``end`` — what
    ``tapewatch scan`` shows next to each event (``records.at(side, event_ts)``: only events and
    base-rate bars whose outcome was known before that event)."""
    ds = prepare(store, symbol, interval, None, end, cfg)
    fired = ds.event_fn({})
    return track_record(ds.bars, fired, settings, ds.cooldown_ns({}))


def study_detector(ds: DetectorStudy, cfg: Config, settings: StudySettings, grid: Sequence[Params],
                   seed: int | None, config: str, sweep: Path | None = None) -> Study:
    """The event study of prepared detector inputs, as ``backtest``, the demo and the dashboard
    run it: ``run_study`` over ``grid`` with the result's ``inputs`` recording where they came
    from (``config``: the file used, or "defaults"; ``sweep``: the grid file), and the verdict
    saying, per side, on how many bars the detector could not tell."""
    inputs = {"symbol": ds.base, "config": config, "grid": str(sweep) if sweep else None,
              "detector": detector.policy_text(cfg),
              "missing_inputs": list(ds.missing), "detector_unknown_bars": ds.unknown,
              "inert_settings": list(ds.warnings)}
    study = run_study(ds.bars, ds.event_fn, settings, ds.cooldown_ns, grid, seed, inputs)
    extra = tuple(
        f"{side}: the detector could not tell on {n:,} of {len(ds.bars):,} bars (a required input is missing "
        "there; see missing inputs); those bars count as not fired"
        for side, n in ds.unknown.items() if n
    )
    if not extra:
        return study
    return dataclasses.replace(study, result=dataclasses.replace(study.result, verdict=study.result.verdict + extra))
