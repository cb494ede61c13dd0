"""What every plot shares: colours, readable parameter names, axes creation, heatmaps, PNG export.

Missing data convention (all public plot functions): when the table or columns a plot needs are
absent or hold no usable value, the function raises :class:`MissingDataError` (a ``ValueError``)
naming the table and columns, *before* making a figure. Callers that want a placeholder image
instead (the report, widgets) catch it and draw the message with :func:`draw_unavailable`.
"""
from __future__ import annotations

import base64
import io
import textwrap
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ._data import MissingDataError  # noqa: F401  (re-exported)

#: One colour per phase; ``None`` is a loss logged without a phase.
PHASE_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c", None: "#555555"}
#: Parameters with a gradient (or update, or norm change) of exactly 0: dead or frozen.
DEAD_COLOR = "#d62728"
#: Heatmap cells where nothing was logged.
NOT_LOGGED_COLOR = "#d9d9d9"
RESTART_COLOR = "#444444"
THRESHOLD_COLOR = "#d62728"
ELLIPSIS = "…"


# ---------------------------------------------------------------- names

def shorten_name(name: str, width: int = 40, min_head: int = 3) -> str:
    """``name`` cut to at most ``width`` characters from the middle, keeping its head and distinguishing tail.

    Dot-separated parts between the first and the last are left out from left to right (never
    layer numbers), ``…`` standing for what was left out:
    ``shorten_name("encoder.layers.5.self_attn.q_proj.weight", 36)`` is
    ``"encoder…5.self_attn.q_proj.weight"``. If that is not enough, the characters in the middle
    are cut, keeping ``min_head`` characters or more of the head and the last parts whole where
    they fit (``"enc…layers.5.self_attn.q_proj.weight"``).
    """
    name = str(name)
    if width < min_head + 2:
        raise ValueError(f"width must be at least {min_head + 2}; got {width}")
    if len(name) <= width:
        return name
    parts = name.split(".")
    keep = [True] * len(parts)
    for i in range(1, len(parts) - 1):
        if parts[i].isdigit():
            continue
        keep[i] = False
        out = _render_parts(parts, keep)
        if len(out) <= width:
            return out
    return _cut_characters(name, width, min_head)


def _render_parts(parts: list[str], keep: list[bool]) -> str:
    out, elided = "", False
    for p, k in zip(parts, keep):
        if not k:
            out += "" if elided else ELLIPSIS
            elided = True
            continue
        out += ("." if out and not elided else "") + p
        elided = False
    return out


def _cut_characters(name: str, width: int, min_head: int) -> str:
    parts = name.split(".")
    room = width - 1 - min_head
    tail = ""
    for i in range(len(parts) - 1, 0, -1):
        cand = ".".join(parts[i:])
        if len(cand) > room:
            break
        tail = cand
    if not tail:                                    # no whole part fits: a plain cut in the middle
        head_len = max(min_head, (width - 1) // 3)
        return name[:head_len] + ELLIPSIS + name[len(name) - (width - 1 - head_len):]
    return name[: width - 1 - len(tail)] + ELLIPSIS + tail


def common_prefix(names: Sequence[str]) -> str:
    """The dot-separated parts all ``names`` start with (ending in ``.``), ``""`` if none or one name."""
    if len(names) < 2:
        return ""
    split = [str(n).split(".") for n in names]
    prefix: list[str] = []
    for parts in zip(*[s[:-1] for s in split]):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix) + "." if prefix else ""


def shorten_names(names: Iterable[str], width: int = 40) -> list[str]:
    """Readable, distinct labels for a list of parameter names.

    When some name is longer than ``width``, the prefix all names share is abbreviated to the
    initials of its parts (``model.encoder.layers.`` -> ``m.e.l.``); then each name is shortened
    with :func:`shorten_name`. Labels that would collide get more room until they differ.
    """
    names = [str(n) for n in names]
    if not any(len(n) > width for n in names):
        return names
    prefix = common_prefix(names)
    abbrev = "".join(p[:1] + "." for p in prefix[:-1].split(".")) if prefix else ""
    rest = [n[len(prefix):] for n in names]
    room = max(width - len(abbrev), 8)
    out = [abbrev + shorten_name(n, room) for n in rest]
    w = room
    while len(set(out)) < len(out) and w < max(len(n) for n in rest):
        w += 4
        seen: dict[str, int] = {}
        for lab in out:
            seen[lab] = seen.get(lab, 0) + 1
        out = [abbrev + shorten_name(n, w) if seen[lab] > 1 else lab for n, lab in zip(rest, out)]
    return out


def fmt_num(v: float) -> str:
    """A tick label: an integer where the value is whole, else 4 significant digits."""
    if v is None or not np.isfinite(v):
        return str(v)
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


# ---------------------------------------------------------------- axes and checks

