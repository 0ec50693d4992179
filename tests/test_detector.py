"""The detector: how conditions combine (holds / fails / unavailable), events, mirror image."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapewatch import detector
from tapewatch.config import FACTOR_NAMES, config_from_dict
from tapewatch.signals.base import SIDES, State
from tapewatch.signals.compute import compute_frame
from tapewatch.signals.frame import Aligned, input_columns

STEP = 300_000_000_000
T0 = 1_642_636_800_000_000_000  # 2022-01-20 00:00 UTC
SMALL = {
    "flow": {"window": 6, "rally_pct": 0.5, "close_at_extreme": False},
    "oi": {"window": 2, "rise_pct": 0.5},
    "premium": {"smooth": 2, "history": 50, "min_history": 5, "threshold_pct": 0.05},
    "book": {"sustain": 2, "threshold": 0.1},
    "detector": {"cooldown": 3},
}


# -- the combination rule -------------------------------------------------------------------------
states = st.sampled_from([True, False, None])


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(states, states, states, states), min_size=1, max_size=20),
    required=st.lists(st.sampled_from(FACTOR_NAMES), unique=True, max_size=4),
    optional=st.lists(st.sampled_from(FACTOR_NAMES), unique=True, max_size=4),
    mode=st.sampled_from(["block", "skip"]),
)
def test_vectorized_columns_agree_with_the_explained_decision(rows, required, optional, mode):
    optional = [f for f in optional if f not in required]
    if not required and not optional:
        required = ["flow"]
    cfg = config_from_dict({"detector": {"required": required, "when_present": optional, "unavailable": mode}})
    data = {}
    for side in SIDES:
        for j, f in enumerate(FACTOR_NAMES):
            data[detector.condition_column(f, side)] = pl.Series([r[j] for r in rows], dtype=pl.Boolean)
    out = detector.combine(pl.DataFrame(data), cfg)
    for i, r in enumerate(rows):
        st_ = {f: State.of(r[j]) for j, f in enumerate(FACTOR_NAMES)}
        fires, reason, skipped = detector.decide(st_, cfg)
        for side in SIDES:
            assert out.get_column(side)[i] is fires, reason
        used = [*required, *optional]
        # never silently false: "does not fire" needs a factor that was available and failed
        if fires is False:
            assert any(st_[f] is State.FAILS for f in used)
        if fires is True:
            assert all(st_[f] is not State.FAILS for f in used)
            assert mode == "skip" or all(st_[f] is State.HOLDS for f in required)


def test_policy_text_names_the_choice():
    assert "detector.unavailable = 'block'" in detector.policy_text(config_from_dict({}))
    assert "skipped" in detector.policy_text(config_from_dict({"detector": {"unavailable": "skip"}}))


# -- a hand-made episode ----------------------------------------------------------------------------
def _episode(sign: int = 1, n: int = 40, oi: bool = True, repeat_at: int | None = None) -> pl.DataFrame:
    """Inputs where, at bar 28, price rallied over 6 bars then dipped over 2, spot takers sold,
    Coinbase traded 0.1 % below Binance, asks outweighed bids and OI rose — or the mirror image."""
    path = [100.0] * 20 + [100 + k * 0.3 for k in range(1, 8)] + [101.8, 101.5] + [101.5] * (n - 29)
    if repeat_at is not None:  # a second, separate rally-and-dip later on
        path = path[:repeat_at] + [p + 2.5 for p in path[20 : 20 + n - repeat_at]]
    price = [100 + sign * (p - 100) for p in path[:n]]
    cols = input_columns(config_from_dict(SMALL))
    df = pl.DataFrame({"ts": [T0 + i * STEP for i in range(n)]}).with_columns(
        pl.lit(None, dtype=t).alias(c) for c, t in cols.items()
    )
    buy = 4.0 if sign > 0 else 6.0
    oi_path = [1000.0 * (1 + sign * 0.01) ** max(0, i - 20) for i in range(n)]
    return df.with_columns(
        pl.Series("perp_close", price), pl.Series("spot_close", price),
        pl.lit(10.0).alias("spot_volume"), pl.lit(buy).alias("spot_taker_buy_volume"),
        pl.Series("premium_b_close", price),
        pl.Series("premium_a_close", [p * (1 - sign * 0.001) for p in price]),
        pl.lit(80.0 if sign > 0 else 120.0).alias("book_bid_notional_2"),
        pl.lit(120.0 if sign > 0 else 80.0).alias("book_ask_notional_2"),
        pl.lit("binance spot BTC/USDT").alias("book_source"),
        pl.Series("oi", oi_path if oi else [None] * n, dtype=pl.Float64),
    )


def _run(frame: pl.DataFrame, extra: dict | None = None):
    cfg = config_from_dict({**SMALL, **(extra or {})})
    aligned = Aligned(frame, "BTC", "5m", STEP, T0)
    df, ctx = compute_frame(aligned, cfg)
    return df, ctx, detector.find_events(df, ctx)


def test_distribution_fires_and_every_event_explains_itself():
    df, ctx, events = _run(_episode(+1))
    assert df.get_column("distribution").to_list()[28] is True
    assert [(e.side, e.ts) for e in events] == [("distribution", T0 + 28 * STEP)]
    e = events[0]
    assert e.known_at == e.ts + STEP and e.close == pytest.approx(101.5) and e.bars == 1
    assert e.decision.fires is True and e.decision.side == "distribution"
    by = {r.factor: r for r in e.decision.readings}
    assert set(by) == {"flow", "premium", "book", "oi"}
    assert all(r.state is State.HOLDS for r in by.values())
    # each reading: the values looked at, the thresholds, the rule and why
    assert by["flow"].values["rally_change_pct"] == pytest.approx((101.5 / 100.9 - 1) * 100)
    assert by["flow"].values["spot_net_taker_w"] == pytest.approx(6 * (4 - 6))
    assert by["flow"].thresholds == {"rally_pct": 0.5, "flow": -0.0}
    assert by["premium"].values["premium_mean_k"] == pytest.approx(-0.1)
    assert by["premium"].thresholds == {"threshold_pct": -0.05}
    assert by["book"].values["book_ratio_2"] == pytest.approx(-0.2)
    assert by["oi"].values["oi_change_pct"] == pytest.approx((1.01**2 - 1) * 100)
    assert by["oi"].values["price_change_pct"] == pytest.approx((101.5 / 102.1 - 1) * 100)
    assert "takers sold into the rally" in by["flow"].why
    assert "rising into a dip" in by["oi"].why
    assert not df.get_column("accumulation").any()


def test_accumulation_is_the_mirror_image():
    df, ctx, events = _run(_episode(-1))
    assert df.get_column("accumulation").to_list()[28] is True
    assert [(e.side, e.ts) for e in events] == [("accumulation", T0 + 28 * STEP)]
    by = {r.factor: r for r in events[0].decision.readings}
    assert {r.condition for r in by.values()} == {
        "spot_buying_into_decline", "positive_premium", "bid_heavy_book", "oi_falling_into_rally",
    }
    assert all(r.state is State.HOLDS for r in by.values())
    assert not df.get_column("distribution").any()
    assert df.get_column("spot_selling_into_rally").to_list()[28] is False


def test_unavailable_required_factor_blocks_or_is_skipped_as_configured():
    frame = _episode(+1, oi=False)
    df, _, events = _run(frame)
    assert df.get_column("oi_rising_into_dip").to_list()[28] is None
    assert df.get_column("distribution").to_list()[28] is None  # unknown, not "no"
    assert events == []
    df, _, events = _run(frame, {"detector": {**SMALL["detector"], "unavailable": "skip"}})
    assert df.get_column("distribution").to_list()[28] is True
    # without the OI factor the rally alone already fires from earlier on: one event spans bar 28
    (e,) = [e for e in events if e.ts <= T0 + 28 * STEP <= e.last_ts]
    assert e.ts < T0 + 28 * STEP
    assert e.decision.skipped == ("oi",) and "without oi" in e.decision.reason
    assert {r.factor: r.state for r in e.decision.readings}["oi"] is State.UNAVAILABLE


def test_book_is_used_only_when_present():
    frame = _episode(+1).with_columns(pl.lit(None, dtype=pl.Float64).alias("book_bid_notional_2"))
    df, _, _ = _run(frame)
    assert df.get_column("ask_heavy_book").to_list()[28] is None
    assert df.get_column("distribution").to_list()[28] is True  # book is "when_present" by default
    frame = _episode(+1).with_columns(pl.lit(500.0).alias("book_bid_notional_2"))  # bid-heavy now
    df, _, _ = _run(frame)
    assert df.get_column("distribution").to_list()[28] is False


def test_runs_of_firing_bars_are_one_event_until_the_cooldown_passes():
    flat = _episode(+1, n=80, repeat_at=50)
    df, ctx, events = _run(flat)
    fired = [i for i, v in enumerate(df.get_column("distribution").to_list()) if v]
    assert fired[0] == 28 and len(fired) >= 2
    assert len(events) == 2 and events[1].ts == T0 + fired[-1] * STEP
    # a cooldown longer than the gap between the two makes them one event
    df, ctx, events = _run(flat, {"detector": {"cooldown": 40}})
    assert len(events) == 1 and events[0].bars == len(fired) and events[0].last_ts == T0 + fired[-1] * STEP
