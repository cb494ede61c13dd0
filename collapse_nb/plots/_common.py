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
import pandas as pd

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


def tall(n_rows: float, per_row: float = 0.28, base: float = 2.2, lo: float = 3.5, hi: float = 24.0) -> float:
    """A figure height fitting ``n_rows`` labelled rows."""
    return float(min(hi, max(lo, base + per_row * n_rows)))


#: At most this many restarted segments are named on a plot (the longest ones and the last one); every
#: boundary is drawn.
MAX_SEGMENT_LABELS = 8


def segments_to_label(starts: Sequence[float] | np.ndarray, end: float | None = None,
                      limit: int = MAX_SEGMENT_LABELS) -> list[int]:
    """Indices (into ``starts``, in order) of the segment boundaries worth a label: all of them when
    there are at most ``limit``, else the last segment and the longest others (a segment runs from its
    start to the next one's, the last to ``end``), skipping any closer than a tenth of the span to a
    label already chosen, so 575 restarts never overprint each other."""
    xs = np.asarray(starts, dtype=float)
    n = len(xs)
    if n <= limit:
        return list(range(n))
    last_end = float(end) if end is not None and np.isfinite(end) else float(np.nanmax(xs))
    lengths = np.append(np.diff(xs), max(last_end - xs[-1], 0.0))
    gap = (max(last_end, float(np.nanmax(xs))) - float(np.nanmin(xs))) / (limit + 2)
    chosen = [n - 1]
    for i in np.argsort(-lengths[:-1], kind="stable"):
        if len(chosen) >= limit:
            break
        if all(abs(xs[i] - xs[j]) >= gap for j in chosen):
            chosen.append(int(i))
    return sorted(chosen)


def mark_restarts(ax: Any, starts: Any, end: float | None = None) -> None:
    """Vertical dashed lines where restarted segments begin (``starts``: ``segment, x`` rows).

    Every boundary is drawn; at most :data:`MAX_SEGMENT_LABELS` are named (:func:`segments_to_label`:
    the longest segments and the last one; ``end``: where the last segment ends, default the data's
    right edge), and the legend says how many restarts there are when not all are named."""
    xs = np.asarray(starts["x"], dtype=float)
    segs = list(starts["segment"])
    if not len(xs):
        return
    if end is None and ax.has_data():
        end = float(ax.dataLim.x1)
    named = set(segments_to_label(xs, end))
    label = "restart (new segment)" if len(named) == len(xs) else \
        f"restart (new segment): {len(xs):,} restarts, {len(named)} named"
    for i, (seg, x) in enumerate(zip(segs, xs)):
        ax.axvline(x, color=RESTART_COLOR, linestyle="--", linewidth=1 if len(xs) <= 50 else 0.5, zorder=1,
                   alpha=1.0 if len(xs) <= 50 else 0.5, label=label if i == 0 else "_nolegend_")
        if i in named:                  # many labels: every other one a line lower, so neighbours never touch
            k = sorted(named).index(i)
            ax.annotate(f"segment {seg}", xy=(x, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -3 - (10 * (k % 2) if len(xs) > MAX_SEGMENT_LABELS else 0)),
                        textcoords="offset points", ha="left", va="top", fontsize=8, color=RESTART_COLOR,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85), zorder=5)


def note_unplaced(ax: Any, unplaced: dict[str, int]) -> None:
    """Say on the axes how many rows of which files have no position on its time axis (the ``attrs
    ["unplaced"]`` of :func:`collapse_nb.plots.metric_over_time` and friends): never dropped silently."""
    if unplaced:
        from ..timeaxis.placement import short_sources
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


# ---------------------------------------------------------------- seaborn (optional), hue, panels

def seaborn() -> Any:
    """The ``seaborn`` module, or ``None`` when it is not installed: every plot draws with plain matplotlib
    without it (seaborn only styles the small multiples and draws the distribution plots)."""
    try:
        import seaborn as sns
    except ImportError:
        return None
    return sns


def styled(style: str = "whitegrid") -> Any:
    """A context in which new axes get seaborn's ``style`` (a no-op without seaborn). Only axes created
    inside it are styled; nothing global is changed once it exits."""
    import contextlib
    sns = seaborn()
    return sns.axes_style(style) if sns is not None else contextlib.nullcontext()


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def hue_levels(values: Any) -> list[Any]:
    """The distinct values of a hue column in a readable order: phases as train, val, test, then the
    others in the order they first appear; missing values (``None``) last."""
    seen = list(dict.fromkeys(None if _missing(v) else v for v in values))
    phases = [p for p in ("train", "val", "test") if p in seen]
    rest = [v for v in seen if v not in phases and v is not None]
    return phases + rest + ([None] if None in seen else [])


def hue_colors(levels: Sequence[Any], hue: str | None = None) -> dict[Any, Any]:
    """One colour per hue level: the phase colours for ``hue="phase"``, else seaborn's ``colorblind``
    palette (matplotlib's ``tab10`` without seaborn), cycling past its colours."""
    if hue == "phase" and all(v in PHASE_COLORS for v in levels):
        return {v: PHASE_COLORS[v] for v in levels}
    sns = seaborn()
    n = max(len(levels), 1)
    if sns is not None:
        palette = sns.color_palette("colorblind", min(n, 10))
    else:
        import matplotlib as mpl
        # tab10 is a ListedColormap, typed as its base Colormap (no .colors) by the registry's stubs
        palette = list(mpl.colormaps["tab10"].colors)  # type: ignore[attr-defined]
    return {v: palette[i % len(palette)] for i, v in enumerate(levels)}


