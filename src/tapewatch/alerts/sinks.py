"""Where alerts go: a console line, a JSON-lines log file, webhooks — none of them can stop the caller.

:class:`Dispatcher` sends each alert to every sink in turn: the console line, one ``"alert"``
record appended to the log file (flushed and fsynced), then the webhooks concurrently (each with
:func:`tapewatch.alerts.deliver.post`). A webhook that fails is reported through ``warn`` and
as a ``"delivery"`` record in the log, naming the webhook but never its URL; a log file that
cannot be written is reported through ``warn``. Nothing here raises into the caller, so collection
goes on whatever happens to delivery.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.markup import escape

from tapewatch.alerts.alert import Alert, iso_z
from tapewatch.alerts.deliver import Delivery, RetryPolicy, Sleep, post
from tapewatch.alerts.secrets import Webhook, redact
from tapewatch.alerts.shapes import payload

Warn = Callable[[str], None]


class LogSink:
    """The alert log: one JSON object per line (``"record": "alert"`` or ``"delivery"``), appended,
    flushed and fsynced line by line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line (OSError on failure)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def sent(self) -> set[str]:
        """Ids of the alerts already in the log (a line that is not JSON is skipped)."""
        if not self.path.is_file():
            return set()
        ids = set()
        with self.path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("record") == "alert":
                    ids.add(str(rec.get("id")))
        return ids


class Dispatcher:
    """Sends alerts to the console (``console``, None = off), the log (None = off) and ``webhooks``."""

    def __init__(self, console: Console | None, log: LogSink | None, webhooks: Sequence[Webhook],
                 policy: RetryPolicy, warn: Warn, sleep: Sleep = asyncio.sleep) -> None:
        self.console = console
        self.log = log
        self.webhooks = list(webhooks)
        self.policy = policy
        self.warn = warn
        self.sleep = sleep

    async def send(self, alerts: Sequence[Alert]) -> list[Delivery]:
        """Every alert to every sink, in order; the webhooks' outcomes (never raises)."""
        out: list[Delivery] = []
        async with aiohttp.ClientSession() as session:
            for alert in alerts:
                out += await self.emit(session, alert)
        return out

    async def emit(self, session: aiohttp.ClientSession, alert: Alert) -> list[Delivery]:
        """One alert to every sink. A live loop runs this as a task at each bar close (with its own
        session), so that retries and timeouts never delay the next bar."""
        if self.console is not None:
            self.console.print(f"[bold]ALERT[/] {escape(alert.summary())}", highlight=False, soft_wrap=True)
        self._log({"record": "alert", "logged_at": iso_z(time.time_ns()), **alert.to_dict()})
        results = await asyncio.gather(*(post(session, h, payload(alert, h), self.policy, self.sleep)
                                          for h in self.webhooks))
        for d in results:
            if not d.ok:
                self.warn(self._clean(f"alert {alert.id}: {d.describe()}"))
                self._log({"record": "delivery", "id": alert.id, "webhook": d.webhook, "ok": False,
                           "attempts": d.attempts, "status": d.status, "error": self._clean(d.error)})
        return list(results)

    def _log(self, record: dict[str, Any]) -> None:
        if self.log is None:
            return
        try:
            self.log.write(record)
        except OSError as exc:
            self.warn(f"alert log {self.log.path}: cannot write ({exc.strerror or exc}); alerts go on")

    def _clean(self, text: str) -> str:
        return redact(text, [h.url for h in self.webhooks])