def require_matplotlib() -> None:
    """Raise an ImportError saying what to install when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError("collapse_nb.plots needs matplotlib to draw: pip install matplotlib") from exc


def check_run(run: Any, func: str) -> None:
    require_matplotlib()
    if not hasattr(run, "scalars"):
        raise TypeError(f"{func}() needs a collapse_nb Run (from collapse_nb.load); got {type(run).__name__}")


def new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    """``ax`` itself, or the axes of a new figure of ``figsize`` (constrained layout)."""
    if ax is not None:
        return ax
    require_matplotlib()
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def tall(n_rows: int, per_row: float = 0.28, base: float = 2.2, lo: float = 3.5, hi: float = 24.0) -> float:
    """A figure height fitting ``n_rows`` labelled rows."""
    return float(min(hi, max(lo, base + per_row * n_rows)))


def mark_restarts(ax: Any, starts: Any) -> None:
    """Vertical dashed lines where restarted segments begin (``starts``: ``segment, x`` rows)."""
    for i, (seg, x) in enumerate(zip(starts["segment"], starts["x"])):
        ax.axvline(x, color=RESTART_COLOR, linestyle="--", linewidth=1, zorder=1,
                   label="restart (new segment)" if i == 0 else "_nolegend_")
        ax.annotate(f"segment {seg}", xy=(x, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", ha="left", va="top", fontsize=8, color=RESTART_COLOR)


def note_unplaced(ax: Any, unplaced: dict[str, int]) -> None:
    """Say on the axes how many rows of which files have no position on its time axis (the ``attrs
    ["unplaced"]`` of :func:`collapse_nb.plots.metric_over_time` and friends): never dropped silently."""
    if unplaced:
        from ._data import short_sources
        short = short_sources(unplaced)
        text = "not drawn (no position on this axis): " + ", ".join(
            f"{n} row(s) of {short[s] or 'the table'}" for s, n in unplaced.items())
        ax.annotate(text, xy=(1, 0), xycoords="axes fraction", xytext=(-4, 4), textcoords="offset points",
                    ha="right", va="bottom", fontsize=7, color=RESTART_COLOR)


def legend(ax: Any, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None) -> None:
    """A legend in the axes when it is short; under the x label, in two columns, when it has many or
    long entries (call it after setting the x label: its lines are measured to keep clear of it)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    labels = list(labels or [])
    if len(labels) > 4 or any(len(lab) > 45 for lab in labels):
        from matplotlib.transforms import ScaledTranslation
        lines = ax.get_xlabel().count("\n") + 1 if ax.get_xlabel() else 0
        drop = 0.28 + 0.19 * lines                                 # tick labels, then the x label's lines (inches)
        where = ax.transAxes + ScaledTranslation(0, -drop, ax.figure.dpi_scale_trans)
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=where,
                  ncol=2, frameon=False, borderaxespad=0)
    else:
        ax.legend(handles, labels, fontsize=9)


def plain_log_axis(axis: Any) -> None:
    """Log-scale tick labels as plain numbers (``4``, ``0.001``) instead of ``4×10^0``."""
    from matplotlib.ticker import LogFormatter
    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))


def title_and_legend(ax: Any, title: str, handles: Sequence[Any] | None = None) -> None:
    """The title on the left above the axes and, under it, a one-row legend (never over the data)."""
    handles = list(handles) if handles is not None else ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), fontsize=8,
                  frameon=False, borderaxespad=0.1, handlelength=1.5, columnspacing=1.2)
    ax.set_title(title, loc="left", pad=22 if handles else 6)


def draw_unavailable(message: Any, ax: Any = None, title: str | None = None) -> Any:
    """An axes showing why a plot could not be drawn (``message``: text or the exception raised)."""
    ax = new_axes(ax, (6, 2.5))
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(str(message), 70)), ha="center", va="center",
            transform=ax.transAxes, fontsize=10, color="#555555")
    if title:
        ax.set_title(title)
    return ax


def row_ticks(ax: Any, labels: Sequence[str], axis: str = "y", highlight: Sequence[bool] = ()) -> None:
    """Label rows (or columns) with names, thinning them when there are many; highlighted ones in red."""
    n = len(labels)
    step = max(1, int(np.ceil(n / 80)))
    idx = list(range(0, n, step))
    size = 9 if n <= 40 else 7 if n <= 80 else 6
    set_ticks, set_labels = (ax.set_yticks, ax.set_yticklabels) if axis == "y" else (ax.set_xticks,
                                                                                         ax.set_xticklabels)
    set_ticks(idx)
    texts = set_labels([labels[i] for i in idx], fontsize=size)
    for i, t in zip(idx, texts):
        if i < len(highlight) and highlight[i]:
            t.set_color(DEAD_COLOR)
            t.set_fontweight("bold")


# ---------------------------------------------------------------- heatmaps

