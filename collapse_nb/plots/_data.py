"""The tables the plots draw, as plain pandas (no matplotlib here).

Notebooks, widgets and the report can call these to get exactly the numbers a
plot shows. Every function takes the run's tables (or a run) and returns a new
DataFrame; nothing is mutated (the time axes are memoised per run, see below).

The time axis of a plot is worked out from the files (``source``) of the rows it
draws, not from the whole run (:class:`Timeline`):

- every file logged a global step: the ``step``;
- no file logged a step but they count batches (the seed report's ``EPOCH e |
  BATCH b/n`` blocks): *counted batches* ``(epoch - first_epoch) * batches_per_epoch
  + batch``;
- some files logged steps and others only epochs and batches (a text log next to
  TensorBoard events): *fractional epochs*, each file's rows placed by its own
  clock: ``epoch + batch / batches_per_epoch`` for a file counting batches, its
  steps turned into epochs through its own step -> epoch relation (or, for a file
  with steps and no epochs, through that of another file of the run) for a file
  logging steps. The axis label says which file was placed how.

Values logged once per epoch (no step and no batch) go to the end of their epoch
on any of these axes. :func:`metric_timeline`, :func:`table_timeline` and
:func:`source_timeline` give the axis of a metric, of a table such as ``run.grads``,
or of some files; they are memoised per ``run.scalars`` object, so a report drawing
seven plots works each axis out once.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..errors import CollapseNBError

PHASE_ORDER = ("train", "val", "test")
GRAD_VALUES = ("grad_norm", "weight_norm", "update_norm", "update_ratio")
NEEDED_TIME = ("segment", "epoch", "batch", "step")
#: Relative tolerance within which two files' per-epoch values count as the same value (a text log prints
#: 6 decimals of what a CSV holds in full).
AGREE_RTOL = 1e-5


class MissingDataError(CollapseNBError, ValueError):
    """A plot's input lacks the table or columns it needs; the message names them.

    Raised before any figure is made. A :class:`ValueError` and a :class:`collapse_nb.CollapseNBError`.
    """


def _floats(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _time_cols(df: pd.DataFrame) -> dict[str, np.ndarray]:
    n = len(df)
    return {c: (_floats(df[c]) if c in df.columns else np.full(n, np.nan)) for c in NEEDED_TIME}


def _sources_of(df: pd.DataFrame) -> np.ndarray:
    """Each row's file as text (``""`` where the table has no ``source`` column or the row none)."""
    if "source" not in df.columns:
        return np.full(len(df), "", dtype=object)
    col = df["source"]
    if isinstance(col.dtype, pd.CategoricalDtype):           # fast: one string per category, not per row
        lookup = np.array([*map(str, col.cat.categories), ""], dtype=object)
        return lookup[col.cat.codes.to_numpy()]              # code -1 (no file) picks the trailing ""
    return col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object)


def short_sources(sources: Iterable[str]) -> dict[str, str]:
    """Short, distinct names for files, for legends and axis labels: the file name
    (``training_diagnostic.log``), TensorBoard event files as ``tb/events.out.tfevents…``, with
    parent folders added where two files would otherwise share a name."""
    srcs = list(dict.fromkeys(str(s) for s in sources))

    def name(s: str, up: int) -> str:
        parts = PurePath(s).parts or (s,)
        base = parts[-1]
        if base.startswith("events.out.tfevents"):
            base = "events.out.tfevents…"
            up = max(up, 1)
        keep = parts[max(0, len(parts) - 1 - up):-1]
        return "/".join([*keep, base]) if keep else base

    out = {s: name(s, 0) for s in srcs}
    for up in range(1, 8):
        counts: dict[str, int] = {}
        for v in out.values():
            counts[v] = counts.get(v, 0) + 1
        clash = [s for s in srcs if counts[out[s]] > 1]
        if not clash:
            break
        for s in clash:
            out[s] = name(s, up)
    return out


# ---------------------------------------------------------------- clocks and timelines

