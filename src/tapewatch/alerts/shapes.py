"""Webhook payloads of an alert: generic JSON, Slack, Discord and Telegram.

- ``generic``: :meth:`Alert.to_dict` (every number, threshold, reason and the track record);
- ``slack``: ``{"text": …, "blocks": [header, section, context]}`` (an incoming webhook);
- ``discord``: ``{"content": …, "embeds": [{"title", "description", "color", "fields", "footer",
  "timestamp"}]}`` (a channel webhook), within Discord's length limits;
- ``telegram``: the body of the Bot API's ``sendMessage``: ``{"chat_id", "text", "parse_mode":
  "HTML"}`` (the webhook URL is ``https://api.telegram.org/bot<token>/sendMessage``).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

from tapewatch.alerts.alert import Alert, iso_z
from tapewatch.alerts.secrets import Webhook

# Discord: red for distribution, green for accumulation
COLORS = {"distribution": 0xD64541, "accumulation": 0x2E9E5B}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _details(alert: Alert) -> list[str]:
    lines = [alert.when(), alert.reason]
    if alert.premium and alert.premium not in alert.reason:
        lines.append(f"premium {alert.premium}")
    if alert.record is not None:
        lines.append(alert.record.describe())
    return lines


def generic(alert: Alert, hook: Webhook) -> dict[str, Any]:
    """The alert as plain JSON data."""
    return alert.to_dict()


def slack(alert: Alert, hook: Webhook) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notification fallback) and Block Kit blocks."""
    factors = "\n".join(f"• {line}" for line in alert.factor_lines())
    return {
        "text": alert.summary(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _cut(alert.title(), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(_details(alert)), 3000)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(factors, 3000)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": alert.id}]},
        ],
    }


def discord(alert: Alert, hook: Webhook) -> dict[str, Any]:
    """A Discord webhook message: ``content`` and one embed with a field per factor."""
    fields = [{"name": f"{r.factor}: {r.state.value}", "value": _cut(line.split(": ", 1)[1], 1024), "inline": False}
              for r, line in zip(alert.readings, alert.factor_lines())]
    return {
        "content": _cut(alert.title(), 2000),
        "embeds": [{
            "title": _cut(alert.title(), 256),
            "description": _cut("\n".join(_details(alert)), 4096),
            "color": COLORS[alert.side],
            "fields": fields[:25],
            "footer": {"text": _cut(alert.id, 2048)},
            "timestamp": iso_z(alert.known_at),
        }],
    }


def telegram(alert: Alert, hook: Webhook) -> dict[str, Any]:
    """The ``sendMessage`` body: HTML text (bold title, details, one line per factor)."""
    lines = [f"<b>{escape(alert.title())}</b>", *map(escape, _details(alert)), "",
             *(escape(f"• {line}") for line in alert.factor_lines())]
    text = lines[0]
    for line in lines[1:]:  # whole lines only, so that no tag or entity is cut (Telegram: 4,096 characters)
        if len(text) + 1 + len(line) > 4096:
            break
        text += "\n" + line
    return {"chat_id": hook.chat_id, "text": text, "parse_mode": "HTML", "disable_web_page_preview": True}


SHAPES: dict[str, Callable[[Alert, Webhook], dict[str, Any]]] = {
    "generic": generic, "slack": slack, "discord": discord, "telegram": telegram,
}


def payload(alert: Alert, hook: Webhook) -> dict[str, Any]:
    """The JSON body ``hook`` takes for ``alert``."""
    return SHAPES[hook.shape](alert, hook)
