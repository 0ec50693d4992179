"""No look-ahead: changing, removing or adding data stamped at or after a time c leaves every
column (and every event onset) of each bar that closed by c exactly as it was."""

from __future__ import annotations

import random
import tempfile
from unittest import mock
from functools import lru_cache

import polars as pl
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _signals_data import MIN, market, write_market
from tapewatch.config import Config, config_from_dict
from tapewatch.signals.compute import Signals, compute_signals
from tapewatch.store import Store

STEP = 5 * MIN
CONFIGS = {
    "small-windows": config_from_dict(
        {
            "flow": {"window": "1h", "rally_pct": 0.1, "measure": "z", "z_history": "3h", "z_min_history": "1h"},
            "oi": {"window": "20m", "rise_pct": 0.1},
            "premium": {"history": "3h", "min_history": "30m", "threshold_pct": 0.01, "basis": "usdt_adjusted"},
            "book": {"sustain": 2, "threshold": 0.05},
            "detector": {"cooldown": "30m", "unavailable": "skip"},
        }
    ),
    "defaults": Config(),
}


@lru_cache(maxsize=1)
def _data() -> dict:
    m = market(first="2022-01-20 12:00:00", minutes=30 * 60, seed=11)
    rng = random.Random(5)
    # spot as trades (bars are built from them), 3 per minute around each 1-minute kline close
    spot = m["records"]["bar"][1]
    trades = []
    for ts, c, v in spot.select("ts", "close", "volume").iter_rows():
        for k in range(3):
            trades.append((ts + k * 20_000_000_000 + rng.randint(0, 19_999_999_999), c * (1 + rng.gauss(0, 3e-4)),
                           v / 3, rng.choice(["buy", "sell"])))
    trade_df = pl.DataFrame(
        {"exchange": "binance", "market": "spot", "symbol": "BTC/USDT", "ts": [t[0] for t in trades],
         "price": [t[1] for t in trades], "amount": [t[2] for t in trades], "taker_side": [t[3] for t in trades],
         "trade_id": [str(i) for i in range(len(trades))]}
    )
    records = {k: list(v) for k, v in m["records"].items()}
    records["bar"] = [records["bar"][0], records["bar"][2], records["bar"][3]]  # perp, coinbase, kraken
    records["trade"] = [trade_df]
    return records


def _all_ts() -> tuple[int, int]:
    ts = pl.concat([df.select(pl.col("ts").cast(pl.Int64)) for dfs in _data().values() for df in dfs])
    return int(ts.min().item()), int(ts.max().item())


def _signals(records: dict, cfg: Config, start: int | None) -> Signals:
    # durability is not under test here: skip the store's fsyncs to keep the property test fast
    with tempfile.TemporaryDirectory() as d, mock.patch("os.fsync"):
        store = Store(d)
        write_market(store, records)
        return compute_signals(store, "BTC", "5m", start=start, config=cfg)


@lru_cache(maxsize=8)
def _original(name: str, start: int | None) -> Signals:
    return _signals(_data(), CONFIGS[name], start)


def _change_after(records: dict, cut: int, mode: str, seed: int) -> dict:
    rng = random.Random(seed)
    out: dict[str, list[pl.DataFrame]] = {}
    for kind, frames in records.items():
        out[kind] = []
        for df in frames:
            ts = pl.col("ts").cast(pl.Int64)
            before, after = df.filter(ts < cut), df.filter(ts >= cut)
            if mode == "truncate" or after.is_empty():
                out[kind].append(before)
                continue
            n = after.height
            keep = pl.Series([rng.random() > 0.2 for _ in range(n)])
            scaled = after.with_columns(
                [pl.col(c) * pl.Series([rng.uniform(0.5, 1.5) for _ in range(n)])
                 for c, t in after.schema.items() if t == pl.Float64 and c != "band_pct"]
            )
            if "taker_side" in after.columns:
                scaled = scaled.with_columns(pl.Series("taker_side", [rng.choice(["buy", "sell"]) for _ in range(n)]))
            if mode == "perturb":
                after = scaled.filter(keep)
            else:  # "insert": new rows at new times after the cut, on top of the old ones
                shift = pl.Series([rng.randint(1, 4 * MIN) for _ in range(n)])
                after = pl.concat([after, scaled.with_columns(pl.col("ts").cast(pl.Int64) + shift)], how="vertical_relaxed")
                if "trade_id" in after.columns:
                    after = after.with_columns(pl.Series("trade_id", [f"x{i}" for i in range(after.height)]))
            out[kind].append(pl.concat([before, after.cast(before.schema)], how="vertical"))
    return out


