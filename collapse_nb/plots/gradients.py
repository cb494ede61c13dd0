"""Per-parameter gradients and updates: gradient flow bars and layer-by-step heatmaps."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import timeaxis
from . import _data, _frames
from ._common import (DEAD_COLOR, MissingDataError, draw_heatmap, fmt_num, hue_colors, hue_levels, left_out_note,
                      new_axes, row_ticks, seaborn, shorten_names, tall, title_and_legend)

if TYPE_CHECKING:
    from ..run import Run

MAX_COLOR = "#9ecae1"
MEAN_COLOR = "#1f5f99"
_VALUE_LABELS = {"grad_norm": "gradient norm", "weight_norm": "weight norm", "update_norm": "update norm",
                 "update_ratio": "update / weight norm"}


#: At most this many parameter rows in a per-parameter chart; beyond it parameters are grouped by
#: module, worst modules first, and the rest counted in a note (the figure's height stays bounded).
MAX_ROWS = 40


def _grads(run: Run | pd.DataFrame, func: str, need_x: bool = True) -> Any:
    """``run.grads`` placed (:func:`collapse_nb.plots.grads_over_time`), or a DataFrame given instead:
    ``run.grads`` (time columns; several runs concatenated with a ``run`` column) or ``grads_over_time``'s
    table (an ``x``)."""
    _frames.check_input(run, func)
    if isinstance(run, pd.DataFrame):
        _frames.require_columns(run, ("param",), func, "a per-parameter table (run.grads)")
        if run.empty:
            raise MissingDataError(f"{func} needs per-parameter norms; the DataFrame is empty")
        if not need_x:
            return run
        g, label = _frames.place(run)
        g.attrs["xlabel"] = label
        return g
    g = _data.grads_over_time(run)
    if g.empty:
        raise MissingDataError(f"{func} needs per-parameter norms in run.grads (grad_norm/<param> keys or the "
                               "seed report's OPTIMIZER STEP DIAGNOSTICS blocks); run.grads is empty")
    return g


def _logged_positions(g: Any) -> np.ndarray:
    return np.unique(g["x"].to_numpy(float))


def _axis(run: Run) -> timeaxis.Timeline:
    """The time axis of ``run.grads``: that of the file(s) the norms come from."""
    return timeaxis.table_timeline(run, run.grads)


def _axis_label(run: Run, g: Any) -> str:
    return _axis(run).label if _frames.is_run(run) else str(g.attrs.get("xlabel", "x"))


def _axis_unit(run: Run, g: Any) -> str:
    if _frames.is_run(run):
        return _axis(run).unit
    label = str(g.attrs.get("xlabel", "step"))
    return label.split(" ")[0] if label.split(" ")[0] in ("step", "batch", "epoch") else "x ="


def _from_file(run: Run, g: Any) -> str:
    """`` (file)`` when other files logged per-parameter norms too (``run.meta["table_sources"]``), else ``""``."""
    if not _frames.is_run(run) or "source" not in g.columns or "grads" not in run.meta.get("table_sources", {}):
        return ""
    files = list(dict.fromkeys(g["source"].astype(str)))
    short = timeaxis.short_sources(files)
    return f" ({', '.join(short[f] for f in files)})"


def grads_rows_shown(t: pd.DataFrame, max_rows: int, bad: str = "dead",
                     value: str = "mean") -> tuple[pd.DataFrame, str]:
    """The rows of a per-parameter table to draw (all when they fit, else the worst modules first,
    :func:`collapse_nb.plots._data.worst_modules`) and the note saying what was left out."""
    keep, left = _data.worst_modules(t["param"], t[bad], _data.distance_from_median(t[value]), max_rows)
    note = left_out_note(left["params"], left["modules"])
    if note:
        note += f" (the {len(t):,} parameters are grouped by module, worst first: {bad} ones, then the farthest " \
                f"from the median {value})"
    return t.iloc[keep].reset_index(drop=True), note


def _module_separators(ax: Any, params: Any) -> None:
    """Thin lines between the modules of the rows shown (when they were grouped by module)."""
    mods = [_data.module_of(p) for p in params]
    for i in range(1, len(mods)):
        if mods[i] != mods[i - 1]:
            ax.axhline(i - 0.5, color="#999999", linewidth=0.6, zorder=0)


def gradient_flow(run: Run | pd.DataFrame, ax: Any = None, step: float | str | None = None, hue: str | None = None,
                  max_rows: int = MAX_ROWS) -> Any:
    """Per-parameter gradient norm: max and mean over the logged steps (or the value at one step).

    The classic "plot_grad_flow" chart, turned horizontal so parameter names read easily, on a
    log scale. Parameters whose gradient norm is exactly 0 at every logged step are *dead*: drawn
    as a red hatched band labelled "dead" (their names in red). ``step``: a logged position on
    the time axis of the file the norms come from (:func:`collapse_nb.plots.table_timeline`: its
    ``step``, or the counted batch when it logged no step; see
    :func:`collapse_nb.plots.grads_over_time`) or ``"last"``. When several files logged
    per-parameter norms, the title names the one ``run.grads`` uses.

    Many parameters: at most ``max_rows`` rows. Beyond that, parameters are grouped by module (the
    name up to its last ``.``), the worst modules first (the most dead parameters, then the farthest
    from the median gradient norm), separated by thin lines, and the x label says what was left out
    ("and 2,960 more parameters in 740 modules, not shown"); the figure's height stays bounded.

    ``run`` may also be a DataFrame: ``run.grads`` (``param, grad_norm`` and the time columns;
    several runs concatenated with a ``run`` column) or ``grads_over_time``'s table. ``hue``: a column
    to compare by (``"run"``, ``"source"``): one thin bar per value in each parameter's row, the
    mean gradient norm, dead values marked (default ``"run"`` for several runs).

    Requires: ``grad_norm`` per ``param`` in ``run.grads``. Returns the axes; raises
    :class:`MissingDataError` without data, ``ValueError`` for a step that was not logged.
    """
    g = _grads(run, "gradient_flow")
    hue = _frames.resolve_hue(g, hue, "gradient_flow", "the per-parameter table")
    at = None
    if step is not None:
        logged = _logged_positions(g)
        if isinstance(step, str) and step == "last":
            at = float(logged[-1])
        elif isinstance(step, (int, float, np.integer, np.floating)) and float(step) in set(logged.tolist()):
            at = float(step)
        else:
            label = _axis_label(run, g)
            raise ValueError(f"gradient_flow(): step={step!r} was not logged; logged {label} values run from "
                             f"{fmt_num(logged[0])} to {fmt_num(logged[-1])} ({len(logged)} values), or use 'last'")
    t = _data.grad_flow_table(g, at=at)
    if t.empty:
        raise MissingDataError("gradient_flow needs finite grad_norm values in run.grads; there are none")
    n_all = len(t)
    t, note = grads_rows_shown(t, max_rows)
    if hue is not None:
        return _flow_by_hue(run, g, t, at, hue, ax, note, n_all)
    n = len(t)
    y = np.arange(n)
    dead = t["dead"].to_numpy(bool)
    live = ~dead
    ax = new_axes(ax, (9, tall(n + (2 if note else 0), per_row=0.3)))
    positive = t[["mean", "max"]].to_numpy(float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    lo, hi = (positive.min() / 5, positive.max() * 5) if positive.size else (1e-8, 1.0)
    ax.set_xscale("log")
    n_steps = int(t["n_logged"].max())
    if at is None:
        ax.barh(y[live], t["max"][live], height=0.8, color=MAX_COLOR, label="max over logged steps")
        ax.barh(y[live], t["mean"][live], height=0.45, color=MEAN_COLOR, label="mean over logged steps")
        dead_label = f"dead: grad = 0 at all {n_steps} logged steps"
    else:
        unit = _axis_unit(run, g)
        ax.barh(y[live], t["mean"][live], height=0.6, color=MEAN_COLOR, label=f"gradient norm at {unit} {fmt_num(at)}")
        dead_label = "grad = 0 at this step"
    if dead.any():
        ax.barh(y[dead], hi - lo, left=lo, height=0.8, color=DEAD_COLOR, alpha=0.3, hatch="//",
                edgecolor=DEAD_COLOR, label=dead_label)
        for yi in y[dead]:
            ax.text(lo * 1.3, yi, "dead (grad = 0)" if at is None else "grad = 0", va="center", ha="left",
                    fontsize=8, color=DEAD_COLOR, fontweight="bold")
    ax.set_xlim(lo, hi)
    ax.set_ylim(n - 0.5, -0.5)
    row_ticks(ax, shorten_names(t["param"]), "y", dead)
    if note:
        _module_separators(ax, t["param"])
    ax.set_xlabel("gradient norm (L2, log scale)" + (f"\n{_wrap(note)}" if note else ""))
    ax.set_ylabel("parameter")
    when = f"over {n_steps} logged steps" if at is None else f"at {_axis_unit(run, g)} {fmt_num(at)}"
    ax.grid(True, axis="x", alpha=0.3)
    shown = f"{n} of {n_all:,} parameters, " if note else ""
    title_and_legend(ax, f"Gradient flow per parameter {'(' + shown[:-2] + ') ' if shown else ''}{when}"
                         f"{_from_file(run, g)}")
    return ax


def _flow_by_hue(run: Run, g: Any, t: Any, at: float | None, hue: str, ax: Any, note: str, n_all: int) -> Any:
    """Gradient flow compared across the values of ``hue``: per parameter row (those of ``t``), one thin
    bar per value: its mean gradient norm (or the value at ``at``); dead ones hatched red."""
    levels = hue_levels(g[hue])
    colors = hue_colors(levels, hue)
    names = timeaxis.short_sources([str(v) for v in levels if v is not None]) if hue == "source" else {}
    rows = {p: i for i, p in enumerate(t["param"])}
    n, k = len(t), max(len(levels), 1)
    ax = new_axes(ax, (9, tall(n * min(k, 3) / 1.5 + (2 if note else 0), per_row=0.3)))
    ax.set_xscale("log")
    tables = []
    for lv in levels:
        part = g[(g[hue].astype(object) == lv).to_numpy(dtype=bool)] if lv is not None else g[g[hue].isna()]
        tables.append(_data.grad_flow_table(part, at=at))
    vals = np.concatenate([tb["mean"].to_numpy(float) for tb in tables]) if tables else np.array([])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    lo, hi = (vals.min() / 5, vals.max() * 5) if vals.size else (1e-8, 1.0)
    h = 0.8 / k
    for j, (lv, tb) in enumerate(zip(levels, tables)):
        tb = tb[tb["param"].isin(rows)]
        y = tb["param"].map(rows).to_numpy(float) - 0.4 + h * (j + 0.5)
        dead = tb["dead"].to_numpy(bool)
        label = names.get(str(lv), str(lv)) if lv is not None else f"no {hue}"
        ax.barh(y[~dead], tb["mean"].to_numpy(float)[~dead], height=h * 0.9, color=colors[lv],
                label=f"{label}: mean gradient norm" if at is None else f"{label}: at {fmt_num(at)}")
        if dead.any():
            ax.barh(y[dead], hi - lo, left=lo, height=h * 0.9, color=DEAD_COLOR, alpha=0.25, hatch="//",
                    edgecolor=colors[lv], label=f"{label}: dead (grad = 0)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(n - 0.5, -0.5)
    row_ticks(ax, shorten_names(t["param"]), "y")
    if note:
        _module_separators(ax, t["param"])
    ax.set_xlabel("gradient norm (L2, log scale)" + (f"\n{_wrap(note)}" if note else ""))
    ax.set_ylabel("parameter")
    ax.grid(True, axis="x", alpha=0.3)
    title_and_legend(ax, f"Gradient flow per parameter by {hue}" + (f" ({n} of {n_all:,} parameters)" if note else ""))
    return ax


def _log10(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


#: At most this many parameter rows in a heatmap (beyond it: grouped by module, worst first, as
#: :func:`gradient_flow` does).
MAX_HEATMAP_ROWS = 60


def _cap_rows(mat: Any, bad: np.ndarray, max_rows: int, what: str) -> tuple[np.ndarray, str]:
    """Row positions of a parameters x steps matrix to draw, and the note of what was left out."""
    arr = mat.to_numpy(float)
    with np.errstate(all="ignore"):
        typical = np.array([np.nanmedian(r[np.isfinite(r) & (r > 0)]) if (np.isfinite(r) & (r > 0)).any()
                            else np.nan for r in arr])
    keep, left = _data.worst_modules(pd.Series(mat.index), pd.Series(bad), _data.distance_from_median(typical),
                                     max_rows)
    note = left_out_note(left["params"], left["modules"])
    if note:
        note = f"{len(keep)} of {len(mat):,} parameters, grouped by module, worst first ({what} ones, then the " \
               f"farthest from the median): {note}"
    return np.asarray(keep, dtype=int), note


def gradient_heatmap(run: Run | pd.DataFrame, ax: Any = None, value: str = "grad_norm",
                     max_rows: int = MAX_HEATMAP_ROWS) -> Any:
    """Parameter x logged step heatmap of a per-parameter norm on a log10 colour scale.

    ``value``: ``grad_norm`` (default), ``weight_norm``, ``update_norm`` or ``update_ratio``.
    Cells exactly 0 are drawn in the dead colour (red), cells not logged in light grey;
    parameters 0 at every step have red names. One column per logged step (evenly spaced, so
    irregular logging does not stretch the picture), on the time axis of the file the norms come
    from; dashed lines mark restarts. More than ``max_rows`` parameters: the worst modules first
    (dead ones, then the farthest from the median), the rest counted under the x axis.
    ``run`` may also be a DataFrame (``run.grads`` or ``grads_over_time``'s table, as for
    :func:`gradient_flow`).

    Requires: ``value`` per ``param`` in ``run.grads``. Returns the axes (``ax.images[0]`` holds
    the parameters x steps array); raises :class:`MissingDataError` without data.
    """
    if value not in _data.GRAD_VALUES:
        raise ValueError(f"gradient_heatmap(): value must be one of {', '.join(map(repr, _data.GRAD_VALUES))}; "
                         f"got {value!r}")
    g = _grads(run, "gradient_heatmap")
    if value == "update_ratio":
        vals = _data.update_ratios(g)
    elif value in g.columns:
        vals = g[value]
    else:
        vals = None
    if vals is None or not np.isfinite(vals.to_numpy(dtype=float, na_value=np.nan)).any():
        raise MissingDataError(f"gradient_heatmap(value={value!r}) needs {value} values in run.grads; there are none")
    mat, cols = _data.grads_matrix(g, vals)
    arr = mat.to_numpy(float)
    zero = arr == 0
    dead = np.array([(r[np.isfinite(r)] == 0).all() and np.isfinite(r).any() for r in arr])
    keep, note = _cap_rows(mat, dead, max_rows, "all-zero")
    arr, zero, dead, mat = arr[keep], zero[keep], dead[keep], mat.iloc[keep]
    label = _VALUE_LABELS[value]
    ax = new_axes(ax, (11, tall(len(mat))))
    draw_heatmap(ax, _log10(arr), row_labels=shorten_names(mat.index), col_values=cols["x"],
                 col_segments=cols["segment"], cmap="viridis", cbar_label=f"log10({label})",
                 zero_mask=zero, zero_label=f"{label} = 0" + (" (dead)" if value == "grad_norm" else ""),
                 highlight_rows=dead, xlabel=_xlabel(run, g, note),
                 title=f"{label[0].upper()}{label[1:]} per parameter and step (log10){_from_file(run, g)}")
    ax.set_ylabel("parameter")
    return ax


def _xlabel(run: Run, g: Any, note: str = "") -> str:
    return f"{_axis_label(run, g)} (one column per logged step)" + (f"\n{_wrap(note)}" if note else "")


def _wrap(text: str, width: int = 100) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width))


def update_ratio_heatmap(run: Run | pd.DataFrame, ax: Any = None, reference: float = 1e-3,
                         max_rows: int = MAX_HEATMAP_ROWS) -> Any:
    """Parameter x logged step heatmap of ``update_norm / weight_norm`` (log10).

    The colour scale diverges at ``reference`` (white; 1e-3 is the usual rule of thumb for a
    healthy step): purple below (the parameter barely moves), green above (it moves fast).
    Updates of exactly 0 (the parameter did not move) are drawn in the dead colour; parameters
    that never moved have red names. The logged
    ``update_ratio`` is used where there is one. More than ``max_rows`` parameters: the worst
    modules first (frozen ones, then the farthest from the median), as :func:`gradient_heatmap`.
    ``run`` may also be a DataFrame (``run.grads`` or ``grads_over_time``'s table).

    Requires: ``update_norm`` and ``weight_norm`` (or ``update_ratio``) in ``run.grads``.
    Returns the axes; raises :class:`MissingDataError` without data.
    """
    from matplotlib.colors import TwoSlopeNorm

    if not (isinstance(reference, (int, float)) and reference > 0):
        raise ValueError(f"update_ratio_heatmap(): reference must be a positive number; got {reference!r}")
    g = _grads(run, "update_ratio_heatmap")
    if "update_ratio" not in g.columns and not {"update_norm", "weight_norm"} <= set(g.columns):
        raise MissingDataError("update_ratio_heatmap needs update_norm and weight_norm (or update_ratio) columns; "
                               f"the table has: {', '.join(map(str, g.columns))}")
    for c in ("update_norm", "weight_norm"):
        if c not in g.columns:
            g = g.assign(**{c: np.nan})
    r = _data.update_ratios(g)
    if not np.isfinite(r.to_numpy(float)).any():
        raise MissingDataError("update_ratio_heatmap needs update_norm and weight_norm (or update_ratio) in "
                               "run.grads; no row has both")
    mat, cols = _data.grads_matrix(g, r)
    arr = mat.to_numpy(float)
    zero = (arr == 0) | (_data.grads_matrix(g, "update_norm")[0].to_numpy(float) == 0)   # did not move at all
    logv = _log10(arr)
    centre = float(np.log10(reference))
    finite = logv[np.isfinite(logv)]
    span = max(1.0, float(np.max(np.abs(finite - centre)))) if finite.size else 1.0
    norm = TwoSlopeNorm(vcenter=centre, vmin=centre - span, vmax=centre + span)
    frozen = zero.all(axis=1)
    keep, note = _cap_rows(mat, frozen, max_rows, "frozen")
    logv, zero, frozen, mat = logv[keep], zero[keep], frozen[keep], mat.iloc[keep]
    ax = new_axes(ax, (11, tall(len(mat))))
    im = draw_heatmap(ax, logv, row_labels=shorten_names(mat.index), col_values=cols["x"],
                      col_segments=cols["segment"], cmap="PRGn", norm=norm,
                      cbar_label=f"log10(update / weight)\nwhite = reference {fmt_num(reference)} ({fmt_num(centre)})",
                      zero_mask=zero, zero_label="update = 0 (frozen)", highlight_rows=frozen,
                      xlabel=_xlabel(run, g, note),
                      title=f"Update / weight norm ratio per parameter and step{_from_file(run, g)}")
    im.colorbar.ax.axhline(centre, color="black", linewidth=1)
    ax.set_ylabel("parameter")
    return ax


#: At most this many rows (modules or parameters) in :func:`grad_norm_distribution`.
MAX_GROUPS = 30


def grad_norm_distribution(run: Run | pd.DataFrame, ax: Any = None, by: str = "module", kind: str = "box",
                           hue: str | None = None, value: str = "grad_norm", max_groups: int = MAX_GROUPS) -> Any:
    """How a per-parameter norm is distributed over the logged steps, per module or per parameter.

    One row per module (``by="module"``: the parameter name up to its last ``.``, every step of every
    parameter in it) or per parameter (``by="param"``), in model order, on a log scale: a box
    (``kind="box"``: quartiles, whiskers at 1.5 IQR), a violin (``"violin"``) or every value
    (``"strip"``). Values exactly 0 cannot sit on a log axis: each row counts them at the left
    (``"12 × 0"``), rows that are 0 everywhere are marked dead in red. More than ``max_groups``
    rows: the worst ones (all zero, then the farthest from the typical median) are kept, in model
    order, and the x label says how many were left out. ``value``: ``grad_norm`` (default),
    ``weight_norm``, ``update_norm`` or ``update_ratio``.

    Drawn with seaborn (``boxplot`` / ``violinplot`` / ``stripplot``) when it is installed, with
    plain matplotlib otherwise. ``run``: a Run or a DataFrame (``run.grads``; several runs
    concatenated with a ``run`` column); ``hue``: a column to split each row by (default ``"run"``
    for several runs). Returns the axes; raises :class:`MissingDataError` without data.
    """
    if by not in ("module", "param"):
        raise ValueError(f"grad_norm_distribution(): by must be 'module' or 'param'; got {by!r}")
    if kind not in ("box", "violin", "strip"):
        raise ValueError(f"grad_norm_distribution(): kind must be 'box', 'violin' or 'strip'; got {kind!r}")
    if value not in _data.GRAD_VALUES:
        raise ValueError(f"grad_norm_distribution(): value must be one of {', '.join(map(repr, _data.GRAD_VALUES))}; "
                         f"got {value!r}")
    g = _grads(run, "grad_norm_distribution", need_x=False)
    if value == "update_ratio" and {"update_norm", "weight_norm"} <= set(g.columns):
        vals = _data.update_ratios(g).to_numpy(float)
    elif value in g.columns:
        vals = pd.to_numeric(g[value], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        raise MissingDataError(f"grad_norm_distribution(value={value!r}) needs {value} values in run.grads; "
                               "there are none")
    hue = _frames.resolve_hue(g, hue, "grad_norm_distribution", "the per-parameter table")
    params = g["param"].astype(object).to_numpy()
    d = pd.DataFrame({"param": params, "value": vals})
    if hue is not None:
        d["hue"] = g[hue].astype(object).to_numpy()
    d = d[d["param"].notna() & np.isfinite(d["value"])]
    if d.empty:
        raise MissingDataError(f"grad_norm_distribution needs finite {value} values in run.grads; there are none")
    d["param"] = d["param"].astype(str)
    d["group"] = d["param"].map(_data.module_of) if by == "module" else d["param"]
    order = list(dict.fromkeys(d["group"]))
    zeros = d[d["value"] == 0].groupby("group").size().reindex(order, fill_value=0)
    counts = d.groupby("group").size().reindex(order)
    dead = (zeros == counts).to_numpy(bool)
    pos = d[d["value"] > 0]
    medians = pos.groupby("group")["value"].median().reindex(order)
    keep, left = _data.worst_modules(pd.Series(order), pd.Series(dead), _data.distance_from_median(medians),
                                     max_groups) if len(order) > max_groups else (list(range(len(order))),
                                                                                  {"params": 0})
    if len(order) > max_groups:                       # rows shown in model order; the note says what was left out
        keep = sorted(keep)
    shown = [order[i] for i in keep]
    dead = dead[keep]
    zeros = zeros.iloc[keep]
    pos = pos[pos["group"].isin(shown)]
    n = len(shown)
    ax = new_axes(ax, (9, tall(n, per_row=0.32)))
    labels = shorten_names(shown)
    sns = seaborn()
    y_of = {grp: i for i, grp in enumerate(shown)}
    if len(pos):
        if sns is not None:
            draw = {"box": sns.boxplot, "violin": sns.violinplot, "strip": sns.stripplot}[kind]
            kw: dict[str, Any] = dict(data=pos.assign(row=pos["group"].map(dict(zip(shown, labels)))), x="value",
                                      y="row", order=labels, orient="h", log_scale=True, ax=ax)
            if hue is not None:
                kw.update(hue="hue", hue_order=hue_levels(pos["hue"]), palette=hue_colors(hue_levels(pos["hue"]), hue))
            else:
                kw.update(color=MEAN_COLOR)
            if kind == "box":
                kw.update(fliersize=2, linewidth=0.8)
            elif kind == "strip":
                kw.update(size=2.5, alpha=0.6, jitter=0.25)
            else:
                kw.update(linewidth=0.6, density_norm="width", cut=0)
            import warnings
            with warnings.catch_warnings():          # seaborn 0.13 passes matplotlib 3.11 a deprecated `vert`
                warnings.filterwarnings("ignore", message=".*vert: bool was deprecated.*")
                draw(**kw)
        else:
            _matplotlib_distribution(ax, pos, shown, y_of, kind, hue)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels, fontsize=9 if n <= 40 else 7)
    ax.set_ylim(n - 0.5, -0.5)
    if ax.get_xscale() != "log":
        ax.set_xscale("log")
    for i, z in enumerate(zeros):
        if dead[i]:
            ax.text(0.01, i, "dead (0 at every step)", transform=ax.get_yaxis_transform(), va="center", ha="left",
                    fontsize=8, color=DEAD_COLOR, fontweight="bold")
            ax.get_yticklabels()[i].set_color(DEAD_COLOR)
        elif z:
            ax.text(0.01, i, f"{int(z)} × 0", transform=ax.get_yaxis_transform(), va="center", ha="left",
                    fontsize=7, color=DEAD_COLOR)
    what = "module" if by == "module" else "parameter"
    note = ""
    if len(order) > max_groups:
        note = "\n" + _wrap(f"{n} of {len(order):,} {what}s shown (all-zero ones, then the farthest from the typical "
                            f"median); {len(order) - n:,} left out")
    ax.set_xlabel(f"{_VALUE_LABELS[value]} over the logged steps (log scale)" + note)
    ax.set_ylabel(what)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"Distribution of the {_VALUE_LABELS[value]} per {what} over the logged steps"
                 + (f" by {hue}" if hue else ""), loc="left")
    return ax


def _horizontal() -> dict[str, Any]:
    """Horizontal boxes / violins in this matplotlib: ``orientation=`` from 3.10, ``vert=False`` before."""
    import matplotlib
    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


def _matplotlib_distribution(ax: Any, pos: Any, shown: list[str], y_of: dict[str, int], kind: str,
                             hue: str | None) -> None:
    """The distribution rows without seaborn: matplotlib's boxplot / violinplot, or jittered points."""
    levels = hue_levels(pos["hue"]) if hue is not None else [None]
    colors = hue_colors(levels, hue) if hue is not None else {None: MEAN_COLOR}
    k = len(levels)
    width = 0.7 / k
    rng = np.random.default_rng(0)
    if kind != "violin":
        ax.set_xscale("log")
    for j, lv in enumerate(levels):
        part = pos if lv is None else pos[pos["hue"] == lv]
        data, ys = [], []
        for grp in shown:
            v = part.loc[part["group"] == grp, "value"].to_numpy(float)
            if v.size:
                data.append(v)
                ys.append(y_of[grp] - 0.35 + width * (j + 0.5))
        if not data:
            continue
        label = None if lv is None else str(lv)
        if kind == "strip":
            for v, y in zip(data, ys):
                ax.scatter(v, y + rng.uniform(-width / 3, width / 3, v.size), s=5, alpha=0.6, color=colors[lv],
                           label=label if y == ys[0] else None)
        elif kind == "violin":
            logs = [np.log10(v) for v in data]
            parts = ax.violinplot(logs, positions=ys, widths=width * 0.9, showmedians=True, **_horizontal())
            for body in parts["bodies"]:
                body.set_facecolor(colors[lv])
            # the violins are drawn on log10 values: put them back on the log axis
            for body in parts["bodies"]:
                verts = body.get_paths()[0].vertices
                verts[:, 0] = 10 ** verts[:, 0]
            for key in ("cmedians", "cmins", "cmaxes", "cbars"):
                if key in parts:
                    segs = parts[key].get_segments()
                    parts[key].set_segments([np.c_[10 ** s[:, 0], s[:, 1]] for s in segs])
        else:
            bp = ax.boxplot(data, positions=ys, widths=width * 0.9, patch_artist=True,
                            flierprops={"markersize": 2}, manage_ticks=False, **_horizontal())
            for box in bp["boxes"]:
                box.set_facecolor(colors[lv])
                box.set_alpha(0.8)
            if label:
                bp["boxes"][0].set_label(label)
    if kind == "violin":
        ax.set_xscale("log")
    v = pos["value"].to_numpy(float)
    ax.set_xlim(v.min() / 1.5, v.max() * 1.5)
    if hue is not None:
        ax.legend(fontsize=8)
