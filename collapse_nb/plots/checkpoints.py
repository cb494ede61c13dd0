"""Checkpoints: how much each parameter's norm changed from one checkpoint to the next."""
from __future__ import annotations

import textwrap
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from . import _data
from ._common import (MissingDataError, draw_heatmap, left_out_note, new_axes, require_matplotlib, shorten_name,
                      shorten_names, tall)


def checkpoint_labels(names: list[str], steps: list[float], width: int = 20) -> list[str]:
    """Short distinct labels for checkpoint paths: the path parts that differ between them
    (``checkpoint-1000`` out of ``runs/x/checkpoint-1000/pytorch_model.bin``), with the step when
    the label does not already hold it."""
    split = [PurePath(str(n)).parts or (str(n),) for n in names]
    head = 0
    while len(split) > 1 and all(len(p) > head + 1 for p in split) and len({p[head] for p in split}) == 1:
        head += 1
    tail = 0
    while len(split) > 1 and all(len(p) > head + tail + 1 for p in split) and len({p[-1 - tail] for p in split}) == 1:
        tail += 1
    out = []
    for parts, step in zip(split, steps):
        label = shorten_name("/".join(parts[head:len(parts) - tail]) or parts[-1], width)
        if np.isfinite(step) and str(int(step)) not in label:
            label += f" (step {int(step)})"
        out.append(label)
    return out


#: At most this many tensors (rows) in the heatmap; beyond it, grouped by module, worst first.
MAX_ROWS = 60


def param_norm_changes(run_or_params: Any, ax: Any = None, max_rows: int = MAX_ROWS) -> Any:
    """Parameter x checkpoint-transition heatmap of the relative change of each parameter's norm.

    Colour: ``log10(|norm_after - norm_before| / norm_before)`` between consecutive checkpoints
    (ordered by step); small heatmaps also print the signed change in each cell. Parameters
    whose norm did not change at all are *frozen*: their cells are red and their names red.
    More than ``max_rows`` tensors: grouped by module (the name up to its last ``.``), the worst
    modules first (frozen tensors, then the largest change from the median), the x label saying how
    many were left out; the figure's height stays bounded.

    Requires: ``run.params`` (or that table given directly) with ``checkpoint, param, norm``
    (and ``step``) from at least two checkpoints. Returns the axes; raises
    :class:`MissingDataError` without data.
    """
    require_matplotlib()
    params = getattr(run_or_params, "params", run_or_params)
    if not isinstance(params, pd.DataFrame):
        raise TypeError("param_norm_changes() needs a collapse_nb Run or its params table (a DataFrame); got "
                        f"{type(run_or_params).__name__}")
    if params.empty:
        raise MissingDataError("param_norm_changes needs run.params (one row per tensor per checkpoint, read "
                               "from checkpoint files); it is empty")
    try:
        ch = _data.param_norm_changes(params)
    except MissingDataError as exc:
        raise MissingDataError(f"param_norm_changes {exc}") from None
    ck = pd.concat([ch[["from_checkpoint", "from_step"]].set_axis(["name", "step"], axis=1),
                    ch[["to_checkpoint", "to_step"]].set_axis(["name", "step"], axis=1)]).drop_duplicates("name")
    label = dict(zip(ck["name"], checkpoint_labels(list(ck["name"]), list(ck["step"].astype(float)))))
    ch["transition"] = [f"{label[a]} →\n{label[b]}" for a, b in zip(ch["from_checkpoint"], ch["to_checkpoint"])]
    order = list(dict.fromkeys(ch["param"]))
    transitions = list(dict.fromkeys(ch["transition"]))
    rel = ch.pivot(index="param", columns="transition", values="rel_change").reindex(index=order,
                                                                                     columns=transitions)
    arr = rel.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logv = np.where(np.abs(arr) > 0, np.log10(np.abs(np.where(arr != 0, arr, 1.0))), np.nan)
    frozen = ch.drop_duplicates("param").set_index("param")["frozen"].reindex(order).to_numpy(bool)
    with np.errstate(all="ignore"):
        typical = np.array([np.nanmax(np.abs(r)) if np.isfinite(r).any() else np.nan for r in arr])
    keep, left = _data.worst_modules(pd.Series(order), pd.Series(frozen), _data.distance_from_median(typical),
                                     max_rows)
    note = left_out_note(left["params"], left["modules"])
    if note:
        note = "\n" + "\n".join(textwrap.wrap(
            f"{len(keep)} of {len(order):,} tensors, grouped by module, worst first (frozen ones, then the farthest "
            f"from the median change): {note}", 100))
    order, arr, logv, frozen = [order[i] for i in keep], arr[keep], logv[keep], frozen[keep]
    texts = [["0" if v == 0 else f"{v:+.1e}" for v in row] for row in arr]
    ax = new_axes(ax, (max(6.0, 3.5 + 1.6 * len(transitions)), tall(len(order))))
    draw_heatmap(ax, logv, row_labels=shorten_names(order), col_values=transitions, cmap="viridis",
                 cbar_label="log10(|Δ norm| / norm)", zero_mask=arr == 0, zero_label="norm unchanged (frozen)",
                 highlight_rows=frozen, xlabel="checkpoint transition" + note, annotate=texts,
                 title="Relative parameter-norm change between checkpoints")
    ax.set_ylabel("parameter")
    return ax
