"""Webhook delivery and webhook secrets: retries on 5xx, Retry-After on 429, no retry on other
4xx, a receiver that is down, and URLs that never show — against a local aiohttp receiver."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from tapewatch.alerts.deliver import Delivery, RetryPolicy, post, retry_after
from tapewatch.alerts.secrets import Secret, Webhook, load_webhooks, read_secrets_file, redact
from tapewatch.cli import app
from tapewatch.config import AlertsConfig, ConfigError, WebhookConfig
from webhook_receiver import Receiver, closed_port

FAST = RetryPolicy(retries=3, backoff=0.01, timeout=5.0, max_wait=5.0)
TOKEN = "T0KEN-abcdef-987654"


def _post(url: str, policy: RetryPolicy = FAST) -> Delivery:
    async def go() -> Delivery:
        async with aiohttp.ClientSession() as session:
            return await post(session, Webhook("hook", "generic", Secret(url)), {"text": "hello"}, policy)

    return asyncio.run(go())


def test_a_500_is_retried_and_the_next_answer_delivers() -> None:
    with Receiver([(500, {})]) as rx:
        d = _post(rx.url("/h"))
    assert d == Delivery("hook", True, 2, 200) and [b for _, _, b in rx.requests] == [{"text": "hello"}] * 2


def test_a_429_waits_for_its_retry_after() -> None:
    with Receiver([(429, {"Retry-After": "1"})]) as rx:
        d = _post(rx.url("/h"))
    assert d.ok and d.attempts == 2
    (t0, _, _), (t1, _, _) = rx.requests
    assert t1 - t0 >= 1.0


def test_other_4xx_are_not_retried_and_retries_are_bounded() -> None:
    with Receiver([(404, {})]) as rx:
        d = _post(rx.url("/h"))
    assert (d.ok, d.attempts, d.status, len(rx.requests)) == (False, 1, 404, 1) and "HTTP 404" in d.error
    with Receiver([(503, {})] * 10) as rx:
        d = _post(rx.url("/h"))
    assert (d.ok, d.attempts, len(rx.requests)) == (False, 4, 4)


def test_a_receiver_that_is_down_fails_without_raising_or_showing_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook/{TOKEN}"
    d = _post(url, RetryPolicy(retries=1, backoff=0.0, timeout=2.0))
    assert not d.ok and d.attempts == 2 and d.status is None and d.error.startswith("cannot connect")
    assert TOKEN not in d.describe() and "webhook 'hook': not delivered after 2 attempts" in d.describe()
    bad = _post(f"http://[bad-host/{TOKEN}", RetryPolicy(retries=0))  # an invalid URL: its text is redacted
    assert not bad.ok and TOKEN not in bad.error and bad.error


def test_retry_after_reads_headers_and_bodies() -> None:
    assert retry_after({"Retry-After": "2"}, "") == 2.0
    assert retry_after({}, '{"ok": false, "parameters": {"retry_after": 7}}') == 7.0  # Telegram
    assert retry_after({}, '{"retry_after": 0.5}') == 0.5  # Discord
    assert retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "") == 0.0  # a date in the past
    assert retry_after({}, "busy") is None


def test_secrets_never_show_and_are_redacted() -> None:
    s = Secret(f"https://hooks.slack.com/services/{TOKEN}")
    assert str(s) == repr(s) == "***" and TOKEN not in f"{s} {s!r} {[s]}"
    assert redact(f"failed: {s.reveal()} and {TOKEN}", [s]) == "failed: *** and ***"


def _cfg(tmp_path: Path, mode: int) -> AlertsConfig:
    f = tmp_path / "webhooks.toml"
    f.write_text(f'slack = "https://hooks.slack.com/services/{TOKEN}"\n')
    os.chmod(f, mode)
    return AlertsConfig(secrets_file=str(f), webhooks=(WebhookConfig("slack", "slack"),))


def test_a_secrets_file_must_be_owner_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_webhooks(_cfg(tmp_path, 0o644), environ={})
    msg = str(err.value)
    assert "\n" not in msg and "mode 0644" in msg and "chmod 600" in msg and TOKEN not in msg
    (hook,) = load_webhooks(_cfg(tmp_path, 0o600), environ={})
    assert hook.url.reveal().endswith(TOKEN) and hook.shape == "slack"
    (env,) = load_webhooks(_cfg(tmp_path, 0o600), environ={"TAPEWATCH_WEBHOOK_SLACK": "https://example.org/x"})
    assert env.url.reveal() == "https://example.org/x"  # the environment wins over the file
    with pytest.raises(ConfigError, match=r"webhook 'slack': no URL; set \$TAPEWATCH_WEBHOOK_SLACK"):
        load_webhooks(AlertsConfig(webhooks=(WebhookConfig("slack", "slack"),)), environ={})


def test_a_bad_secrets_file_is_one_line_without_its_content(tmp_path: Path) -> None:
    f = tmp_path / "webhooks.toml"
    f.write_text(f"slack = https://x/{TOKEN}\n")
    os.chmod(f, 0o600)
    with pytest.raises(ConfigError) as err:
        read_secrets_file(f)
    assert "(line 1)" in str(err.value) and TOKEN not in str(err.value)


def test_the_command_refuses_a_readable_secrets_file_in_one_line(tmp_path: Path) -> None:
    secrets = tmp_path / "webhooks.toml"
    secrets.write_text(f'slack = "https://hooks.slack.com/services/{TOKEN}"\n')
    os.chmod(secrets, 0o644)
    config = tmp_path / "tapewatch.toml"
    config.write_text(f'[alerts]\nsecrets_file = "{secrets.as_posix()}"\n'
                      '[[alerts.webhooks]]\nname = "slack"\nshape = "slack"\n')
    res = CliRunner().invoke(app, ["alerts", "--store", str(tmp_path / "store"), "--config", str(config)],
                             env={"TAPEWATCH_STORE": "", "TAPEWATCH_CONFIG": "", "COLUMNS": "250"})
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: secrets file") and "mode 0644" in lines[0]
    assert TOKEN not in res.output


def test_the_alerts_table_is_validated_naming_the_key() -> None:
    from tapewatch.config import config_from_dict

    ok = config_from_dict({"alerts": {"crossings": ["premium"], "webhooks": [
        {"name": "slack", "shape": "slack"}, {"name": "tg", "shape": "telegram", "chat_id": "-100", "env": "MY_TG"}]}})
    assert ok.alerts.webhooks[1].env_var() == "MY_TG" and ok.alerts.webhooks[0].env_var() == "TAPEWATCH_WEBHOOK_SLACK"
    assert WebhookConfig("ops-room").env_var() == "TAPEWATCH_WEBHOOK_OPS_ROOM"
    for bad, words in (
        ({"webhooks": [{"name": "tg", "shape": "telegram"}]}, "needs chat_id"),
        ({"webhooks": [{"name": "a"}, {"name": "a"}]}, "names a more than once"),
        ({"webhooks": [{"name": "a", "shape": "teams"}]}, "'alerts.webhooks[0].shape' must be one of"),
        ({"webhooks": [{"name": "a b"}]}, "use letters, digits"),
        ({"sides": ["up"]}, "'alerts.sides[0]' must be one of"),
        ({"retries": -1}, "'alerts.retries' must be 0 or more"),
        ({"webhooks": [{"name": "a", "env": "https://hooks.slack.com/x"}]}, "env must name an environment variable"),
        ({"url": "https://x"}, "unknown config key 'alerts.url'"),
    ):
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            config_from_dict({"alerts": bad})
