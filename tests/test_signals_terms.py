"""Each factor's declaration (signals/spec.py, listed in signals/registry.py) is the truth the rest
follows: every declared column is computed and nothing undeclared is; the table, the report's
panels, the warm-up, the inputs read and the detector's factors change when the list changes.

Real bars from tests/data (see _signals_data.REAL_FILES), computed at 15 minutes.
"""

from __future__ import annotations

import polars as pl
import pytest

from _signals_data import import_real
from tapewatch import detector
from tapewatch.config import FACTOR_NAMES, Config, config_from_dict
from tapewatch.signals import funding, oi, price
from tapewatch.signals.base import SIDES, Context, pct_change
from tapewatch.signals.compute import OUTPUT_COLUMNS, compute_frame, compute_signals
from tapewatch.signals.frame import input_columns, input_status, load
from tapewatch.signals.inputs import INPUTS
from tapewatch.signals.registry import FACTORS, conditional, output_columns, used_by, warmup_bars
from tapewatch.signals.spec import FactorSpec, PanelSpec
from tapewatch.store import Store
from tapewatch.study.wiring import INPUT_KEYS, factor_panels
from tapewatch.timeutil import parse_time

START, END, NOW = parse_time("2025-01-03"), parse_time("2025-01-10"), parse_time("2027-01-01")
BANDS = config_from_dict({"book": {"bands": [0.5, 2.0], "band": 0.5}})


def _close_step(df: pl.DataFrame, ctx: Context) -> pl.DataFrame:
    return df.with_columns(pct_change("close", 1).alias("close_step_pct"))


# a factor a user might add: the close's change over one bar, with a long (made-up) window chain
STEP_SPEC = FactorSpec(
    name="close_step", inputs=("spot", "perp"), windows=(("premium.history", "premium.history"),),
    outputs=("close_step_pct",), table=("close_step_pct",), compute=_close_step,
    panel=PanelSpec("close change over one bar", (("change", "close_step_pct"),), "%", ("-oi.rise_pct",)),
)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("terms") / "store")
    import_real(store)
    return store


@pytest.mark.parametrize("cfg", [Config(), BANDS], ids=["defaults", "bands 0.5 and 2"])
def test_every_declared_column_is_computed_and_nothing_else(real_store: Store, cfg: Config) -> None:
    sig = compute_signals(real_store, "BTC", "15m", START, END, cfg, NOW)
    inputs = set(input_columns(cfg))
    declared = [c for f in FACTORS for c in f.columns(cfg)]
    assert len(declared) == len(set(declared)) and not inputs & set(declared)  # one owner per column
    assert sorted(sig.frame.columns) == sorted({"ts", *inputs, *declared, *SIDES})
    # each factor's compute adds exactly what it declares
    aligned = load(real_store, "BTC", "15m", cfg, START, END, NOW)
    ctx = Context(cfg, "BTC", "15m", aligned.step, aligned.start)
    df = aligned.frame
    for f in FACTORS:
        before = set(df.columns)
        if f.compute is not None:
            df = f.compute(df, ctx)
        assert set(df.columns) - before == set(f.columns(cfg)), f.name
    # the table: every declared table column exists; the bands of the config are in the helper columns
    assert sig.table().columns == OUTPUT_COLUMNS and set(OUTPUT_COLUMNS) <= set(sig.frame.columns)
    if cfg is BANDS:
        assert {"book_delta_0_5", "book_ratio_0_5", "book_bid_notional_0_5"} <= set(sig.frame.columns)
        assert "book_delta_1" not in sig.frame.columns


def test_the_detector_and_config_name_the_declared_conditions() -> None:
    assert tuple(detector.FACTORS) == FACTOR_NAMES == tuple(conditional()) == ("flow", "premium", "book", "oi")
    assert detector.condition_column("premium", "distribution") == "negative_premium"
    assert detector.condition_column("book", "accumulation") == "bid_heavy_book"
    assert OUTPUT_COLUMNS[-6:] == ["spot_selling_into_rally", "negative_premium", "ask_heavy_book",
                                   "oi_rising_into_dip", "distribution", "accumulation"]
    assert output_columns(shown=True) == ["ts", "close", "spot_net_taker", "premium_index", "book_ratio_2",
                                          "oi_change_pct", *OUTPUT_COLUMNS[-6:]]


def test_inputs_read_follow_the_declared_factors(real_store: Store) -> None:
    cfg = Config()
    few = (price.SPEC, oi.SPEC, funding.SPEC)
    aligned = load(real_store, "BTC", "15m", cfg, START, END, NOW, few)
    assert sorted(aligned.frame.columns) == sorted(["ts", *input_columns(cfg, few)])
    assert not [c for c in aligned.frame.columns if c.startswith(("book_", "premium_", "usdt"))]
    statuses = input_status(aligned.frame, aligned)
    assert [s.key for s in statuses] == ["spot", "perp", "oi", "funding"]
    assert [s.used_by for s in statuses] == ["price", "price", "oi", "funding"]
    assert used_by("spot") == "price, flow" and used_by("usdt_usd") == "premium"
    assert {s.key: s.status for s in statuses} == {"spot": "present", "perp": "present", "oi": "missing",
                                                   "funding": "present"}
    # the full registry reads every input, and a sweep reloads on exactly the inputs' config keys
    every = load(real_store, "BTC", "15m", cfg, START, END, NOW)
    assert [s.key for s in input_status(every.frame, every)] == [i.key for i in INPUTS]
    assert INPUT_KEYS == tuple(k for i in INPUTS for k in i.config)


def test_adding_a_factor_reaches_table_panels_warmup_and_compute(real_store: Store) -> None:
    cfg = Config()
    more = (*FACTORS, STEP_SPEC)
    # the table: its column after the other factors' columns, before the conditions
    cols = output_columns(more)
    assert cols == OUTPUT_COLUMNS[:-6] + ["close_step_pct"] + OUTPUT_COLUMNS[-6:]
    # the warm-up: 2 x 30 days of 15m bars, plus the 1 h cool-down, plus one
    step = 15 * 60 * 10**9
    assert warmup_bars(cfg, step) == 16 + 96 * 30 + 4 + 1  # flow: 4h window + 30d z history
    assert warmup_bars(cfg, step, more) == 2 * 96 * 30 + 4 + 1
    # the panels: one per factor with a panel, in registry order, the new one last
    aligned = load(real_store, "BTC", "15m", cfg, START, END, NOW, more)
    full, _ = compute_frame(aligned, cfg)
    frame = full.filter(pl.col("ts") >= START)
    panels = factor_panels(frame, cfg, factors=more)
    assert [p.title.split(" (")[0].split(":")[0] for p in panels] == [
        "taker flow", "premium index", "book ratio within 2 %", "open interest vs price", "funding rate",
        "close change over one bar"]
    assert panels[-1].lines == (-0.5,) and panels[-1].unit == "%"
    assert [p.title for p in factor_panels(frame, cfg)] == [p.title for p in panels[:-1]]
    # compute: the close's one-bar change, by hand from the close column
    close = frame.get_column("close").to_list()
    got = frame.get_column("close_step_pct").to_list()
    for i in range(1, len(close)):
        if close[i] is not None and close[i - 1] is not None:
            assert got[i] == pytest.approx((close[i] / close[i - 1] - 1) * 100, rel=1e-12)
    assert sum(v is not None for v in got) > 500