def _closed_by(frame: pl.DataFrame, cut: int) -> pl.DataFrame:
    return frame.filter(pl.col("ts").cast(pl.Int64) + STEP <= cut)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frac=st.floats(0.05, 0.98),
    offset=st.integers(0, STEP - 1),
    mode=st.sampled_from(["perturb", "truncate", "insert"]),
    seed=st.integers(0, 2**16),
    name=st.sampled_from(sorted(CONFIGS)),
    with_start=st.booleans(),
)
def test_data_after_c_never_changes_bars_closed_by_c(frac, offset, mode, seed, name, with_start):
    lo, hi = _all_ts()
    cut = lo + int((hi - lo) * frac) // STEP * STEP + offset  # any instant, on or off a bar boundary
    start = lo + 6 * 60 * MIN if with_start else None
    assume(start is None or cut > start + STEP)  # otherwise no requested bar closes by c
    original = _original(name, start)
    changed = _signals(_change_after(_data(), cut, mode, seed), CONFIGS[name], start)
    a, b = _closed_by(original.frame, cut), _closed_by(changed.frame, cut)
    assert a.height > 0 or cut < lo + 7 * 60 * MIN
    assert a.columns == b.columns
    assert _same(a, b), _first_difference(a, b)
    onsets = [(e.side, e.ts, e.close, e.decision) for e in original.events if e.ts + STEP <= cut]
    assert onsets == [(e.side, e.ts, e.close, e.decision) for e in changed.events if e.ts + STEP <= cut]


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Equal frames: every non-float column exactly (conditions, sources, times); float columns
    null in the same places, values to 1e-9 × max(|x|, 1) — a bar's sum may be added up in another
    order when the store holds other rows (float addition is not associative); look-ahead is not
    that small."""
    if a.height != b.height:
        return False
    for c in a.columns:
        x, y = a.get_column(c), b.get_column(c)
        if x.dtype.is_float():
            if not x.is_null().equals(y.is_null()):
                return False
            both = pl.DataFrame({"x": x, "y": y}).drop_nulls()
            if not ((both["x"] - both["y"]).abs() <= 1e-9 * both["x"].abs().clip(lower_bound=1.0)).all():
                return False
        elif not x.equals(y):
            return False
    return True


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> str:
    if a.height != b.height:
        return f"{a.height} rows before the cut, {b.height} after the change"
    for c in a.columns:
        if not a.get_column(c).equals(b.get_column(c)):
            mask = a.get_column(c).ne_missing(b.get_column(c))
            i = int(mask.arg_true()[0])
            return f"column {c} differs first at {a.get_column('ts')[i]}: {a.get_column(c)[i]!r} vs {b.get_column(c)[i]!r}"
    return "?"


def test_the_changes_do_reach_the_bars_after_c():
    """Guard against a vacuous property: the same change does alter bars closing after c."""
    lo, hi = _all_ts()
    cut = lo + (hi - lo) // 2 // STEP * STEP
    original = _original("small-windows", None)
    changed = _signals(_change_after(_data(), cut, "perturb", 1), CONFIGS["small-windows"], None)
    after_a = original.frame.filter(pl.col("ts").cast(pl.Int64) >= cut)
    after_b = changed.frame.filter(pl.col("ts").cast(pl.Int64) >= cut)
    for col in ("close", "spot_net_taker", "premium_index", "book_ratio_2", "oi", "premium_z", "spot_flow_z"):
        assert not after_a.get_column(col).equals(after_b.get_column(col)), col
