"""Venue sync rules: when a book built from snapshots and diffs is in sync, and what to do with each message.

A *message* is a run of consecutive ``book_delta`` rows that share ``ts``, ``seq``, ``first_seq``,
``prev_seq`` and ``is_snapshot`` (one websocket event, one REST snapshot, one Tardis update
group). :func:`decide` looks at one message and the book's sync state and returns an action; the
engine (:mod:`tapewatch.book.engine`) carries it out. Every rule below is taken from the venue's own
documentation:

``binance_spot`` — Binance spot, "How to manage a local order book correctly"
    (https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md, section
    *How to manage a local order book correctly*; the 2024 revision is discussed at
    https://dev.binance.vision/t/need-clarification-on-recent-changes-of-order-book-management-in-spot-api-document/32466).
    Buffer the diff events; take a REST snapshot (``lastUpdateId``); drop buffered events with
    ``u <= lastUpdateId``; the first event applied must have ``U <= lastUpdateId + 1 <= u``; after
    that an event whose ``U`` is greater than the previous ``u + 1`` means events were lost:
    discard the book and start again from a new snapshot. An event with ``u`` at or below the
    book's update id is old (a duplicate) and is ignored. Rows: ``seq = u``, ``first_seq = U``,
    snapshot ``seq = lastUpdateId``.

``binance_usdm`` — Binance USDⓈ-M futures, "How to manage a local order book correctly"
    (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly).
    Drop events with ``u < lastUpdateId``; the first event processed must have
    ``U <= lastUpdateId <= u``; afterwards each event's ``pu`` must equal the previous event's
    ``u``, otherwise re-initialise from a new snapshot. Rows: ``seq = u``, ``first_seq = U``,
    ``prev_seq = pu``.

``coinbase`` — Coinbase Exchange websocket feed
    (https://docs.cdp.coinbase.com/exchange/websocket-feed/overview, *Sequence Numbers*: "increasing
    integer values for each product, with each new message being exactly one sequence number
    greater than the one before it"; a jump means a dropped message, a smaller number is an old or
    out-of-order message that can be ignored). The ``level2`` channel (https://docs.pro.coinbase.com/#the-level2-channel:
    "When subscribing to the channel it will send a message with the type snapshot … represent the
    entire order book", then ``l2update`` messages) carries no sequence numbers: there the book is the
    snapshot plus the updates after it, and a lost update cannot be detected (a crossed book is
    the only symptom, and it is reported). Where ``seq`` is present (full channel, REST book
    ``sequence``) it is checked: a message with ``seq <= snapshot seq`` is dropped, then every
    ``seq`` must be the previous one plus one. A source must leave ``seq`` null when the venue's
    number is not contiguous per product (Advanced Trade's ``sequence_num`` counts a whole
    connection).

``tardis`` — Tardis.dev ``incremental_book_L2`` CSV
    (https://docs.tardis.dev/downloadable-csv-files#incremental_book_l2 and
    https://docs.tardis.dev/faq/data, *How incremental_book_L2 CSV dataset is built*): rows with
    the same local timestamp form one update; when a row has ``is_snapshot = true`` and the
    previous one did not, reset the book (a new day or a reconnection). No sequence numbers: the
    rows apply in order. The same rule serves any source of plain snapshot + update streams
    (Tardis ``book_snapshot_N`` rows, where each snapshot row has its own ``seq``).

Common to all: a *gap* discards the book, is counted, and the book is rebuilt from the next
snapshot (with the buffered diffs replayed where the venue's ids allow it, as Binance prescribes);
no depth is sampled from a book that is known to be out of sync. Every level carries the absolute
size; a size of 0 removes the level, and removing a level that is not in the book is normal
(Binance's wording, true of every venue here).
"""

from __future__ import annotations

from dataclasses import dataclass

from tapewatch.book._jit import njit

NULL = -(2**63)  # stands for a null seq / first_seq / prev_seq inside the kernels

# rule codes
TARDIS = 0
BINANCE_SPOT = 1
BINANCE_USDM = 2
COINBASE = 3

