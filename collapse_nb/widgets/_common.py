"""What the explorers share: ipywidgets with an actionable error, figures shown in Output widgets,
runs from paths, and a run restricted to some parameters.

Figures are :class:`matplotlib.figure.Figure` objects made here, never registered with pyplot
(nothing to close, nothing leaks); the library's plot functions draw into their axes. An Output
widget shows a figure as a PNG ``display_data`` output set on ``Output.outputs``, which works
with and without a running kernel (so tests can read it).
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..plots import MissingDataError, draw_unavailable, figure_to_png_bytes
from ..tables import GRAD_NAMES

#: DPI of the PNGs shown in widgets.
DPI = 80

#: Colours as JupyterLab theme variables, each with a light-theme fallback (classic Notebook, VS Code), so the
#: widgets' HTML follows the light and the dark theme: a colour per tone of :data:`collapse_nb.findings.TONE`.
TONE_COLORS = {"bad": "var(--jp-error-color1, #b71c1c)", "warn": "var(--jp-warn-color1, #a65300)",
               "good": "var(--jp-success-color1, #1e6b23)", "note": "var(--jp-info-color1, #1f4e8c)",
               "off": "var(--jp-ui-font-color2, #555555)"}
#: Text, muted text, a card's background and text on a coloured badge.
FG = "var(--jp-ui-font-color1, #1d2330)"
MUTED = "var(--jp-ui-font-color2, #666666)"
CARD_BG = "var(--jp-layout-color2, #f5f5f5)"
ON_COLOR = "var(--jp-ui-inverse-font-color1, #ffffff)"


def require_ipywidgets() -> Any:
    """The ``ipywidgets`` module, or an ImportError saying what to install."""
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError("collapse_nb.widgets needs ipywidgets (and a Jupyter front end to show them): "
                          "pip install ipywidgets") from exc
    return ipywidgets


def new_figure(figsize: tuple[float, float] = (9, 4.5)) -> Any:
    """A figure outside pyplot's registry (garbage-collected like any object; ``plt.close`` is not needed)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def draw(plot: Callable[..., Any], *args: Any, figsize: tuple[float, float] = (9, 4.5), **kwargs: Any) -> Any:
    """A new figure with ``plot(*args, ax=ax, **kwargs)`` drawn in it; where the plot lacks its data
    (:class:`MissingDataError`) or rejects an argument (``ValueError``), the message is drawn instead."""
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    try:
        plot(*args, ax=ax, **kwargs)
    except (MissingDataError, ValueError) as exc:
        fig.clear()
        draw_unavailable(exc, ax=fig.add_subplot(), title=getattr(plot, "__name__", None))
    return fig


def figure_output(fig: Any) -> dict[str, Any]:
    """One Jupyter ``display_data`` output showing ``fig`` as a PNG."""
    png = base64.b64encode(figure_to_png_bytes(fig, dpi=DPI)).decode("ascii")
    title = next((a.get_title(loc="left") or a.get_title() for a in fig.axes if a.get_title(loc="left")
                  or a.get_title()), "figure")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": f"<figure: {title}>"}}


def html_output(text: str) -> dict[str, Any]:
    """One ``display_data`` output of HTML (``text`` must already be escaped)."""
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": text, "text/plain": text}}


def show(out: Any, *items: Any) -> None:
    """Replace what the Output widget ``out`` shows with ``items`` (figures, or ready outputs)."""
    out.outputs = tuple(figure_output(i) if hasattr(i, "savefig") else i for i in items)


def as_run(run_or_path: Any) -> Any:
    """A :class:`~collapse_nb.run.Run` as it is, or one loaded from a path (``None``: the bundled example)."""
    if hasattr(run_or_path, "scalars"):
        return run_or_path
    from ..example import default_example_dir
    from ..loading import load

    return load(default_example_dir() if run_or_path is None else run_or_path)


def run_label(run: Any, default: str = "run") -> str:
    """A short name for a run: its files' common folder name."""
    sources = [Path(s) for s in getattr(run, "sources", [])]
    if not sources:
        return default
    parents = {s.parent for s in sources}
    return (parents.pop().name if len(parents) == 1 else sources[0].parent.name) or default


def grad_params(run: Any) -> list[str]:
    """Parameters in ``run.grads``, in model order (as first logged)."""
    g = run.grads
    if g.empty or "param" not in g.columns:
        return []
    return [str(p) for p in pd.unique(g["param"].dropna().astype(str))]


def with_params(run: Any, params: list[str] | None) -> Any:
    """A run whose per-parameter rows are those of ``params`` only (``None``: ``run`` itself).

    Built from the filtered ``run.scalars`` like any loaded run, so ``grads`` and every plot of it
    read the library's tables; other rows (losses, lr, outputs) are kept, so the time axis is the same.
    """
    if params is None:
        return run
    from ..run import Run

    s = run.scalars
    per_param = s["name"].isin(GRAD_NAMES) & s["param"].notna()
    keep = ~per_param | s["param"].astype(object).isin(set(params))
    return Run(scalars=s[keep].reset_index(drop=True), meta=run.meta, extra=run.extra)


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)
