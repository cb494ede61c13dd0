"""The triage page: one self-contained HTML page of a folder of runs, worst first, a small curve per run and
a link to each run's report.

``collapse-nb triage DIR -o triage.html`` writes it (:func:`write_triage_page`), with each run's report
in ``triage_reports/`` beside it (each compared with the closest healthy sibling when there is one). The
page follows the report's HTML rules: inline CSS, no script, nothing fetched (a Content-Security-Policy
forbids it), every text escaped. The curves are inline SVG (train objective solid, validation dashed),
on a log axis when the values are positive and span more than 100x.
"""
from __future__ import annotations

import html
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..findings import TONE
from ..timeaxis import curve
from .html import CSP, CSS

if TYPE_CHECKING:
    from ..run import Run

W, H, PAD = 180, 44, 3
#: Most points drawn per curve (evenly thinned beyond that).
MAX_POINTS = 400
#: A run's status word -> its badge's colour class (the report's, :data:`collapse_nb.findings.TONE`).
_STATUS_BADGE = TONE
_PAGE_CSS = """
td.spark { padding: 2px 6px; }
svg.spark { display: block; }
svg.spark .train { fill: none; stroke: var(--note-line); stroke-width: 1.4; }
svg.spark .val { fill: none; stroke: var(--warn-line); stroke-width: 1.4; stroke-dasharray: 3 2; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.legend { color: var(--muted); font-size: 13px; }
"""


def _curve(run: Run, phase: str) -> pd.DataFrame:
    try:
        return curve(run, phase)
    except Exception:                                          # a curve that cannot be built is just not drawn
        return pd.DataFrame()


def _points(c: pd.DataFrame, axis: str) -> np.ndarray:
    """``(t, value)`` of a curve on ``axis`` (``step``, ``epoch`` or its own ``x``), the per-step noise smoothed by a
    running median over 1/25 of the points (as TensorBoard smooths by default), thinned to :data:`MAX_POINTS`."""
    if c.empty:
        return np.empty((0, 2))
    t = pd.to_numeric(c[axis], errors="coerce").to_numpy("float64")
    v = pd.to_numeric(c["value"], errors="coerce").to_numpy("float64")
    xy = np.column_stack([t, v])
    xy = xy[np.isfinite(xy).all(axis=1)]
    w = len(xy) // 25
    if w >= 3:
        xy[:, 1] = pd.Series(xy[:, 1]).rolling(w, center=True, min_periods=1).median().to_numpy()
    if len(xy) > MAX_POINTS:
        xy = xy[np.linspace(0, len(xy) - 1, MAX_POINTS).astype(int)]
    return xy


def _axis(curves: list[pd.DataFrame]) -> str:
    """One axis for the curves: the step when every point of every curve has one and they only go up (not a step that
    restarts each epoch), else the epoch on the same terms, else ``"x"``: each curve's own placement, drawn across
    the whole width (the curves then share their start and end, not their scale)."""
    for axis in ("step", "epoch"):
        ok = True
        for c in curves:
            t = pd.to_numeric(c[axis], errors="coerce") if axis in c.columns else pd.Series(dtype="float64")
            ok = ok and bool(len(t)) and bool(t.notna().all()) and bool((t.diff().dropna() > 0).all())
        if ok:
            return axis
    return "x"


def sparkline(run: Run) -> str:
    """The run's train and validation objective as a small inline SVG ('' when it logs neither)."""
    frames = {k: _curve(run, k) for k in ("train", "val")}
    frames = {k: c for k, c in frames.items() if len(c) >= 2}
    axis = _axis(list(frames.values()))
    curves = {k: _points(c, axis) for k, c in frames.items()}
    curves = {k: v for k, v in curves.items() if len(v) >= 2}
    if not curves:
        return ""
    allxy = np.vstack(list(curves.values()))
    ys = allxy[:, 1]
    log = bool((ys > 0).all() and ys.max() / ys.min() > 100)
    if log:
        curves = {k: np.column_stack([v[:, 0], np.log10(v[:, 1])]) for k, v in curves.items()}
        ys = np.log10(ys)
    if axis == "x":                                           # no shared axis: each curve across the whole width
        curves = {k: np.column_stack([(v[:, 0] - v[:, 0].min()) / max(np.ptp(v[:, 0]), 1e-300), v[:, 1]])
                  for k, v in curves.items()}
        allxy = np.vstack(list(curves.values()))
    x0, x1 = float(allxy[:, 0].min()), float(allxy[:, 0].max())
    y0, y1 = float(ys.min()), float(ys.max())
    sx = (W - 2 * PAD) / (x1 - x0) if x1 > x0 else 0.0
    sy = (H - 2 * PAD) / (y1 - y0) if y1 > y0 else 0.0
    lines = []
    for k, v in curves.items():
        px = PAD + (v[:, 0] - x0) * sx
        py = H - PAD - (v[:, 1] - y0) * sy if sy else np.full(len(v), H / 2)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
        lines.append(f'<polyline class="{k}" points="{pts}"/>')
    label = f"train {'and validation ' if 'val' in curves else ''}objective" + (" (log axis)" if log else "")
    return (f'<svg class="spark" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
            f'aria-label="{html.escape(label)}"><title>{html.escape(label)}</title>{"".join(lines)}</svg>')


