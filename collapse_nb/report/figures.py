"""The report's plots, drawn off-screen and embedded as base64 PNG.

Which plots: the loss curves, the learning rate, the prediction/target spread (the std
ratio in its own panel with the variance_collapse check's bands), the per-parameter gradient
flow and the gradient norms' distribution per module (at most a few dozen rows: the worst
modules first), the train/validation loss ratio (plus the norm changes between checkpoints
when the run has checkpoints); then "All metrics" (keys ``metrics_*``): small multiples of
every logged scalar series, one figure per name prefix. Each plot's time axis is worked out
from the files its rows come from (see :mod:`collapse_nb.timeaxis.placement`), once per run:
the axes are memoised on ``run.scalars``, so the seven time-axis look-ups of a report
cost one computation per distinct axis. A plot whose data is missing is not
drawn: its :class:`RenderedFigure` carries the reason instead (one line in the report).

Figures are made with :class:`matplotlib.figure.Figure` on an explicit Agg canvas, so the
report never touches pyplot's global state (no figure manager, no backend switch, nothing to
close) and works in a notebook, a script or a headless server alike.
"""
from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..findings import Finding

if TYPE_CHECKING:
    from ..run import Run

DPI = 100


@dataclass
class RenderedFigure:
    """One plot of the report: the PNG as base64 text, or ``None`` and the reason in ``missing``."""

    key: str
    title: str
    caption: str
    png_base64: str | None = None
    missing: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class PlotSpec:
    key: str
    title: str
    draw: Callable[[Any, Any, list[Finding]], Any]      # (run, ax, findings) -> axes
    size: Callable[[Any], tuple[float, float]]
    caption: Callable[[Any, list[Finding]], str]
    when: Callable[[Any, list[Finding]], bool] = lambda run, findings: True


def _by_check(findings: list[Finding], check: str) -> Finding | None:
    return next((f for f in findings if f.check == check and f.code not in ("not_checked", "check_failed")), None)


def _mention(findings: list[Finding], *checks: str) -> str:
    fs = [f for c in checks if (f := _by_check(findings, c)) is not None]
    if not fs:
        return ""
    return " Related finding(s): " + "; ".join(f"{f.title} ({f.severity})" for f in fs) + "."


def _collapse_ratio(findings: list[Finding], field: str) -> float:
    """The variance_collapse threshold ``field`` the findings were made with, else the check's default."""
    from ..plots import collapse_thresholds
    default = dict(zip(("critical_ratio", "warning_ratio"), collapse_thresholds()))[field]
    f = next((f for f in findings if f.check == "variance_collapse"), None)
    t = (f.details.get("thresholds") or {}) if f is not None else {}
    v = t.get(field, default)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else default


def _critical_ratio(findings: list[Finding]) -> float:
    return _collapse_ratio(findings, "critical_ratio")


def _warning_ratio(findings: list[Finding]) -> float:
    return _collapse_ratio(findings, "warning_ratio")


def _n_params(run: Run) -> int:
    g = run.grads
    return int(g["param"].nunique()) if len(g) and "param" in g else 1


def _draw_output_std(run: Run, ax: Any, findings: list[Finding]) -> Any:
    from .. import plots
    return plots.output_std(run, ax=ax, threshold=_critical_ratio(findings), warning=_warning_ratio(findings))


def _draw(name: str) -> Callable[[Any, Any, list[Finding]], Any]:
    def draw(run: Run, ax: Any, findings: list[Finding]) -> Any:
        from .. import plots
        return getattr(plots, name)(run, ax=ax)
    return draw


def _tall(run: Run) -> tuple[float, float]:
    from ..plots._common import tall
    from ..plots.gradients import MAX_ROWS
    n = _n_params(run)
    return (9.0, tall(min(n, MAX_ROWS) + (2 if n > MAX_ROWS else 0), per_row=0.3))      # bounded: worst modules


def _distribution_size(run: Run) -> tuple[float, float]:
    from ..plots._common import tall
    from ..plots.gradients import MAX_GROUPS
    g = run.grads
    n = int(g["param"].dropna().astype(str).map(lambda p: p.rsplit(".", 1)[0]).nunique()) if len(g) else 1
    return (9.0, tall(min(n, MAX_GROUPS), per_row=0.32))


