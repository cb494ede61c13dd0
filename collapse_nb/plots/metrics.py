"""Every logged scalar has a home: small multiples of all of a run's series, grouped by name prefix.

YOLO's ``metrics/mAP50(B)``, Lightning's ``val/rmse_loss``, a trainer's ``train/box_loss``: one panel
per series (its train / val / test in one panel, by colour), one figure per name prefix
(:func:`collapse_nb.plots._data.metric_panels` says which panels and groups), each panel on the time
axis of the files logging it (:func:`collapse_nb.plots._data.metric_points`, the placement the other
plots use; the x label says it). A series logged once is a value, not a plot.
"""
from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..timeaxis import where
from . import _data, _frames
from ._common import MissingDataError, draw_lines, fmt_num, new_axes, seaborn, shorten_name

if TYPE_CHECKING:
    from ..run import Run

#: Panels per figure (beyond it the rest of the group is named in the note and the caption).
MAX_PANELS = 24
#: Panels per row.
NCOLS = 4
#: Lines of the "logged once" table at most.
MAX_VALUE_LINES = 16
#: Height of one row of panels, inches.
ROW_HEIGHT = 2.5


def _panel_plan(runs: list[tuple[Any, Any]], prefix: str | None, names: Any) -> pd.DataFrame:
    """The union of the runs' panels (:func:`collapse_nb.plots._data.metric_panels`), the first run's order."""
    plans = [_data.metric_panels(run, prefix) for _, run in runs]
    plan = pd.concat(plans, ignore_index=True) if plans else pd.DataFrame()
    if plan.empty:
        return plan
    if len(plans) > 1:                           # a value in one run and a curve in another: a curve
        kind = plan.groupby("name")["kind"].agg(lambda k: "curve" if (k == "curve").any() else "value")
        plan = plan.drop_duplicates("name").assign(kind=lambda d: d["name"].map(kind)).reset_index(drop=True)
    if names is not None:
        wanted = [names] if isinstance(names, str) else list(names)
        plan = plan[plan["name"].isin(wanted)].reset_index(drop=True)
    return plan


def metric_layout(data: Any, prefix: str | None = None, max_panels: int = MAX_PANELS, ncols: int = NCOLS,
                  names: Any = None) -> dict[str, Any]:
    """What :func:`plot_all_metrics` draws, without drawing: ``panels`` (the curve panels drawn: the
    rows of :func:`collapse_nb.plots._data.metric_panels`), ``values`` (the series shown as values),
    ``left_out`` (curve panels beyond ``max_panels``), ``data`` (per panel: its row, its placed rows,
    its x label), ``notes`` (the text rows under the panels: values, what was left out, how an axis
    was placed), the grid ``rows`` / ``ncols`` and the ``size`` (inches) of a figure holding it all."""
    runs = _frames.as_runs(data, "plot_all_metrics")
    plan = _panel_plan(runs, prefix, names)
    if plan.empty:
        raise MissingDataError("plot_all_metrics needs logged scalar series (run.series)" +
                               (f" with the prefix {prefix!r}" if prefix is not None else "") + "; there are none")
    curves = plan[plan["kind"] == "curve"]
    values = plan[plan["kind"] == "value"]
    shown, left = curves.head(max_panels), curves.iloc[max_panels:]
    ncols = max(1, min(ncols, len(shown))) if len(shown) else max(1, ncols)
    rows = math.ceil(len(shown) / ncols)
    panels, axis_notes = [], {}
    for r in shown.itertuples(index=False):
        d, label = _rows(runs, r.name)
        if r.name in _data.PARAM_NORMS and "param" in d.columns:     # per-parameter norms: the gradient plots'
            d = d[d["param"].isna()]
        xlabel, full = _xlabel(label)
        if full:
            axis_notes[xlabel.replace(" (see the note)", "").replace("; see the note", "")] = full
        panels.append((r, d, xlabel))
    notes: list[tuple[str, int, str | None, float]] = []      # (text, font size, family, height in inches)
    if len(values):
        lines = _value_lines(runs, values)
        more = len(lines) - MAX_VALUE_LINES
        shown_lines = lines[:MAX_VALUE_LINES] + ([f"… and {more} more"] if more > 0 else [])
        notes.append(("Logged once:\n" + "\n".join(shown_lines), 8, "monospace", 0.3 + 0.17 * len(shown_lines)))
    if len(left):
        names_left = ", ".join(shorten_name(t, 30) for t in left["title"].head(6))
        notes.append((f"{len(left):,} more series not drawn (at most {max_panels} panels a figure): {names_left}"
                      + (", …" if len(left) > 6 else ""), 7, None, 0.3))
    for short, full in axis_notes.items():
        text = "\n".join(textwrap.wrap(f"x axis '{short}': {full}", 170))
        notes.append((text, 7, None, 0.16 * (text.count("\n") + 1) + 0.12))
    size = (max(6.0, 3.3 * ncols), ROW_HEIGHT * rows + sum(n[3] for n in notes) + 0.4)
    return {"runs": runs, "panels": shown, "values": values, "left_out": left, "data": panels, "notes": notes,
            "rows": rows, "ncols": ncols, "size": size}