def _num(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(x):
        return ""
    return f"{x:,.0f}" if abs(x) >= 1000 or x == int(x) else f"{x:.4g}"


def _text(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _verdict_cell(r: dict) -> str:
    """The run's top finding (or its verdict when it has none), with the whole verdict folded under it."""
    e = html.escape
    top, verdict = _text(r.get("top_finding")), _text(r.get("verdict"))
    if not top:
        return e(verdict)
    return f"{e(top)}<details><summary>verdict</summary>{e(verdict)}</details>" if verdict else e(top)


def render_triage_page(table: pd.DataFrame, sparks: dict[str, str], links: dict[str, str], root: str) -> str:
    """The page's HTML: ``table`` (:func:`collapse_nb.triage.triage`), an SVG per run name, a link per run name."""
    e = html.escape
    counts = table["status"].value_counts()
    head = ", ".join(f"{int(n)} {s}" for s, n in counts.items())
    rows = []
    for r in table.to_dict(orient="records"):
        name = str(r["run"])
        status = _text(r.get("status"))
        link = links.get(name)
        cell = f'<a href="{e(link, quote=True)}">{e(name)}</a>' if link else e(name)
        rows.append(
            "<tr>"
            f"<td class=\"short\">{cell}</td>"
            f"<td class=\"short\"><span class=\"badge {_STATUS_BADGE.get(status, 'off')}\">{e(status)}</span></td>"
            f"<td class=\"spark\">{sparks.get(name, '')}</td>"
            f"<td class=\"short\">{e(_text(r.get('top_cause')))}</td>"
            f"<td class=\"long\">{_verdict_cell(r)}</td>"
            f"<td class=\"num\">{_num(r.get('steps'))}</td><td class=\"num\">{_num(r.get('epochs'))}</td>"
            f"<td class=\"long\">{e(_text(r.get('stopped_early')))}</td>"
            f"<td class=\"num\">{_num(r.get('best_val'))}</td>"
            f"<td class=\"short\">{e(_text(r.get('best_val_where')))}</td>"
            f"<td class=\"num\">{_num(r.get('final_val'))}</td>"
            "</tr>")
    header = "".join(f"<th>{e(c)}</th>" for c in ("Run", "Status", "Curve", "Top cause", "Top finding", "Steps",
                                                     "Epochs", "Stopped early", "Best val", "Best at", "Final val"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Triage: {e(root)}</title>
<style>{CSS}{_PAGE_CSS}</style></head>
<body><main>
<h1>Triage: {e(root)}</h1>
<p class="meta">{len(table)} run(s), worst first: {e(head)}.</p>
<p class="legend">Curve: the train objective (solid) and the validation objective (dashed) on one time axis, each
run on its own scale, per-step noise smoothed (a running median). Each run's name links to its report.</p>
<div class="table-wrap"><table><thead><tr>{header}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table></div>
</main></body></html>
"""


def _safe_names(names: list[str]) -> dict[str, str]:
    out, used = {}, set()
    for n in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", n).strip("._") or "run"
        name, i = base, 2
        while name.lower() in used:
            name, i = f"{base}-{i}", i + 1
        used.add(name.lower())
        out[n] = name
    return out


def write_triage_page(runs: Any, path: str | os.PathLike, table: pd.DataFrame | None = None, reports: bool = True,
                      plots: bool = True) -> list[Path]:
    """Write the triage page of ``runs`` (a :class:`collapse_nb.Runs`) to ``path`` and, with ``reports``, each
    run's report to ``<stem>_reports/<run>.html`` (compared with the closest healthy sibling when there is one);
    returns the files written, the page first."""
    from . import report

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the triage page is HTML: give a path ending in .html; got {os.fspath(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if table is None:
        table = runs.triage()
    sparks = {name: sparkline(run) for name, run in runs.items()}
    links: dict[str, str] = {}
    written: list[Path] = []
    if reports:
        folder = path.with_name(f"{path.stem}_reports")
        folder.mkdir(exist_ok=True)
        files = _safe_names(list(runs.names))
        healthy = set(runs.healthy())
        for name, run in runs.items():
            comparison = None
            if healthy - {name}:
                try:
                    comparison = runs.compare(name)
                except ValueError:
                    comparison = None
            rep = report(run, findings=runs.findings(name), plots=plots, comparison=comparison)
            target = folder / f"{files[name]}.html"
            target.write_text(rep.html, encoding="utf-8")
            written.append(target)
            links[name] = f"{folder.name}/{target.name}"
    path.write_text(render_triage_page(table, sparks, links, str(runs.root)), encoding="utf-8")
    return [path, *written]
