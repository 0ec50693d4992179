"""Alerts on the real bundled sample (4h bars, the demo configuration): where they fire, what they
carry, their point-in-time track record, and the `tapewatch alerts` command end to end with local
webhook receivers (generic, Slack, Discord, Telegram), a receiver that is down, and the log.

The store holds the sample's 4h spot klines, Coinbase 15m bars, funding and daily OI (the 5m
files are left out: the 4h signals take their close from the 4h klines then, and loading is fast).
Expected values are computed here from the signal columns and the sample files with pandas/scipy.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats
from typer.testing import CliRunner

from tapewatch.alerts.alert import Alert
from tapewatch.alerts.batch import batch_alerts
from tapewatch.cli import app
from tapewatch.commands.demo import demo_config_path
from tapewatch.config import Config
from tapewatch.sample_data import read_sample_file, sample_dir, sample_files
from tapewatch.signals.compute import compute_signals
from tapewatch.store import Store
from tapewatch.study.settings import StudySettings, load_settings
from tapewatch.study.wiring import track_records
from tapewatch.timeutil import parse_time
from webhook_receiver import Receiver, closed_port

runner = CliRunner()
H4 = 4 * 3_600_000_000_000
COOLDOWN_BARS = 6  # detector.cooldown = "1d" in the demo configuration, at 4h bars
CONDITION = {  # the condition column of each factor, per side (the detector's factor modules)
    "distribution": {"flow": "spot_selling_into_rally", "premium": "negative_premium", "book": "ask_heavy_book",
                     "oi": "oi_rising_into_dip"},
    "accumulation": {"flow": "spot_buying_into_decline", "premium": "positive_premium", "book": "bid_heavy_book",
                     "oi": "oi_falling_into_rally"},
}
TOKEN = "123456789:AAH-secret-bot-token-zz"  # must never show anywhere
ALERTS_TOML = """
[alerts]
sides = ["distribution", "accumulation"]
log = "{log}"
retries = 2
backoff = 0.01
timeout = 5.0

[[alerts.webhooks]]
name = "hook"

[[alerts.webhooks]]
name = "slack"
shape = "slack"

[[alerts.webhooks]]
name = "discord"
shape = "discord"

