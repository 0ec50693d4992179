"""A self-contained HTML report of an event study (and PNG figures).

One HTML file that opens offline: plotly.js is inlined once, every figure is a ``<div>`` with a
fixed id, no request leaves the page. Panels, top to bottom:

* ``panel-market``: price with the distribution (red ▼) and accumulation (green ▲) episode starts
  of the reported parameter set, and one row per factor below it (shared time axis; the configured
  thresholds dashed); the out-of-sample part is shaded;
* the verdict, the label definition and the event-study table (HTML);
* ``panel-hits``: hit rate with its one-sided bound against the base rate, per period and side;
* ``panel-returns``: forward-return distributions after each side's events vs all bars, per horizon;
* with a sweep, its table and ``panel-sweep``: every parameter set's hit rate against the base rate.

Long series are thinned for drawing (per bucket the first, lowest, highest and last value, so
spikes stay visible); the statistics never use the thinned data. Times on the axes are UTC.
PNG figures (``png_dir``) are written with kaleido, which drives a local Chrome / Chromium; when
that fails the report says why and the HTML is still written.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tapewatch.study.forward import format_duration
from tapewatch.study.result import (
    PeriodStats, SideSweep, StudyResult, SweepRow, format_params, p_text, pct, pct_range, sweep_summary,
)
from tapewatch.study.run import Study

F64 = NDArray[np.float64]
MS = 1_000_000
COLORS = {"distribution": "#d62728", "accumulation": "#2ca02c", "price": "#1f77b4", "base": "#7f7f7f"}
MARKERS = {"distribution": "triangle-down", "accumulation": "triangle-up"}


@dataclass(frozen=True)
class FactorPanel:
    """One factor's row under the price: per-bar ``series`` (label → values aligned with the study's
    bars, NaN = missing) in ``unit``, dashed ``lines`` at its thresholds, ``note`` shown when every
    value is missing (e.g. "no book_depth records")."""

    title: str
    series: Mapping[str, F64]
    unit: str = ""
    lines: tuple[float, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ReportOutput:
    """What was written: the HTML file, the panel ids in it, PNG files (or why there are none)."""

    html: Path
    panels: tuple[str, ...]
    pngs: tuple[Path, ...] = ()
    png_error: str | None = None
    subplots: dict[str, int] = field(default_factory=dict)  # panel id → number of plot areas


def thin(x: NDArray[np.int64], y: F64, max_points: int) -> tuple[NDArray[np.int64], F64]:
    """At most about ``max_points`` points of (x, y) for drawing: per bucket the first, lowest,
    highest and last point, in time order. NaN stays NaN (a gap in the line)."""
    n = len(x)
    if n <= max_points:
        return x, y
    per = int(np.ceil(n / (max_points / 4)))
    keep = []
    for lo in range(0, n, per):
        seg = y[lo:lo + per]
        idx = {lo, lo + len(seg) - 1}
        if np.isfinite(seg).any():
            idx |= {lo + int(np.nanargmin(seg)), lo + int(np.nanargmax(seg))}
        keep.extend(sorted(idx))
    k = np.asarray(keep)
    return x[k], y[k]


def _ms(ts: NDArray[np.int64]) -> NDArray[np.int64]:
    return ts // MS


def robust_range(values: Sequence[F64], lines: Sequence[float] = (), q: float = 0.005) -> tuple[float, float] | None:
    """A y-range that keeps the bulk of ``values`` (the ``q`` … ``1 - q`` quantiles) and every
    threshold line readable, padded by 10 %; None when no finite value falls outside it (no clipping needed)."""
    finite = [v[np.isfinite(v)] for v in values]
    allv = np.concatenate(finite) if finite else np.array([])
    if allv.size == 0:
        return None
    lo, hi = (float(x) for x in np.quantile(allv, [q, 1 - q]))
    lo, hi = min([lo, *lines]), max([hi, *lines])
    pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
    lo, hi = lo - pad, hi + pad
    if ((allv < lo) | (allv > hi)).any():
        return lo, hi
    return None


def _clipped(fig: go.Figure, ts: NDArray[np.int64], v: F64, lo: float, hi: float, label: str, unit: str,
             row: int) -> None:
    """Mark the points outside [lo, hi] at the panel's edge, their real value on hover."""
    out = np.flatnonzero(np.isfinite(v) & ((v < lo) | (v > hi)))
    if out.size == 0:
        return
    edge = np.where(v[out] > hi, hi, lo)
    text = [f"{label} {v[i]:+,.4g} {unit} (off the scale)".replace("  ", " ") for i in out]
    fig.add_trace(go.Scatter(x=_ms(ts[out]), y=edge, mode="markers", name=f"{label}: {out.size} off the scale",
                             marker={"symbol": "x-thin-open", "size": 8, "color": "#444"}, hovertext=text,
                             hoverinfo="text+x"), row=row, col=1)