@dataclass(frozen=True)
class Clock:
    """How one file's rows become fractional epochs on an epoch axis (:class:`Timeline` kind ``"epoch"``).

    ``how``: ``"batch"`` (``epoch + batch / per``), ``"step"`` (``(step - origin) / per``: ``per`` steps
    per epoch), ``"interp"`` (the epoch logged with each step, interpolated between logged steps) or
    ``"epoch"`` (the file logged only per-epoch values). ``borrowed_from``: the file whose step -> epoch
    relation a file with steps but no epochs uses.
    """

    source: str
    how: str
    per: float = 0.0
    origin: float = 0.0
    borrowed_from: str | None = None
    steps: tuple[float, ...] = ()
    epochs: tuple[float, ...] = ()

    def place(self, t: dict[str, np.ndarray]) -> np.ndarray:
        if self.how == "batch":
            return t["epoch"] + t["batch"] / self.per
        if self.how == "step":
            return (t["step"] - self.origin) / self.per
        if self.how == "interp":
            x = np.interp(t["step"], self.steps, self.epochs)
            return np.where(np.isnan(t["step"]), np.nan, x)
        return np.full(len(t["epoch"]), np.nan)

    def describe(self) -> str:
        """How this clock places a file's rows, without the file's name (``epoch + batch/30``)."""
        if self.how == "batch":
            return f"epoch + batch/{int(self.per)}"
        if self.how == "step":
            return f"{_fmt(self.per)} steps per epoch"
        if self.how == "interp":
            return "step -> the epoch logged with it"
        return "per-epoch values"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


@dataclass(frozen=True)
class Timeline:
    """How rows of a run are placed on one time axis, worked out from the files they come from.

    ``kind`` is ``"step"`` (every file with per-step values logged the global step), ``"batch"``
    (no file logged a step: batches counted as ``(epoch - first_epoch) * batches_per_epoch + batch``),
    ``"epoch"`` (files disagree, some logging steps and some only batches: fractional epochs, each
    file's rows placed by its :class:`Clock` in ``clocks``) or ``None`` (only per-epoch values).
    ``epoch_ends`` maps ``(segment, epoch)`` to the last position logged in that epoch (kinds ``step``
    and ``batch``), where epoch-level values (a validation loss) are placed; on an epoch axis they go
    to the epoch's end, ``epoch + 1``. ``sources``: the files it was worked out from.
    """

    kind: str | None
    batches_per_epoch: int = 0
    first_epoch: float = 0.0
    epoch_ends: dict[tuple[int, float], float] = field(default_factory=dict, compare=False)
    sources: tuple[str, ...] = ()
    clocks: dict[str, Clock] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        if self.kind == "step":
            return "step"
        if self.kind == "batch":
            return f"batch (counted, {self.batches_per_epoch}/epoch; no step logged)"
        if self.kind == "epoch":
            short = short_sources(self.clocks)
            groups: dict[str, list[str]] = {}
            for c in sorted(self.clocks.values(), key=lambda c: c.how != "batch"):
                if c.how != "epoch":
                    via = f" (by {short.get(c.borrowed_from, c.borrowed_from)}'s steps)" if c.borrowed_from else ""
                    groups.setdefault(c.describe(), []).append(short[c.source] + via)
            parts = ["epoch (fractional; per-epoch values at the epoch's end)"]
            parts += [f"{how}: {', '.join(files)}" for how, files in groups.items()]
            lines = [parts[0]]
            for part in parts[1:]:                   # whole parts per line, about 110 characters at most
                if len(lines[-1]) + 3 + len(part) <= 110:
                    lines[-1] += " · " + part
                else:
                    lines.append(part)
            return "\n".join(lines)
        return "epoch"

    @property
    def unit(self) -> str:
        """One word for a position: ``step``, ``batch`` or ``epoch``."""
        return self.kind or "epoch"

    def source_unit(self, source: str) -> str:
        """How rows of one file are counted on this axis: ``step`` or ``batch`` (``epoch`` for a file with
        per-epoch values only)."""
        if self.kind in ("step", "batch"):
            return self.kind
        clock = self.clocks.get(str(source))
        if clock is None or clock.how == "epoch":
            return "epoch"
        return "batch" if clock.how == "batch" else "step"

    def positions(self, df: pd.DataFrame, epoch_level: bool = True) -> np.ndarray:
        """Each row's position (NaN where it cannot be placed).

        Rows with a step (kind ``step``), an epoch and batch (kind ``batch``) or, on an epoch axis, what
        their file's clock needs are placed where they were logged; with ``epoch_level``, rows with only
        an epoch go to that epoch's end.
        """
        t = _time_cols(df)
        x = np.full(len(df), np.nan)
        if self.kind == "step":
            x = t["step"].copy()
        elif self.kind == "batch":
            x = (np.floor(t["epoch"]) - self.first_epoch) * self.batches_per_epoch + t["batch"]
        elif self.kind == "epoch":
            src = _sources_of(df)
            for name, clock in self.clocks.items():
                m = src == name
                if m.any():
                    x[m] = clock.place({k: v[m] for k, v in t.items()})
        if epoch_level and self.kind is not None:
            only_epoch = np.isnan(t["step"]) & np.isnan(t["batch"]) & ~np.isnan(t["epoch"])
            if only_epoch.any():
                seg = np.nan_to_num(t["segment"], nan=0.0)
                ends = [self.epoch_end(int(s), e) for s, e in zip(seg[only_epoch], t["epoch"][only_epoch])]
                x[only_epoch] = ends
        return x

    def epoch_end(self, segment: int, epoch: float) -> float:
        if self.kind == "epoch":            # epoch e spans [e, e + 1); a fractional epoch is a position already
            return float(epoch) + 1.0 if float(epoch).is_integer() else float(epoch)
        key = (int(segment), float(np.ceil(epoch - 1e-6)) + 0.0)
        if key in self.epoch_ends:
            return self.epoch_ends[key]
        if self.kind == "batch":
            return (key[1] - self.first_epoch) * self.batches_per_epoch + self.batches_per_epoch - 1
        return np.nan


