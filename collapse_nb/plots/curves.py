"""Curves over time: loss, learning rate, train/val loss ratio."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import _data
from ._common import (PHASE_COLORS, RESTART_COLOR, THRESHOLD_COLOR, MissingDataError, check_run, fmt_num,
                      mark_restarts, new_axes, plain_log_axis)

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


def loss_curves(run: Any, ax: Any = None, x: str = "auto", logy: bool = False) -> Any:
    """Train / val / test loss over steps (``x="step"``) or epochs (``x="epoch"``).

    Requires: a ``loss`` in ``run.scalars`` (``x="step"``: placed by step, or by epoch and batch
    when no step was logged) or ``<phase>_loss`` columns in ``run.epochs`` (``x="epoch"``).
    ``x="auto"`` takes steps when per-step losses were logged, else epochs.

    One colour per phase. With steps, a phase logged both per step and once per epoch (as the
    seed report's log does) gets both: a thin per-step line and the per-epoch values as dots at
    each epoch's last step, so a mismatch between them shows. Dashed vertical lines mark
    restarts (segments); NaN/inf losses are marked with red crosses at the top. ``logy``: log
    scale on the loss axis. Returns the axes; raises :class:`MissingDataError` without data.
    """
    check_run(run, "loss_curves")
    _check_x(x, "loss_curves")
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
        tl = _data.timeline(run.scalars)
        step_word = "per batch" if tl.kind == "batch" else "per step"
        phases = [p for p in (*_data.PHASE_ORDER, None) if ((d["phase"] == p) if p else d["phase"].isna()).any()]
        for phase in phases:
            dp = d[(d["phase"] == phase) if phase else d["phase"].isna()]
            both = dp["level"].nunique() > 1
            for level in ("step", "epoch"):
                dl = dp[dp["level"] == level]
                label = _phase_label(phase) + (f" ({step_word if level == 'step' else 'per epoch'})" if both else "")
                style = (dict(linewidth=1, alpha=0.55 if both else 0.9) if level == "step"
                         else dict(linewidth=1.8, marker="o", markersize=5))
                for i, (_, g) in enumerate(dl.groupby(["segment", "source"], sort=True)):
                    v, xs = g["value"].to_numpy(float), g["x"].to_numpy(float)
                    ok = np.isfinite(v)
                    ax.plot(xs[ok], v[ok], color=PHASE_COLORS[phase], label=label if i == 0 else "_nolegend_",
                            **style)
        _mark_nonfinite(ax, d["x"].to_numpy(float), d["value"].to_numpy(float), "NaN/inf loss")
        mark_restarts(ax, _data.segment_starts(d))
        ax.set_xlabel(tl.label)
        ax.set_title("Loss over training" + (f" ({tl.kind}s)" if tl.kind == "step" else ""))
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
    ax.legend(fontsize=9)
    return ax


def lr_curve(run: Any, ax: Any = None, x: str = "auto", logy: bool = False, show_config: bool = True) -> Any:
    """The learning rate over steps or epochs, one line per param group when there are several.

    Requires: ``lr`` rows in ``run.scalars`` (``x="step"``) or ``lr``/``lr_<group>`` columns in
    ``run.epochs`` (``x="epoch"``); ``x="auto"`` takes steps when the lr was logged per step.
    ``show_config`` adds the configured ``learning_rate`` (``run.config``) as a dotted line.
    Returns the axes; raises :class:`MissingDataError` without data.
    """
    check_run(run, "lr_curve")
    _check_x(x, "lr_curve")
    d = _data.metric_over_time(run, "lr")
    if x == "auto":
        x = "step" if (d["level"] == "step").any() else "epoch"
    if x == "step":
        if d.empty:
            raise MissingDataError("lr_curve(x='step') needs 'lr' rows in run.scalars with a step (or an epoch "
                                   "and batch); none were logged. Try x='epoch'.")
        if (d["level"] == "step").any():
            d = d[d["level"] == "step"]
        tl = _data.timeline(run.scalars)
        series = {p: g for p, g in d.groupby(d["param"].fillna(""), sort=False)}
        frames = [(("learning rate" if len(series) == 1 else f"lr ({p or 'default'})"), g)
                  for p, g in series.items()]
        xlabel = tl.label
    else:
        cols = _data.epoch_columns(run.epochs, "lr")
        if not cols:
            raise MissingDataError("lr_curve needs a learning rate: run.scalars has no 'lr' rows and run.epochs no "
                                   f"lr column (it has: {', '.join(map(str, run.epochs.columns)) or 'no columns'})")
        frames = [(("learning rate" if len(cols) == 1 else c), _epoch_frame(run.epochs, c)) for c in cols]
        xlabel = "epoch"
    ax = new_axes(ax, (9, 4))
    colors = [f"C{i}" for i in range(10)]
    for j, (label, g) in enumerate(frames):
        for i, (_, s) in enumerate(g.groupby("segment", sort=True)):
            ok = np.isfinite(s["value"].to_numpy(float))
            ax.plot(s["x"][ok], s["value"][ok], color=colors[j % 10], linewidth=1.6,
                    marker="o" if x == "epoch" or ok.sum() < 30 else None, markersize=4,
                    label=label if i == 0 else "_nolegend_")
    mark_restarts(ax, _data.segment_starts(pd.concat([g for _, g in frames])))
    configured = run.config.get("learning_rate") if show_config else None
    if isinstance(configured, (int, float)) and not isinstance(configured, bool):
        ax.axhline(configured, color=RESTART_COLOR, linestyle=":", linewidth=1.2,
                   label=f"configured learning_rate = {fmt_num(configured)}")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("learning rate" + (" (log scale)" if logy else ""))
    ax.set_title("Learning rate" + (" per param group" if len(frames) > 1 else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def _accumulation(run: Any) -> tuple[float | None, str]:
    v = run.config.get("gradient_accumulation_steps")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), "config"
    if "grad_accum_steps" in run.epochs.columns:
        logged = _floats(run.epochs["grad_accum_steps"])
        logged = logged[np.isfinite(logged)]
        if logged.size:
            return float(np.median(logged)), "logged"
    return None, ""


def val_train_ratio(run: Any, ax: Any = None, accumulation: float | None = None) -> Any:
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