def market_figure(study: Study, factors: Sequence[FactorPanel], max_points: int = 20_000,
                  hover: Mapping[str, Sequence[str]] | None = None) -> go.Figure:
    """Price with event markers and one row per factor, on a shared UTC time axis.

    ``hover``: per side, one explanation per event (in the order of ``study.events``) shown on
    its marker. A factor row whose values include a few extreme points (one spike dwarfing the
    rest) gets a robust y-range (see :func:`robust_range`); the points beyond it are marked at the
    edge with their real value on hover."""
    bars = study.forward.bars
    rows = 1 + len(factors)
    heights = [0.4] + [0.6 / max(1, len(factors))] * len(factors) if factors else [1.0]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=heights,
                        subplot_titles=["price (close)", *(f.title for f in factors)])
    x, y = thin(bars.ts, bars.close, max_points)
    fig.add_trace(go.Scatter(x=_ms(x), y=y, mode="lines", name="close", line={"color": COLORS["price"], "width": 1}),
                  row=1, col=1)
    for side, pos in study.events.items():
        notes = list((hover or {}).get(side, ()))
        fig.add_trace(go.Scatter(
            x=_ms(bars.ts[pos]), y=bars.close[pos], mode="markers", name=f"{side} ({len(pos)})",
            marker={"symbol": MARKERS[side], "size": 10, "color": COLORS[side], "line": {"width": 1, "color": "#222"}},
            **({"hovertext": notes, "hoverinfo": "text"} if len(notes) == len(pos) else {}),
        ), row=1, col=1)
    for r, f in enumerate(factors, start=2):
        drawn = False
        for label, values in f.series.items():
            v = np.asarray(values, dtype=np.float64)
            if not np.isfinite(v).any():
                continue
            fx, fy = thin(bars.ts, v, max_points)
            fig.add_trace(go.Scatter(x=_ms(fx), y=fy, mode="lines", name=label, line={"width": 1}), row=r, col=1)
            drawn = True
        for level in f.lines:
            fig.add_hline(y=level, line={"dash": "dash", "width": 1, "color": "#555"}, row=r, col=1)
        values = {k: np.asarray(v, dtype=np.float64) for k, v in f.series.items()}
        span = robust_range(list(values.values()), f.lines)
        if span is not None:
            fig.update_yaxes(range=list(span), row=r, col=1)
            for label, v in values.items():
                _clipped(fig, bars.ts, v, span[0], span[1], label, f.unit, r)
        if not drawn:
            fig.add_trace(go.Scatter(x=_ms(bars.ts[[0, -1]]), y=[0, 0], mode="lines", name=f"{f.title}: no data",
                                     line={"width": 0.5, "color": "#ccc"}), row=r, col=1)
            fig.add_annotation(text=html.escape(f.note or "no data"), xref="x domain", yref="y domain", x=0.5, y=0.5,
                               showarrow=False, row=r, col=1)
        fig.update_yaxes(title_text=f.unit, row=r, col=1)
    oos = study.result.period("out-of-sample")
    if oos is not None and study.result.settings.get("split") == "holdout":
        fig.add_vrect(x0=oos.start.replace("Z", ""), x1=oos.end.replace("Z", ""), fillcolor="#999", opacity=0.12,
                      line_width=0, annotation_text="out-of-sample (untouched)", annotation_position="top left",
                      row="all", col=1)
    fig.update_xaxes(type="date")
    fig.update_layout(height=300 + 170 * len(factors), margin={"l": 60, "r": 20, "t": 40, "b": 30},
                      legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
                      hovermode="x unified")
    return fig


