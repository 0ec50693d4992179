"""The venue's order book at the replay point, as the replay exchange's REST depth answers it.

A venue answers a depth request with its book as it stands: the replay exchange answers with the
captured depth snapshot and every captured diff of that symbol pumped so far (sent or withheld
by a fault: the venue's book moved even when a client missed the message) whose last update id
``u`` lies past the book's, applied in capture order (a level's size replaced, a size of 0
removing it). ``lastUpdateId`` is the ``u`` of the last diff applied; USD-M's ``E`` (event time)
and ``T`` (transaction time), ms since the epoch, are that diff's. Prices and quantities are the
captured strings, exactly as the venue formatted them. With no diff applied yet the body is the
captured one, byte for byte.

The depth range is what the captured snapshot knew: levels past its deepest bid and ask are left
out (there the replay knows only the levels diffs touched, not the venue's book), and each side
is cut to ``limit`` levels. The newest captured snapshot at or before the replay point anchors
the book (before the first one, the first); a capture that itself lost diffs gives a book that
lacks their changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tapewatch.replay.timeline import Feed, Message, Snapshot, Timeline


@dataclass
class ReplayBook:
    """One symbol's book on one feed: ``snapshot`` plus the diffs of ``messages[:position]`` past it."""

    snapshot: Snapshot
    body: dict[str, Any] = field(init=False)
    sides: tuple[dict[Decimal, list[str]], dict[Decimal, list[str]]] = field(init=False)  # bids, asks: price -> [price, qty] text
    deepest: tuple[Decimal, Decimal] = field(init=False)  # the captured snapshot's deepest bid and ask
    last: int = field(init=False)  # lastUpdateId: the snapshot's, then the last applied diff's u
    position: int = 0  # feed messages looked at so far
    applied: int = 0  # diffs applied so far

    def __post_init__(self) -> None:
        self.body = json.loads(self.snapshot.raw)
        self.sides = (_levels(self.body["bids"]), _levels(self.body["asks"]))
        self.deepest = (min(self.sides[0], default=Decimal(0)), max(self.sides[1], default=Decimal("Infinity")))
        self.last = int(self.body["lastUpdateId"])

    def advance(self, messages: list[Message], position: int) -> None:
        """Apply the diffs of ``messages[self.position:position]`` of this symbol past the book."""
        for msg in messages[self.position:position]:
            if not msg.is_depth or msg.product != self.snapshot.product:
                continue
            data = json.loads(msg.raw)["data"]
            if data["u"] <= self.last:
                continue
            for s, key in enumerate(("b", "a")):
                book = self.sides[s]
                for price, qty in data[key]:
                    p = Decimal(price)
                    if Decimal(qty) == 0:
                        book.pop(p, None)
                    elif (p >= self.deepest[0]) if s == 0 else (p <= self.deepest[1]):
                        book[p] = [price, qty]
            self.last = data["u"]
            self.body |= {k: data[k] for k in ("E", "T") if k in self.body and k in data}
            self.applied += 1
        self.position = max(self.position, position)

    def answer(self, limit: int) -> str:
        """The REST depth body: ``limit`` levels a side, best first."""
        if not self.applied and len(self.sides[0]) <= limit and len(self.sides[1]) <= limit:
            return self.snapshot.raw
        bids = [self.sides[0][p] for p in sorted(self.sides[0], reverse=True)[:limit]]
        asks = [self.sides[1][p] for p in sorted(self.sides[1])[:limit]]
        return json.dumps(self.body | {"lastUpdateId": self.last, "bids": bids, "asks": asks}, separators=(",", ":"))


def _levels(rows: list[list[str]]) -> dict[Decimal, list[str]]:
    return {Decimal(price): [price, qty] for price, qty in rows}


@dataclass
class ReplayBooks:
    """Every Binance symbol's :class:`ReplayBook` of a timeline, built on first request."""

    timeline: Timeline
    books: dict[tuple[Feed, str], ReplayBook] = field(default_factory=dict)

    def depth(self, feed: Feed, product: str, position: int, limit: int) -> str | None:
        """The depth body of ``product`` after ``position`` feed messages; None when the captures
        hold no snapshot of it."""
        snap = self.timeline.snapshot(feed, product, position)
        if snap is None:
            return None
        book = self.books.get((feed, product))
        if book is None or book.snapshot is not snap:
            book = self.books[(feed, product)] = ReplayBook(snap)
        book.advance(self.timeline.messages.get(feed, []), position)
        return book.answer(limit)