def _source_kinds(src: np.ndarray, t: dict[str, np.ndarray]) -> dict[str, str | None]:
    """Per file: ``step`` (logged a step), ``batch`` (epochs and batches, no step), ``epoch`` or None."""
    codes, files = pd.factorize(src)
    n = len(files)

    def any_per_file(flag: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=flag.astype(float), minlength=n) > 0

    has_step = any_per_file(~np.isnan(t["step"]))
    has_epoch = ~np.isnan(t["epoch"])
    has_eb = any_per_file(has_epoch & ~np.isnan(t["batch"]))
    has_e = any_per_file(has_epoch)
    return {str(f): ("step" if has_step[i] else "batch" if has_eb[i] else "epoch" if has_e[i] else None)
            for i, f in enumerate(files)}


def _step_clock(source: str, t: dict[str, np.ndarray]) -> Clock | None:
    """A file's step -> epoch relation from its rows with both (preferring rows with a batch: per-step
    rows, not the epoch summaries logged at the next epoch's first step), or None when it has none."""
    ok = ~np.isnan(t["step"]) & ~np.isnan(t["epoch"])
    if (ok & ~np.isnan(t["batch"])).any():
        ok &= ~np.isnan(t["batch"])
    if not ok.any():
        return None
    s, e = t["step"][ok], t["epoch"][ok]
    seg = np.nan_to_num(t["segment"][ok], nan=0.0)
    if (e != np.floor(e)).any():                     # the epoch logged as a fraction (Hugging Face): interpolate
        pairs = pd.DataFrame({"s": s, "e": e}).groupby("s")["e"].mean()
        if len(pairs) < 2:
            return None
        return Clock(source, "interp", steps=tuple(pairs.index.astype(float)), epochs=tuple(pairs.to_numpy(float)))
    first = pd.DataFrame({"g": seg, "e": e, "s": s}).groupby(["g", "e"])["s"].min().reset_index()
    rates = []
    for _, g in first.groupby("g"):
        de, ds = np.diff(g["e"].to_numpy(float)), np.diff(g["s"].to_numpy(float))
        rates += list(ds[de > 0] / de[de > 0])
    if not rates or not np.median(rates) > 0:
        return None
    per = float(np.median(rates))
    origin = float(np.median(first["s"].to_numpy(float) - first["e"].to_numpy(float) * per))
    return Clock(source, "step", per=per, origin=origin)


