"""Curves over time: loss, learning rate, train/val loss ratio."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import timeaxis
from . import _data, _frames
from .objective import has_objective, objective_curves
from ._common import (PHASE_COLORS, RESTART_COLOR, THRESHOLD_COLOR, MissingDataError, check_run, draw_lines, fmt_num,
                      legend, mark_restarts, new_axes, note_unplaced, plain_log_axis)

if TYPE_CHECKING:
    from ..run import Run

_X_CHOICES = ("auto", "step", "epoch")


def _check_x(x: str, func: str) -> None:
    if x not in _X_CHOICES:
        raise ValueError(f"{func}(): x must be one of {', '.join(map(repr, _X_CHOICES))}; got {x!r}")


def _floats(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _phase_label(phase: str | None) -> str:
    return f"{phase} loss" if phase else "loss (no phase logged)"


def _mark_nonfinite(ax: Any, x: np.ndarray, v: np.ndarray, label: str) -> None:
    bad = ~np.isfinite(v)
    if bad.any():
        ax.plot(x[bad], np.full(bad.sum(), 0.97), linestyle="none", marker="x", color=THRESHOLD_COLOR,
                transform=ax.get_xaxis_transform(), label=label, clip_on=False)


def _epoch_frame(epochs: pd.DataFrame, col: str) -> pd.DataFrame:
    return pd.DataFrame({"segment": np.nan_to_num(_floats(epochs["segment"]), nan=0).astype(int)
                         if "segment" in epochs.columns else 0,
                         "x": _floats(epochs["epoch"]), "value": _floats(epochs[col])}).dropna(subset=["x"])


#: Line styles of the second, third, ... file giving the same metric per step (the first is solid).
SOURCE_STYLES = ({"linestyle": "-"}, {"linestyle": "--"}, {"linestyle": ":", "marker": "."},
                 {"linestyle": "-.", "marker": "x"})


def _shade(color: str, k: int) -> tuple[float, float, float]:
    """``color`` for the first file, darker for the second, third, ... giving the same metric."""
    from matplotlib.colors import to_rgb
    f = 1.0 - min(0.55, 0.25 * k)
    return tuple(c * f for c in to_rgb(color))         # type: ignore[return-value]


def _files_label(sources: tuple[str, ...], short: dict[str, str]) -> str:
    return ", ".join(short.get(s, s) for s in sources)


def _time_title(tl: timeaxis.Timeline) -> str:
    return {"step": " (steps)", "batch": " (counted batches)", "epoch": " (fractional epochs)"}.get(tl.kind or "", "")


def metric_rows(data: Any, name: str, func: str) -> tuple[pd.DataFrame, str]:
    """The rows of metric ``name`` a curve draws, and the axis label, from a Run or a DataFrame.

    A Run, or a long scalars table (several runs concatenated with a ``run`` column: one Run each):
    :func:`collapse_nb.plots._data.metric_points` per run (its own time axis; the label says each
    run's when they differ), with a ``run`` column. A placed table (``x, value``, as
    :func:`collapse_nb.plots.metric_over_time` gives; a ``name`` column, if any, is filtered on
    ``name``) is drawn where it is, ``attrs["xlabel"]`` naming its axis."""
    _frames.check_input(data, func)
    if isinstance(data, pd.DataFrame) and not _frames.is_long(data):
        if not {"x", "value"} <= set(data.columns):
            raise MissingDataError(f"{func}() takes a Run, a long scalars table (run.scalars: name, value and the "
                                   "time columns) or a placed table (x, value: metric_over_time); the DataFrame has: "
                                   f"{', '.join(map(str, data.columns)) or 'no columns'}")
        d = data[(data["name"] == name).to_numpy(dtype=bool)] if "name" in data.columns else data
        if d.empty:
            raise MissingDataError(f"{func}() needs rows of {name!r}; the DataFrame has none")
        return d, str(data.attrs.get("xlabel", "x"))
    parts, labels, unplaced = [], {}, {}
    for k, run in _frames.as_runs(data, func):
        d, label = _data.metric_points(run, name)
        unplaced.update(d.attrs.get("unplaced", {}))
        if d.empty:
            continue
        parts.append(d.assign(run=k) if k is not None else d)
        labels[k] = label
    if not parts:
        raise MissingDataError(f"{func}() needs {name!r} rows in run.scalars (a step, batch or epoch each); "
                               "none were logged")
    d = pd.concat(parts, ignore_index=True)
    d.attrs["unplaced"] = unplaced
    return d, _frames.axis_label(labels)


def _tidy_curve(data: Any, name: str, func: str, ax: Any, hue: str | None, logy: bool, ylabel: str,
                title: str) -> Any:
    """A metric drawn as seaborn draws ``lineplot(data, x=..., y="value", hue=hue)``: coloured by ``hue``
    (default: ``run`` for several runs, else ``phase`` for the loss, ``param`` for the lr), a second
    grouping (phase, or the per-step vs per-epoch level) as the line style."""
    d, xlabel = metric_rows(data, name, func)
    several = _frames.several_runs(d)
    hue = _frames.resolve_hue(d, hue, func, "the rows drawn", default="param" if name == "lr" else "phase")
    style = None
    for cand in ("phase", "param", "level"):
        if cand != hue and cand in d.columns and d[cand].astype(object).nunique(dropna=False) > 1:
            style = cand
            break
    ax = new_axes(ax, (9, 4.5))
    names = timeaxis.short_sources(d[hue].dropna().astype(str)) if hue == "source" else None
    draw_lines(ax, d, hue, style=style, name=name if hue in ("phase",) else "", level_names=names)
    _mark_nonfinite(ax, d["x"].to_numpy(float), d["value"].to_numpy(float), f"NaN/inf {name}")
    if not several:
        mark_restarts(ax, _data.segment_starts(d))
    note_unplaced(ax, d.attrs.get("unplaced", {}))
    if logy:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (log scale)" if logy else ""))
    ax.set_title(f"{title} by {hue}")
    ax.grid(True, alpha=0.3)
    legend(ax)
    return ax


def loss_curves(run: Run | pd.DataFrame, ax: Any = None, x: str = "auto", logy: bool = False,
                hue: str | None = None) -> Any:
    """Train / val / test loss over training time (``x="step"``) or per epoch (``x="epoch"``).

    Requires: a ``loss`` in ``run.scalars`` (``x="step"``) or ``<phase>_loss`` columns in
    ``run.epochs`` (``x="epoch"``). ``x="auto"`` takes the time axis when per-step losses were
    logged, else epochs.

    The time axis is that of the files logging the loss (:func:`collapse_nb.plots.metric_timeline`):
    steps when they all logged steps, counted batches when none did, and fractional epochs when
    some logged steps and others only batches (each file placed by its own clock; the axis label
    says how). One colour per phase; a phase logged both per step and once per epoch gets both: a
    thin per-step line and the per-epoch values as dots at each epoch's end, so a mismatch between
    them shows. When several files give the loss, each line names its file(s) in the legend (files
    agreeing on the per-epoch values share one line) and the per-step lines of the second and
    further files are dashed / dotted. Rows that have no position on the axis are counted in a note.
    Dashed vertical lines mark restarts (segments); NaN/inf losses are marked with red crosses at
    the top. ``logy``: log scale on the loss axis. Returns the axes; raises
    :class:`MissingDataError` without data.

    ``run`` may also be a DataFrame, and ``hue`` a column to colour by (as seaborn's ``lineplot``): a
    long scalars table (``run.scalars``; several runs' concatenated with a ``run`` column, each placed
    on its own time axis) or a placed table (``x, value`` and the hue column, as
    :func:`collapse_nb.plots.metric_over_time` gives). ``hue`` (``"phase"``, ``"run"``, ``"source"``,
    ...): one colour per value, a second grouping (phase, or per-step vs per-epoch) as the line style;
    default ``"run"`` for several runs, else ``"phase"``. ``x`` applies to a Run without ``hue``.
    """
    if hue is not None or isinstance(run, pd.DataFrame):
        return _tidy_curve(run, "loss", "loss_curves", ax, hue, logy, "loss", "Loss over training")
    check_run(run, "loss_curves")
    _check_x(x, "loss_curves")
    s = run.scalars
    if not (s["name"] == "loss").any() and has_objective(run):
        return objective_curves(run, ax=ax, logy=logy)       # components without a total, or a GAN's networks
    d = None
    if x in ("auto", "step"):
        d = _data.metric_over_time(run, "loss")
        if d.empty and x == "step":
            raise MissingDataError("loss_curves(x='step') needs loss values in run.scalars with a step (or an "
                                   "epoch and batch); none were logged. Try x='epoch'.")
        x = "step" if (x == "step" or (d["level"] == "step").any()) else "epoch"
    if x == "epoch":
        cols = _data.epoch_columns(run.epochs, "loss")
        if not cols or all(run.epochs[c].isna().all() for c in cols.values()):
            raise MissingDataError("loss_curves needs a loss: run.scalars has no 'loss' rows and run.epochs no "
                                   f"train_loss/val_loss/test_loss/loss column (it has: "
                                   f"{', '.join(map(str, run.epochs.columns)) or 'no columns'})")
    ax = new_axes(ax, (9, 4.5))
    if x == "step":
        assert d is not None                  # x is "step" only when the per-step table was read above
        tl = timeaxis.metric_timeline(run, "loss")
        files = list(dict.fromkeys(f for fs in d["sources"] for f in fs))
        short = timeaxis.short_sources(files)
        many = len(files) > 1
        phases = [p for p in (*_data.PHASE_ORDER, None) if ((d["phase"] == p) if p else d["phase"].isna()).any()]
        for phase in phases:
            dp = d[(d["phase"] == phase) if phase else d["phase"].isna()]
            both = dp["level"].nunique() > 1
            for level in ("step", "epoch"):
                dl = dp[dp["level"] == level]
                groups = sorted(dl.groupby("sources", sort=False), key=lambda kv: -len(kv[1]))
                for j, (srcs, gs) in enumerate(groups):
                    word = f"per {tl.source_unit(srcs[0])}" if level == "step" else "per epoch"
                    label = _phase_label(phase)
                    if many:                                  # several files give the loss: name them
                        label += f" ({word}; {_files_label(srcs, short)})"
                    elif both:
                        label += f" ({word})"
                    if level == "step":
                        style = dict(linewidth=1 if j == 0 else 1.3, alpha=(0.5 if both else 0.9) if j == 0 else 0.9,
                                     markersize=4, **SOURCE_STYLES[min(j, len(SOURCE_STYLES) - 1)])
                    else:
                        style = dict(linewidth=1.8, marker="o" if j == 0 else "s", markersize=5 if j == 0 else 4,
                                     linestyle="-" if j == 0 else "--")
                    for i, (_, g) in enumerate(gs.groupby("segment", sort=True)):
                        v, xs = g["value"].to_numpy(float), g["x"].to_numpy(float)
                        ok = np.isfinite(v)
                        ax.plot(xs[ok], v[ok], color=_shade(PHASE_COLORS[phase], j),
                                label=label if i == 0 else "_nolegend_", **style)
        _mark_nonfinite(ax, d["x"].to_numpy(float), d["value"].to_numpy(float), "NaN/inf loss")
        mark_restarts(ax, _data.segment_starts(d))
        note_unplaced(ax, d.attrs.get("unplaced", {}))
        ax.set_xlabel(tl.label)
        ax.set_title("Loss over training" + _time_title(tl))
    else:
        e = run.epochs
        allx = []
        for key, col in cols.items():
            f = _epoch_frame(e, col)
            phase = key or None
            for i, (_, g) in enumerate(f.groupby("segment", sort=True)):
                ok = np.isfinite(g["value"].to_numpy(float))
                ax.plot(g["x"][ok], g["value"][ok], color=PHASE_COLORS[phase], marker="o", markersize=5,
                        linewidth=1.8, label=_phase_label(phase) if i == 0 else "_nolegend_")
            allx.append(f)
        both = pd.concat(allx)
        _mark_nonfinite(ax, both["x"].to_numpy(float), both["value"].to_numpy(float), "NaN/inf loss")
        mark_restarts(ax, _data.segment_starts(both))
        ax.set_xlabel("epoch")
        ax.set_title("Loss per epoch")
    if logy:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_ylabel("loss" + (" (log scale)" if logy else ""))
    ax.grid(True, alpha=0.3)
    legend(ax)
    return ax


def lr_curve(run: Run | pd.DataFrame, ax: Any = None, x: str = "auto", logy: bool = False, show_config: bool = True,
             hue: str | None = None) -> Any:
    """The learning rate over training time or epochs, one line per param group (and file).

    Requires: ``lr`` rows in ``run.scalars`` (``x="step"``) or ``lr``/``lr_<group>`` columns in
    ``run.epochs`` (``x="epoch"``); ``x="auto"`` takes the time axis when the lr was logged per step.
    The time axis is that of the files logging the lr (as for :func:`loss_curves`). With per-step
    values, the once-per-epoch ones are not drawn (a legend entry names their files). When several
    files give the lr, each line names its file and the second and further are dashed / dotted.
    ``show_config`` adds the configured ``learning_rate`` (``run.config``) as a dotted line.
    Returns the axes; raises :class:`MissingDataError` without data.

    ``run`` may also be a DataFrame and ``hue`` a column to colour by, as for :func:`loss_curves`
    (default hue: ``"run"`` for several runs, else ``"param"``, the param group).
    """
    if hue is not None or isinstance(run, pd.DataFrame):
        return _tidy_curve(run, "lr", "lr_curve", ax, hue, logy, "learning rate", "Learning rate")
    check_run(run, "lr_curve")
    _check_x(x, "lr_curve")
    d = _data.metric_over_time(run, "lr")
    if x == "auto":
        x = "step" if (d["level"] == "step").any() else "epoch"
    skipped: list[str] = []
    short: dict[str, str] = {}
    styles: list[dict[str, Any]] = []
    if x == "step":
        if d.empty:
            raise MissingDataError("lr_curve(x='step') needs 'lr' rows in run.scalars with a step (or an epoch "
                                   "and batch); none were logged. Try x='epoch'.")
        files = list(dict.fromkeys(f for fs in d["sources"] for f in fs))
        short = timeaxis.short_sources(files)
        if (d["level"] == "step").any():
            step_files = set(d.loc[d["level"] == "step", "source"])
            skipped = [f for f in files if f not in step_files]
            d = d[d["level"] == "step"]
        tl = timeaxis.metric_timeline(run, "lr")
        by_file = sorted(d.groupby("source", sort=False), key=lambda kv: -len(kv[1]))
        many = len(by_file) > 1
        frames = []
        for j, (src, gf) in enumerate(by_file):
            series = {p: g for p, g in gf.groupby(gf["param"].fillna(""), sort=False)}
            for p, g in series.items():
                label = "learning rate" if len(series) == 1 else f"lr ({p or 'default'})"
                if many:
                    label += f" ({short[src]})" if len(series) == 1 else f"[{short[src]}]"
                frames.append((label, g))
                styles.append(SOURCE_STYLES[min(j, len(SOURCE_STYLES) - 1)])
        groups_per_file = max(d.groupby("source")["param"].nunique(dropna=False).max(), 1)
        xlabel = tl.label
    else:
        cols = _data.epoch_columns(run.epochs, "lr")
        if not cols:
            raise MissingDataError("lr_curve needs a learning rate: run.scalars has no 'lr' rows and run.epochs no "
                                   f"lr column (it has: {', '.join(map(str, run.epochs.columns)) or 'no columns'})")
        frames = [(("learning rate" if len(cols) == 1 else c), _epoch_frame(run.epochs, c)) for c in cols]
        styles = [SOURCE_STYLES[0]] * len(frames)
        groups_per_file = len(frames)
        xlabel = "epoch"
    ax = new_axes(ax, (9, 4))
    colors = [f"C{i}" for i in range(10)]
    for j, ((label, g), style) in enumerate(zip(frames, styles)):
        for i, (_, s) in enumerate(g.groupby("segment", sort=True)):
            ok = np.isfinite(s["value"].to_numpy(float))
            kw = dict(linewidth=1.6, markersize=4, **style)
            if "marker" not in style and (x == "epoch" or ok.sum() < 30):
                kw["marker"] = "o"
            ax.plot(s["x"][ok], s["value"][ok], color=colors[j % 10], label=label if i == 0 else "_nolegend_", **kw)
    mark_restarts(ax, _data.segment_starts(pd.concat([g for _, g in frames])))
    configured = run.config.get("learning_rate") if show_config else None
    if isinstance(configured, (int, float)) and not isinstance(configured, bool):
        ax.axhline(configured, color=RESTART_COLOR, linestyle=":", linewidth=1.2,
                   label=f"configured learning_rate = {fmt_num(configured)}")
    if skipped:
        ax.plot([], [], linestyle="none", label=f"per-epoch lr of {_files_label(tuple(skipped), short)}: not drawn")
    if x == "step":
        note_unplaced(ax, d.attrs.get("unplaced", {}))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate" + (" (log scale)" if logy else ""))
    ax.set_title("Learning rate" + (" per param group" if groups_per_file > 1 else ""))
    ax.grid(True, alpha=0.3)
    legend(ax)
    return ax


def _accumulation(run: Run) -> tuple[float | None, str]:
    v = run.config.get("gradient_accumulation_steps")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), "config"
    if "grad_accum_steps" in run.epochs.columns:
        logged = _floats(run.epochs["grad_accum_steps"])
        logged = logged[np.isfinite(logged)]
        if logged.size:
            return float(np.median(logged)), "logged"
    return None, ""


def val_train_ratio(run: Run, ax: Any = None, accumulation: float | None = None) -> Any:
    """``train_loss / val_loss`` per epoch, with reference lines at 1 and at the accumulation factor.

    Requires: ``train_loss`` and ``val_loss`` in ``run.epochs``. ``accumulation`` defaults to
    ``run.config["gradient_accumulation_steps"]`` (else the logged ``grad_accum_steps``); a ratio
    sitting on that line suggests the train loss was summed over micro-batches instead of
    averaged. Returns the axes; raises :class:`MissingDataError` without data.
    """
    check_run(run, "val_train_ratio")
    if accumulation is not None and (isinstance(accumulation, bool) or not isinstance(accumulation, (int, float))
                                     or not accumulation > 0):
        raise ValueError(f"val_train_ratio(): accumulation must be a positive number; got {accumulation!r}")
    try:
        t = _data.val_train_ratio_table(run.epochs)
    except MissingDataError as exc:
        raise MissingDataError(f"val_train_ratio {exc}") from None
    if t.empty:
        raise MissingDataError("val_train_ratio needs epochs with both train_loss and val_loss in run.epochs; "
                               "no epoch has both")
    source = "given"
    if accumulation is None:
        accumulation, source = _accumulation(run)
    ax = new_axes(ax, (8, 4))
    for i, (_, g) in enumerate(t.groupby("segment", sort=True)):
        ax.plot(g["epoch"], g["ratio"], color=PHASE_COLORS["train"], marker="o", linewidth=1.8,
                label="train loss / val loss" if i == 0 else "_nolegend_")
    ax.axhline(1.0, color=RESTART_COLOR, linestyle=":", linewidth=1.2, label="1 (train = val)")
    if accumulation is not None and accumulation != 1:
        ax.axhline(accumulation, color=THRESHOLD_COLOR, linestyle="--", linewidth=1.2,
                   label=f"gradient accumulation = {fmt_num(accumulation)} ({source})")
    mark_restarts(ax, _data.segment_starts(t.rename(columns={"epoch": "x"})))
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss / val loss")
    ax.set_title("Train / validation loss ratio")
    finite = t["ratio"].to_numpy(float)
    finite = finite[np.isfinite(finite)]
    top = max([*finite, accumulation or 1.0, 1.0])
    ax.set_ylim(min([*finite, 0.0]) * 1.15, top * 1.15)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    return ax