[[alerts.webhooks]]
name = "tg"
shape = "telegram"
chat_id = "-10042"
"""


@dataclasses.dataclass
class World:
    root: Path
    store: Store
    cfg: Config
    settings: StudySettings
    frame: pd.DataFrame  # the signal frame, ts as UTC ns
    alerts: list[Alert]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("alerts")
    st = Store(root / "store")
    for path in sample_files():
        if "_5m" not in path.name:
            st.write(*read_sample_file(path))
    cfg, settings = load_settings(demo_config_path())
    (root / "store" / "tapewatch.toml").write_text(demo_config_path().read_text())  # as `tapewatch demo` leaves it
    sig = compute_signals(st, "BTC", "4h", None, None, cfg)
    frame = sig.frame.with_columns(sig.frame["ts"].dt.epoch("ns")).to_pandas()
    yield World(root, st, cfg, settings, frame, batch_alerts(st, "BTC", "4h", None, None, cfg, settings))


def _expected_events(frame: pd.DataFrame, side: str) -> list[int]:
    """Bars that start a run: firing, with no firing bar of the side within the cool-down before."""
    fired = np.flatnonzero(frame[side].fillna(False).astype(bool).to_numpy())
    starts = [i for k, i in enumerate(fired) if k == 0 or i - fired[k - 1] > COOLDOWN_BARS]
    return [int(frame["ts"].iloc[i]) for i in starts]


def test_alerts_fire_exactly_at_the_detector_events(world: World) -> None:
    got = [(a.side, a.bar_ts) for a in world.alerts]
    assert all(a.kind == "event" for a in world.alerts)
    expected = sorted(((s, t) for s in ("distribution", "accumulation") for t in _expected_events(world.frame, s)),
                      key=lambda x: (x[1], x[0]))
    assert got == expected and len(got) >= 20, got
    assert {s for s, _ in got} == {"distribution", "accumulation"}
    rows = world.frame.set_index("ts")
    for a in world.alerts:
        row = rows.loc[a.bar_ts]
        assert a.known_at == a.bar_ts + H4 and a.close == pytest.approx(row["close"])
        for r in a.readings:  # each factor's state is its condition column at that bar
            v = row[CONDITION[a.side][r.factor]]
            want = "unavailable" if v is None or (isinstance(v, float) and math.isnan(v)) else ("holds" if v else "fails")
            assert r.state.value == want, (a.id, r.factor)


def test_alerts_carry_the_premium_from_the_sample_files(world: World) -> None:
    """premium_gap = Coinbase close of the 4h bar (its last 15m close) − the Binance spot 4h close."""
    cb = pq.read_table(sample_dir() / "coinbase_spot_btcusd_15m.parquet").to_pandas().set_index("ts")["close"]
    spot = pq.read_table(sample_dir() / "binance_spot_btcusdt_4h.parquet").to_pandas().set_index("ts")["close"]
    for a in world.alerts:
        t = pd.Timestamp(a.bar_ts, unit="ns", tz="UTC")
        gap = cb.loc[t + pd.Timedelta("3h45min")] - spot.loc[t]
        (prem,) = [r for r in a.readings if r.factor == "premium"]
        assert prem.values["premium_gap"] == pytest.approx(gap)
        assert prem.values["premium_index"] == pytest.approx(gap / spot.loc[t] * 100)
        sign = "-" if gap < 0 else "+"
        assert a.premium is not None and a.premium.startswith(f"{sign}${abs(gap):,.2f} = {gap / spot.loc[t] * 100:+.3f}% of price")
        assert "z " in a.premium and "%" in a.summary() and a.premium in a.summary()
        assert prem.thresholds == {"threshold_pct": -0.05 if a.side == "distribution" else 0.05}


def _labels(frame: pd.DataFrame, side: str) -> np.ndarray:
    """The move label per bar by hand: a fall (rise) of at least 2 % from the bar's close to the
    lowest low (highest high) of the bars opening within 24h after it; NaN where 24h runs past the data."""
    spot = pq.read_table(sample_dir() / "binance_spot_btcusdt_4h.parquet").to_pandas()
    spot["ts"] = spot["ts"].astype("int64")
    bars = frame[["ts", "close"]].dropna().merge(spot[["ts", "high", "low"]], on="ts")
    ts, close, high, low = (bars[c].to_numpy() for c in ("ts", "close", "high", "low"))
    out = np.full(len(ts), np.nan)
    for i, t in enumerate(ts):
        if t + 24 * 3_600_000_000_000 > ts[-1]:
            continue
        w = (ts > t) & (ts <= t + 24 * 3_600_000_000_000)
        out[i] = float(low[w].min() / close[i] - 1 <= -0.02) if side == "distribution" else float(high[w].max() / close[i] - 1 >= 0.02)
    return np.array([ts, out])


def test_each_alert_has_the_point_in_time_track_record(world: World) -> None:
    records = track_records(world.store, "BTC", "4h", world.cfg, world.settings)
    day, gap = 24 * 3_600_000_000_000, 72 * 3_600_000_000_000  # move window; longest outcome window (72h)
    for side in ("distribution", "accumulation"):
        ts, y = _labels(world.frame, side)
        label = dict(zip(ts.astype(np.int64).tolist(), y.tolist()))
        counted: list[int] = []
        for a in [x for x in world.alerts if x.side == side]:
            assert a.record == records.at(side, a.bar_ts)
            known = [t for t in counted if t + day <= a.bar_ts and not math.isnan(label[t])]
            n, hits = len(known), int(sum(label[t] for t in known))
            base_bars = y[(ts <= a.bar_ts - day) & ~np.isnan(y)]
            assert a.record is not None and a.record.events == n and a.record.hits == hits
            assert all(t < a.bar_ts for t in known)  # only events before this one
            if n:
                base = base_bars.mean()
                assert a.record.base_rate == pytest.approx(base)
                assert a.record.p_value == pytest.approx(stats.binomtest(hits, n, base, alternative="greater").pvalue)
                low = stats.beta.ppf(0.05, hits, n - hits + 1) if hits else 0.0
                assert a.record.ci_low == pytest.approx(low, abs=1e-9)
                assert f"n={n}, hit" in a.summary()
            if not counted or a.bar_ts - counted[-1] >= gap:
                counted.append(a.bar_ts)


def test_a_run_that_began_before_since_is_not_alerted_again(world: World) -> None:
    runs = [a for a in world.alerts if a.side == "distribution"]
    ts = world.frame["ts"].to_numpy()
    fired = world.frame["distribution"].fillna(False).astype(bool).to_numpy()
    # an event whose run has a second firing bar: start `since` on that bar
    first = next(a for a in runs if fired[np.searchsorted(ts, a.bar_ts) + 1])
    second_bar = int(ts[np.searchsorted(ts, first.bar_ts) + 1])
    got = batch_alerts(world.store, "BTC", "4h", second_bar, None, world.cfg, world.settings)
    assert [(a.side, a.bar_ts) for a in got] == [(a.side, a.bar_ts) for a in world.alerts if a.bar_ts >= second_bar]
    assert first.bar_ts not in {a.bar_ts for a in got}


def test_crossings_alert_when_one_factor_starts_to_hold(world: World) -> None:
    cfg = dataclasses.replace(world.cfg, alerts=dataclasses.replace(world.cfg.alerts, crossings=("premium",)))
    since = parse_time("2025-10-01")
    both = batch_alerts(world.store, "BTC", "4h", since, None, cfg, world.settings)
    got = [a for a in both if a.kind == "crossing"]
    key = [(a.side, a.bar_ts, a.reason, a.record) for a in world.alerts if a.bar_ts >= since]
    assert [(a.side, a.bar_ts, a.reason, a.record) for a in both if a.kind == "event"] == key
    f = world.frame
    expected = []
    for side in ("distribution", "accumulation"):
        held = f[CONDITION[side]["premium"]].fillna(False).astype(bool).to_numpy()
        last = None
        for i in range(1, len(f)):
            if held[i]:
                if not held[i - 1] and (last is None or i - last > COOLDOWN_BARS) and f["ts"].iloc[i] >= since:
                    expected.append((side, int(f["ts"].iloc[i])))
                last = i
    assert sorted((a.side, a.bar_ts) for a in got) == sorted(expected) and expected
    assert all(a.kind == "crossing" and a.factor == "premium" and a.record is None for a in got)
    assert "premium crossed its" in got[0].title()


def _cli(world: World, tmp_path: Path, *extra: str) -> tuple[list[str], Path]:
    """`tapewatch alerts` arguments over the shared store with a config whose log is in ``tmp_path``."""
    log = tmp_path / "alerts.jsonl"
    config = tmp_path / "tapewatch.toml"
    config.write_text(demo_config_path().read_text() + ALERTS_TOML.format(log=log.as_posix()))
    return ["alerts", "--store", str(world.root / "store"), "--config", str(config), "--since", "2025-12-20",
            "--end", "2026-01-05", *extra], log


def _env(rx: Receiver, **urls: str) -> dict[str, str]:
    env = {"COLUMNS": "250", "TAPEWATCH_STORE": "", "TAPEWATCH_CONFIG": ""}
    defaults = {"HOOK": rx.url("/generic"), "SLACK": rx.url("/slack"), "DISCORD": rx.url("/discord"),
                "TG": rx.url(f"/bot{TOKEN}/sendMessage")}
    env.update({f"TAPEWATCH_WEBHOOK_{k}": v for k, v in {**defaults, **urls}.items()})
    return env


def test_the_command_posts_every_shape_logs_and_does_not_repeat(world: World, tmp_path: Path) -> None:
    args, log_path = _cli(world, tmp_path)
    want = [a for a in world.alerts if parse_time("2025-12-20") <= a.bar_ts < parse_time("2026-01-05")]
    with Receiver() as rx:
        res = runner.invoke(app, args, env=_env(rx))
        assert res.exit_code == 0, res.output
        records = track_records(world.store, "BTC", "4h", world.cfg, world.settings, parse_time("2026-01-05"))
        generic = rx.bodies("/generic")
        assert [g["id"] for g in generic] == [a.id for a in want] and len(want) >= 3
        for g, a in zip(generic, want):
            rec = records.at(a.side, a.bar_ts)
            assert g["track_record"]["events"] == rec.events and g["track_record"]["p_value"] == pytest.approx(rec.p_value)
            assert g["premium"] == a.premium and [f["factor"] for f in g["factors"]] == ["flow", "premium", "book", "oi"]
            assert g["factors"][1]["thresholds"] == {"threshold_pct": -0.05} and g["factors"][1]["why"]
        slack = rx.bodies("/slack")
        assert [s["text"] for s in slack] == [a.summary() for a in want]
        assert slack[0]["blocks"][0]["text"]["text"] == "BTC 4h: DISTRIBUTION fired"
        assert want[0].premium in slack[0]["blocks"][1]["text"]["text"]
        discord = rx.bodies("/discord")
        emb = discord[0]["embeds"][0]
        assert discord[0]["content"] == want[0].title() and emb["color"] == 0xD64541
        assert [f["name"].split(":")[0] for f in emb["fields"]] == ["flow", "premium", "book", "oi"]
        assert want[0].record is not None and want[0].record.describe() in emb["description"]
        tg = rx.bodies(f"/bot{TOKEN}/sendMessage")
        assert [t["chat_id"] for t in tg] == ["-10042"] * len(want) and tg[0]["parse_mode"] == "HTML"
        assert tg[0]["text"].startswith("<b>BTC 4h: DISTRIBUTION fired</b>\nbar ")
        assert html.escape(want[0].premium) in tg[0]["text"] and html.escape(want[0].record.describe()) in tg[0]["text"]
        assert html.escape(f"• {want[0].factor_lines()[1]}") in tg[0]["text"]
        assert res.output.count("ALERT BTC 4h: DISTRIBUTION fired") == len(want)
        log = [json.loads(x) for x in log_path.read_text().splitlines()]
        assert [r["id"] for r in log if r["record"] == "alert"] == [a.id for a in want]

        again = runner.invoke(app, args, env=_env(rx))  # the log de-duplicates a re-run
        assert again.exit_code == 0 and f"0 alerts; {len(want)} already in the log" in again.output
        assert len(rx.bodies("/generic")) == len(want)


def test_a_webhook_that_is_down_never_stops_the_run_nor_shows_its_token(world: World, tmp_path: Path) -> None:
    args, log_path = _cli(world, tmp_path)
    down = f"http://127.0.0.1:{closed_port()}/bot{TOKEN}/sendMessage"
    with Receiver() as rx:
        res = runner.invoke(app, args, env=_env(rx, TG=down))
        assert res.exit_code == 0, res.output
        assert len(rx.bodies("/generic")) == len(rx.bodies("/slack")) >= 3  # the others still got every alert
    out = res.output + (res.stderr if res.stderr_bytes is not None else "")
    log = log_path.read_text()
    assert "webhook 'tg': not delivered after 3 attempts: cannot connect" in out
    failures = [json.loads(x) for x in log.splitlines() if '"delivery"' in x]
    assert failures and all(f["webhook"] == "tg" and f["attempts"] == 3 and not f["ok"] for f in failures)
    for text in (out, log):
        assert TOKEN not in text and "secret-bot-token" not in text and down not in text


def test_dry_run_writes_and_sends_nothing(world: World, tmp_path: Path) -> None:
    args, log_path = _cli(world, tmp_path, "--dry-run")
    with Receiver() as rx:
        res = runner.invoke(app, args, env=_env(rx))
        assert res.exit_code == 0, res.output
        assert not rx.requests and not log_path.exists()
    assert "dry run: " in res.output and "premium holds: coinbase over binance premium averages" in res.output


def test_the_readme_command_alerts_on_the_last_7_days_of_stored_data(world: World) -> None:
    """`tapewatch alerts --symbol BTC --dry-run` with the store's own (demo) config: --since 7d
    counts back from the close of the last stored bar."""
    res = runner.invoke(app, ["alerts", "--symbol", "BTC", "--dry-run", "--store", str(world.root / "store")],
                        env={"TAPEWATCH_STORE": "", "TAPEWATCH_CONFIG": "", "COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    spot = pq.read_table(sample_dir() / "binance_spot_btcusdt_4h.parquet").to_pandas()
    since = spot["ts"].max() + pd.Timedelta(hours=4) - pd.Timedelta(days=7)  # the last 4h bar's close, minus 7 days
    want = [a for a in world.alerts if a.bar_ts >= since.value]
    assert f"from {since:%Y-%m-%d %H:%M:%S} UTC" in res.output and "(the store's config)" in res.output and want
    assert res.output.count("ALERT ") == len(want) and f"dry run: {len(want)} alert" in res.output
    assert all(a.summary() in " ".join(res.output.split()) for a in want)