def draw_heatmap(ax: Any, values: np.ndarray, *, row_labels: Sequence[str], col_values: Sequence[Any],
                 col_segments: Sequence[int] | None = None, cmap: Any = "viridis", norm: Any = None,
                 cbar_label: str, zero_mask: np.ndarray | None = None, zero_label: str = "exactly 0",
                 highlight_rows: Sequence[bool] = (), xlabel: str = "step", annotate: Any = False,
                 title: str = "") -> Any:
    """A rows x columns heatmap of ``values`` (already transformed, NaN = not logged).

    Cells in ``zero_mask`` are drawn over in :data:`DEAD_COLOR`; NaN cells in
    :data:`NOT_LOGGED_COLOR`. Columns are evenly spaced, labelled with ``col_values`` (numbers or
    texts); a dashed
    line separates restarted segments. ``annotate``: True writes each value in its cell, or a
    rows x columns list of texts to write (small heatmaps only). Returns the main image
    (``get_array()`` is ``values``).
    """
    import matplotlib as mpl
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    values = np.asarray(values, dtype=float)
    cm = (mpl.colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad=NOT_LOGGED_COLOR)
    im = ax.imshow(np.ma.masked_invalid(values), aspect="auto", interpolation="nearest", cmap=cm, norm=norm)
    handles = []
    if zero_mask is not None and zero_mask.any():
        over = np.ma.masked_where(~zero_mask, np.ones_like(values))
        ax.imshow(over, aspect="auto", interpolation="nearest", vmin=0, vmax=1,
                  cmap=mpl.colors.ListedColormap([DEAD_COLOR]))
        handles.append(Patch(color=DEAD_COLOR, label=zero_label))
    not_logged = ~np.isfinite(values) if zero_mask is None else ~np.isfinite(values) & ~zero_mask
    if not_logged.any():
        handles.append(Patch(color=NOT_LOGGED_COLOR, label="not logged / undefined"))
    ax.figure.colorbar(im, ax=ax, label=cbar_label, pad=0.02)
    row_ticks(ax, list(row_labels), "y", highlight_rows)
    cols = [v if isinstance(v, str) else fmt_num(float(v)) for v in col_values]
    numeric = np.array([np.nan if isinstance(v, str) else float(v) for v in col_values], dtype=float)
    if len(cols) > 25 and np.isfinite(numeric).all() and (np.diff(numeric) > 0).all():
        # increasing positions: ticks at round values, placed between columns where they fall
        locs = MaxNLocator(10).tick_values(numeric[0], numeric[-1])
        locs = locs[(locs >= numeric[0]) & (locs <= numeric[-1])]
        ax.set_xticks(np.interp(locs, numeric, np.arange(len(numeric))))
        ax.set_xticklabels([fmt_num(v) for v in locs], fontsize=8)
    elif len(cols) <= 25:
        ax.set_xticks(range(len(cols)))
        rotate = len(cols) > 12 or max(len(line) for c in cols for line in c.split("\n")) > 22
        ax.set_xticklabels(cols, rotation=90 if rotate else 0, fontsize=8)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(10, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(
            lambda i, _: cols[int(i)] if 0 <= int(i) < len(cols) and float(i).is_integer() else ""))
    if col_segments is not None and len(col_segments):
        seg = np.asarray(col_segments)
        for i in np.flatnonzero(seg[1:] != seg[:-1]) + 1:
            ax.axvline(i - 0.5, color="white", linewidth=2)
            ax.axvline(i - 0.5, color=RESTART_COLOR, linestyle="--", linewidth=1)
            ax.annotate(f"restart: segment {seg[i]}", xy=(i - 0.5, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -3), textcoords="offset points", ha="left", va="top", fontsize=7,
                        color=RESTART_COLOR, bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    if annotate is not False and values.size <= 200:
        texts = annotate if annotate is not True else None
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                red, green, blue, _ = cm(im.norm(v))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
                ax.text(c, r, texts[r][c] if texts is not None else f"{v:.2f}", ha="center", va="center",
                        fontsize=7, color="white" if dark else "black")
    ax.set_xlabel(xlabel)
    title_and_legend(ax, title, handles)
    return im


# ---------------------------------------------------------------- export

def _figure(fig_or_ax: Any) -> Any:
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    if not hasattr(fig, "savefig"):
        raise TypeError(f"expected a matplotlib Figure or Axes; got {type(fig_or_ax).__name__}")
    return fig


def figure_to_png_bytes(fig: Any, dpi: int = 100, close: bool = False) -> bytes:
    """The figure (or an axes' figure) as PNG bytes, tightly cropped, without a software stamp."""
    fig = _figure(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    if close:
        import matplotlib.pyplot as plt
        plt.close(fig)
    return buf.getvalue()


def figure_to_base64_png(fig: Any, dpi: int = 100, close: bool = False) -> str:
    """The figure as base64 PNG text, for ``<img src="data:image/png;base64,...">`` (no network needed)."""
    return base64.b64encode(figure_to_png_bytes(fig, dpi=dpi, close=close)).decode("ascii")


def save_png(fig: Any, path: str | Path, dpi: int = 100, close: bool = False) -> Path:
    """Write the figure (or an axes' figure) to ``path`` as PNG, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_to_png_bytes(fig, dpi=dpi, close=close))
    return path
