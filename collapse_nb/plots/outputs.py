"""Model outputs: the spread of the predictions against the spread of the targets."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import timeaxis
from . import _data
from ._common import (THRESHOLD_COLOR, MissingDataError, check_run, fmt_num, mark_restarts, new_axes,
                      note_unplaced)

PRED_COLOR = "#1f77b4"
TARGET_COLOR = "#7f7f7f"
RATIO_COLOR = "#9467bd"


def output_std(run: Any, ax: Any = None, phase: str | None = None, threshold: float = 0.1, ratio: bool = True,
               logy: bool = True) -> Any:
    """Prediction std vs target std over time, and their ratio against a collapse threshold.

    Requires: ``pred_std`` and ``target_std`` in ``run.outputs`` (``std_ratio`` is their ratio), drawn
    on the time axis of the file they come from (:func:`collapse_nb.plots.table_timeline`; the title
    names that file when other files logged outputs too, see ``run.meta["table_sources"]``).
    ``phase``: which rows (default: train when logged, else all). With ``ratio``, the ratio
    ``pred_std / target_std`` is drawn on a twin axis on the right, available as
    ``ax.right_ax`` (as pandas does for ``secondary_y``), with a dashed line at ``threshold``:
    below it the model predicts almost the same value for every input. ``logy``: log scale on
    both axes (the default, since a collapsed spread is orders of magnitude below the target's).
    Returns the (left) axes; raises :class:`MissingDataError` without data.
    """
    check_run(run, "output_std")
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise ValueError(f"output_std(): threshold must be a positive number; got {threshold!r}")
    o, phase = _data.outputs_over_time(run, phase)
    have = [c for c in ("pred_std", "target_std") if c in o.columns and o[c].notna().any()]
    if not have:
        raise MissingDataError("output_std needs pred_std and target_std in run.outputs (prediction / target "
                               f"mean and std logged per batch); run.outputs has {len(run.outputs)} rows and no "
                               f"std values{f' for phase {phase!r}' if phase else ''}")
    tl = timeaxis.table_timeline(run, run.outputs)
    ax = new_axes(ax, (9, 4.5))
    for i, (_, g) in enumerate(o.groupby("segment", sort=True)):
        first = i == 0
        if "pred_std" in have:
            ax.plot(g["x"], g["pred_std"], color=PRED_COLOR, linewidth=1.4,
                    label="prediction std" if first else "_nolegend_")
        if "target_std" in have:
            ax.plot(g["x"], g["target_std"], color=TARGET_COLOR, linewidth=1.4,
                    label="target std" if first else "_nolegend_")
    if logy:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if ratio and len(have) == 2:
        right = ax.twinx()
        ax.right_ax = right                     # type: ignore[attr-defined]
        for i, (_, g) in enumerate(o.groupby("segment", sort=True)):
            r = g["std_ratio"].to_numpy(float)
            ok = np.isfinite(r)
            right.plot(g["x"].to_numpy(float)[ok], r[ok], color=RATIO_COLOR, linewidth=1.2, linestyle="--",
                       label="pred std / target std (right)" if i == 0 else "_nolegend_")
        right.axhline(threshold, color=THRESHOLD_COLOR, linestyle=":", linewidth=1.6,
                      label=f"collapse threshold {fmt_num(threshold)} (right)")
        if logy:
            right.set_yscale("log")
        lo, hi = right.get_ylim()
        right.set_ylim(lo, max(hi, threshold * (3 if logy else 1.3)))     # the threshold never at the edge
        right.set_ylabel("pred std / target std" + (" (log scale)" if logy else ""), color=RATIO_COLOR)
        right.tick_params(axis="y", colors=RATIO_COLOR)
        h2, l2 = right.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    mark_restarts(ax, _data.segment_starts(o))
    note_unplaced(ax, o.attrs.get("unplaced", {}))
    h3, l3 = ax.get_legend_handles_labels()
    extra = [(h, lab) for h, lab in zip(h3, l3) if lab not in labels]
    top = getattr(ax, "right_ax", ax)          # the twin is drawn over ax: its legend stays visible
    top.legend(handles + [h for h, _ in extra], labels + [lab for _, lab in extra], fontsize=8, loc="best")
    ax.set_xlabel(tl.label if tl.kind else "epoch")
    ax.set_ylabel("standard deviation" + (" (log scale)" if logy else ""))
    files = list(dict.fromkeys(o["source"].astype(str))) if "source" in o.columns else []
    shown = [phase] if phase else []
    if files and "outputs" in run.meta.get("table_sources", {}):       # other files were left out: say which
        short = timeaxis.short_sources(files)
        shown.append(", ".join(short[f] for f in files))
    ax.set_title("Prediction vs target spread" + (f" ({'; '.join(shown)})" if shown else ""))
    ax.grid(True, alpha=0.3)
    return ax
