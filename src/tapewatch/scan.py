"""The verdict for the latest closed bar: each factor now, why, what is missing, recent events.

:class:`Verdict` is plain data (``to_dict`` for JSON) so other outputs can reuse it; each
:class:`~tapewatch.detector.Event` carries ``annotations`` that later stages fill (e.g. the
event's historical track record) and :func:`render` shows as extra columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tapewatch.config import Config, duration_ns
from tapewatch.detector import Decision, Event, evaluate, policy_text
from tapewatch.display import fmt_number
from tapewatch.errors import TapewatchError
from tapewatch.signals import funding, premium
from tapewatch.signals.base import SIDES, Side, State, ns_of, num
from tapewatch.signals.compute import Signals, compute_signals
from tapewatch.signals.frame import InputStatus
from tapewatch.store import Store
from tapewatch.timeutil import interval_ns, ns_to_iso


@dataclass
class Verdict:
    """What ``tapewatch scan`` reports.

    ``bar_ts``: open (UTC ns) of the latest closed bar; ``decisions``: per side, every factor's
    reading at that bar and whether the side fires; ``premium`` / ``funding``: context text;
    ``inputs``: coverage over the scanned range; ``events``: recent events, newest first;
    ``policy``: how the factors combine; ``extra``: room for later additions.
    """

    base: str
    interval: str
    bar_ts: int
    close: float | None
    price_source: str | None
    decisions: dict[Side, Decision]
    premium: str | None
    funding: str | None
    inputs: tuple[InputStatus, ...]
    events: list[Event]
    policy: str
    config_source: str
    scanned_from: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def missing(self) -> list[InputStatus]:
        return [i for i in self.inputs if i.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base, "interval": self.interval, "bar_ts": self.bar_ts,
            "bar_open": ns_to_iso(self.bar_ts), "close": self.close, "price_source": self.price_source,
            "decisions": {s: d.to_dict() for s, d in self.decisions.items()},
            "premium": self.premium, "funding": self.funding,
            "inputs": [
                {"input": i.label, "source": i.source, "status": i.status, "bars": i.bars, "total": i.total,
                 "note": i.note} for i in self.inputs
            ],
            "events": [e.to_dict() for e in self.events], "policy": self.policy,
            "config": self.config_source, "scanned_from": self.scanned_from, "extra": dict(self.extra),
        }


def build_verdict(signals: Signals, max_events: int = 10, config_source: str = "defaults") -> Verdict:
    """The verdict for the last bar of ``signals`` and its most recent events."""
    if signals.frame.is_empty():
        raise TapewatchError(f"no closed {signals.interval} bars for {signals.base} in the scanned range")
    row = signals.frame.row(-1, named=True)
    ctx = signals.context
    decisions = {side: evaluate(row, ctx, side) for side in SIDES}
    events = list(reversed(signals.events))[:max_events]
    return Verdict(
        base=signals.base, interval=signals.interval, bar_ts=ns_of(row["ts"]) or 0, close=num(row.get("close")),
        price_source=row.get("price_source"), decisions=decisions, premium=premium.context(row, ctx),
        funding=funding.context(row, ctx), inputs=signals.inputs, events=events,
        policy=policy_text(signals.config), config_source=config_source,
        scanned_from=ns_of(signals.frame.get_column("ts")[0]) or 0,
    )


def scan(
    store: Store,
    symbol: str,
    interval: str = "5m",
    lookback: str = "7d",
    end: int | None = None,
    config: Config | None = None,
    config_source: str = "defaults",
    now: int | None = None,
    max_events: int = 10,
) -> Verdict:
    """Verdict for the latest closed bar before ``end`` (default: the end of the stored spot / perp
    data), with the events of the ``lookback`` before it. Times in UTC ns."""
    cfg = config or Config()
    base = symbol.split("/")[0].split("-")[0].upper()
    step = interval_ns(interval)
    if end is None:
        data_end = latest_data_end(store, cfg, base)
        if data_end is None:
            raise TapewatchError(
                f"no spot or perp data for {base} in the store ({cfg.markets.spot.describe(base)}, "
                f"{cfg.markets.perp.describe(base)}); import some first"
            )
        end = data_end - data_end % step  # only bars closed by the end of the data
    start = end - duration_ns(lookback, step)
    signals = compute_signals(store, base, interval, start, end, cfg, now)
    return build_verdict(signals, max_events, config_source)


def latest_data_end(store: Store, cfg: Config, base: str) -> int | None:
    """The time (UTC ns) up to which the store holds spot or perp trades / bars."""
    best: int | None = None
    for ref in (cfg.markets.spot, cfg.markets.perp):
        for kind in ("trade", "bar"):
            files = store.files(kind, ref.exchange, ref.market, ref.symbol(base))
            if not files:
                continue
            cols = ["ts", "interval"] if kind == "bar" else ["ts"]
            df = pl.from_arrow(pq.read_table(files[-1], columns=cols))
            if df.is_empty():
                continue
            last = df.sort("ts").row(-1, named=True)
            t = ns_of(last["ts"]) or 0
            t = t + interval_ns(last["interval"]) if kind == "bar" else t + 1
            best = t if best is None else max(best, t)
    return best


# -- rendering ----------------------------------------------------------------------------------
_STATE_STYLE = {State.HOLDS: "green", State.FAILS: "dim", State.UNAVAILABLE: "yellow"}


def render(v: Verdict, console: Console) -> None:
    """Print the verdict readably."""
    close = "n/a" if v.close is None else fmt_number(v.close)
    step = interval_ns(v.interval)
    console.print(
        f"[bold]{escape(v.base)}[/] · {v.interval} · latest closed bar {ns_to_iso(v.bar_ts)} → "
        f"{ns_to_iso(v.bar_ts + step)[11:]} UTC · close {close}"
        + (f" ({v.price_source})" if v.price_source else ""),
        highlight=False,
    )
    for side in SIDES:
        d = v.decisions[side]
        word, style = {True: ("FIRES", "bold red" if side == "distribution" else "bold green"),
                       False: ("does not fire", "bold"), None: ("UNKNOWN", "bold yellow")}[d.fires]
        console.print()
        console.print(Text.assemble((f"{side.capitalize()}: ", "bold"), (word, style), f" — {d.reason}"))
        t = Table(show_header=True, header_style="bold", expand=False, pad_edge=False)
        for col in ("factor", "condition", "value", "threshold", "state", "why"):
            t.add_column(col, overflow="fold")
        for r in d.readings:
            t.add_row(
                Text(r.factor), Text(r.condition), Text(_values(r.values)), Text(r.rule),
                Text(r.state.value, style=_STATE_STYLE[r.state]), Text(r.why),
            )
        console.print(t)
    console.print()
    console.print(f"[bold]Premium:[/] {escape(v.premium or 'unavailable')}", highlight=False)
    console.print(f"[bold]Funding:[/] {escape(v.funding or 'unavailable')}", highlight=False)
    console.print(f"[bold]Detector:[/] {escape(v.policy)}; config: {escape(v.config_source)}", highlight=False)
    _inputs(v, console)
    _events(v, console)


def _values(values: dict[str, float | None]) -> str:
    parts = []
    for k, x in list(values.items())[:2]:
        parts.append(f"{k} {'n/a' if x is None else fmt_number(x, 4, sign=True)}")
    return "\n".join(parts)


def _inputs(v: Verdict, console: Console) -> None:
    t = Table(title="Inputs", title_justify="left", show_header=True, header_style="bold", pad_edge=False)
    for col in ("input", "source", "status", "bars", "used by", "note"):
        t.add_column(col, overflow="fold")
    style = {"present": "green", "partial": "yellow", "missing": "red"}
    for i in v.inputs:
        t.add_row(
            Text(i.label), Text(i.source), Text(i.status, style=style[i.status]), f"{i.bars}/{i.total}",
            Text(i.used_by), Text(i.note),
        )
    console.print()
    console.print(t)
    if v.missing:
        names = ", ".join(i.label for i in v.missing)
        console.print(
            f"[yellow]missing:[/] {escape(names)} — factors that need them are unavailable, not false", highlight=False
        )
    for i in v.inputs:
        if i.unsplit:
            console.print(f"[yellow]missing column:[/] {escape(f'{i.label}: {i.note}')}", highlight=False)


def _events(v: Verdict, console: Console) -> None:
    console.print()
    since = ns_to_iso(v.scanned_from)
    if not v.events:
        console.print(f"[bold]Recent events:[/] none since {since} UTC", highlight=False)
        return
    labels: list[str] = []
    for e in v.events:
        labels += [k for k in e.annotations if k not in labels]
    t = Table(title=f"Recent events (since {since} UTC, newest first)", title_justify="left",
              header_style="bold", pad_edge=False)
    for col in ("bar (UTC)", "side", "bars", "close", "factors", *labels):
        t.add_column(col, overflow="fold")
    for e in v.events:
        factors = ", ".join(f"{r.factor} {r.state.value}" for r in e.decision.readings)
        close = "n/a" if e.close is None else fmt_number(e.close)
        t.add_row(
            ns_to_iso(e.ts), e.side, str(e.bars), close, Text(factors), *[Text(e.annotations.get(k, "")) for k in labels]
        )
    console.print(t)
