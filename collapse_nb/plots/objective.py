"""The training objective over time, for runs without a series called ``loss``.

Ultralytics logs ``box_loss, cls_loss, dfl_loss`` and no total; a GAN logs one loss per network.
The checks read these through :meth:`Run.objective` (the sum of the components, or one objective per
network); :func:`objective_curves` draws what they read, on :mod:`collapse_nb.timeaxis`'s curves:
the train objective (and each validation set's) with the components as thin lines, or one line
per network. :func:`~collapse_nb.plots.loss_curves` falls back to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import series as _series
from ..timeaxis import curve, step_is_global
from ._common import PHASE_COLORS, MissingDataError, legend, new_axes

if TYPE_CHECKING:
    from ..run import Run

NETWORK_COLORS = {"generator": "#1f77b4", "discriminator": "#d62728"}


def has_objective(run: Run) -> bool:
    """The run has an objective other than a plain ``loss`` (components, or several networks)."""
    cat = run.series
    return bool(_series.networks(cat)) or run.objective("train").how in ("sum", "single")


def _xy(c) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions and values: the step when it counts the whole run, else the epoch (a per-epoch mean)."""
    if c["level"].iloc[0] == "step" and step_is_global(c):
        return c["step"].to_numpy(dtype="float64"), c["value"].to_numpy(dtype="float64"), "step"
    return c["x"].to_numpy(dtype="float64"), c["value"].to_numpy(dtype="float64"), c["level"].iloc[0]


def _label(obj) -> str:
    """``train: box_loss + cls_loss + dfl_loss`` (a sum), ``train loss`` (logged), ``val on 'squad'``."""
    where = obj.phase + (f" on '{obj.eval_set}'" if obj.eval_set else "")
    if obj.how == "sum":
        return f"{where}: " + " + ".join(obj.names)
    return f"{where}: {obj.names[0]}" if obj.names else where


def _per_network(run: Run, nets: list[str]) -> list[tuple]:
    """Each network's loss terms, at the resolution its steps allow."""
    cat = run.series
    out = []
    styles = ("-", "--", ":", "-.")
    for n in nets:
        names = sorted(set(cat.loc[(cat["network"] == n) & cat["role"].isin(["objective", "component"]), "name"]))
        for i, name in enumerate(names):
            c = curve(run, "train", name)
            if len(c) and not (c["level"].iloc[0] == "step" and step_is_global(c)):
                c = curve(run, "train", name, level="epoch")
            if len(c):
                out.append((c, f"{n}: {name}", NETWORK_COLORS.get(n), 1.4, styles[i % len(styles)], n))
    return out


def objective_curves(run: Run, ax: Any = None, logy: bool = False) -> Any:
    """The objective the checks read, per phase (and eval set), or each network's loss terms (the
    discriminator's on a second axis: its terms are often orders of magnitude smaller). Returns the axes."""
    cat = run.series
    nets = _series.networks(cat)
    if nets:
        lines = _per_network(run, nets)
    else:
        lines = []
        obj = run.objective("train")
        c = curve(run, "train")
        if len(c):
            lines.append((c, _label(obj), PHASE_COLORS.get("train"), 1.8, "-", None))
        for es in _series.eval_sets(cat):
            v = curve(run, "val", eval_set=es)
            if len(v):
                lines.append((v, _label(run.objective("val", eval_set=es)), PHASE_COLORS.get("val"), 1.8, "-", None))
        for name in obj.names if obj.how == "sum" else []:
            comp = curve(run, "train", name)
            if len(comp):
                lines.append((comp, f"train: {name}", PHASE_COLORS.get("train"), 0.8, ":", None))
    if not lines:
        raise MissingDataError("objective_curves needs a training objective: no loss series was recognised "
                               f"(series seen: {_series.seen(cat)})")
    ax = new_axes(ax, (9, 4.5))
    second = ax.twinx() if nets and len(nets) > 1 else None
    units = set()
    for c, label, color, width, style, net in lines:
        x, y, unit = _xy(c)
        units.add(unit)
        ok = np.isfinite(y)
        target = second if (second is not None and net == nets[-1]) else ax
        target.plot(x[ok], y[ok], label=label, color=color, linewidth=width, linestyle=style,
                    alpha=1.0 if width > 1 else 0.7)
    ax.set_xlabel(" / ".join(sorted(units)))
    ax.set_ylabel((f"{nets[0]} loss" if second is not None else "loss") + (" (log scale)" if logy else ""))
    if second is not None:
        second.set_ylabel(f"{nets[-1]} loss")
    if logy:
        ax.set_yscale("log")
    ax.set_title("Loss terms per network" if nets else "Training objective (the sum of its logged components)"
                 if run.objective("train").how == "sum" else "Training objective")
    ax.grid(True, alpha=0.3)
    if second is not None:
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = second.get_legend_handles_labels()
        legend(ax, h1 + h2, l1 + l2)
    else:
        legend(ax)
    return ax
