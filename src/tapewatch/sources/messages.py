"""Helpers shared by the importers of venue JSON (REST bodies, websocket messages, recordings).

A venue parser reads one decoded JSON value and appends normalized rows to a :class:`Rows`
collector; on a malformed value it raises :class:`MessageError` with the reason only. The caller
knows the file and the line (or the item of a body) and turns it into ``ImportFormatError``.

Conventions: every ``ts`` is an int of UTC nanoseconds; prices must be finite and > 0, sizes
finite and >= 0; ids and sequence numbers are ints (venues send them as JSON numbers, some
recorders as digit strings: both are accepted).
"""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tapewatch.errors import ImportFormatError, TapewatchError
from tapewatch.schemas import polars_schema
from tapewatch.sources.base import Batch, Hints, RawFile
from tapewatch.symbols import check_market, unify
from tapewatch.timeutil import epoch_unit_factor

NS_PER_S = 1_000_000_000


class MessageError(Exception):
    """One JSON message or body is malformed: the reason, and where known the item (1-based
    element of a body) or CSV line it is about; the caller adds the file."""

    def __init__(self, reason: str, row: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.row = row


def json_message(text: str | None, what: str) -> Any:
    """The JSON value of one message or REST body found in a line of a capture or recording;
    MessageError when the line has no body or the body is not JSON."""
    if text is None:
        raise MessageError(f"{what} line without a body")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MessageError(f"bad JSON ({exc})") from None


# -- collecting rows ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Key:
    """Who a row belongs to: venue, market (spot | perp | future) and unified symbol."""

    exchange: str
    market: str
    symbol: str


class Rows:
    """Normalized rows per record kind, kept in arrival order until :meth:`batches`."""

    def __init__(self) -> None:
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self.local_ts: int | None = None  # receive time (UTC ns) of the message being read, if known

    def add(self, kind: str, key: Key, ts: int | None, **fields: Any) -> dict[str, Any]:
        """Append one row (``ts`` in UTC ns; None only while a caller will still set it, see
        coinbase.FeedState); returns the row so that the caller may adjust ``ts``. The row's
        ``local_ts`` is :attr:`local_ts` (kinds without that column ignore it)."""
        row = {"exchange": key.exchange, "market": key.market, "symbol": key.symbol, "ts": ts,
               "local_ts": self.local_ts, **fields}
        self._rows.setdefault(kind, []).append(row)
        return row

    def batches(self) -> list[Batch]:
        """One :class:`Batch` per kind: the kind's columns, ``ts`` as Int64 UTC ns."""
        out = []
        for kind, rows in self._rows.items():
            if not rows:
                continue
            schema = polars_schema(kind)
            schema["ts"] = pl.Int64
            if "local_ts" in schema:
                schema["local_ts"] = pl.Int64
            # column by column: several times faster than orient="row" (a live flush builds these)
            df = pl.DataFrame({c: [r.get(c) for r in rows] for c in schema}, schema=schema)
            out.append(Batch(kind, df))
        return out

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The rows of ``kind`` gathered so far, in arrival order (read them, don't change them)."""
        return list(self._rows.get(kind, ()))

    def keep(self, kind: str, wanted: Callable[[dict[str, Any]], bool]) -> None:
        """Drop the rows of ``kind`` that are not ``wanted``."""
        self._rows[kind] = [r for r in self._rows.get(kind, ()) if wanted(r)]

    def extend(self, other: Rows) -> None:
        """Append every row of ``other`` (kept apart until it was known to be whole)."""
        for kind, rows in other._rows.items():
            self._rows.setdefault(kind, []).extend(rows)

    def detach(self) -> Rows:
        """The rows gathered so far, as a new :class:`Rows`; this one starts empty again. O(1): a
        live collector takes them in its event loop and builds their frames in a worker thread."""
        out = Rows()
        out._rows, self._rows = self._rows, {}
        return out


# -- field access and value checks -------------------------------------------------------------
def obj(value: Any, what: str) -> dict[str, Any]:
    """``value`` as a JSON object, else MessageError."""
    if not isinstance(value, dict):
        raise MessageError(f"{what} is not a JSON object")
    return value


def field(d: dict[str, Any], name: str) -> Any:
    """``d[name]``; a missing or null field is a MessageError."""
    try:
        value = d[name]
    except (KeyError, TypeError):
        raise MessageError(f"missing field {name!r}") from None
    if value is None:
        raise MessageError(f"missing field {name!r} (null)")
    return value


def number(value: Any, name: str) -> float:
    """A finite float from a JSON number or numeric string (venues quote decimals as strings)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MessageError(f"non-numeric {name} {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise MessageError(f"non-numeric {name} {value!r}") from None
    if not math.isfinite(x):
        raise MessageError(f"{name} is not a finite number: {value!r}")
    return x


def price(value: Any, name: str = "price") -> float:
    """A price: finite and > 0."""
    x = number(value, name)
    if x <= 0:
        raise MessageError(f"{name} must be > 0, got {value!r}")
    return x


def amount(value: Any, name: str = "size") -> float:
    """A size, volume or open interest: finite and >= 0."""
    x = number(value, name)
    if x < 0:
        raise MessageError(f"negative {name} {value!r}")
    return x


def opt_number(value: Any, name: str, check: Callable[[Any, str], float] = number) -> float | None:
    """Like ``check`` but None / "" (a venue's "not available") give None."""
    if value is None or value == "":
        return None
    return check(value, name)


def integer(value: Any, name: str) -> int:
    """An int from a JSON integer or a digit string (ids, sequence numbers, epoch times)."""
    if isinstance(value, bool):
        raise MessageError(f"non-integer {name} {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MessageError(f"non-integer {name} {value!r}")


def flag(value: Any, name: str) -> bool:
    """A JSON boolean (``true``/``false``), strictly."""
    if not isinstance(value, bool):
        raise MessageError(f"{name} must be true or false, got {value!r}")
    return value


def epoch_ns(value: Any, name: str) -> int:
    """Epoch time in s, ms, µs or ns (told apart by magnitude, see timeutil) to UTC ns.

    Integers are converted exactly; a float (seconds with a fraction) is rounded to the ns.
    """
    if isinstance(value, float) and not value.is_integer():
        if not math.isfinite(value) or value < 0:
            raise MessageError(f"bad {name} {value!r}")
        return round(value * epoch_unit_factor(value))
    t = integer(value, name)
    if t < 0:
        raise MessageError(f"negative {name} {value!r}")
    return t * epoch_unit_factor(t)


_DECIMAL_SECONDS = re.compile(r"^(\d+)(?:\.(\d{1,9})\d*)?$")


def seconds_text_ns(text: str) -> int:
    """Decimal epoch seconds as text (``1633998512.0633569``) to UTC ns, exactly (no float)."""
    m = _DECIMAL_SECONDS.match(text)
    if not m:
        raise MessageError(f"bad timestamp {text!r}")
    frac = (m.group(2) or "").ljust(9, "0")
    return int(m.group(1)) * NS_PER_S + int(frac)


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$"
)


def iso_ns(value: Any, name: str = "time") -> int:
    """ISO-8601 text (``2021-04-17T16:43:37.089723Z``; no zone = UTC) to UTC ns, exactly."""
    if not isinstance(value, str):
        raise MessageError(f"bad {name} {value!r}: expected ISO-8601 text")
    m = _ISO.match(value.strip())
    if not m:
        raise MessageError(f"bad {name} {value!r}: expected ISO-8601 text")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
        if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and s < 61):
            raise ValueError
    except (ValueError, OverflowError):
        raise MessageError(f"bad {name} {value!r}: not a valid date-time") from None
    frac = (m.group(7) or "")[:9].ljust(9, "0")
    zone = m.group(8)
    offset = 0
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (secs - offset) * NS_PER_S + int(frac)


def side_of(value: Any, name: str = "side") -> str:
    """``buy`` / ``sell`` (any case), else MessageError."""
    s = value.lower() if isinstance(value, str) else None
    if s not in ("buy", "sell"):
        raise MessageError(f"{name} must be buy or sell, got {value!r}")
    return s


def opposite(side: str) -> str:
    """The other side: a maker's ``sell`` is a taker's ``buy``."""
    return "buy" if side == "sell" else "sell"


def levels(value: Any, name: str) -> list[tuple[float, float]]:
    """Book levels ``[[price, size, ...], ...]`` as (price > 0, size >= 0) pairs."""
    if not isinstance(value, list):
        raise MessageError(f"{name} is not a list of [price, size] levels")
    out = []
    for lvl in value:
        if not isinstance(lvl, (list, tuple)) or len(lvl) < 2:
            raise MessageError(f"bad {name} level {lvl!r}: expected [price, size]")
        out.append((price(lvl[0], f"{name} price"), amount(lvl[1], f"{name} size")))
    return out


def symbol_of(native: Any) -> str:
    """Unified symbol of a venue's native one (``NKNUSDT`` -> ``NKN/USDT``)."""
    if not isinstance(native, str) or not native.strip():
        raise MessageError(f"bad symbol {native!r}")
    try:
        return unify(native)
    except TapewatchError as exc:
        raise MessageError(str(exc)) from None


def interval_text(seconds: int) -> str:
    """An interval in seconds as tapewatch spells it: 60 -> ``1m``, 3600 -> ``1h``, 86400 -> ``1d``."""
    if seconds <= 0:
        raise MessageError(f"bad interval of {seconds} s")
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Context:
    """What surrounds a body or message but is not in it: market, symbol and interval (from the
    request URL of a recording, else from the user's hints) and when it was received
    (``recv_ns``, UTC ns, from a recording line; None for a standalone file)."""

    market: str | None = None
    symbol: str | None = None
    interval: str | None = None
    recv_ns: int | None = None

    @classmethod
    def from_hints(cls, hints: Hints) -> Context:
        """Context of a standalone file: only what the user passed (validated)."""
        try:
            market = check_market(hints.market) if hints.market else None
        except TapewatchError as exc:
            raise MessageError(str(exc)) from None
        symbol = symbol_of(hints.symbol) if hints.symbol else None
        return cls(market=market, symbol=symbol, interval=hints.interval or None)

    @classmethod
    def of_file(cls, raw: RawFile, hints: Hints) -> Context:
        """:meth:`from_hints` for the standalone file ``raw``: bad hints are an
        ImportFormatError naming the file."""
        try:
            return cls.from_hints(hints)
        except MessageError as exc:
            raise ImportFormatError(raw.path, exc.reason) from None

    def need_market(self, what: str) -> str:
        if self.market is None:
            raise MessageError(f"{what} does not say its market: pass --market spot or --market perp")
        return self.market

    def need_symbol(self, what: str) -> str:
        if self.symbol is None:
            raise MessageError(f"{what} does not say its symbol: pass --symbol (e.g. BTC/USDT)")
        return self.symbol

    def need_time(self, what: str) -> int:
        """The receive time, for a body or message without a time of its own."""
        if self.recv_ns is None:
            raise MessageError(
                f"{what} carries no time of its own; import it inside a cryptofeed recording, "
                "whose lines are timestamped"
            )
        return self.recv_ns


# -- JSON files ----------------------------------------------------------------------------------
_WS = b" \t\r\n\xef\xbb\xbf"


def json_start(raw: RawFile) -> str:
    """The first non-blank character of the file (``{``, ``[``…), or ``""``."""
    head = raw.data[:64].lstrip(_WS)
    return chr(head[0]) if head else ""


def first_item(raw: RawFile) -> Any:
    """The first element of a top-level JSON array, decoded from the file's head (sniffing).

    None when the file is not an array or the element does not fit in the head.
    """
    text = raw.head.lstrip("\ufeff \t\r\n")
    if not text.startswith("["):
        return None
    rest = text[1:].lstrip()
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None
    return value


def first_line_json(raw: RawFile) -> Any:
    """The first non-empty line decoded as JSON (None when it is not one complete value)."""
    if not raw.first_lines:
        return None
    try:
        return json.loads(raw.first_lines[0])
    except ValueError:
        return None


def sniff_json(
    raw: RawFile,
    body_kind: Callable[[Any], str | None],
    object_file: Callable[[RawFile, Any], bool],
) -> bool:
    """Whether ``raw`` is one venue's JSON, told from its start (the ``sniff`` of a JSON format).

    A file starting with ``[`` is the venue's when ``body_kind`` knows a body holding its first
    item; a file starting with ``{`` when ``object_file(raw, doc)`` says so, ``doc`` being the
    first line decoded (None when that line is not one complete value, e.g. pretty-printed JSON);
    any other file is not.
    """
    start = json_start(raw)
    if start == "[":
        item = first_item(raw)
        return item is not None and body_kind([item]) is not None
    return start == "{" and object_file(raw, first_line_json(raw))


def json_documents(raw: RawFile) -> Iterator[tuple[int | None, Any]]:
    """The file as ``(line, value)``: one whole JSON document (line None), or JSON Lines.

    A file that is not one JSON document is read as one JSON value per non-empty line; a bad
    line is an ImportFormatError naming it.
    """
    text = raw.text()
    try:
        yield None, json.loads(text)
        return
    except ValueError as exc:
        whole_error = exc
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if len(lines) <= 1:
        raise ImportFormatError(raw.path, f"bad JSON ({whole_error})", lines[0][0] if lines else None)
    for i, ln in lines:
        try:
            yield i, json.loads(ln)
        except ValueError as exc:
            raise ImportFormatError(raw.path, f"bad JSON ({exc})", i) from None


def each(items: list[Any], parse: Callable[[int, Any], None]) -> None:
    """Apply ``parse(n, item)`` to each element of a body (``n`` 1-based); a MessageError without
    a row gets the item number."""
    for n, item in enumerate(items, start=1):
        try:
            parse(n, item)
        except MessageError as exc:
            if exc.row is None:
                exc.row = n
            raise


def located(path: Path, exc: MessageError, line: int | None, unit: str = "item") -> ImportFormatError:
    """ImportFormatError for a MessageError raised while reading a body found at ``line``.

    For a body, the item (``exc.row``) goes into the reason and ``line`` is the error's row; for
    CSV (``unit="line"``) ``exc.row`` is itself the line.
    """
    if unit == "line":
        return ImportFormatError(path, exc.reason, exc.row if exc.row is not None else line)
    reason = f"{unit} {exc.row}: {exc.reason}" if exc.row is not None else exc.reason
    return ImportFormatError(path, reason, line)


def answer_entries(body: Any, venue: str, status: str, message: str, *path: str) -> list[dict[str, Any]]:
    """The JSON objects in the list at ``path`` of a venue's answer (``"result", "list"``) whose
    ``status`` field is 0; a non-zero status is a MessageError carrying the ``message`` field
    (Bybit and OKX answer errors with HTTP 200 and such a code)."""
    d = obj(body, f"{venue} body")
    if d.get(status) not in (0, "0"):
        raise MessageError(f"{venue} {status} {d.get(status)!r}: {d.get(message)!r}")
    for name in path[:-1]:
        d = obj(field(d, name), f"{venue} {name}")
    entries = field(d, path[-1])
    if not isinstance(entries, list):
        raise MessageError(f"{venue} {'.'.join(path)} is not a list")
    return [obj(e, f"{venue} {path[-1]} entry") for e in entries]
