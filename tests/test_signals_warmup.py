"""The warm-up derived from the factors' declared windows is enough: on real bars, every signal at a
bar t (and every event from t on) is the same whether the requested range starts at t or days
earlier. Only the CVDs differ, by design (they start at the requested start), and only by a constant.

Real data (tests/data): freqtrade's Binance BTC/USDT spot and perp 5m bars, its Coinbase BTC-USD
15m bars and Binance funding records (computed at 15m), and the Kaggle Binance BTC/USDT 4h bars,
which carry the taker buy volume (computed at 4h).
"""

from __future__ import annotations

import csv
import gzip
import math

import polars as pl
import pytest

from _signals_data import REAL_FILES, import_real
from conftest import SHARED
from tapewatch.config import Config, config_from_dict
from tapewatch.signals.compute import Signals, compute_frame, compute_signals
from tapewatch.signals.frame import Aligned, load
from tapewatch.signals.registry import warmup_bars
from tapewatch.store import Store
from tapewatch.timeutil import interval_ns, parse_time

NOW = parse_time("2027-01-01")
CVDS = ("spot_cvd", "perp_cvd")
CASES = {
    # interval, config, first stored bar, the later start t, end
    "15m premium + funding": (
        "15m",
        {
            "flow": {"window": "1h", "measure": "z", "z_history": "1d", "z_min_history": "6h"},
            "premium": {"history": "2d", "min_history": "12h", "smooth": "45m", "threshold_pct": 0.02},
            "oi": {"window": "1h"},
            "detector": {"required": ["premium"], "when_present": ["flow", "book", "oi"], "cooldown": "2h"},
        },
        "2024-12-31", "2025-01-04", "2025-01-10 09:45",
    ),
    "4h taker flow": (
        "4h",
        {
            "flow": {"window": "1d", "rally_pct": 2.0, "measure": "z", "z_history": "20d", "z_min_history": "5d",
                     "threshold": 0.5},
            "oi": {"window": "8h"},
            "detector": {"required": ["flow"], "when_present": [], "unavailable": "skip", "cooldown": "1d"},
        },
        "2025-06-01", "2025-07-15", "2025-09-30",
    ),
}


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("warmup") / "store")
    import_real(store)
    return store


def _run(store: Store, case: str, start: str) -> tuple[Signals, Config]:
    interval, raw, _, _, end = CASES[case]
    cfg = config_from_dict(raw)
    return compute_signals(store, "BTC", interval, parse_time(start), parse_time(end), cfg, NOW), cfg


def _same(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b  # bit for bit: rolling statistics depend on their window only (signals/window.py)
    return a == b


def _differences(late: pl.DataFrame, early: pl.DataFrame, skip: tuple[str, ...] = CVDS) -> dict[str, int]:
    """Per column (but ``skip``), the bars where ``late`` and ``early`` disagree."""
    assert late.columns == early.columns and late.get_column("ts").to_list() == early.get_column("ts").to_list()
    out = {}
    for c in late.columns:
        if c in skip:
            continue
        n = sum(not _same(x, y) for x, y in zip(late.get_column(c).to_list(), early.get_column(c).to_list()))
        if n:
            out[c] = n
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_signals_at_t_do_not_depend_on_where_the_range_starts(real_store: Store, case: str) -> None:
    interval, _, first, t_text, _ = CASES[case]
    t = parse_time(t_text)
    late, cfg = _run(real_store, case, t_text)
    early, _ = _run(real_store, case, first)
    cut = early.frame.filter(pl.col("ts").dt.epoch("ns") >= t)
    assert late.frame.height == cut.height > 100
    assert _differences(late.frame, cut) == {}
    # every event from t on, with the same readings
    def onsets(s: Signals) -> list[tuple]:
        return [(e.side, e.ts, e.bars, e.decision.fires, tuple(r.state for r in e.decision.readings))
                for e in s.events if e.ts >= t]
    assert onsets(late) == onsets(early) and onsets(late)
    # the test can fail: without the warm-up rows the first bars' windows are short and differ
    step = interval_ns(interval)
    assert warmup_bars(cfg, step) > 1
    aligned = load(real_store, "BTC", interval, cfg, t, parse_time(CASES[case][4]), NOW)
    bare = Aligned(aligned.frame.filter(pl.col("ts") >= t), aligned.base, interval, step, t, aligned.sources,
                   aligned.notes)
    short, _ = compute_frame(bare, cfg)
    full, _ = compute_frame(aligned, cfg)
    assert _differences(short, full.filter(pl.col("ts") >= t))


def test_cvd_offset_is_the_earlier_runs_value_before_t(real_store: Store) -> None:
    """On the 4h bars (taker split present) the spot CVD from t is the earlier run's minus its value
    at the bar before t, and that value is the sum of net taker volume, 2 * buy - volume, before t."""
    case = "4h taker flow"
    _, _, first, t_text, _ = CASES[case]
    t = parse_time(t_text)
    late, _ = _run(real_store, case, t_text)
    early, _ = _run(real_store, case, first)
    with gzip.open(SHARED / REAL_FILES[4], "rt") as fh:
        rows = list(csv.DictReader(fh))
    opens = [parse_time(r["Open time"].strip()[:19].replace(" ", "T")) for r in rows]
    before = sum(2 * float(r["Taker buy base asset volume"]) - float(r["Volume"])
                 for r, o in zip(rows, opens) if parse_time(first) <= o < t)
    cut = early.frame.filter(pl.col("ts").dt.epoch("ns") >= t)
    late_cvd, early_cvd = late.frame.get_column("spot_cvd").to_list(), cut.get_column("spot_cvd").to_list()
    assert late_cvd[0] == pytest.approx(late.frame.get_column("spot_net_taker")[0])
    assert [e - x for e, x in zip(early_cvd, late_cvd)] == pytest.approx([before] * len(late_cvd), rel=1e-9)
