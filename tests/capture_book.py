"""A Binance book built by hand from a raw capture, for the live and replay tests: plain dicts,
price text -> size text, sharing no code with tapewatch."""

from __future__ import annotations

from collections.abc import Iterable


def hand_book(snapshot: dict, diffs: Iterable[dict]) -> tuple[dict[str, str], dict[str, str], dict | None]:
    """The captured REST ``snapshot`` body, then each depth diff ``data`` whose u is past the
    book's (a size replaces the level's, 0 removes it; a level past the snapshot's deepest bid /
    ask is not known here and left out): (bids, asks, the last diff applied or None)."""
    bids, asks = dict(snapshot["bids"]), dict(snapshot["asks"])
    low, high = min(map(float, bids)), max(map(float, asks))
    last, applied = snapshot["lastUpdateId"], None
    for d in diffs:
        if d.get("e") != "depthUpdate" or d["u"] <= last:
            continue
        for levels, key, known in ((bids, "b", lambda p: p >= low), (asks, "a", lambda p: p <= high)):
            for price, qty in d[key]:
                if float(qty) == 0:
                    levels.pop(price, None)
                elif known(float(price)):
                    levels[price] = qty
        last, applied = d["u"], d
    return bids, asks, applied
