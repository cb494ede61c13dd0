"""Histograms over time, as TensorBoard draws them: a ridge plot (one offset curve per step) or a heatmap.

>>> ax = plot_histograms(run)                                          # doctest: +SKIP
>>> ax = plot_histograms(run, "gradients/fc.weight", kind="heatmap")   # doctest: +SKIP

The data is ``run.histograms`` (TensorBoard ``add_histogram``: one row per bucket per tag and step, see
:mod:`collapse_nb.readers.tb_events`). Each step's buckets are spread evenly over their width and
re-binned onto one grid of ``bins`` equal bins spanning every step's range (what TensorBoard does
before drawing), so steps whose writer chose other bucket edges line up: :func:`histogram_grid` gives
those numbers (pandas and numpy only).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._common import DEAD_COLOR, MissingDataError, check_run, fmt_num, new_axes

KINDS = ("ridge", "heatmap")
#: At most this many steps are drawn as ridges (evenly chosen, the first and last always); the heatmap draws all.
MAX_RIDGES = 40


def histogram_tags(run: Any) -> list[str]:
    """The histogram tags of ``run``, gradients first, each group in the order first logged."""
    h = run.histograms
    if h.empty or "tag" not in h.columns:
        return []
    tags = [str(t) for t in pd.unique(h["tag"].astype(str))]
    kinds = h.drop_duplicates("tag").set_index(h.drop_duplicates("tag")["tag"].astype(str))["kind"].astype(object)
    rank = {"grad": 0, "weight": 1, "activation": 2}
    return sorted(tags, key=lambda t: rank.get(kinds.get(t), 3))


def _pick_tag(run: Any, tag: str | None) -> str:
    tags = histogram_tags(run)
    if not tags:
        raise MissingDataError("plot_histograms needs TensorBoard histograms (SummaryWriter.add_histogram) in "
                               "run.histograms; this run has none")
    if tag is None:
        return tags[0]
    if tag in tags:
        return tag
    by_param = [t for t in tags if t.split("/", 1)[-1] == tag]
    if len(by_param) == 1:
        return by_param[0]
    shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "")
    if by_param:
        raise ValueError(f"plot_histograms(): tag {tag!r} names several histograms ({', '.join(by_param)}); "
                         "pass one of them")
    raise ValueError(f"plot_histograms(): no histogram tag {tag!r}; the run has {len(tags)}: {shown}")


def histogram_grid(run: Any, tag: str | None = None, bins: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps, edges, counts)`` of one tag's histograms: ``counts[i, j]`` is how many values step
    ``steps[i]`` had in ``[edges[j], edges[j + 1])``, each bucket's count spread evenly over its width.

    The grid spans the smallest bucket edge to the largest over all steps, ignoring empty outer buckets;
    a tag whose values are all one number (a dead gradient: all 0) gets a grid of width 1 around it.
    Rows are the logged steps in order (a step logged twice: its last histogram). ``tag``: a tag, or a
    parameter name that names one tag; ``None``: the first gradient histogram.
    """
    check_run(run, "plot_histograms")
    if bins < 1:
        raise ValueError(f"histogram_grid(): bins must be >= 1; got {bins!r}")
    tag = _pick_tag(run, tag)
    h = run.histograms
    h = h[h["tag"].astype(str) == tag]
    h = h[np.isfinite(h["count"].to_numpy(float))]
    steps = np.unique(h["step"].to_numpy(np.int64))
    left, right, count = (h[c].to_numpy(float) for c in ("bucket_left", "bucket_right", "count"))
    full = count > 0
    constant = constant_value(run, tag)
    if constant is not None:                         # one value throughout: a narrow spike on a grid around it
        left = right = np.full(len(h), constant)
    lo = float(np.min(left[full])) if full.any() else 0.0
    hi = float(np.max(right[full])) if full.any() else 0.0
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros((len(steps), bins))
    row = np.searchsorted(steps, h["step"].to_numpy(np.int64))
    # a step logged twice: keep its last histogram (rows after the last change of wall_time per step)
    wall = h["wall_time"].to_numpy(float) if "wall_time" in h.columns else np.zeros(len(h))
    last_wall = pd.Series(wall).groupby(row).transform("max").to_numpy()
    keep = full & (wall == last_wall)
    for r, a, b, c in zip(row[keep], left[keep], right[keep], count[keep]):
        a, b = max(a, lo), min(b, hi)
        if b <= a:                                   # a bucket of zero width (min == max): all in one bin
            j = min(int(np.searchsorted(edges, a, side="right")) - 1, bins - 1)
            counts[r, max(j, 0)] += c
            continue
        overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0.0, None)
        counts[r] += c * overlap / (b - a)
    return steps, edges, counts