def split_axes(ax: Any, nrows: int, ncols: int = 1, height_ratios: Sequence[float] | None = None,
               sharex: bool = False, style: str | None = None) -> list[Any]:
    """Divide the area of ``ax`` into ``nrows`` x ``ncols`` axes, row by row; ``ax`` itself is the first
    (so a caller holding it keeps drawing into the top-left panel). ``sharex``: the panels share the
    first one's x axis. ``style``: seaborn style of the new panels (:func:`styled`)."""
    fig = ax.figure
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    if nrows * ncols == 1:
        return [ax]
    out = [ax]
    with styled(style) if style else _null():
        if spec is not None:
            grid = spec.subgridspec(nrows, ncols, height_ratios=height_ratios)
            ax.set_subplotspec(grid[0, 0])
            for k in range(1, nrows * ncols):
                out.append(fig.add_subplot(grid[k // ncols, k % ncols], sharex=ax if sharex else None))
        else:                                        # an axes placed by hand: cut its box
            x0, y0, w, h = ax.get_position().bounds
            ratios = np.asarray(height_ratios if height_ratios is not None else [1] * nrows, dtype=float)
            tops = y0 + h - h * np.concatenate([[0], np.cumsum(ratios)]) / ratios.sum()
            boxes = []
            for r in range(nrows):
                for c in range(ncols):
                    boxes.append((x0 + c * w / ncols, tops[r + 1], w / ncols * 0.9, (tops[r] - tops[r + 1]) * 0.8))
            ax.set_position(boxes[0])
            for b in boxes[1:]:
                out.append(fig.add_axes(b, sharex=ax if sharex else None))
    return out


def _null() -> Any:
    import contextlib
    return contextlib.nullcontext()


LINE_STYLES = ("-", "--", ":", "-.")


def draw_lines(ax: Any, d: pd.DataFrame, hue: str | None, *, style: str | None = None, name: str = "",
               x: str = "x", y: str = "value", linewidth: float = 1.4, alpha: float = 0.95,
               level_names: dict[Any, str] | None = None) -> list[Any]:
    """Tidy rows as lines, as seaborn's ``lineplot(hue=, style=)`` draws them but never averaged: one
    colour per ``hue`` level (:func:`hue_colors`), one line style per ``style`` level, the line broken
    at each restart (``segment``); markers when a line has few points, non-finite values left out.
    Labels: ``"<hue level> <name> (<style level>)"`` (``level_names``: how to write a hue level, e.g.
    short file names). Returns the lines drawn."""
    levels = hue_levels(d[hue]) if hue and hue in d.columns else [None]
    colors = hue_colors(levels, hue)
    styles = hue_levels(d[style]) if style and style in d.columns else [None]
    seg = np.nan_to_num(pd.to_numeric(d["segment"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
                        nan=0.0) if "segment" in d.columns else np.zeros(len(d))
    xs = pd.to_numeric(d[x], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ys = pd.to_numeric(d[y], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    def mask(col: str | None, level: Any) -> np.ndarray:
        if col is None or col not in d.columns:
            return np.ones(len(d), dtype=bool)
        v = d[col].astype(object)
        return v.isna().to_numpy(dtype=bool) if level is None else (v == level).to_numpy(dtype=bool)

    lines = []
    for hv in levels:
        mh = mask(hue, hv)
        for j, sv in enumerate(styles):
            m = mh & mask(style, sv)
            if not m.any():
                continue
            head = ("" if hv is None and not hue else f"no {hue}" if hv is None else
                    (level_names or {}).get(hv, str(hv)))
            label = " ".join(p for p in (head, name) if p) or y
            if style and len(styles) > 1:
                label += f" ({sv if sv is not None else 'no ' + style})"
            first = True
            for sg in np.unique(seg[m]):
                k = m & (seg == sg) & np.isfinite(ys) & np.isfinite(xs)
                if not k.any():
                    continue
                order = np.argsort(xs[k], kind="stable")
                (ln,) = ax.plot(xs[k][order], ys[k][order], color=colors[hv], linestyle=LINE_STYLES[j % 4],
                                linewidth=linewidth, alpha=alpha, marker="o" if k.sum() <= 30 else None,
                                markersize=3.5, label=label if first else "_nolegend_")
                lines.append(ln)
                first = False
    return lines


def left_out_note(n_params: int, n_modules: int) -> str:
    """``"and 2,950 more parameters in 120 modules, not shown"`` (empty when nothing was left out)."""
    if n_params <= 0:
        return ""
    return (f"and {n_params:,} more parameter{'s' if n_params != 1 else ''} in {n_modules:,} "
            f"module{'s' if n_modules != 1 else ''}, not shown")


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
        bounds = np.flatnonzero(seg[1:] != seg[:-1]) + 1
        named = set(segments_to_label(bounds - 0.5, len(seg) - 0.5))
        for k, i in enumerate(bounds):
            ax.axvline(i - 0.5, color="white", linewidth=2)
            ax.axvline(i - 0.5, color=RESTART_COLOR, linestyle="--", linewidth=1)
            if k not in named:
                continue
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
