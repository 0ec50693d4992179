"""``tapewatch alerts``: the alerts of the stored signals over a range, sent to the configured sinks."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tapewatch.alerts.batch import batch_alerts
from tapewatch.alerts.deliver import RetryPolicy
from tapewatch.alerts.secrets import load_webhooks
from tapewatch.alerts.sinks import Dispatcher, LogSink
from tapewatch.commands.common import DEFAULT_STORE_PATH, EndOpt, StoreOpt, console, friendly, resolve_config, warn
from tapewatch.commands.signals import ConfigOpt, IntervalOpt, SymbolOpt
from tapewatch.config import Config, duration_ns
from tapewatch.errors import TapewatchError
from tapewatch.names import base_name, interval_name
from tapewatch.scan import latest_data_end
from tapewatch.store import Store, open_store
from tapewatch.study.settings import load_settings
from tapewatch.timeutil import interval_ns, ns_to_iso, parse_time

SinceOpt = Annotated[str, typer.Option(
    "--since", help="First bar: UTC ISO-8601 (2025-01-01), or a span back from the end of the stored data (7d, 12h).")]


@friendly
def alerts_cmd(
    symbol: SymbolOpt = "BTC",
    interval: IntervalOpt = None,
    since: SinceOpt = "7d",
    end: EndOpt = None,
    store: StoreOpt = DEFAULT_STORE_PATH,
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the alerts; write no log, send nothing.")] = False,
) -> None:
    """Alerts for the distribution / accumulation events (and, if configured, single-factor
    crossings) on the stored bars since --since: a console line, the alert log, the webhooks
    (config [alerts]). Alerts already in the log are not sent again."""
    base = base_name(symbol)
    path, source = resolve_config(config, store)
    cfg, settings = load_settings(path)
    interval = interval_name(interval or cfg.interval, "--interval")
    a = cfg.alerts
    webhooks = [] if dry_run else load_webhooks(a, base=path.parent if path else None)
    st = open_store(store)
    end_ns = parse_time(end) if end else None
    since_ns = _since(since, st, cfg, base, interval, end_ns)
    alerts = batch_alerts(st, base, interval, since_ns, end_ns, cfg, settings)
    log = LogSink(store / Path(a.log).expanduser()) if a.log else None
    sent = log.sent() if log else set()
    fresh = [x for x in alerts if x.id not in sent]
    span = f"{base} {interval} bars from {ns_to_iso(since_ns)} UTC" + (f" to {ns_to_iso(end_ns)} UTC" if end_ns else "")
    console.print(f"config: {escape(source)} · {escape(span)} · sides: {', '.join(a.sides) or 'none'}"
                  + (f" · crossings: {', '.join(a.crossings)}" if a.crossings else ""), highlight=False)
    if dry_run:
        for x in fresh:
            console.print(f"[bold]ALERT[/] {escape(x.summary())}", highlight=False, soft_wrap=True)
            for line in x.factor_lines():
                console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
        names = ", ".join(w.name for w in a.webhooks) or "none"
        console.print(f"dry run: {_count(len(fresh))}; nothing written or sent (log: {a.log or 'off'}; "
                      f"webhooks: {escape(names)})", highlight=False)
        return
    dispatcher = Dispatcher(console if a.console else None, log, webhooks, RetryPolicy.of(a), warn)
    results = asyncio.run(dispatcher.send(fresh))
    failed = sum(not d.ok for d in results)
    repeat = f"; {len(alerts) - len(fresh)} already in the log, not sent again" if len(fresh) < len(alerts) else ""
    hooks = f"; webhooks: {len(results) - failed} delivered, {failed} failed" if webhooks else ""
    where = f"; log: {log.path}" if log else ""
    console.print(f"{_count(len(fresh))}{repeat}{hooks}{escape(where)}", highlight=False)


def _count(n: int) -> str:
    return f"{n} alert" + ("" if n == 1 else "s")


def _since(text: str, st: Store, cfg: Config, base: str, interval: str, end: int | None) -> int:
    """``--since`` in UTC ns: a time, or a span back from ``end`` (else the end of the stored data)."""
    if not re.fullmatch(r"\d+(\.\d+)?[smhd]", text.strip()):
        return parse_time(text)
    ref = end if end is not None else latest_data_end(st, cfg, base)
    if ref is None:
        raise TapewatchError(f"no spot or perp data for {base} in the store; import some first")
    step = interval_ns(interval)
    return ref - duration_ns(text.strip(), step)
