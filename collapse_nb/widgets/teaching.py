"""Teaching gradient flow: charts of :mod:`collapse_nb.teaching` results and a "train" widget.

>>> from collapse_nb import teaching
>>> from collapse_nb.widgets.teaching import plot_layer_grads, teaching_explorer
>>> ax = plot_layer_grads(teaching.train_many())     # one line per configuration  # doctest: +SKIP
>>> te = teaching_explorer(); te.depth.value = 20; te.train_button.click()          # doctest: +SKIP

The per-layer chart is the gradient norm of each weight matrix, from the input (left) to the
output head (right), on a log scale: a line falling to the left is a vanishing gradient, a line
high everywhere (or cut by NaN) an exploding one, a flat line healthy flow.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..plots._common import THRESHOLD_COLOR, new_axes, plain_log_axis
from ._common import escape, new_figure, require_ipywidgets, show

VERDICT_COLORS = {"vanishing": "#1f4e8c", "exploding": "#b71c1c", "healthy": "#1e6b23"}


def _named(results: Any) -> list[tuple[str, Any]]:
    if hasattr(results, "grads") and hasattr(results, "config"):
        return [(results.config.label, results)]
    if isinstance(results, dict):
        return list(results.items())
    return [(r.config.label, r) for r in results]


def plot_layer_grads(results: Any, ax: Any = None, stat: str = "grad_median") -> Any:
    """Gradient norm per layer (input left, head right; log scale), one line per result.

    ``results``: a :class:`~collapse_nb.teaching.TeachingResult`, a list of them, or a dict label ->
    result. ``stat``: ``grad_median`` (median over the training steps) or ``grad_first_step`` (at
    initialisation). Layers whose gradient was NaN/inf are marked with a red cross at the top.
    Returns the axes.
    """
    if stat not in ("grad_median", "grad_first_step"):
        raise ValueError(f"plot_layer_grads(): stat must be 'grad_median' or 'grad_first_step'; got {stat!r}")
    named = _named(results)
    if not named:
        raise ValueError("plot_layer_grads() needs at least one result")
    ax = new_axes(ax, (8, 4.2))
    for i, (label, r) in enumerate(named):
        t = r.layer_table()
        v = t[stat].to_numpy(float)
        ok = np.isfinite(v) & (v > 0)
        ax.plot(t["layer"][ok], v[ok], marker="o", markersize=4, linewidth=1.8, color=f"C{i % 10}",
                label=f"{label}: {r.verdict}")
        bad = ~np.isfinite(v)
        if bad.any():
            ax.plot(t["layer"][bad], np.full(bad.sum(), 0.96), linestyle="none", marker="x", color=THRESHOLD_COLOR,
                    transform=ax.get_xaxis_transform(), clip_on=False,
                    label="NaN/inf gradient" if i == 0 or not ax.get_legend_handles_labels()[1].count(
                        "NaN/inf gradient") else "_nolegend_")
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("layer (0 = input layer ... right = output head)")
    ax.set_ylabel("gradient norm (log scale)")
    when = "median over the training steps" if stat == "grad_median" else "at the first step"
    ax.set_title(f"Gradient norm per layer ({when})", loc="left")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_teaching_loss(results: Any, ax: Any = None) -> Any:
    """Training loss per step, one line per result (log scale; NaN/inf steps left out). Returns the axes."""
    ax = new_axes(ax, (8, 3))
    for i, (label, r) in enumerate(_named(results)):
        v = r.loss["loss"].to_numpy(float)
        ok = np.isfinite(v)
        ax.plot(r.loss["step"][ok], v[ok], color=f"C{i % 10}", linewidth=1.4, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log scale)")
    ax.set_title("Training loss", loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def verdict_html(label: str, result: Any, findings: Iterable[Any] = ()) -> str:
    """The verdict of one result, with the library's own gradient checks' conclusions (escaped HTML)."""
    color = VERDICT_COLORS.get(result.verdict, "#333")
    checks = "".join(f"<li>{escape(f.severity)} <code>{escape(f.code)}</code>: {escape(f.title)}</li>"
                     for f in findings)
    return (f"<b>{escape(label)}</b>: <b style='color:{color}'>{escape(result.verdict)}</b>, first/last layer "
            f"gradient ratio {escape(f'{result.first_last_ratio:.3g}')}, trained in "
            f"{escape(f'{result.seconds:.2f}')} s. The library's checks on the recording:<ul>{checks}</ul>")


class TeachingExplorer:
    """Network controls, a "train" button and the per-layer gradient chart of every network trained.

    Controls: ``depth``, ``width``, ``activation``, ``init``, ``norm``, ``residual``, ``steps``, ``lr``,
    ``keep`` (keep earlier networks on the chart), ``train_button``, ``clear_button``. Read:
    ``results`` (label -> :class:`~collapse_nb.teaching.TeachingResult`), ``findings`` (label -> the
    ``vanishing_gradients`` / ``exploding_gradients`` findings), ``figure``, ``verdict`` (HTML).
    """

    def __init__(self) -> None:
        w = require_ipywidgets()
        from .. import teaching

        d = teaching.NetConfig()
        style = {"description_width": "initial"}
        self.depth = w.IntSlider(value=d.depth, min=1, max=40, description="hidden layers", style=style)
        self.width = w.IntSlider(value=d.width, min=8, max=128, step=8, description="width", style=style)
        self.activation = w.Dropdown(options=teaching.ACTIVATIONS, value=d.activation, description="activation")
        self.init = w.Dropdown(options=teaching.INITS, value=d.init, description="initialisation", style=style)
        self.norm = w.Dropdown(options=teaching.NORMS, value=d.norm, description="normalisation", style=style)
        self.residual = w.Checkbox(value=d.residual, description="residual connections", indent=False)
        self.steps = w.IntSlider(value=d.steps, min=5, max=300, step=5, description="SGD steps", style=style)
        self.lr = w.FloatLogSlider(value=d.lr, base=10, min=-4, max=0, step=0.1, description="learning rate",
                                   readout_format=".2g", style=style)
        self.keep = w.Checkbox(value=True, description="keep earlier networks on the chart", indent=False)
        self.train_button = w.Button(description="train", button_style="primary", icon="play")
        self.clear_button = w.Button(description="clear")
        self.verdict, self.out = w.HTML(), w.Output()
        self.results: dict[str, Any] = {}
        self.findings: dict[str, list] = {}
        self.figure: Any = None
        self.train_button.on_click(lambda _b: self.train())
        self.clear_button.on_click(lambda _b: self.clear())
        self.widget = w.VBox([
            w.HBox([w.VBox([self.depth, self.width, self.steps, self.lr]),
                    w.VBox([self.activation, self.init, self.norm, self.residual])]),
            w.HBox([self.train_button, self.clear_button, self.keep]), self.verdict, self.out])

    @property
    def config(self) -> Any:
        from ..teaching import NetConfig

        return NetConfig(depth=self.depth.value, width=self.width.value, activation=self.activation.value,
                         init=self.init.value, norm=self.norm.value, residual=self.residual.value,
                         steps=self.steps.value, lr=float(self.lr.value))

    def train(self) -> Any:
        """Train the network the controls describe, run the gradient checks on it, redraw. Returns the result."""
        from .. import teaching
        from ..diagnose import diagnose

        cfg = self.config
        result = teaching.train(cfg)
        if not self.keep.value:
            self.results.clear()
            self.findings.clear()
        label = cfg.label if cfg.label not in self.results else f"{cfg.label} #{len(self.results) + 1}"
        self.results[label] = result
        self.findings[label] = diagnose(result.to_run(), checks=["vanishing_gradients", "exploding_gradients"])
        self.verdict.value = verdict_html(label, result, self.findings[label])
        self.redraw()
        return result

    def clear(self) -> None:
        self.results.clear()
        self.findings.clear()
        self.verdict.value = ""
        self.figure = None
        show(self.out)

    def redraw(self) -> None:
        fig = new_figure((9, 6.5))
        top, bottom = fig.subplots(2, 1, height_ratios=[2, 1])
        plot_layer_grads(self.results, ax=top)
        plot_teaching_loss(self.results, ax=bottom)
        self.figure = fig
        show(self.out, fig)

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def teaching_explorer() -> TeachingExplorer:
    """A :class:`TeachingExplorer` with the default network (nothing trained until ``train`` is pressed)."""
    return TeachingExplorer()