def _checkpoint_size(run: Run) -> tuple[float, float]:
    from ..plots._common import tall
    from ..plots.checkpoints import MAX_ROWS
    p = run.params
    n_ckpt = int(p["checkpoint"].nunique()) if len(p) and "checkpoint" in p else 2
    n_par = int(p["param"].nunique()) if len(p) and "param" in p else 1
    return (max(6.0, 3.5 + 1.6 * max(n_ckpt - 1, 1)), tall(min(n_par, MAX_ROWS) + (3 if n_par > MAX_ROWS else 0)))


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("loss_curves", "Loss curves", _draw("loss_curves"), lambda run: (9.0, 4.5),
             lambda run, fs: "Training and validation loss over the run, on the time axis of the files that logged "
                             "it (the axis label says how each file's rows were placed); when several files give "
                             "the loss, each line names its file(s). Dashed vertical lines mark restarts."
                             + _mention(fs, "loss_plateau", "loss_divergence", "nonfinite_loss", "overfitting")),
    PlotSpec("lr_curve", "Learning rate", _draw("lr_curve"), lambda run: (9.0, 4.0),
             lambda run, fs: "The logged learning rate (one line per file when several log it); the dotted line "
                             "is the configured learning_rate."
                             + _mention(fs, "lr_schedule_mismatch")),
    PlotSpec("output_std", "Prediction vs target spread", _draw_output_std, lambda run: (9.0, 6.0),
             lambda run, fs: f"Prediction and target standard deviation per logged batch (top) and, in the panel "
                             f"below on the same time axis, their ratio against the variance_collapse check's bands: "
                             f"red below the collapse threshold {_critical_ratio(fs):g} (critical: the model predicts "
                             f"nearly the same value for every input), orange up to {_warning_ratio(fs):g} (warning)."
                             + _mention(fs, "variance_collapse")),
    PlotSpec("gradient_flow", "Gradient flow per parameter", _draw("gradient_flow"), _tall,
             lambda run, fs: "Mean and max gradient norm of each parameter over the logged steps (log scale); "
                             "parameters whose gradient is exactly 0 at every step are marked dead in red."
                             + _flow_left_out(run)
                             + _mention(fs, "dead_parameters", "vanishing_gradients", "exploding_gradients")),
    PlotSpec("grad_norm_distribution", "Gradient norms across modules", _draw("grad_norm_distribution"),
             _distribution_size,
             lambda run, fs: "How each module's gradient norm is spread over the logged steps (box: quartiles; "
                             "whiskers: 1.5 IQR; log scale), modules in model order; values exactly 0 are counted at "
                             "the left, modules 0 at every step are marked dead."
                             + _mention(fs, "vanishing_gradients", "exploding_gradients"),
             when=lambda run, fs: len(run.grads) > 0),
    PlotSpec("val_train_ratio", "Train / validation loss ratio", _draw("val_train_ratio"), lambda run: (8.0, 4.0),
             lambda run, fs: "Train loss divided by validation loss per epoch; the red dashed line is the gradient "
                             "accumulation factor: a ratio sitting on it means the train loss was summed over "
                             "micro-batches instead of averaged." + _mention(fs, "val_below_train")),
    PlotSpec("param_norm_changes", "Parameter norm changes between checkpoints", _draw("param_norm_changes"),
             _checkpoint_size,
             lambda run, fs: "Relative change of each tensor's norm between consecutive checkpoints; red cells "
                             "did not change at all." + _mention(fs, "dead_parameters"),
             when=lambda run, fs: len(run.params) > 0),
)


def _flow_left_out(run: Run) -> str:
    from ..plots.gradients import MAX_ROWS
    n = _n_params(run)
    return (f" With {n:,} parameters, the {MAX_ROWS} rows of the worst modules are shown (dead parameters first, "
            "then those farthest from the median gradient norm); the x label counts the rest.") if n > MAX_ROWS else ""


# ---------------------------------------------------------------- all metrics

#: At most this many "All metrics" figures (one per name-prefix group); the groups beyond are listed in one line.
MAX_METRIC_FIGURES = 8


#: Series the report's own plots draw: a name group holding nothing else gets no "All metrics" figure.
DRAWN_ELSEWHERE = frozenset({"loss", "lr"})


def _slug(prefix: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9]+", "_", prefix).strip("_").lower() or "group"


def _metrics_spec(key: str, title: str, group: str, rows: Any) -> PlotSpec:
    """The figure of one name-prefix group (``rows``: its panels)."""
    from ..plots import metrics
    return PlotSpec(key, title,
                    lambda run, ax, fs: metrics.plot_all_metrics(run, group, ax=ax),
                    lambda run: metrics.metric_layout(run, group)["size"],
                    lambda run, fs: _metrics_caption(run, group, rows))


