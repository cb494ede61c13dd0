"""Model outputs: the spread of the predictions against the spread of the targets."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import timeaxis
from . import _data, _frames
from ._common import (THRESHOLD_COLOR, MissingDataError, draw_lines, fmt_num, mark_restarts, new_axes, note_unplaced,
                      split_axes)

if TYPE_CHECKING:
    from ..run import Run

PRED_COLOR = "#1f77b4"
TARGET_COLOR = "#7f7f7f"
RATIO_COLOR = "#9467bd"
WARNING_COLOR = "#ff7f0e"


def collapse_thresholds() -> tuple[float, float]:
    """The variance_collapse check's default ``(critical_ratio, warning_ratio)``: the bands of the ratio panel."""
    from ..checks.variance_collapse import VarianceCollapse
    c = VarianceCollapse()
    return float(c.critical_ratio), float(c.warning_ratio)


def _outputs_rows(data: Any, phase: str | None, func: str) -> tuple[Any, str | None, str]:
    """The outputs to draw (``x`` placed), the phase chosen and the axis label, from a Run or a DataFrame."""
    if _frames.is_run(data):
        o, phase = _data.outputs_over_time(data, phase)
        tl = timeaxis.table_timeline(data, data.outputs)
        return o, phase, (tl.label if tl.kind else "epoch")
    _frames.require_columns(data, ("pred_std", "target_std"), func, "an outputs table (run.outputs)")
    o, phase = _data.one_phase(data, phase)
    o, label = _frames.place(o)
    if "std_ratio" not in o.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            o = o.assign(std_ratio=pd.to_numeric(o["pred_std"], errors="coerce")
                         / pd.to_numeric(o["target_std"], errors="coerce"))
    return o, phase, label


def output_std(run: Run | pd.DataFrame, ax: Any = None, phase: str | None = None, threshold: float | None = None,
               ratio: bool = True, logy: bool = True, warning: float | None = None, hue: str | None = None,
               ratio_ax: Any = None) -> Any:
    """Prediction std vs target std over time and, in a panel below (shared x), their ratio against
    the variance_collapse check's bands.

    Requires: ``pred_std`` and ``target_std`` in ``run.outputs`` (``std_ratio`` is their ratio), drawn
    on the time axis of the file they come from (:func:`collapse_nb.plots.table_timeline`; the title
    names that file when other files logged outputs too, see ``run.meta["table_sources"]``).
    ``phase``: which rows (default: train when logged, else all). ``logy``: log scale (the default,
    since a collapsed spread is orders of magnitude below the target's).

    With ``ratio``, the ratio ``pred_std / target_std`` has its own panel under the spreads, sharing
    their x axis (``ax.ratio_ax``; the area of ``ax`` is divided, or give ``ratio_ax``): a red band
    below ``threshold`` (collapsed: the check's ``critical_ratio``), an orange one up to ``warning``
    (its ``warning_ratio``) and a dotted line at 1 (the same spread). Both default to the
    variance_collapse check's thresholds (:func:`collapse_thresholds`); the panel's y range is set by
    the ratio and the bands, so moving a threshold moves only its band.

    ``run`` may also be a DataFrame: ``run.outputs`` (time columns; several runs concatenated with a
    ``run`` column, each placed on its own rows' time axis) or ``outputs_over_time``'s table (an
    ``x``). ``hue``: a column to colour by (``"run"``, ``"source"``, ``"phase"``), prediction std solid
    and target std dashed in each colour (default: ``"run"`` for several runs).
    Returns the top axes; raises :class:`MissingDataError` without data.
    """
    _frames.check_input(run, "output_std")
    critical, warn = collapse_thresholds()
    threshold = critical if threshold is None else threshold
    for name, v in (("threshold", threshold), ("warning", warning)):
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"output_std(): {name} must be a positive number; got {v!r}")
    warning = warn if warning is None else warning
    o, phase, xlabel = _outputs_rows(run, phase, "output_std")
    have = [c for c in ("pred_std", "target_std") if c in o.columns and o[c].notna().any()]
    if not have:
        n = len(run) if isinstance(run, pd.DataFrame) else len(run.outputs)
        raise MissingDataError("output_std needs pred_std and target_std in run.outputs (prediction / target "
                               f"mean and std logged per batch); run.outputs has {n} rows and no "
                               f"std values{f' for phase {phase!r}' if phase else ''}")
    several = _frames.several_runs(o)
    hue = _frames.resolve_hue(o, hue, "output_std", "the outputs")
    ax = new_axes(ax, (9, 6.0 if ratio else 4.5))
    bottom = None
    if ratio and len(have) == 2:
        bottom = ratio_ax if ratio_ax is not None else split_axes(ax, 2, 1, height_ratios=[3, 2], sharex=True)[1]
        if ratio_ax is not None:
            bottom.sharex(ax)
        ax.ratio_ax = bottom
    if hue is None:
        for i, (_, g) in enumerate(o.groupby("segment", sort=True) if "segment" in o.columns else [(0, o)]):
            first = i == 0
            if "pred_std" in have:
                ax.plot(g["x"], g["pred_std"], color=PRED_COLOR, linewidth=1.4,
                        label="prediction std" if first else "_nolegend_")
            if "target_std" in have:
                ax.plot(g["x"], g["target_std"], color=TARGET_COLOR, linewidth=1.4,
                        label="target std" if first else "_nolegend_")
    else:
        names = timeaxis.short_sources(o[hue].dropna().astype(str)) if hue == "source" else None
        for col, word in (("pred_std", "prediction std"), ("target_std", "target std")):
            if col in have:
                lines = draw_lines(ax, o, hue, y=col, name=word, level_names=names)
                if col == "target_std":
                    for ln in lines:
                        ln.set_linestyle("--")
    if logy:
        ax.set_yscale("log")
    if bottom is not None:
        _ratio_panel(bottom, o, hue, threshold, warning, logy)
        bottom.set_xlabel(xlabel)
        ax.tick_params(axis="x", labelbottom=False)
        if not several:
            mark_restarts(ax, _data.segment_starts(o))
            mark_restarts(bottom, _data.segment_starts(o))
    else:
        ax.set_xlabel(xlabel)
        if not several:
            mark_restarts(ax, _data.segment_starts(o))
    note_unplaced(ax, o.attrs.get("unplaced", {}))
    ax.legend(fontsize=8, loc="best")
    ax.set_ylabel("standard deviation" + (" (log scale)" if logy else ""))
    files = list(dict.fromkeys(o["source"].astype(str))) if "source" in o.columns else []
    shown = [phase] if phase else []
    if _frames.is_run(run) and files and "outputs" in run.meta.get("table_sources", {}):  # others left out: say
        short = timeaxis.short_sources(files)
        shown.append(", ".join(short[f] for f in files))
    ax.set_title("Prediction vs target spread" + (f" ({'; '.join(shown)})" if shown else "")
                 + (f" by {hue}" if hue else ""))
    ax.grid(True, alpha=0.3)
    return ax


