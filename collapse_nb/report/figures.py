"""The report's plots, drawn off-screen and embedded as base64 PNG.

Which plots: the loss curves, the learning rate, the prediction/target spread, the
per-parameter gradient flow and the train/validation loss ratio (plus the norm changes
between checkpoints when the run has checkpoints). Each plot's time axis is worked out
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
from typing import Any, Callable

from ..findings import Finding

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


def _critical_ratio(findings: list[Finding]) -> float:
    f = next((f for f in findings if f.check == "variance_collapse"), None)
    t = (f.details.get("thresholds") or {}) if f is not None else {}
    v = t.get("critical_ratio", 0.1)
    return float(v) if isinstance(v, (int, float)) and v > 0 else 0.1


def _n_params(run: Any) -> int:
    g = run.grads
    return int(g["param"].nunique()) if len(g) and "param" in g else 1


def _draw_output_std(run: Any, ax: Any, findings: list[Finding]) -> Any:
    from .. import plots
    return plots.output_std(run, ax=ax, threshold=_critical_ratio(findings))


def _draw(name: str) -> Callable[[Any, Any, list[Finding]], Any]:
    def draw(run: Any, ax: Any, findings: list[Finding]) -> Any:
        from .. import plots
        return getattr(plots, name)(run, ax=ax)
    return draw


def _tall(run: Any) -> tuple[float, float]:
    from ..plots._common import tall
    return (9.0, tall(_n_params(run), per_row=0.3))


def _checkpoint_size(run: Any) -> tuple[float, float]:
    from ..plots._common import tall
    p = run.params
    n_ckpt = int(p["checkpoint"].nunique()) if len(p) and "checkpoint" in p else 2
    n_par = int(p["param"].nunique()) if len(p) and "param" in p else 1
    return (max(6.0, 3.5 + 1.6 * max(n_ckpt - 1, 1)), tall(n_par))


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
    PlotSpec("output_std", "Prediction vs target spread", _draw_output_std, lambda run: (9.0, 4.5),
             lambda run, fs: f"Prediction and target standard deviation per logged batch (left), their ratio "
                             f"(right, dashed) and the collapse threshold {_critical_ratio(fs):g} (dotted): below it "
                             f"the model predicts nearly the same value for every input."
                             + _mention(fs, "variance_collapse")),
    PlotSpec("gradient_flow", "Gradient flow per parameter", _draw("gradient_flow"), _tall,
             lambda run, fs: "Mean and max gradient norm of each parameter over the logged steps (log scale); "
                             "parameters whose gradient is exactly 0 at every step are marked dead in red."
                             + _mention(fs, "dead_parameters", "vanishing_gradients", "exploding_gradients")),
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


def render_figure(spec: PlotSpec, run: Any, findings: list[Finding], dpi: int = DPI) -> RenderedFigure:
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


def render_figures(run: Any, findings: list[Finding], dpi: int = DPI,
                   plots: tuple[PlotSpec, ...] = PLOTS) -> list[RenderedFigure]:
    """The report's plots for ``run`` (see the module docstring), in reading order.

    Raises ``ImportError`` naming what to install when matplotlib is missing.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:      # pragma: no cover - matplotlib is a dependency
        raise ImportError("the report's plots need matplotlib: pip install matplotlib "
                          "(or call collapse_nb.report(..., plots=False))") from exc
    return [render_figure(spec, run, findings, dpi=dpi) for spec in plots if spec.when(run, findings)]

