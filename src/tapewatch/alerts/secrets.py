"""Webhook URLs: from environment variables or an owner-only file, never printed, logged or stored.

A webhook's URL carries its secret (a Slack / Discord webhook token, a Telegram bot token), so the
config names only where it is: the environment variable ``env`` (default
``TAPEWATCH_WEBHOOK_<NAME>``, e.g. ``TAPEWATCH_WEBHOOK_SLACK``), else the key ``<name>`` of the
TOML file ``alerts.secrets_file`` (``slack = "https://hooks.slack.com/services/…"``), which must
be readable by its owner only (mode 0600; anything readable by group or others is refused).
:class:`Secret` never shows its value in ``str`` / ``repr``; :func:`redact` removes it, and its
parts, from any text.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tapewatch.config import AlertsConfig, ConfigError

HIDDEN = "***"


class Secret:
    """A secret text that shows as ``***`` everywhere; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def parts(self) -> list[str]:
        """The value and its pieces that could carry the token on their own (URL path, query,
        path segments, user info), longest first, for :func:`redact`."""
        try:
            url = urlsplit(self._value)
            userinfo = url.netloc.rpartition("@")[0]
            tail = "/".join((userinfo, url.path, url.query, url.fragment))
            pieces = [self._value, url.path, url.query, url.fragment, userinfo]
        except ValueError:  # not a URL (e.g. an unclosed "[" in the host): hide it piece by piece
            tail = self._value
            pieces = [self._value]
        pieces += re.split(r"[/?&=:@#\[\]]", tail)
        return sorted({p for p in pieces if len(p) >= 6}, key=len, reverse=True)

    def __repr__(self) -> str:
        return HIDDEN

    __str__ = __repr__


@dataclass(frozen=True)
class Webhook:
    """A configured webhook with its URL: ``name`` (from the config), ``shape`` (generic, slack,
    discord, telegram), ``url`` (a :class:`Secret`), ``chat_id`` (Telegram)."""

    name: str
    shape: str
    url: Secret
    chat_id: str = ""


def redact(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every secret, and every part of one that could carry its token, replaced by ``***``."""
    for s in secrets:
        for part in s.parts():
            text = text.replace(part, HIDDEN)
    return text


def read_secrets_file(path: Path) -> dict[str, Secret]:
    """``name → URL`` from a TOML file readable by its owner only; anything else is a one-line
    ConfigError that never quotes the file's content."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"secrets file {path}: cannot read it ({exc.strerror or exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secrets file {path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"it holds webhook tokens: run chmod 600 {path}"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"secrets file {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        where = re.search(r"line \d+", str(exc))
        raise ConfigError(f"secrets file {path}: not a TOML file of name = \"URL\" lines"
                          f"{f' ({where.group(0)})' if where else ''}") from None
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        raise ConfigError(f"secrets file {path}: {', '.join(bad)} must be a URL in quotes")
    return {k: Secret(v) for k, v in data.items()}


def load_webhooks(cfg: AlertsConfig, environ: Mapping[str, str] | None = None,
                  base: Path | None = None) -> list[Webhook]:
    """The configured webhooks with their URLs: the environment variable first, else the secrets
    file (``alerts.secrets_file``, ``~`` expanded, relative to ``base``). A webhook with neither is
    a ConfigError naming the variable and the file key (never a value)."""
    env = os.environ if environ is None else environ
    from_file: dict[str, Secret] | None = None
    out = []
    for w in cfg.webhooks:
        value = env.get(w.env_var(), "").strip()
        if value:
            url = Secret(value)
        else:
            if from_file is None:
                from_file = _file_secrets(cfg, base)
            if w.name not in from_file:
                where = f" or key {w.name!r} in {cfg.secrets_file}" if cfg.secrets_file else ""
                raise ConfigError(f"webhook {w.name!r}: no URL; set ${w.env_var()}{where}")
            url = from_file[w.name]
        if not url.reveal().startswith(("http://", "https://")):
            raise ConfigError(f"webhook {w.name!r}: its URL must start with https:// (or http://)")
        out.append(Webhook(w.name, w.shape, url, w.chat_id))
    return out


def _file_secrets(cfg: AlertsConfig, base: Path | None) -> dict[str, Secret]:
    if not cfg.secrets_file:
        return {}
    path = Path(cfg.secrets_file).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return read_secrets_file(path)
