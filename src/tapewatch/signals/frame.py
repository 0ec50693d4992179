"""The inputs of every factor, read from the store and put on one bar grid without look-ahead.

The grid is the open times t of consecutive bars of ``interval`` (UTC, epoch-aligned) from the
first to the last spot or perp bar in the range, leaving out bars not closed yet (t + interval >
now). A row stamped t only holds data available at the bar close t + interval:

- bar series (spot, perp, the two premium venues): the bar [t, t + interval) itself, built by
  ``Store.bars`` from trades or finer bars; a bar missing from the store stays null.
- point-in-time records (book_depth, open_interest, funding): the last record with
  ``ts < t + interval`` (strictly before the close), null when older than the factor's ``max_age``.
- USDT/USD: the close of the last stored bar that closed by t + interval, within ``usdt_max_age``.

Only the inputs the factors declare (``signals/registry.py``) are read. Rows before the requested
start are loaded as warm-up, as many bars as the factors' declared windows and the detector's
cool-down need (``registry.warmup_bars``), and cut off by the caller. Missing inputs give null
columns and a note saying why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl

from tapewatch.config import Config, MarketRef, duration_ns
from tapewatch.errors import TapewatchError
from tapewatch.signals.inputs import BAR_COLS, BY_KEY
from tapewatch.signals.registry import FACTORS, used_by, used_inputs, warmup_bars
from tapewatch.signals.spec import FactorSpec
from tapewatch.signals.spec import band_tag as tag
from tapewatch.store import Store
from tapewatch.timeutil import bar_opens, interval_ns


@dataclass(frozen=True)
class InputStatus:
    """One input over the requested range: where it was looked for, how many bars it covers."""

    key: str
    label: str
    source: str
    used_by: str
    bars: int
    total: int
    note: str = ""
    unsplit: int = 0  # bars present without the taker buy/sell split (spot and perp bars only)

    @property
    def status(self) -> str:
        """``present`` (every bar), ``partial`` or ``missing`` (no bar)."""
        if self.bars == 0:
            return "missing"
        return "present" if self.bars >= self.total else "partial"


@dataclass(frozen=True)
class Aligned:
    """Inputs on the grid: ``frame`` has ``ts`` (bar open, UTC ns, Int64) and the input columns,
    warm-up rows included; ``start`` is the first requested bar's open (ns); ``factors``: the
    factors whose declared inputs were read (and that are computed over it)."""

    frame: pl.DataFrame
    base: str
    interval: str
    step: int
    start: int
    sources: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    factors: tuple[FactorSpec, ...] = FACTORS


def input_columns(cfg: Config, factors: tuple[FactorSpec, ...] = FACTORS) -> dict[str, pl.DataType]:
    """Every column :func:`load` puts on the grid besides ``ts``, with its dtype (all nullable):
    the columns of each input ``factors`` declare."""
    return {name: dtype for i in used_inputs(factors) for name, dtype in i.dtypes(cfg).items()}


def load(
    store: Store,
    base: str,
    interval: str,
    cfg: Config,
    start: int | None = None,
    end: int | None = None,
    now: int | None = None,
    factors: tuple[FactorSpec, ...] = FACTORS,
) -> Aligned:
    """Read the inputs ``factors`` declare (default: every registered factor) of ``base`` (e.g.
    ``BTC``) for bars in [start, end) plus their warm-up (:func:`~tapewatch.signals.registry.warmup_bars`).

    ``start``/``end``/``now`` are UTC ns; ``now`` (default: the clock) drops bars not closed yet.
    Raises TapewatchError when the store has neither spot nor perp bars in the range.
    """
    step = interval_ns(interval)
    keys = {i.key for i in used_inputs(factors)}
    first = None if start is None else start - start % step
    lo = None if first is None else first - warmup_bars(cfg, step, factors) * step
    hi = None if end is None else end + (-end) % step
    now = time.time_ns() if now is None else now
    sources: dict[str, str] = {}
    notes: dict[str, str] = {}

    series: dict[str, pl.DataFrame | None] = {}
    for key, ref in (("spot", cfg.markets.spot), ("perp", cfg.markets.perp),
                     ("premium_a", cfg.premium.a), ("premium_b", cfg.premium.b)):
        if key not in keys:
            continue
        sources[key] = f"{ref.describe(base)} {interval} bars"
        same = next((k for k, r in (("spot", cfg.markets.spot), ("perp", cfg.markets.perp)) if r == ref and k in series), None)
        if same is not None:
            series[key] = series[same]
            if same in notes:
                notes[key] = notes[same]
            continue
        series[key], why = _bar_series(store, ref.exchange, ref.market, ref.symbol(base), interval, lo, hi)
        if why:
            notes[key] = why

    present = [s for k, s in series.items() if k in ("spot", "perp") and s is not None and not s.is_empty()]
    if not present:
        raise TapewatchError(
            f"no spot or perp bars for {base} in the requested range ({sources['spot']}: {notes.get('spot', '-')}; "
            f"{sources['perp']}: {notes.get('perp', '-')}); import trades or klines first"
        )
    g0 = min(int(s.get_column("ts").min()) for s in present)
    g1 = max(int(s.get_column("ts").max()) for s in present)
    g1 = min(g1, (now - step) - (now - step) % step)
    if hi is not None:
        g1 = min(g1, hi - step)
    grid = pl.DataFrame({"ts": pl.Series(bar_opens(g0, g1, step), dtype=pl.Int64)})

    frame = grid
    for key in series:
        s = series[key]
        cols = BAR_COLS if key in ("spot", "perp") else ("close",)
        if s is None:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(f"{key}_{c}") for c in cols)
        else:
            frame = frame.join(s.select("ts", *[pl.col(c).alias(f"{key}_{c}") for c in cols]), on="ts", how="left")

    if "usdt_usd" in keys:
        frame = _usdt(frame, store, cfg, interval, step, lo, hi, sources, notes)
    if "book" in keys:
        frame = _book(frame, store, base, cfg, step, lo, hi, sources, notes)
    for key, ref, cols, age in (
        ("oi", cfg.oi.source, {"oi": "oi", "oi_value": "oi_value"}, cfg.oi.max_age),
        ("funding", cfg.funding.source, {"rate": "funding_rate"}, cfg.funding.max_age),
    ):
        if key not in keys:
            continue
        kind = BY_KEY[key].kind
        sources[key] = f"{ref.describe(base)} {kind} records"
        rec = _records(store, kind, ref, base, lo, hi, duration_ns(age, step))
        if rec.is_empty():
            notes[key] = f"no {kind} records for {ref.describe(base)} in the range"
        aligned = _asof(grid, rec.select("ts", *cols), step, duration_ns(age, step), strict=True)
        frame = frame.with_columns(aligned.get_column(c).alias(out) for c, out in cols.items())
        if key == "funding":
            frame = frame.with_columns(aligned.get_column("__known").alias("funding_time"))
    start_ns = first if first is not None else g0
    return Aligned(frame, base.upper(), interval, step, start_ns, sources, notes, factors)


def input_status(frame: pl.DataFrame, aligned: Aligned) -> tuple[InputStatus, ...]:
    """Coverage of each input over ``frame`` (the requested range), with why it is missing."""
    total = frame.height
    out = []
    for spec in used_inputs(aligned.factors):
        key = spec.key
        bars = int(frame.get_column(spec.present).is_not_null().sum()) if total else 0
        note = aligned.notes.get(key, "")
        unsplit = 0
        if key in ("spot", "perp") and bars:
            split = int(frame.get_column(f"{key}_taker_buy_volume").is_not_null().sum())
            unsplit = bars - split
            if split == 0:
                note = "no taker buy/sell split in these bars: taker flow unavailable"
            elif split < bars:
                note = (f"taker buy/sell split missing in {unsplit:,} of {bars:,} bars (no stored source "
                        "with the split covers them): taker flow unavailable there")
        if not note and bars == 0 and total:
            note = "none within the range (or all too old at the bar closes)"
        out.append(InputStatus(key, spec.label, aligned.sources.get(key, "-"), used_by(key, aligned.factors), bars, total, note, unsplit))
    return tuple(out)


# -- readers ------------------------------------------------------------------------------------
def _bar_series(
    store: Store, exchange: str, market: str, symbol: str, interval: str, lo: int | None, hi: int | None
) -> tuple[pl.DataFrame | None, str]:
    """Bars of one market at ``interval`` (ts Int64), or None and the reason."""
    try:
        bars = store.bars(exchange, market, symbol, interval, lo, hi)
    except TapewatchError as exc:
        return None, str(exc).split(";")[0]
    if bars.is_empty():
        return None, f"no bars for {exchange} {market} {symbol} in the range"
    out = bars.select(pl.col("ts").cast(pl.Int64), *[pl.col(c).cast(pl.Float64).fill_nan(None) for c in BAR_COLS])
    return out.unique("ts", keep="last").sort("ts"), ""


def _records(
    store: Store, kind: str, ref: MarketRef | None, base: str, lo: int | None, hi: int | None, max_age: int,
    symbol: str | None = None,
) -> pl.DataFrame:
    """Point-in-time records read from ``lo - max_age`` (so the first bars have their as-of row)."""
    sym = symbol if symbol is not None else ref.symbol(base)  # type: ignore[union-attr]
    exchange = ref.exchange if ref is not None else None
    market = ref.market if ref is not None else None
    df = read_records(store, kind, exchange, market, sym, None if lo is None else lo - max_age, hi)
    floats = [c for c, t in df.schema.items() if t == pl.Float64]
    return df.with_columns(pl.col(floats).fill_nan(None))


def read_records(
    store: Store, kind: str, exchange: str | None, market: str | None, symbol: str | None,
    start: int | None, end: int | None,
) -> pl.DataFrame:
    """Rows of one kind as ``Store.read`` gives them (start inclusive, end exclusive, UTC ns), with
    ``ts`` as Int64 ns, sorted by ts."""
    df = store.read(kind, exchange, market, symbol, start, end).with_columns(pl.col("ts").dt.epoch("ns"))
    return df.sort("ts", maintain_order=True)


def _asof(grid: pl.DataFrame, rec: pl.DataFrame, step: int, max_age: int, strict: bool, known: str = "ts") -> pl.DataFrame:
    """For each grid bar t, the last record known before its close t + step, at most ``max_age`` old.

    ``strict``: known time < close (point-in-time records); else <= close (bar closes).
    Returns one row per grid bar: the record's columns (null when none or stale) and ``__known``.
    """
    cols = [c for c in rec.columns if c not in ("ts", known)]
    r = (
        rec.select(pl.col(known).cast(pl.Int64).alias("__known"), *cols)
        .drop_nulls("__known")
        .unique("__known", keep="last")
        .sort("__known")
        .with_columns(pl.col("__known").alias("__key"))
    )
    g = grid.select("ts", (pl.col("ts") + step - (1 if strict else 0)).alias("__key")).sort("__key")
    j = g.join_asof(r, on="__key", strategy="backward")
    fresh = (pl.col("ts") + step - pl.col("__known")) <= max_age
    return j.select(
        "ts",
        *[pl.when(fresh).then(pl.col(c)).alias(c) for c in cols],
        pl.when(fresh).then(pl.col("__known")).alias("__known"),
    )


def _usdt(
    frame: pl.DataFrame, store: Store, cfg: Config, interval: str, step: int, lo: int | None, hi: int | None,
    sources: dict[str, str], notes: dict[str, str],
) -> pl.DataFrame:
    """``usdt_usd``: the first configured USDT/USD series with a fresh close at each bar close."""
    age = duration_ns(cfg.premium.usdt_max_age, step)
    sources["usdt_usd"] = ", then ".join(r.describe() for r in cfg.premium.usdt_usd) or "(none configured)"
    found = []
    for ref in cfg.premium.usdt_usd:
        bars = read_records(store, "bar", ref.exchange, ref.market, ref.symbol, None if lo is None else lo - age, hi)
        if bars.is_empty():
            series, _ = _bar_series(store, ref.exchange, ref.market, ref.symbol, interval, lo, hi)
            if series is None:
                continue
            rec = series.select((pl.col("ts") + step).alias("close_time"), pl.col("close"))
        else:
            ivs = {iv: interval_ns(iv) for iv in bars.get_column("interval").unique().to_list()}
            rec = bars.select(
                (pl.col("ts") + pl.col("interval").replace_strict(ivs, return_dtype=pl.Int64)).alias(
                    "close_time"
                ),
                pl.col("close").fill_nan(None),
            )
        found.append(_asof(frame.select("ts"), rec, step, age, strict=False, known="close_time").get_column("close"))
    if not found:
        notes["usdt_usd"] = "no USDT/USD bars stored (adjusted premium unavailable)"
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("usdt_usd"))
    return frame.with_columns(pl.coalesce(found).alias("usdt_usd"))


def _book(
    frame: pl.DataFrame, store: Store, base: str, cfg: Config, step: int, lo: int | None, hi: int | None,
    sources: dict[str, str], notes: dict[str, str],
) -> pl.DataFrame:
    """Book depth per band, bar by bar from the first source with a fresh record (``book_source``)."""
    bc = cfg.book
    age = duration_ns(bc.max_age, step)
    names = [c for c in BY_KEY["book"].dtypes(cfg) if c != "book_source"]  # depth per band, and how far it is known
    sources["book"] = ", then ".join(f"{r.describe(base)} book_depth ({bc.reference})" for r in bc.sources)
    aligned = []
    grid = frame.select("ts")
    for ref in bc.sources:
        rec = _records(store, "book_depth", ref, base, lo, hi, age)
        rec = rec.filter(pl.col("reference") == bc.reference)
        if rec.is_empty():
            continue
        # the snapshot each bar uses (last before its close, fresh), then only those rows are pivoted
        chosen = _asof(grid, rec.select("ts").unique(), step, age, strict=True).select("ts", "__known")
        needed = rec.filter(pl.col("ts").is_in(chosen.get_column("__known").drop_nulls().unique().implode()))
        aggs = [
            pl.col(f"{side}_{m}").filter(pl.col("band_pct") == b).last().alias(f"book_{side}_{m}_{tag(b)}")
            for b in bc.bands for side in ("bid", "ask") for m in ("amount", "notional")
        ] + [pl.col(f"{side}_known_pct").last().alias(f"book_{side}_known_pct") for side in ("bid", "ask")]
        wide = needed.group_by("ts").agg(aggs).rename({"ts": "__known"})
        a = chosen.join(wide, on="__known", how="left").sort("ts")
        aligned.append((ref.describe(base), a))
    if not aligned:
        notes["book"] = "no book_depth records" + f" (reference {bc.reference})" + " for any configured source"
        return frame.with_columns(
            *[pl.lit(None, dtype=pl.Float64).alias(n) for n in names], pl.lit(None, dtype=pl.String).alias("book_source")
        )
    for i, (label, a) in enumerate(aligned):
        frame = frame.with_columns(
            *[a.get_column(n).alias(f"{n}__{i}") for n in names],
            pl.when(a.get_column("__known").is_not_null()).then(pl.lit(label)).alias(f"book_source__{i}"),
        )
    cols = []
    for n in [*names, "book_source"]:
        expr: pl.Expr = pl.lit(None, dtype=pl.String if n == "book_source" else pl.Float64)
        for i in reversed(range(len(aligned))):
            expr = pl.when(pl.col(f"book_source__{i}").is_not_null()).then(pl.col(f"{n}__{i}")).otherwise(expr)
        cols.append(expr.alias(n))
    return frame.with_columns(cols).drop([f"{n}__{i}" for i in range(len(aligned)) for n in [*names, "book_source"]])
