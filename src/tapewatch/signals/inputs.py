"""The inputs the factors can declare: each a record kind from configured markets, put on the grid.

``key`` is what a :class:`~tapewatch.signals.spec.FactorSpec` names in ``inputs``; ``kind`` the
stored record kind it is read from; ``config`` the dotted config keys that decide what is read
(a sweep that changes one of them reloads the inputs); ``columns`` what ``signals/frame.py`` puts on
the grid for it (``{band}``: each configured book band); ``present``: the column that tells
whether the input has a value at a bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tapewatch.config import Config
from tapewatch.signals.spec import expand

BAR_COLS = ("close", "volume", "taker_buy_volume")


@dataclass(frozen=True)
class InputSpec:
    """One input of the signal frame (see the module docstring)."""

    key: str
    label: str
    kind: str
    config: tuple[str, ...]
    columns: tuple[tuple[str, type[pl.DataType]], ...]
    present: str

    def dtypes(self, cfg: Config) -> dict[str, pl.DataType]:
        """Its grid columns under ``cfg`` with their dtypes (all nullable)."""
        return {name: dtype() for template, dtype in self.columns for name in expand((template,), cfg)}


def _bars(key: str) -> tuple[tuple[str, type[pl.DataType]], ...]:
    return tuple((f"{key}_{c}", pl.Float64) for c in BAR_COLS)


_BOOK = tuple(
    (f"book_{side}_{m}_{{band}}", pl.Float64) for side in ("bid", "ask") for m in ("amount", "notional")
) + (("book_bid_known_pct", pl.Float64), ("book_ask_known_pct", pl.Float64), ("book_source", pl.String))

INPUTS: tuple[InputSpec, ...] = (
    InputSpec("spot", "spot bars", "bar", ("markets.spot",), _bars("spot"), "spot_close"),
    InputSpec("perp", "perp bars", "bar", ("markets.perp",), _bars("perp"), "perp_close"),
    InputSpec("premium_a", "premium venue a bars", "bar", ("premium.a",),
              (("premium_a_close", pl.Float64),), "premium_a_close"),
    InputSpec("premium_b", "premium venue b bars", "bar", ("premium.b",),
              (("premium_b_close", pl.Float64),), "premium_b_close"),
    InputSpec("usdt_usd", "USDT/USD bars", "bar", ("premium.usdt_usd", "premium.usdt_max_age"),
              (("usdt_usd", pl.Float64),), "usdt_usd"),
    InputSpec("book", "book depth", "book_depth",
              ("book.sources", "book.reference", "book.bands", "book.max_age"), _BOOK, "book_source"),
    InputSpec("oi", "open interest", "open_interest", ("oi.source", "oi.max_age"),
              (("oi", pl.Float64), ("oi_value", pl.Float64)), "oi"),
    InputSpec("funding", "funding", "funding", ("funding.source", "funding.max_age"),
              (("funding_rate", pl.Float64), ("funding_time", pl.Int64)), "funding_rate"),
)
BY_KEY = {i.key: i for i in INPUTS}
