"""`tapewatch live` raising alerts end to end: the replay exchange serves the real Binance spot and
USD-M captures (tests/data, 2024-08-08 23:54:15 → :43 UTC of trades) at 4x, with the first REST
depth snapshot refused with a 429 (the book resyncs after Retry-After), and 2s bars close as the
venue clock passes them. A local webhook receiver that answers the first POST with a 500 gets, after
the retry, exactly the alerts `batch_alerts` finds on the final store, at the same bars, each with
its factor values, thresholds, reasons and point-in-time track record; a second webhook that is
down (nothing listens on its port) only costs a warning line: collection and bar closes go on.

Why these thresholds: the capture holds half a minute of trades, so the windows are a few 2s bars
(flow over 3 bars, its z-score over 2, a 6-bar cool-down) and a "rally" is any rise at all
(`rally_pct = 0`, or the close at the high of the window). The test proves the plumbing — live rows
equal to the batch rows, alerts identical to batch, de-duplicated by the cool-down, delivered
through failures — not that these settings mean anything on half a minute of tape. The warm-up
these windows declare (12 bars) is shorter than the session (15 bars), so the last closes read only
their warm-up and carry the CVD from the close before (the bounded-cost path of LiveRunner._close).
"""

from __future__ import annotations

import gzip
from collections import Counter
import json
from pathlib import Path

import polars as pl
import pytest

from conftest import SHARED
from tapewatch.alerts.batch import batch_alerts
from tapewatch.replay.faults import Faults
from tapewatch.signals.compute import compute_signals
from tapewatch.signals.registry import warmup_bars
from tapewatch.study.settings import StudySettings
from test_live_run import SPOT, USDM, run_live
from webhook_receiver import Receiver, closed_port

STEP = 2_000_000_000
FIRST = 1723161254 * 10**9  # bar of the first spot trade (23:54:15.3)
LAST = 1723161282 * 10**9  # bar of the last one (23:54:43.4)
# venue seconds past a bar's close before it is closed (1 s of wall time at 4x): room for one feed
# to be read a little after the other on a busy machine
GRACE = 4.0
CONFIG = {
    "interval": "2s",
    "flow": {"window": 3, "rally_pct": 0.0, "z_history": 2, "z_min_history": 2},
    "premium": {"history": 2, "min_history": 1, "smooth": 1},
    "book": {"sustain": 1, "threshold": 0.1, "max_age": "5s"},
    "oi": {"window": 1},
    "detector": {"required": ["flow"], "when_present": ["book"], "unavailable": "skip", "cooldown": 6},
    "alerts": {"crossings": ["flow", "book"], "console": False, "log": "", "retries": 2, "backoff": 0.05,
               "timeout": 2.0, "webhooks": [{"name": "hook"}, {"name": "down"}]},
}


def capture_trades(path: Path) -> list[tuple[int, float, float, bool]]:
    """(trade time ns, price, quantity, buyer is maker) of every trade message in a capture."""
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            msg = json.loads(line.split(" ", 1)[1])
            if msg.get("stream", "").endswith("@trade"):
                d = msg["data"]
                out.append((d["T"] * 10**6, float(d["p"]), float(d["q"]), d["m"]))
    return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    shared = SHARED  # the `shared` fixture's folder (module scope: one live run for both tests)
    root = tmp_path_factory.mktemp("live-alerts") / "store"
    lines: list[str] = []
    with Receiver([(500, {})]) as receiver:
        env = {"TAPEWATCH_WEBHOOK_HOOK": receiver.url("/hook"),
               "TAPEWATCH_WEBHOOK_DOWN": f"http://127.0.0.1:{closed_port()}/down"}
        runner, store = run_live(shared, root, env, CONFIG, LAST, Faults(rest_error=429, retry_after=1), GRACE, lines)
    return runner, store, receiver, lines