def _build_timeline(scalars: pd.DataFrame, sources: Iterable[str] | None = None) -> Timeline:
    """The axis for rows of ``sources`` (default: every file in ``scalars``); relations between steps and
    epochs may come from any file in ``scalars``."""
    src_all = _sources_of(scalars)
    if sources is None:
        keep = np.ones(len(scalars), dtype=bool)
    else:
        wanted = {str(s) for s in sources}
        keep = np.isin(src_all, list(wanted))
    t_all = _time_cols(scalars)
    t = {k: v[keep] for k, v in t_all.items()}
    src = src_all[keep]
    kinds = {s: k for s, k in _source_kinds(src, t).items() if k is not None}
    names = tuple(kinds)
    fine = {s: k for s, k in kinds.items() if k in ("step", "batch")}
    if not fine:
        return Timeline(None, sources=names)
    per_batch = {}
    for s, k in fine.items():
        if k == "batch":
            m = (src == s) & ~np.isnan(t["epoch"]) & ~np.isnan(t["batch"])
            per_batch[s] = int(np.nanmax(t["batch"][m])) + 1
    if set(fine.values()) == {"step"}:
        kind, per, first = "step", 0, 0.0
        x = t["step"]
    elif set(fine.values()) == {"batch"} and len(set(per_batch.values())) == 1:
        ok = ~np.isnan(t["epoch"]) & ~np.isnan(t["batch"])
        kind, per = "batch", next(iter(per_batch.values()))
        first = float(np.floor(np.nanmin(t["epoch"][ok])))
        x = (np.floor(t["epoch"]) - first) * per + t["batch"]
    else:
        return _epoch_timeline(scalars, src_all, t_all, kinds, per_batch)
    ok = ~np.isnan(x) & ~np.isnan(t["epoch"])
    ends: dict[tuple[int, float], float] = {}
    if ok.any():
        seg = np.nan_to_num(t["segment"][ok], nan=0.0).astype(int)
        key = pd.DataFrame({"s": seg, "e": np.ceil(t["epoch"][ok] - 1e-6) + 0.0, "x": x[ok]})
        ends = {(int(s), float(e)): float(v) for (s, e), v in key.groupby(["s", "e"])["x"].max().items()}
    return Timeline(kind, per, first, ends, sources=names)


def _epoch_timeline(scalars: pd.DataFrame, src_all: np.ndarray, t_all: dict[str, np.ndarray],
                    kinds: dict[str, str], per_batch: dict[str, int]) -> Timeline:
    clocks: dict[str, Clock] = {}
    own: dict[str, Clock | None] = {}

    def relation(s: str) -> Clock | None:
        if s not in own:
            m = src_all == s
            own[s] = _step_clock(s, {k: v[m] for k, v in t_all.items()})
        return own[s]

    others = [s for s in dict.fromkeys(src_all.tolist()) if kinds.get(s) != "step"]
    lenders = [s for s, k in kinds.items() if k == "step"] + others      # plotted files first, then the rest
    for s, k in kinds.items():
        if k == "batch":
            clocks[s] = Clock(s, "batch", per=float(per_batch[s]))
        elif k == "step":
            c = relation(s)
            if c is None:
                for other in lenders:
                    if other != s and (c := relation(other)) is not None:
                        c = Clock(s, c.how, c.per, c.origin, borrowed_from=other, steps=c.steps, epochs=c.epochs)
                        break
            if c is not None:
                clocks[s] = c
        else:
            clocks[s] = Clock(s, "epoch")
    return Timeline("epoch", sources=tuple(kinds), clocks=clocks)


# ---------------------------------------------------------------- memo

_MEMO: "OrderedDict[tuple, tuple[Any, int, Timeline]]" = OrderedDict()
_MEMO_SIZE = 64


def _memo(df: pd.DataFrame, key: tuple, make: Callable[[], Timeline]) -> Timeline:
    """``make()``, remembered for this very ``df`` object (and ``key``) while it lives."""
    k = (id(df), key)
    hit = _MEMO.get(k)
    if hit is not None and hit[0]() is df and hit[1] == len(df):
        _MEMO.move_to_end(k)
        return hit[2]
    tl = make()
    try:
        ref = weakref.ref(df)
    except TypeError:                          # pragma: no cover - pandas objects take weak references
        return tl
    _MEMO[k] = (ref, len(df), tl)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return tl