def plot_histograms(run: Any, tag: str | None = None, kind: str = "ridge", ax: Any = None, bins: int = 60) -> Any:
    """One histogram tag over training, TensorBoard style.

    ``kind="ridge"``: one curve per logged step, offset upwards from the last step (front, bottom) to the
    first (back, top), coloured from dark (early) to light (late), the familiar "offset" histogram view;
    at most :data:`MAX_RIDGES` steps (evenly chosen) are drawn, the title says so. ``kind="heatmap"``:
    step (x) by value (y), colour = count per bin on a log scale, empty bins left blank.
    ``tag``: a histogram tag (``gradients/fc.weight``) or the parameter name (``fc.weight``) when it
    names one tag; ``None``: the first gradient histogram. Numbers: :func:`histogram_grid`.

    Requires: ``run.histograms`` (TensorBoard ``add_histogram``). Returns the axes; raises
    :class:`MissingDataError` without histograms, ``ValueError`` for an unknown tag or kind.
    """
    if kind not in KINDS:
        raise ValueError(f"plot_histograms(): kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    check_run(run, "plot_histograms")
    tag = _pick_tag(run, tag)
    steps, edges, counts = histogram_grid(run, tag, bins)
    centres = (edges[:-1] + edges[1:]) / 2
    total = counts.sum(axis=1)
    ax = new_axes(ax, (8, 5) if kind == "ridge" else (9, 4.5))
    constant = constant_value(run, tag)
    if kind == "ridge":
        _ridges(ax, steps, centres, counts)
        ax.set_xlabel("value")
        shown = min(len(steps), MAX_RIDGES)
        what = f"{len(steps)} steps" if shown == len(steps) else f"{shown} of {len(steps)} steps"
        ax.set_title(f"{tag}: histogram per step ({what}, latest in front)", loc="left", fontsize=10)
    else:
        from matplotlib.colors import LogNorm

        data = np.ma.masked_less_equal(counts.T, 0)
        x = _step_edges(steps)
        positive = counts[counts > 0]
        norm = LogNorm(vmin=max(positive.min(), 1e-3), vmax=positive.max()) if positive.size else None
        mesh = ax.pcolormesh(x, edges, data, cmap="viridis", norm=norm, shading="flat")
        ax.figure.colorbar(mesh, ax=ax, label="count per bin (log scale)", pad=0.02)
        ax.set_xlabel("step")
        ax.set_ylabel("value")
        ax.set_title(f"{tag}: distribution over {len(steps)} steps", loc="left", fontsize=10)
    if constant is not None and total.sum() > 0:
        ax.text(0.98, 0.92, f"every value is {fmt_num(constant)} at every step", transform=ax.transAxes, ha="right",
                color=DEAD_COLOR, fontsize=9, fontweight="bold")
    return ax


def constant_value(run: Any, tag: str) -> float | None:
    """The one value every histogram of ``tag`` holds (a dead gradient: 0), or ``None`` when they vary: from the
    histograms' own ``min`` and ``max`` (``run.histogram_stats``) when logged, else from the bucket edges."""
    st = run.histogram_stats
    if len(st) and {"tag", "min", "max"} <= set(st.columns):
        mine = st[st["tag"].astype(str) == tag]
        if len(mine):
            lo, hi = mine["min"].to_numpy(float), mine["max"].to_numpy(float)
            return float(lo[0]) if np.all(lo == hi) and np.all(lo == lo[0]) else None
    h = run.histograms
    h = h[(h["tag"].astype(str) == tag) & (h["count"].to_numpy(float) > 0)]
    vals = np.unique(np.concatenate([h["bucket_left"].to_numpy(float), h["bucket_right"].to_numpy(float)]))
    return float(vals[0]) if len(vals) == 1 else None


def _step_edges(steps: np.ndarray) -> np.ndarray:
    """Cell edges around each step (half-way to its neighbours) for a heatmap of irregular steps."""
    s = steps.astype(float)
    if len(s) == 1:
        return np.array([s[0] - 0.5, s[0] + 0.5])
    mid = (s[:-1] + s[1:]) / 2
    return np.concatenate([[s[0] - (mid[0] - s[0])], mid, [s[-1] + (s[-1] - mid[-1])]])


def _ridges(ax: Any, steps: np.ndarray, centres: np.ndarray, counts: np.ndarray) -> None:
    import matplotlib as mpl

    n = len(steps)
    pick = np.unique(np.linspace(0, n - 1, min(n, MAX_RIDGES)).round().astype(int))
    peak = counts[pick].max() if counts.size else 0.0
    height = counts[pick] / peak if peak > 0 else counts[pick]
    gap = 0.35                                          # each ridge sits this far above the next (peak = 1)
    cmap = mpl.colormaps["viridis"]
    k = len(pick)
    for rank, y in enumerate(height):
        base = (k - 1 - rank) * gap                      # the first step at the top (back), the last at the bottom
        color = cmap(0.15 + 0.7 * rank / max(k - 1, 1))
        ax.fill_between(centres, base, base + y, color=color, alpha=0.75, linewidth=0, zorder=rank)
        ax.plot(centres, base + y, color="white", linewidth=0.6, zorder=rank + 0.5)
    ticks = np.unique(np.linspace(0, k - 1, min(k, 8)).round().astype(int))
    ax.set_yticks([(k - 1 - t) * gap for t in ticks])
    ax.set_yticklabels([fmt_num(float(steps[pick[t]])) for t in ticks], fontsize=8)
    ax.set_ylabel("step")
    ax.set_ylim(-0.05, (k - 1) * gap + 1.1)
    ax.grid(True, axis="x", alpha=0.3)