def metric_specs(run: Run) -> tuple[list[PlotSpec], str | None]:
    """One :class:`PlotSpec` per name-prefix group of the run's logged series (keys ``metrics_<prefix>``,
    ``metrics_no_prefix`` for the names without one), at most :data:`MAX_METRIC_FIGURES`, and the line
    naming the groups left out (``None`` when none are)."""
    from ..plots import _data
    panels = _data.metric_panels(run)
    groups = list(dict.fromkeys(panels["group"])) if len(panels) else []
    drawn = set(panels.loc[panels["name"].isin(DRAWN_ELSEWHERE), "group"]) if len(panels) else set()
    groups = [g for g in groups if g not in drawn or not set(panels.loc[panels["group"] == g, "name"])
              <= DRAWN_ELSEWHERE]                   # a group of only the loss and the lr: the plots above have them
    specs, seen = [], set()
    for g in groups[:MAX_METRIC_FIGURES]:
        slug = "no_prefix" if g == "" else _slug(g)
        while f"metrics_{slug}" in seen:
            slug += "_"
        seen.add(f"metrics_{slug}")
        rows = panels[panels["group"] == g]
        specs.append(_metrics_spec(f"metrics_{slug}", f"All metrics: {g}" if g else "All metrics: other names",
                                   g, rows))
    left = groups[MAX_METRIC_FIGURES:]
    line = None
    if left:
        n = int(panels["group"].isin(left).sum())
        line = (f"{len(left)} more name group(s) with {n:,} series are not drawn "
                f"(at most {MAX_METRIC_FIGURES} figures): "
                + ", ".join(left[:10]) + (", …" if len(left) > 10 else ""))
    return specs, line


def _metrics_caption(run: Run, group: str, rows: Any) -> str:
    from ..plots.metrics import MAX_PANELS
    curves, values = rows[rows["kind"] == "curve"], rows[rows["kind"] == "value"]
    what = f"whose name starts with '{group}'" if group else "without a prefix shared by others"
    out = (f"Every logged series {what}: one panel each ({min(len(curves), MAX_PANELS)} drawn), its train / "
           "validation / test values in one panel by colour, each on the time axis of the files that logged it "
           "(the x label says which: steps, counted batches, fractional epochs, or epochs for per-epoch values).")
    if len(values):
        out += f" {len(values)} series logged only once are listed as values under the panels."
    if len(curves) > MAX_PANELS:
        out += f" {len(curves) - MAX_PANELS:,} more series of this group are not drawn (at most {MAX_PANELS} panels)."
    return out


def _new_figure(size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_base64(fig: Any, dpi: int = DPI) -> str:
    """The figure as base64 PNG text. One draw: the figure's constrained layout already fits everything, so
    ``bbox_inches="tight"`` (which draws the figure twice) is not needed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_figure(spec: PlotSpec, run: Run, findings: list[Finding], dpi: int = DPI) -> RenderedFigure:
    """Draw one plot; a missing-data (or any) error becomes the figure's ``missing`` reason."""
    from ..plots import MissingDataError

    t0 = time.perf_counter()
    out = RenderedFigure(spec.key, spec.title, "")
    try:
        out.caption = spec.caption(run, findings)
        fig = _new_figure(spec.size(run))
        spec.draw(run, fig.add_subplot(), findings)
        out.png_base64 = png_base64(fig, dpi=dpi)
    except MissingDataError as exc:
        out.missing = str(exc)
    except Exception as exc:        # noqa: BLE001 - one broken plot must not cost the whole report
        out.missing = f"the plot failed: {type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    return out


def render_figures(run: Run, findings: list[Finding], dpi: int = DPI,
                   plots: tuple[PlotSpec, ...] = PLOTS, metrics: bool = True) -> list[RenderedFigure]:
    """The report's plots for ``run`` (see the module docstring), in reading order.

    With ``metrics``, then the "All metrics" figures (keys starting with ``metrics_``: small multiples
    of every logged series, one figure per name prefix, :func:`metric_specs`); when there are more
    groups than figures, a last ``metrics_more`` entry without an image says which were left out.
    Raises ``ImportError`` naming what to install when matplotlib is missing.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:      # pragma: no cover - matplotlib is a dependency
        raise ImportError("the report's plots need matplotlib: pip install matplotlib "
                          "(or call collapse_nb.report(..., plots=False))") from exc
    out = [render_figure(spec, run, findings, dpi=dpi) for spec in plots if spec.when(run, findings)]
    if metrics:
        specs, left = metric_specs(run)
        out += [render_figure(spec, run, findings, dpi=dpi) for spec in specs]
        if left:
            out.append(RenderedFigure("metrics_more", "All metrics: not drawn", left, missing=left))
    return out

