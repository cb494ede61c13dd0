"""Where rows sit on a plot's time axis: a :class:`Timeline` worked out from the files they come from.

The time axis of a plot is worked out from the files (``source``) of the rows it draws, not from the
whole run:

- every file logged a global step: the ``step``;
- no file logged a step but they count batches (the seed report's ``EPOCH e | BATCH b/n`` blocks):
  *counted batches* ``(epoch - first_epoch) * batches_per_epoch + batch``;
- some files logged steps and others only epochs and batches (a text log next to TensorBoard
  events): *fractional epochs*, each file's rows placed by its own :class:`Clock`:
  ``epoch + batch / batches_per_epoch`` for a file counting batches, its steps turned into epochs
  through its own step -> epoch relation (or, for a file with steps and no epochs, through that of
  another file of the run) for a file logging steps. The axis label says which file was placed how.

Values logged once per epoch (no step and no batch) go to the end of their epoch on any of these
axes. :func:`metric_timeline`, :func:`table_timeline` and :func:`source_timeline` give the axis of a
metric, of a table such as ``run.grads``, or of some files; they are memoised per ``run.scalars``
object, so a report drawing seven plots works each axis out once.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..run import Run

NEEDED_TIME = ("segment", "epoch", "batch", "step")


def floats(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def time_columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    n = len(df)
    return {c: (floats(df[c]) if c in df.columns else np.full(n, np.nan)) for c in NEEDED_TIME}


def sources_of(df: pd.DataFrame) -> np.ndarray:
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
        t = time_columns(df)
        x = np.full(len(df), np.nan)
        if self.kind == "step":
            x = t["step"].copy()
        elif self.kind == "batch":
            x = (np.floor(t["epoch"]) - self.first_epoch) * self.batches_per_epoch + t["batch"]
        elif self.kind == "epoch":
            src = sources_of(df)
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
    src_all = sources_of(scalars)
    if sources is None:
        keep = np.ones(len(scalars), dtype=bool)
    else:
        wanted = {str(s) for s in sources}
        keep = np.isin(src_all, list(wanted))
    t_all = time_columns(scalars)
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


def source_timeline(run: Run, sources: Iterable[str]) -> Timeline:
    """The time axis of the rows of some files of ``run`` (all their ``run.scalars`` rows count, so a
    file's batches per epoch come from everything it logged). Memoised per run."""
    wanted = tuple(sorted({str(s) for s in sources}))
    return _memo(run.scalars, ("sources", wanted), lambda: _build_timeline(run.scalars, wanted))


def metric_timeline(run: Run, name: str) -> Timeline:
    """The time axis of one canonical metric: that of the files logging it (see :func:`metric_over_time`)."""
    s = run.scalars
    return source_timeline(run, sources_of(s[(s["name"] == name).to_numpy(dtype=bool)]).tolist())


def table_timeline(run: Run, table: pd.DataFrame) -> Timeline:
    """The time axis of a table derived from ``run.scalars`` (``run.grads``, ``run.outputs``): that of
    the files its rows come from; a table whose files are not in ``run.scalars`` gets its own."""
    if "source" not in table.columns or table.empty:
        return timeline(table)
    files = set(sources_of(table).tolist())
    if not np.isin(sources_of(run.scalars), list(files)).any():
        return timeline(table)
    return source_timeline(run, files)