def _xlabel(label: str) -> tuple[str, str | None]:
    """A panel's x label and, when the axis needs more words than a panel has room for (the fractional
    epochs of files placed by their own clocks), the full description for the figure's note."""
    first = label.split("\n")[0].split(" · ")[0]
    if first == label and len(label) <= 44:
        return label, None
    short = "epoch (fractional; see the note)" if first.startswith("epoch (fractional") else \
        shorten_name(first, 40) + " (see the note)"
    return short, " ".join(label.split("\n"))


def _title(raw_names: tuple[str, ...], name: str, width: int = 40) -> str:
    """The names as logged, as many as fit in ``width`` characters (``train/box_loss, val/box_loss``),
    then ``(+k)`` for the others; the canonical name when nothing was recorded."""
    raws = [str(r) for r in raw_names] or [name]
    out = shorten_name(raws[0], width - 5)
    k = 1
    while k < len(raws) and len(out) + 2 + len(raws[k]) + (6 if k + 1 < len(raws) else 0) <= width:
        out += ", " + raws[k]
        k += 1
    return out + (f" (+{len(raws) - k})" if k < len(raws) else "")


def _rows(runs: list[tuple[Any, Any]], name: str) -> tuple[pd.DataFrame, str]:
    parts, labels = [], {}
    for k, run in runs:
        d, label = _data.metric_points(run, name)
        if d.empty:
            continue
        parts.append(d.assign(run=k) if k is not None else d)
        labels[k] = label
    if not parts:
        return pd.DataFrame(), ""
    return pd.concat(parts, ignore_index=True), _frames.axis_label(labels)


def _value_lines(runs: list[tuple[Any, Any]], values: pd.DataFrame) -> list[str]:
    """``name (phase) = value at step N`` for each series logged once (per run when several)."""
    lines = []
    for r in values.itertuples(index=False):
        for k, run in runs:
            s = _frames_one_rank(run)
            rows = s[(s["name"].astype(str) == r.name).to_numpy(dtype=bool)]
            for _, row in rows.iterrows():
                phase = row.get("phase")
                head = f"{k}: " if k is not None else ""
                ph = f" ({phase})" if isinstance(phase, str) else ""
                param = f" [{row['param']}]" if isinstance(row.get("param"), str) else ""
                at = where(row)
                at = f"at {at}" if at != "?" else "(no step or epoch logged)"
                lines.append(f"{head}{row.get('raw_name', r.name)}{ph}{param} = {fmt_num(float(row['value']))} {at}")
    return lines


def _frames_one_rank(run: Run) -> pd.DataFrame:
    from ..ranks import one_rank
    return one_rank(run.scalars)