def _ratio_panel(ax: Any, o: Any, hue: str | None, threshold: float, warning: float, logy: bool) -> None:
    """The std ratio with the collapse bands: red below ``threshold``, orange up to ``warning``."""
    if hue is None:
        for i, (_, g) in enumerate(o.groupby("segment", sort=True) if "segment" in o.columns else [(0, o)]):
            r = g["std_ratio"].to_numpy(float)
            ok = np.isfinite(r)
            ax.plot(g["x"].to_numpy(float)[ok], r[ok], color=RATIO_COLOR, linewidth=1.3,
                    label="pred std / target std" if i == 0 else "_nolegend_")
    else:
        draw_lines(ax, o, hue, y="std_ratio", name="std ratio")
    r = o["std_ratio"].to_numpy(float)
    r = r[np.isfinite(r) & ((r > 0) if logy else np.isfinite(r))]
    lo_data = float(r.min()) if r.size else threshold
    hi_data = float(r.max()) if r.size else 1.0
    marks = [threshold, warning, 1.0]
    if logy:
        ax.set_yscale("log")
        lo, hi = min(lo_data, *marks) / 2.5, max(hi_data, *marks) * 2.5
    else:
        span = max(hi_data, *marks) - 0.0
        lo, hi = min(0.0, lo_data), max(hi_data, *marks) + 0.1 * span
    ax.set_ylim(lo, hi)
    ax.axhspan(lo, threshold, color=THRESHOLD_COLOR, alpha=0.13, linewidth=0,
               label=f"below {fmt_num(threshold)}: collapsed (critical)")
    if warning > threshold:
        ax.axhspan(threshold, warning, color=WARNING_COLOR, alpha=0.15, linewidth=0,
                   label=f"{fmt_num(threshold)} to {fmt_num(warning)}: warning")
    ax.axhline(threshold, color=THRESHOLD_COLOR, linestyle=":", linewidth=1.4,
               label=f"collapse threshold {fmt_num(threshold)}")
    ax.axhline(1.0, color=TARGET_COLOR, linestyle=":", linewidth=1.0, label="1: same spread as the targets")
    ax.set_ylabel("pred std / target std" + ("\n(log scale)" if logy else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.2)
