"""What the store holds per series, over which ranges, and where the holes are (``tapewatch status``).

A series is (kind, venue, market, symbol[, bar interval]). For the regularly spaced kinds —
bars (spacing = the interval), open interest, funding and book depth (spacing = the median
step between timestamps) — a gap is a step longer than 1.5 spacings; the missing span is
``(previous + spacing, next)``. For the others (trades, book deltas, quotes…) only whole UTC
days without a row count as gaps.

A gap inside a range the backfill manifest records as fetched is labelled "no rows at source"
(e.g. Coinbase minutes without trades, or a venue outage); any other gap "not fetched" —
``tapewatch backfill`` over it would try to fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
from rich.table import Table

from tapewatch.backfill.manifest import Manifest, Range, SeriesKey, subtract
from tapewatch.schemas import RECORD_KINDS
from tapewatch.store import NS_PER_DAY, Store
from tapewatch.timeutil import interval_ns, ns_to_iso

REGULAR = ("bar", "open_interest", "funding", "book_depth")
TOLERANCE = 1.5
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Gap:
    """A hole ``[start, end)`` (UTC ns); ``fetched``: the backfill fetched it and the source had nothing."""

    start: int
    end: int
    fetched: bool

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class SeriesStatus:
    """One series: rows, first and last timestamps, spacing (None if irregular) and gaps."""

    key: SeriesKey
    rows: int
    first: int
    last: int
    spacing: int | None
    gaps: list[Gap] = field(default_factory=list)

    @property
    def missing_points(self) -> int:
        """Rows a regular series lacks inside its range (0 for irregular series)."""
        if not self.spacing:
            return 0
        return sum(g.length // self.spacing for g in self.gaps)

    @property
    def ranges(self) -> list[Range]:
        """The contiguous ranges held: ``[first, last]`` minus the gaps."""
        end = self.last + (self.spacing or 1)
        return subtract([(self.first, end)], [(g.start, g.end) for g in self.gaps])


def series_status(store: Store, manifest: Manifest | None = None, kinds: tuple[str, ...] | None = None) -> list[SeriesStatus]:
    """Every series in ``store`` with its gaps, sorted by kind, venue, market, symbol, interval."""
    manifest = manifest or Manifest.load(store.root)
    out: list[SeriesStatus] = []
    with duckdb.connect() as con:
        for kind in kinds or RECORD_KINDS:
            files = store.files(kind)
            if not files:
                continue
            ivl = "interval" if kind == "bar" else "''"
            stats = con.sql(
                f"SELECT exchange, market, symbol, {ivl} AS interval, count(*) AS n, min(epoch_ns(ts)) AS lo, "
                "max(epoch_ns(ts)) AS hi FROM read_parquet(?, hive_partitioning = false, union_by_name = true) GROUP BY ALL ORDER BY ALL",
                params=[[str(f) for f in files]],
            ).fetchall()
            for ex, mkt, sym, interval, n, lo, hi in stats:
                key = SeriesKey(ex, mkt, kind, sym, interval or "")
                st = SeriesStatus(key, int(n), int(lo), int(hi), None)
                series_files = [str(f) for f in store.files(kind, ex, mkt, sym)]
                if kind in REGULAR:
                    _regular_gaps(con, st, series_files)
                else:
                    st.gaps = _day_gaps(store, key, lo, hi)
                coverage = manifest.coverage(key)
                st.gaps = [Gap(g.start, g.end, not subtract([(g.start, g.end)], coverage)) for g in st.gaps]
                out.append(st)
    return out


def _regular_gaps(con: duckdb.DuckDBPyConnection, st: SeriesStatus, files: list[str]) -> None:
    """Fill ``st.spacing`` and ``st.gaps`` from the steps between consecutive distinct timestamps."""
    where = "WHERE exchange = ? AND market = ? AND symbol = ?" + (" AND interval = ?" if st.key.kind == "bar" else "")
    params: list[object] = [files, st.key.venue, st.key.market, st.key.symbol]
    if st.key.kind == "bar":
        params.append(st.key.interval)
    steps = (
        f"WITH t AS (SELECT DISTINCT epoch_ns(ts) AS t FROM read_parquet(?, hive_partitioning = false, union_by_name = true) {where}), "
        "d AS (SELECT t, t - lag(t) OVER (ORDER BY t) AS dt FROM t) "
    )
    if st.key.kind == "bar":
        spacing = interval_ns(st.key.interval)
    else:
        [(med,)] = con.sql(steps + "SELECT quantile_disc(dt, 0.5) FROM d WHERE dt IS NOT NULL", params=params).fetchall()
        spacing = int(med) if med else None
    st.spacing = spacing
    if not spacing:
        return
    rows = con.sql(steps + "SELECT t - dt, t FROM d WHERE dt > ? ORDER BY t", params=[*params, int(spacing * TOLERANCE)]).fetchall()
    st.gaps = [Gap(int(prev) + spacing, int(t), False) for prev, t in rows]


def _day_gaps(store: Store, key: SeriesKey, lo: int, hi: int) -> list[Gap]:
    """Whole UTC days between the first and the last without a partition."""
    present = {p.parent.name.removeprefix("date=") for p in store.files(key.kind, key.venue, key.market, key.symbol)}
    gaps: list[Gap] = []
    d = EPOCH + timedelta(days=lo // NS_PER_DAY)
    last = EPOCH + timedelta(days=hi // NS_PER_DAY)
    while d <= last:
        if d.isoformat() not in present:
            start = (d - EPOCH).days * NS_PER_DAY
            if gaps and gaps[-1].end == start:
                gaps[-1] = Gap(gaps[-1].start, start + NS_PER_DAY, False)
            else:
                gaps.append(Gap(start, start + NS_PER_DAY, False))
        d += timedelta(days=1)
    return gaps


def fmt_span(ns: int) -> str:
    """``3d 4h``, ``12m``, ``45s``: a duration, two largest units."""
    s = ns // 1_000_000_000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    return " ".join(parts[:2]) or "0s"


def gaps_table(statuses: list[SeriesStatus], store_root: str = "", listed: int = 3) -> Table:
    """A Rich table: per series its rows, range, spacing, gap count and the largest gaps."""
    t = Table(title=f"series and gaps{f' in {store_root}' if store_root else ''}", title_justify="left")
    for c in ("kind", "exchange", "market", "symbol", "interval", "rows", "first (UTC)", "last (UTC)", "spacing",
              "gaps", "largest gaps"):
        t.add_column(c, justify="right" if c in ("rows", "gaps") else "left", overflow="fold")
    for st in statuses:
        not_fetched = [g for g in st.gaps if not g.fetched]
        gap_text = "none" if not st.gaps else f"{len(st.gaps):,}"
        if st.gaps:
            gap_text += f" ({len(not_fetched):,} not fetched)" if not_fetched else " (no rows at source)"
        largest = sorted(st.gaps, key=lambda g: (-g.length, g.start))[:listed]
        detail = "\n".join(
            f"{ns_to_iso(g.start)} → {ns_to_iso(g.end)} ({fmt_span(g.length)}, "
            f"{'no rows at source' if g.fetched else 'not fetched'})" for g in largest
        )
        t.add_row(st.key.kind, st.key.venue, st.key.market, st.key.symbol, st.key.interval or "—", f"{st.rows:,}",
                  ns_to_iso(st.first), ns_to_iso(st.last), fmt_span(st.spacing) if st.spacing else "irregular",
                  gap_text, detail)
    if not statuses:
        t.caption = "empty: run `tapewatch backfill …`, `tapewatch import PATH` or `tapewatch demo`"
    return t