def hits_figure(result: StudyResult) -> go.Figure:
    """Hit rate (with its interval) vs base rate per period and side."""
    fig = go.Figure()
    for period in result.periods:
        xs, ys, lo, hi, base = [], [], [], [], []
        for s in period.sides:
            lab = s.label
            xs.append(f"{s.side}<br>{period.name}")
            ys.append(lab.value)
            lo.append(None if lab.value is None or lab.ci_low is None else lab.value - lab.ci_low)
            hi.append(None if lab.value is None or lab.ci_high is None else lab.ci_high - lab.value)
            base.append(lab.base)
        fig.add_trace(go.Bar(x=xs, y=ys, name=f"after events — {period.name}",
                             error_y={"type": "data", "array": hi, "arrayminus": lo, "visible": True}))
        fig.add_trace(go.Scatter(x=xs, y=base, mode="markers", name=f"base rate — {period.name}",
                                 marker={"symbol": "line-ew-open", "size": 40, "color": "#333",
                                         "line": {"width": 3}}))
    fig.update_layout(title=f"hit rate: {result.label}", yaxis={"tickformat": ".0%", "range": [0, 1]}, height=420,
                      barmode="group", margin={"l": 60, "r": 20, "t": 60, "b": 80})
    return fig


def returns_figure(study: Study, bins: int = 40) -> go.Figure:
    """Per horizon: the distribution of forward returns after each side's events vs all bars
    (fractions of each group per bin, the same bins for all; events of the reported set)."""
    fw = study.forward
    hz = [format_duration(h) for h in fw.horizons_ns]
    fig = make_subplots(rows=1, cols=len(hz), subplot_titles=[f"forward return {h}" for h in hz])
    for j in range(len(hz)):
        allr = fw.returns[:, j]
        allr = allr[np.isfinite(allr)]
        if allr.size == 0:
            continue
        lo, hi = np.quantile(allr, [0.005, 0.995])
        edges = np.linspace(lo, hi, bins + 1)
        mids = (edges[:-1] + edges[1:]) / 2
        groups = [("all bars", allr, COLORS["base"])] + [
            (side, fw.returns[pos, j][np.isfinite(fw.returns[pos, j])], COLORS[side]) for side, pos in study.events.items()
        ]
        for name, vals, color in groups:
            counts, _ = np.histogram(np.clip(vals, lo, hi), bins=edges)
            frac = counts / max(1, vals.size)
            fig.add_trace(go.Bar(x=mids * 100, y=frac, name=f"{name} (n={vals.size})", marker={"color": color},
                                 opacity=0.55, legendgroup=name, showlegend=j == 0), row=1, col=j + 1)
        fig.update_xaxes(title_text="%", row=1, col=j + 1)
    fig.update_yaxes(tickformat=".0%")
    fig.update_layout(barmode="overlay", height=380, margin={"l": 50, "r": 20, "t": 60, "b": 40})
    return fig


# -- HTML --------------------------------------------------------------------------------------
def _cell(x: object) -> str:
    return f"<td>{html.escape(str(x))}</td>"