def test_alerts_fire_live_exactly_as_in_batch(live, shared: Path) -> None:  # type: ignore[no-untyped-def]
    runner, store, receiver, lines = live
    # collection went on through the failing webhooks: every trade of both captures is stored
    assert store.read("trade").height == len(capture_trades(shared / SPOT)) + len(capture_trades(shared / USDM))

    # the live rows are the batch rows from the session's first bar, bit for bit, CVD included
    frames = runner.frames
    got = pl.concat(frames)
    assert got["ts"].dt.epoch("ns").to_list() == list(range(FIRST, LAST + STEP, STEP))
    batch = compute_signals(store, "BTC", "2s", FIRST, LAST + STEP, runner.cfg).frame
    assert got.columns == batch.columns
    diff = [c for c in got.columns if not got[c].equals(batch[c])]
    assert not diff, (diff, got.select(diff).to_dicts(), batch.select(diff).to_dicts())
    # and some closes read only their warm-up (not the session), continuing the CVD from the last close
    warm = warmup_bars(runner.cfg, STEP)
    assert warm == 12
    late = [f for f in frames if f["ts"].dt.epoch("ns")[0] >= FIRST + warm * STEP]
    assert late and all(f["spot_cvd"].is_not_null().all() for f in late)

    # both sides fire, and a flow crossing; the distribution bar 12s after the first is within
    # the 6-bar cool-down: no second alert for it (nor for its crossing)
    want = batch_alerts(store, "BTC", "2s", None, LAST + STEP, runner.cfg, StudySettings())
    kinds = {(a.kind, a.side, a.bar_ts) for a in want}
    assert {("event", "distribution"), ("event", "accumulation"), ("crossing", "distribution")} <= {k[:2] for k in kinds}
    fired = batch.filter(pl.col("distribution").fill_null(False))["ts"].dt.epoch("ns").to_list()
    alerted = [a.bar_ts for a in want if a.kind == "event" and a.side == "distribution"]
    assert len(fired) > len(alerted) == 1
    assert all(0 < t - alerted[0] <= 6 * STEP for t in fired if t != alerted[0])

    # the live runner raised exactly those, and the working webhook got each of them (the one
    # answered with a 500 twice: the failed attempt and the retry), with the batch's explanation
    assert [a.id for a in runner.alerts] == [a.id for a in want]
    bodies = receiver.bodies("/hook")
    counts = Counter(b["id"] for b in bodies)
    assert counts[bodies[0]["id"]] == 2 and sum(counts.values()) == len(want) + 1
    by_id = {b["id"]: b for b in bodies}
    assert sorted(by_id) == sorted(a.id for a in want)
    for a in want:
        body = by_id[a.id]
        assert body == json.loads(json.dumps(a.to_dict()))
        assert body["factors"] and all(f["values"] and f["thresholds"] and f["why"] for f in body["factors"])
        assert (body["track_record"] is None) == (a.kind == "crossing")
    # the down webhook: a warning line per alert, never its URL
    down = [line for line in lines if "webhook 'down': not delivered" in line]
    assert len(down) == len(want) and not any("/down" in line for line in lines)


def test_alert_numbers_hand_checked_against_the_capture(live, shared: Path) -> None:  # type: ignore[no-untyped-def]
    """The first distribution alert's bar, close and flow sum, from the capture file by hand."""
    runner, _, receiver, _ = live
    event = next(a for a in runner.alerts if a.kind == "event" and a.side == "distribution")
    body = next(b for b in receiver.bodies("/hook") if b["id"] == event.id)
    t = event.bar_ts
    assert body["bar_open"] == "2024-08-08T23:54:22Z" and t == 1723161262 * 10**9
    spot, perp = capture_trades(shared / SPOT), capture_trades(shared / USDM)
    # close: the bar's last perp trade (markets.price = perp first, then spot)
    in_bar = [p for ts, p, _, _ in perp if t <= ts < t + STEP] or [p for ts, p, _, _ in spot if t <= ts < t + STEP]
    assert body["close"] == in_bar[-1]
    # spot net taker volume over the 3 bars ending at t: taker buys (buyer not maker) minus sells
    net = sum(q if not maker else -q for ts, _, q, maker in spot if t - 2 * STEP <= ts < t + STEP)
    flow = next(f for f in body["factors"] if f["factor"] == "flow")
    assert flow["values"]["spot_net_taker_w"] == pytest.approx(net, rel=1e-9, abs=1e-12)
    assert net < 0 and flow["thresholds"]["flow"] == 0.0 and flow["state"] == "holds"