# actions
WAIT = 0  # the book is out of sync: buffer the diff (sequenced venues) until a snapshot arrives
APPLY = 1  # apply the diff
STALE = 2  # an old or duplicate message: ignore it, the book stays in sync
GAP = 3  # messages were lost or reordered: discard the book, resync from the next snapshot
SNAPSHOT = 4  # reset the book to this snapshot
SNAP_CONT = 5  # more rows of the snapshot begun by the previous message
SNAP_IGNORE = 6  # a snapshot older than the live book: ignore it
BAD = 7  # the message holds malformed rows: the book can no longer be trusted

ACTION_NAMES = ("wait", "apply", "stale", "gap", "snapshot", "snapshot", "snapshot_ignored", "malformed")

# sync states
S_NONE = 0  # no valid book
S_AWAIT = 1  # snapshot applied, waiting for the first diff that bridges it
S_LIVE = 2  # in sync


@dataclass(frozen=True)
class Rule:
    """A venue's sync rule: what rows must carry, and whether buffered diffs can be replayed."""

    name: str
    code: int
    snapshot_needs_seq: bool  # a snapshot without seq cannot be matched to the diffs
    diff_needs_seq: bool
    diff_needs_first_seq: bool
    diff_needs_prev_seq: bool
    doc: str


RULES: dict[str, Rule] = {
    "binance_spot": Rule(
        "binance_spot", BINANCE_SPOT, True, True, True, False,
        "https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md",
    ),
    "binance_usdm": Rule(
        "binance_usdm", BINANCE_USDM, True, True, True, True,
        "https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/"
        "How-to-manage-a-local-order-book-correctly",
    ),
    "coinbase": Rule(
        "coinbase", COINBASE, False, False, False, False,
        "https://docs.cdp.coinbase.com/exchange/websocket-feed/overview",
    ),
    "tardis": Rule(
        "tardis", TARDIS, False, False, False, False,
        "https://docs.tardis.dev/downloadable-csv-files#incremental_book_l2",
    ),
}


def rule(name: str) -> Rule:
    """The rule called ``name`` (``binance_spot``, ``binance_usdm``, ``coinbase``, ``tardis``)."""
    from tapewatch.errors import TapewatchError

    try:
        return RULES[name]
    except KeyError:
        raise TapewatchError(f"unknown book venue rule {name!r}; use one of {', '.join(RULES)}") from None


def rule_for(exchange: str, market: str) -> str:
    """The sync rule of a venue's own live feed: Binance spot / USD-M, Coinbase; anything else
    (Tardis files of other venues, snapshot series) gets the plain snapshot-then-updates rule."""
    ex = exchange.lower()
    if ex == "binance":
        return "binance_spot" if market == "spot" else "binance_usdm"
    if ex == "coinbase":
        return "coinbase"
    return "tardis"


@njit
def decide(code: int, state: int, last: int, snap: bool, cont: bool, seq: int, first: int, prev: int) -> int:
    """The action for one well-formed message.

    ``state`` is the sync state, ``last`` the update id the book is at (snapshot id or last applied
    ``u`` / ``seq``; NULL when unknown), ``cont`` whether this snapshot message continues the
    snapshot of the previous message (same ``seq``). Pure: no state changes here.
    """
    if snap:
        if cont:
            return SNAP_CONT
        if code != TARDIS and state != S_NONE and seq != NULL and last != NULL and seq <= last:
            return SNAP_IGNORE  # the live book is already past this snapshot
        return SNAPSHOT
    if state == S_NONE:
        return WAIT
    if code == BINANCE_SPOT:
        # drop u <= id; apply when U <= id + 1 (<= u); otherwise events were lost
        if seq <= last:
            return STALE
        if first <= last + 1:
            return APPLY
        return GAP
    if code == BINANCE_USDM:
        if state == S_AWAIT:
            # drop u < lastUpdateId; the first event must have U <= lastUpdateId <= u
            if seq < last:
                return STALE
            if first <= last:
                return APPLY
            return GAP
        if seq <= last:
            return STALE  # a duplicate or an old event
        if prev == last:
            return APPLY
        return GAP
    if code == COINBASE:
        if seq == NULL or last == NULL:
            return APPLY
        if seq <= last:
            return STALE
        if seq == last + 1:
            return APPLY
        return GAP
    return APPLY
