"""Funding rate, shown as context (no condition).

Per bar [t, t + interval) (``ts`` = t): ``funding_rate`` is the rate (a fraction per funding
interval, 0.0001 = 0.01 %) of the perpetual's (``funding.source``) last funding record strictly
before the bar close t + interval, at most ``funding.max_age`` old (NaN otherwise);
``funding_time`` is that record's time. Aligned by frame.py; nothing to derive here.
"""

from __future__ import annotations

from typing import Any

from tapewatch.signals.base import Context, ns_of, num
from tapewatch.signals.spec import FactorSpec, PanelSpec
from tapewatch.timeutil import ns_to_iso

NAME = "funding"


def context(row: dict[str, Any], ctx: Context) -> str | None:
    """``+0.0100% per funding interval (set 2024-01-01 08:00:00 UTC)``, or None when missing."""
    rate = num(row.get("funding_rate"))
    if rate is None:
        return None
    when = row.get("funding_time")
    return f"{rate * 100:+.4f}% per funding interval (record of {ns_to_iso(ns_of(when))} UTC)"


SPEC = FactorSpec(
    name=NAME,
    inputs=("funding",),
    table=("funding_rate",),
    panel=PanelSpec("funding rate (context)", (("funding rate", "funding_rate"),), "", note="no funding records"),
)