def timeline(rows: pd.DataFrame) -> Timeline:
    """The time axis of ``rows`` (any table with ``source, segment, epoch, batch, step`` columns, such as
    ``run.scalars`` or the rows of one file): see :class:`Timeline`. Memoised per ``rows`` object."""
    return _memo(rows, ("all",), lambda: _build_timeline(rows))


def source_timeline(run: Any, sources: Iterable[str]) -> Timeline:
    """The time axis of the rows of some files of ``run`` (all their ``run.scalars`` rows count, so a
    file's batches per epoch come from everything it logged). Memoised per run."""
    wanted = tuple(sorted({str(s) for s in sources}))
    return _memo(run.scalars, ("sources", wanted), lambda: _build_timeline(run.scalars, wanted))


def metric_timeline(run: Any, name: str) -> Timeline:
    """The time axis of one canonical metric: that of the files logging it (see :func:`metric_over_time`)."""
    s = run.scalars
    return source_timeline(run, _sources_of(s[(s["name"] == name).to_numpy(dtype=bool)]).tolist())


def table_timeline(run: Any, table: pd.DataFrame) -> Timeline:
    """The time axis of a table derived from ``run.scalars`` (``run.grads``, ``run.outputs``): that of
    the files its rows come from; a table whose files are not in ``run.scalars`` gets its own."""
    if "source" not in table.columns or table.empty:
        return timeline(table)
    files = set(_sources_of(table).tolist())
    if not np.isin(_sources_of(run.scalars), list(files)).any():
        return timeline(table)
    return source_timeline(run, files)


# ---------------------------------------------------------------- metrics over time

def _phase_of(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None) if len(s) else pd.Series([], dtype=object)


_METRIC_COLS = ["source", "sources", "segment", "phase", "param", "epoch", "level", "x", "value"]


def _empty_metric() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object if c in ("source", "sources", "phase", "param", "level")
                                      else "float64") for c in _METRIC_COLS})


def metric_over_time(run: Any, name: str, tl: Timeline | None = None) -> pd.DataFrame:
    """Rows of one canonical metric placed on the time axis of the files logging it (:func:`metric_timeline`).

    Columns ``source, sources, segment, phase, param, epoch, level, x, value``. ``level`` is ``"step"``
    for values logged at a step or batch, ``"epoch"`` for values logged once per epoch: rows with
    neither a step nor a batch, and rows without a batch from a file that gives its per-step rows one
    (a capture log's epoch summaries), placed at the epoch's end. Per-epoch values several files agree
    on (within :data:`AGREE_RTOL`) are kept once, ``sources`` naming every file that gave them (for
    other rows it is the row's own file); within one file the last value of an epoch wins.
    Non-finite values are kept. Rows that cannot be placed are left out and counted, per file, in
    ``attrs["unplaced"]``.
    """
    s = run.scalars
    rows = s[(s["name"] == name).to_numpy(dtype=bool)]
    tl = tl if tl is not None else metric_timeline(run, name)
    if rows.empty or tl.kind is None:
        return _empty_metric()
    t = _time_cols(rows)
    src = _sources_of(rows)
    batched = {str(v) for v in s.loc[s["batch"].notna().to_numpy(dtype=bool), "source"].dropna().unique()} \
        if "source" in s.columns else set()
    no_batch = np.isnan(t["batch"])
    level = np.where(no_batch & (np.isnan(t["step"]) | np.isin(src, list(batched))), "epoch", "step")
    x = tl.positions(rows)
    out = pd.DataFrame({
        "source": src, "sources": [(v,) for v in src],
        "segment": np.nan_to_num(t["segment"], nan=0.0).astype(int),
        "phase": _phase_of(rows["phase"]).to_numpy(),
        "param": _phase_of(rows["param"]).to_numpy(),
        "epoch": t["epoch"], "level": level, "x": x, "value": rows["value"].to_numpy(dtype=float),
    })
    placed = ~np.isnan(x)
    unplaced = {str(k): int(v) for k, v in pd.Series(src[~placed]).value_counts().items()}
    out = out[placed]
    ep = out["level"] == "epoch"
    if ep.any():
        out = pd.concat([out[~ep], _merge_agreeing(out[ep])])
    out = out.sort_values(["segment", "x"], kind="stable").reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out