def plot_all_metrics(run: Run | pd.DataFrame, prefix: str | None = None, ax: Any = None, hue: str | None = None,
                     max_panels: int = MAX_PANELS, ncols: int = NCOLS, names: Any = None) -> np.ndarray:
    """Small multiples of every logged scalar series: one panel per series, its phases by colour.

    ``prefix``: one group's panels (``"metrics/"``, ``"train/"``, ``""`` for the names without a
    prefix; see :func:`collapse_nb.plots._data.metric_panels`); default every panel. ``names``: only
    these canonical names. Each panel is drawn on the time axis of the files logging the series
    (steps, counted batches or fractional epochs; epochs for per-epoch values), the x label saying
    which; restarts break the lines. Series logged at most once per phase are listed under the panels
    as ``name (phase) = value at step N`` instead of being plotted. At most ``max_panels`` panels
    (``ncols`` a row); the others are named in a note under them.

    ``run``: a Run, or a long scalars table (``run.scalars``: ``name, value`` and the time columns;
    several runs concatenated with a ``run`` column, each placed on its own axes). ``hue``: the
    column to colour by (default ``"run"`` for several runs, else ``"phase"``); a second grouping
    (phase, param group) is the line style. ``ax``: its area is divided into the panels (``ax`` is
    the first); default a new figure sized for them (:func:`metric_layout`). With seaborn installed
    the panels are despined and coloured with its palette; without it, plain matplotlib.

    Returns the axes drawn, the curve panels in order, then the values panel if any (a 1-D array;
    ``axes[0].figure`` is the figure). Raises :class:`MissingDataError` without series.
    """
    _frames.check_input(run, "plot_all_metrics")
    lay = metric_layout(run, prefix, max_panels, ncols, names)
    runs = lay["runs"]
    nrows, ncols, extra = lay["rows"], lay["ncols"], lay["notes"]
    hue = hue or (_frames.RUN_COLUMN if len(runs) > 1 else "phase")
    ax = new_axes(ax, lay["size"])
    spec = ax.get_subplotspec()
    if spec is None:
        raise ValueError("plot_all_metrics(): ax must come from add_subplot / subplots (its area is divided "
                         "into the panels)")
    fig = ax.figure
    heights = [ROW_HEIGHT] * nrows + [e[3] for e in extra]
    grid = spec.subgridspec(len(heights), ncols, height_ratios=heights, hspace=0.15)
    axes: list[Any] = []
    sns = seaborn()
    for i, (r, d, xlabel) in enumerate(lay["data"]):
        cell = grid[i // ncols, i % ncols]
        if i == 0:
            ax.set_subplotspec(cell)
            pax = ax
        else:
            pax = fig.add_subplot(cell)
        axes.append(pax)
        title = _title(r.raw_names, r.name)
        if d.empty:
            pax.text(0.5, 0.5, "no rows with a place on a time axis", ha="center", va="center",
                     transform=pax.transAxes, fontsize=8)
            pax.set_title(title, fontsize=9, loc="left")
            continue
        h = hue if hue in d.columns else None
        style = None
        for cand in ("param", "phase"):
            if cand != h and cand in d.columns and d[cand].astype(object).nunique(dropna=True) > 1:
                style = cand
                break
        draw_lines(pax, d, h, style=style, linewidth=1.2)
        if h == "phase" and len(pax.get_legend_handles_labels()[1]) == 1:    # one phase, no legend: say which
            only = d["phase"].dropna().unique()
            title += f" ({only[0]})" if len(only) == 1 else ""
        v = d["value"].to_numpy(float)
        bad = int((~np.isfinite(v)).sum())
        pax.set_title(title + (f" ({bad} NaN/inf)" if bad else ""), fontsize=9, loc="left")
        pax.set_xlabel(xlabel, fontsize=7)
        pax.tick_params(labelsize=7)
        pax.grid(True, alpha=0.3)
        if len(pax.get_legend_handles_labels()[1]) > 1:
            pax.legend(fontsize=6, loc="best", frameon=False)
        if sns is not None:
            sns.despine(ax=pax)
    for j, (text, size, family, _) in enumerate(extra):
        cell = grid[nrows + j, :]
        if axes:
            tax = fig.add_subplot(cell)
        else:
            ax.set_subplotspec(cell)
            tax = ax
        tax.set_axis_off()
        tax.text(0, 1, text, ha="left", va="top", transform=tax.transAxes, fontsize=size, family=family,
                 color="#222222" if family else "#555555")
        axes.append(tax)
    return np.array(axes, dtype=object)
