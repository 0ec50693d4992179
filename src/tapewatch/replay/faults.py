"""The faults the replay exchange injects, as constructor arguments and CLI options.

Positions count a feed's messages from 0 in capture order (every channel), except ``gap_at``,
which counts its sequenced book updates only (Binance depth diffs, Coinbase l2update).

* ``drop`` / ``drop_at``: withhold ``drop`` messages starting at message ``drop_at``;
* ``gap_at``: withhold that book update, so the next one breaks the U/u/pu sequence;
* ``stale_at``: once ``stale_at`` messages are out, stop sending but keep the sockets open; the
  feed resumes (from there) for the next client that connects;
* ``cut_at`` / ``cut``: at message ``cut_at`` every socket of the feed is closed and the next
  ``cut`` messages go by with no one connected (lost, as on a real venue, though the REST
  trade endpoints know them); the feed then waits for a client as usual;
* ``rest_error`` (429 or 418) with ``rest_errors`` and ``retry_after``: the first
  ``rest_errors`` REST requests get that status, Binance's error body and ``Retry-After``
  seconds;
* ``snapshot_delay``: every depth snapshot is answered after that many seconds;
* ``trades_error``: every REST trades request (historicalTrades, Coinbase trades) is answered
  with this HTTP status (429 / 418 with ``Retry-After``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tapewatch.errors import TapewatchError

REST_ERRORS = {
    429: "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    418: "Way too many requests; IP banned until the Retry-After time. Please use WebSocket Streams for live updates to avoid bans.",
}


@dataclass(frozen=True)
class Faults:
    """Which faults to inject (all off by default); see the module docstring."""

    drop: int = 0
    drop_at: int = 0
    gap_at: int | None = None
    stale_at: int | None = None
    rest_error: int | None = None
    rest_errors: int = 1
    retry_after: int = 1
    snapshot_delay: float = 0.0
    cut_at: int | None = None
    cut: int = 0
    trades_error: int | None = None

    def __post_init__(self) -> None:
        counts = {"drop": self.drop, "drop-at": self.drop_at, "gap-at": self.gap_at, "stale-at": self.stale_at,
                  "rest-errors": self.rest_errors, "retry-after": self.retry_after, "snapshot-delay": self.snapshot_delay, "cut-at": self.cut_at, "cut": self.cut}
        for name, value in counts.items():
            if value is not None and value < 0:
                raise TapewatchError(f"--{name} must be 0 or more, not {value}")
        if self.rest_error is not None and self.rest_error not in REST_ERRORS:
            raise TapewatchError(f"--rest-error must be 429 or 418, not {self.rest_error}")
        if self.trades_error is not None and not 400 <= self.trades_error <= 599:
            raise TapewatchError(f"--trades-error must be an HTTP error status (400 to 599), not {self.trades_error}")

    def withheld(self, index: int, depth_index: int | None) -> bool:
        """True when feed message ``index`` (book update ``depth_index``, None if not one) is not sent."""
        if self.drop_at <= index < self.drop_at + self.drop:
            return True
        return depth_index is not None and depth_index == self.gap_at