def _merge_agreeing(ep: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch rows: the last per file and epoch; then files giving the same values merged into one
    series (first file's rows, plus epochs only the others have), ``sources`` naming them all."""
    keys = ["segment", "phase", "param", "epoch"]
    filled = ep.fillna({"phase": "", "param": ""})
    ep = ep.loc[filled.drop_duplicates(["source", *keys], keep="last").index]
    parts = []
    for _, series in ep.fillna({"phase": "", "param": ""}).groupby(["phase", "param"], sort=False):
        clusters: list[list[pd.DataFrame]] = []
        for _, rows in series.groupby("source", sort=False):
            vals = rows.set_index(["segment", "epoch"])["value"]
            for cl in clusters:
                ref = cl[0].set_index(["segment", "epoch"])["value"]
                common = ref.index.intersection(vals.index)
                if len(common) and np.allclose(ref.loc[common].to_numpy(float), vals.loc[common].to_numpy(float),
                                               rtol=AGREE_RTOL, atol=1e-12, equal_nan=True):
                    cl.append(rows)
                    break
            else:
                clusters.append([rows])
        for cl in clusters:
            merged = pd.concat(cl).drop_duplicates(["segment", "epoch"], keep="first")
            files = tuple(dict.fromkeys(str(r["source"].iloc[0]) for r in cl))
            merged = merged.assign(sources=[files] * len(merged))
            parts.append(merged)
    out = pd.concat(parts)
    for c in ("phase", "param"):
        out[c] = out[c].astype(object).where(out[c] != "", None)
    return out

def epoch_columns(epochs: pd.DataFrame, name: str) -> dict[str, str]:
    """``run.epochs`` columns holding ``name``, keyed by what they are: ``{"train": "train_loss", ...}``
    for phased names (plus ``""`` for the unphased ``loss``), ``{"lr": "lr", "lr_pg1": "lr_pg1"}`` for lr."""
    if name == "lr":
        return {c: c for c in epochs.columns if c == "lr" or str(c).startswith("lr_")}
    found = {p: f"{p}_{name}" for p in PHASE_ORDER if f"{p}_{name}" in epochs.columns}
    if name in epochs.columns:
        found[""] = name
    return found


def segment_starts(df: pd.DataFrame, x: str = "x") -> pd.DataFrame:
    """``segment, x``: where each restarted segment (segment > 0) begins on the axis ``x``."""
    if df.empty or "segment" not in df.columns:
        return pd.DataFrame({"segment": pd.Series([], dtype=int), "x": pd.Series([], dtype=float)})
    d = pd.DataFrame({"segment": _floats(df["segment"]), "x": _floats(df[x])}).dropna()
    first = d[d["segment"] > 0].groupby("segment")["x"].min().reset_index()
    first["segment"] = first["segment"].astype(int)
    return first


def val_train_ratio_table(epochs: pd.DataFrame) -> pd.DataFrame:
    """``segment, epoch, train_loss, val_loss, ratio`` (train / val) for epochs with both losses."""
    missing = [c for c in ("train_loss", "val_loss") if c not in epochs.columns]
    if missing:
        raise MissingDataError(f"needs run.epochs columns train_loss and val_loss; missing {', '.join(missing)} "
                               f"(run.epochs has: {', '.join(map(str, epochs.columns)) or 'no columns'})")
    out = pd.DataFrame({"segment": np.nan_to_num(_floats(epochs["segment"]), nan=0.0).astype(int)
                        if "segment" in epochs.columns else 0,
                        "epoch": _floats(epochs["epoch"]),
                        "train_loss": _floats(epochs["train_loss"]), "val_loss": _floats(epochs["val_loss"])})
    out = out.dropna(subset=["train_loss", "val_loss"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = out["train_loss"] / out["val_loss"]
    return out.reset_index(drop=True)


def outputs_over_time(run: Any, phase: str | None = None) -> tuple[pd.DataFrame, str | None]:
    """``run.outputs`` of one phase with a position ``x`` on the axis of the file(s) they come from
    (:func:`table_timeline`); ``phase=None`` takes train if logged, else all rows.

    Returns the table (sorted by segment and x) and the phase chosen. Rows that cannot be placed are
    left out and counted, per file, in ``attrs["unplaced"]``.
    """
    o = run.outputs
    if "phase" in o.columns and len(o):
        ph = o["phase"].astype(object)
        if phase is None:
            phase = "train" if (ph == "train").any() else None
        if phase is not None:
            o = o[(ph == phase).to_numpy(dtype=bool)]
    return _placed(o, table_timeline(run, run.outputs)), phase


def _placed(table: pd.DataFrame, tl: Timeline) -> pd.DataFrame:
    x = tl.positions(table) if tl.kind is not None else _floats(table["epoch"]) if "epoch" in table else \
        np.full(len(table), np.nan)
    out = table.assign(x=x)
    ok = ~np.isnan(x)
    unplaced = {str(k): int(v) for k, v in pd.Series(_sources_of(table)[~ok]).value_counts().items()}
    out = out[ok]
    if "segment" in out.columns:
        out = out.sort_values(["segment", "x"], kind="stable")
    out = out.reset_index(drop=True)
    out.attrs["unplaced"] = unplaced
    return out


def param_order(params: pd.Series) -> list[str]:
    """Parameter names in the order they were first logged (the model's order, as logged)."""
    return [str(p) for p in pd.unique(params.dropna().astype(str))]


def grads_over_time(run: Any) -> pd.DataFrame:
    """``run.grads`` with a position ``x`` on the axis of the file(s) they come from (:func:`table_timeline`),
    in the table's row order; rows without one are left out and counted in ``attrs["unplaced"]``."""
    g = run.grads
    if g.empty:
        return g.assign(x=pd.Series([], dtype=float))
    tl = table_timeline(run, g)
    x = tl.positions(g) if tl.kind is not None else _floats(g["epoch"])
    g = g.assign(x=x)
    ok = ~np.isnan(x)
    out = g[ok].reset_index(drop=True)
    out.attrs["unplaced"] = {str(k): int(v) for k, v in pd.Series(_sources_of(g)[~ok]).value_counts().items()}
    return out


def update_ratios(grads: pd.DataFrame) -> pd.Series:
    """update / weight norm per row: the logged ``update_ratio`` where there is one, else
    ``update_norm / weight_norm``; a zero weight norm gives NaN (no ratio), never inf."""
    upd, w = _floats(grads["update_norm"]), _floats(grads["weight_norm"])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w > 0, upd / w, np.nan)
    if "update_ratio" in grads.columns:
        logged = _floats(grads["update_ratio"])
        r = np.where(np.isnan(logged), r, logged)
    return pd.Series(r, index=grads.index, name="update_ratio")


def grad_flow_table(grads: pd.DataFrame, at: float | None = None) -> pd.DataFrame:
    """Per parameter (model order): ``param, mean, max, min, n_logged, n_zero, dead`` of ``grad_norm``.

    ``grads`` needs ``param``, ``grad_norm`` and, when ``at`` is given, ``x`` (from
    :func:`grads_over_time`): then only rows at that position count. ``dead`` is True where the
    gradient norm is exactly 0 at every logged row. Parameters with no finite value are left out.
    """
    missing = [c for c in ("param", "grad_norm") + (("x",) if at is not None else ()) if c not in grads.columns]
    if missing:
        raise MissingDataError(f"needs run.grads columns param and grad_norm; missing {', '.join(missing)}")
    g = grads
    if at is not None:
        g = g[_floats(g["x"]) == float(at)]
    g = pd.DataFrame({"param": g["param"].astype(object).to_numpy(), "v": _floats(g["grad_norm"])})
    g = g[np.isfinite(g["v"]) & g["param"].notna()]
    order = param_order(g["param"])
    g["param"] = g["param"].astype(str)
    agg = g.groupby("param", sort=False)["v"].agg(mean="mean", max="max", min="min", n_logged="count",
                                                  n_zero=lambda v: int((v == 0).sum()))
    agg = agg.reindex(order).reset_index()
    agg["n_logged"] = agg["n_logged"].astype(int)
    agg["n_zero"] = agg["n_zero"].astype(int)
    agg["dead"] = (agg["n_logged"] > 0) & (agg["n_zero"] == agg["n_logged"])
    return agg


def grads_matrix(grads: pd.DataFrame, values: pd.Series | str = "grad_norm") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parameters x logged positions: the wide table a heatmap draws.

    ``grads`` needs ``param``, ``segment``, ``x`` (see :func:`grads_over_time`); ``values`` is a
    column name or a Series aligned with ``grads``. Returns ``(matrix, columns)``: ``matrix`` has
    one row per parameter (model order) and one column per ``(segment, x)`` in time order (the last
    value wins where a position repeats), ``columns`` is the ``segment, x`` of each column.
    """
    v = _floats(grads[values] if isinstance(values, str) else values)
    d = pd.DataFrame({"param": grads["param"].astype(object).to_numpy(),
                      "segment": np.nan_to_num(_floats(grads["segment"]), nan=0.0).astype(int),
                      "x": _floats(grads["x"]), "v": v}).dropna(subset=["param", "x"])
    d["param"] = d["param"].astype(str)
    order = param_order(d["param"])
    wide = d.pivot_table(index="param", columns=["segment", "x"], values="v", aggfunc="last", dropna=False)
    wide = wide.reindex(index=order, columns=sorted(set(zip(d["segment"], d["x"]))))
    cols = pd.DataFrame(list(wide.columns), columns=["segment", "x"])
    wide.columns = range(wide.shape[1])
    return wide, cols


def param_norm_changes(params: pd.DataFrame) -> pd.DataFrame:
    """Relative change of each parameter's norm between consecutive checkpoints.

    ``params`` is ``run.params`` (``checkpoint, step, param, norm``). Checkpoints are ordered by
    step (then as listed). Returns ``param, from_checkpoint, to_checkpoint, from_step, to_step,
    norm_before, norm_after, rel_change`` (signed, ``(after - before) / before``; 0 where both are
    0, NaN where only ``before`` is) and ``frozen`` (the norm did not change at any transition).
    Where a checkpoint holds several state dicts (``state``: model, EMA, ...), its first one counts.
    """
    missing = [c for c in ("checkpoint", "param", "norm") if c not in params.columns]
    if missing:
        raise MissingDataError(f"needs run.params columns checkpoint, param and norm; missing {', '.join(missing)}"
                               f" (run.params has: {', '.join(map(str, params.columns)) or 'no columns'})")
    if "state" in params.columns and params["state"].notna().any():      # several state dicts (model, ema):
        first = params.groupby("checkpoint", sort=False)["state"].transform("first")  # each file's first one
        params = params[(params["state"] == first) | first.isna()]
    p = pd.DataFrame({"checkpoint": params["checkpoint"].astype(str).to_numpy(),
                      "step": _floats(params["step"]) if "step" in params.columns else np.nan,
                      "param": params["param"].astype(str).to_numpy(), "norm": _floats(params["norm"])})
    ck = p.drop_duplicates("checkpoint")[["checkpoint", "step"]].reset_index(drop=True)
    ck["first"] = ck.index
    ck = ck.sort_values(["step", "first"], kind="stable", na_position="last").reset_index(drop=True)
    if len(ck) < 2:
        raise MissingDataError(f"needs run.params from at least 2 checkpoints; found {len(ck)}")
    wide = p.drop_duplicates(["checkpoint", "param"], keep="last").pivot(index="param", columns="checkpoint",
                                                                         values="norm")
    wide = wide.reindex(index=param_order(p["param"]), columns=ck["checkpoint"])
    parts = []
    for (a, sa), (b, sb) in zip(ck[["checkpoint", "step"]].itertuples(index=False),
                                ck[["checkpoint", "step"]].iloc[1:].itertuples(index=False)):
        before, after = wide[a].to_numpy(dtype=float), wide[b].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(before != 0, (after - before) / np.abs(before), np.where(after == 0, 0.0, np.nan))
        parts.append(pd.DataFrame({"param": wide.index, "from_checkpoint": a, "to_checkpoint": b, "from_step": sa,
                                   "to_step": sb, "norm_before": before, "norm_after": after, "rel_change": rel}))
    out = pd.concat(parts, ignore_index=True)
    known = out.dropna(subset=["rel_change"])
    frozen = known.groupby("param")["rel_change"].apply(lambda r: bool((r == 0).all()))
    out["frozen"] = out["param"].map(frozen).fillna(False).astype(bool)
    return out
