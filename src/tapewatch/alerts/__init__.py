"""Alerts: when distribution or accumulation fires (and, if configured, when one factor's own
condition starts to hold), an :class:`~tapewatch.alerts.alert.Alert` is built from the
detector's decision at that bar and sent to the sinks: a console line, a JSON-lines log file and
webhooks (generic JSON, Slack, Discord, Telegram).

- ``alert.py``: the Alert value (each factor's value, threshold and why, the premium in context,
  the point-in-time track record of this configuration);
- ``engine.py``: bar by bar, which alerts a bar raises (de-duplicated by the detector cool-down);
- ``batch.py``: the alerts of the stored signals over a range (``tapewatch alerts``);
- ``shapes.py``: the webhook payloads; ``deliver.py``: POST with bounded retries;
- ``secrets.py``: webhook URLs from the environment or an owner-only file, never shown;
- ``sinks.py``: console, log file and webhooks together; a failing sink never stops the caller.
"""