def study_table(period: PeriodStats, cost_bps: float | None = None) -> str:
    """The event-study table of one period (HTML): per outcome the gross figures and, for forward
    returns, the mean / median net of the round-trip cost in the claimed direction; then the hit
    rate per bull / bear regime."""
    cost = "" if cost_bps is None else f" of {cost_bps:g} bp"
    head = ("side", "outcome", "events", "hits", "after events", f"{period.confidence:.0%} CI", "median",
            "base", "excess", "p (one-sided)", f"net mean{cost}", f"net median{cost}")
    rows = []
    for s in period.sides:
        for o in s.outcomes:
            digits = 0 if o.kind == "hit" else 2
            rows.append("<tr>" + "".join(_cell(v) for v in (
                s.side, o.outcome, o.events, "" if o.hits is None else o.hits, pct(o.value, digits),
                pct_range(o.ci_low, o.ci_high, digits), "" if o.kind == "hit" else pct(o.median, 2),
                pct(o.base, digits), pct(o.excess, digits), p_text(o.p_value),
                "" if o.kind == "hit" else pct(o.net_mean, 2), "" if o.kind == "hit" else pct(o.net_median, 2),
            )) + "</tr>")
    params = "; ".join(f"{s.side}: {format_params(s.params)}" for s in period.sides)
    caption = (f"{html.escape(period.name)} · {period.start} → {period.end} · {period.bars:,} bars · "
               f"block {period.block_bars} bars · {period.reps:,} draws · parameters: {html.escape(params)}")
    return (f'<table class="study"><caption>{caption}</caption><thead><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>" + regime_table(period))


def regime_table(period: PeriodStats) -> str:
    """The move label's hit rate per regime vs the base rate over the period's bars of that regime."""
    rows = ["<tr>" + "".join(_cell(v) for v in (s.side, r.regime, r.events, r.hits, pct(r.hit_rate), r.bars,
                                                 pct(r.base_rate), pct(r.excess)))
            + "</tr>" for s in period.sides for r in s.regimes]
    if not rows:
        return ""
    head = ("side", "regime", "events", "hits", "hit rate", "bars", "base rate", "excess")
    return (f'<table class="study"><caption>{html.escape(period.name)} · by regime</caption><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _ranked(sw: SideSweep) -> list[SweepRow]:
    """A side's parameter sets, best selection score first (untested sets, without a score, last)."""
    return sorted(sw.rows, key=lambda r: -(r.score if r.score is not None else -1e300))


def sweep_table(sweeps: Sequence[SideSweep], top: int = 15) -> str:
    """Per side: the multiple-testing summary and the ``top`` sets by in-sample selection score (HTML)."""
    parts = []
    for sw in sweeps:
        summary = sweep_summary(sw)
        body = "".join(f"<tr data-set='{r.set_index}'>" + "".join(_cell(v) for v in (
            r.set_index, format_params(r.params), r.events, pct(r.hit_rate), pct_range(r.ci_low, r.ci_high),
            pct(r.base_rate), pct(r.excess), p_text(r.p_value), p_text(r.q_value).replace("p", "q", 1),
            "yes" if r.significant_bh else "", "" if r.score is None else f"{r.score:.2f}",
        )) + "</tr>" for r in _ranked(sw)[:top])
        head = ("#", "parameters", "events", "hit rate", "CI", "base", "hit − base", "p", "BH q", "kept by BH",
                "score (z)")
        shown = f"top {top} of {sw.sets}" if sw.sets > top else f"all {sw.sets}"
        parts.append(f"<p>{html.escape(summary)}</p><table class='study sweep' data-side='{sw.side}'><caption>"
                     f"{sw.side}: {shown} parameter sets by selection score (in-sample)</caption><thead><tr>"
                     + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{body}</tbody></table>")
    return "".join(parts)


def sweep_figure(sweeps: Sequence[SideSweep]) -> go.Figure:
    """Per side: every parameter set's hit rate (with its one-sided bound) against the base rate,
    sets ordered by selection score (best left; untested sets, fewer than ``min_events`` events,
    hollow and last); hover: the parameters, n, p and BH q."""
    fig = make_subplots(rows=1, cols=max(1, len(sweeps)), subplot_titles=[f"{sw.side}: hit rate per parameter set"
                                                                           for sw in sweeps], shared_yaxes=True)
    for c, sw in enumerate(sweeps, start=1):
        rows = _ranked(sw)
        x = list(range(1, len(rows) + 1))
        color = COLORS.get(sw.side, COLORS["price"])
        fig.add_trace(go.Scatter(
            x=x, y=[r.hit_rate for r in rows], mode="markers", name=f"{sw.side} sets", showlegend=False,
            marker={"color": color, "size": 9, "symbol": ["circle" if r.q_value is not None else "circle-open"
                                                          for r in rows]},
            error_y={"type": "data", "symmetric": False, "visible": True,
                     "array": [0 if r.hit_rate is None or r.ci_high is None else r.ci_high - r.hit_rate for r in rows],
                     "arrayminus": [0 if r.hit_rate is None or r.ci_low is None else r.hit_rate - r.ci_low
                                    for r in rows]},
            hovertext=[f"#{r.set_index} {html.escape(format_params(r.params))}<br>n={r.events}, hit {pct(r.hit_rate)} "
                       f"vs base {pct(r.base_rate)}, {p_text(r.p_value)}, BH {p_text(r.q_value).replace('p', 'q', 1)}"
                       for r in rows], hoverinfo="text"), row=1, col=c)
        base = next((r.base_rate for r in rows if r.base_rate is not None), None)
        if base is not None:
            fig.add_trace(go.Scatter(x=[0.5, len(rows) + 0.5], y=[base, base], mode="lines", name="base rate",
                                     line={"color": "#333", "dash": "dash"}, showlegend=c == 1), row=1, col=c)
        fig.update_xaxes(title_text="parameter sets, best score first", row=1, col=c)
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.update_layout(height=380, margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return fig


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222;max-width:1400px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}
.verdict li{margin:.3rem 0}.note{color:#555;font-size:.9rem}
table.study{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}
table.study td,table.study th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
table.study td:nth-child(-n+2),table.study th:nth-child(-n+2){text-align:left}
caption{text-align:left;font-size:.85rem;color:#444;padding:.3rem 0}
"""


def header_lines(result: StudyResult) -> list[str]:
    """What the study ran on, as sentences: symbol, config, grid, the detector rule, the missing
    inputs and the bars where the detector could not tell."""
    i = result.inputs
    lines = [f"symbol {i.get('symbol', '?')} · config: {i.get('config') or 'defaults'}"
             + (f" · grid: {i['grid']}" if i.get("grid") else "") + f" · seed {result.seed}"]
    if i.get("detector"):
        lines.append(f"detector: {i['detector']}")
    missing = list(i.get("missing_inputs") or [])
    lines.append("missing inputs: " + "; ".join(missing) if missing else "every input has data in the period")
    for side, n in (i.get("detector_unknown_bars") or {}).items():
        if n:
            lines.append(f"{side}: the detector could not tell on {n:,} bars (a required input missing there); "
                         "they count as not fired")
    return lines


def render_html(title: str, result: StudyResult, figures: Sequence[tuple[str, go.Figure]]) -> str:
    """The whole page: plotly.js inline, the figures as divs with fixed ids, the tables."""
    divs = {name: fig.to_html(full_html=False, include_plotlyjs=False, div_id=name, config={"responsive": True})
            for name, fig in figures}
    inputs = "<br>".join(html.escape(x) for x in header_lines(result))
    verdict = "".join(f"<li>{html.escape(v)}</li>" for v in result.verdict)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    tables = "".join(study_table(p, result.settings.get("cost_bps")) for p in result.periods)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{inputs}</p>
<h2>Verdict</h2><ul class="verdict">{verdict}</ul>
<p class="note">label: {html.escape(result.label)}</p>
<h2>Price, events and factors</h2>{divs.get("panel-market", "")}
<h2>Event study</h2>{tables}
{divs.get("panel-hits", "")}
{"<h2>Parameter sweep (in-sample)</h2>" + sweep_table(result.sweeps) + divs.get("panel-sweep", "") if result.sweeps else ""}
<h2>Forward returns</h2>{divs.get("panel-returns", "")}
<h2>How to read this</h2><ul class="note">{notes}</ul>
</body></html>
"""


def write_report(
    study: Study,
    out: str | Path,
    factors: Sequence[FactorPanel] = (),
    title: str = "tapewatch event study",
    png_dir: str | Path | None = None,
    max_points: int = 20_000,
    hover: Mapping[str, Sequence[str]] | None = None,
) -> ReportOutput:
    """Write the HTML report of ``study`` to ``out`` (and PNGs of each figure to ``png_dir``);
    ``hover``: per side, the explanation of each event shown on its marker."""
    figures = [
        ("panel-market", market_figure(study, factors, max_points, hover)),
        ("panel-hits", hits_figure(study.result)),
        ("panel-returns", returns_figure(study)),
        *([("panel-sweep", sweep_figure(study.result.sweeps))] if study.result.sweeps else []),
    ]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(title, study.result, figures), encoding="utf-8")
    subplots = {"panel-market": 1 + len(factors), "panel-hits": 1, "panel-returns": len(study.forward.horizons_ns),
                **({"panel-sweep": len(study.result.sweeps)} if study.result.sweeps else {})}
    pngs: tuple[Path, ...] = ()
    error = None
    if png_dir is not None:
        pngs, error = write_pngs(figures, Path(png_dir))
    return ReportOutput(path, tuple(n for n, _ in figures), pngs, error, subplots)


def write_pngs(figures: Sequence[tuple[str, go.Figure]], png_dir: Path) -> tuple[tuple[Path, ...], str | None]:
    """Each figure as ``<png_dir>/<panel>.png`` via kaleido; on failure no files and the reason."""
    import plotly.io as pio

    png_dir.mkdir(parents=True, exist_ok=True)
    paths = [png_dir / f"{name}.png" for name, _ in figures]
    try:
        pio.write_images([fig for _, fig in figures], paths, width=[1400] * len(paths))
    except Exception as exc:  # kaleido needs a local Chrome; say why instead of failing the report
        return (), f"PNG export failed ({type(exc).__name__}: {exc}); kaleido needs Chrome/Chromium (apt-get install chromium)"
    return tuple(p for p in paths if p.exists()), None
