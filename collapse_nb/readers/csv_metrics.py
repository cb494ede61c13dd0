"""CSV metric files: Lightning ``metrics.csv``, Keras ``CSVLogger``, Ultralytics ``results.csv``, any CSV.

Every flavour is a header row, then one row per logging event; each non-empty
numeric cell becomes one raw scalar carrying its row's step / epoch / batch /
wall time and the file line of its row. Raw names are the column names as
written; canonicalisation is central.

``lightning-csv`` (sparse rows; ``lr-Adam`` rows have no epoch, which stays NA here: the epochs
table places them by their step; ``*_step`` / ``*_epoch`` column pairs are one metric)::

    epoch,lr-Adam,step,train/nll_loss,val/rmse_loss
    ,0.0033,49,,
    0,,49,0.0576,

``keras-csv`` (``epoch`` first and 0-based, as in the file; metrics without a
phase word are training metrics, except the learning rate)::

    epoch,accuracy,loss,lr,val_accuracy,val_loss
    0,0.98,0.056,0.001,0.985,0.055

``ultralytics-csv`` (space-padded; ``metrics/*`` are computed on the validation set; ``lr/pg0``..., or
YOLOv5's ``x/lr0``..., are the learning rates of the param groups)::

                      epoch,         train/box_loss,       metrics/mAP50(B),   lr/pg0
                          0,                 1.6878,                0.15826, 0.070545

``csv``: any other CSV/TSV/semicolon file with a header. *Wide*: one column
per metric, plus index columns recognised by name (``step``, ``global_step``,
``iter``, ``epoch``, ``batch``, ``wall_time``/``time``/``timestamp``, and a
``phase``/``mode``/``split`` column). *Long*: ``step,name,value`` (the name
column may be called ``metric``, ``tag`` or ``key``). A TensorBoard
"download CSV" file (``Wall time,Step,Value``) takes its metric name from the
file name.

Cells that are not numbers are counted as skipped with their line (``nan`` and
``inf`` are values; empty cells and ``None``/``null``/``NA`` are "nothing
logged"); a column that is mostly text is ignored as a whole, with a note.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import pandas as pd

from ..errors import UnreadableFileError
from ..names import PHASE_WORDS, canonicalize
from ..tables import UNPHASED
from ._csv_common import (Head, Table, log_many, norm_name, parse_table, sniff_head, to_numbers,
                          wall_seconds)
from .base import ReadResult, Reader, empty_scalars, register

#: Index columns, by normalised header name (see :func:`norm_name`).
ROLE_NAMES: dict[str, frozenset[str]] = {
    "step": frozenset({"step", "steps", "global_step", "globalstep", "trainer/global_step", "iter", "iters",
                       "iteration", "iterations", "it", "n_iter", "num_iter"}),
    "epoch": frozenset({"epoch", "epochs", "ep", "epoch_idx", "epoch_num", "current_epoch"}),
    "batch": frozenset({"batch", "batch_idx", "batch_index", "batch_num", "batch_id", "minibatch"}),
    "wall_time": frozenset({"wall_time", "walltime", "wall_clock", "time", "timestamp", "datetime", "date_time",
                            "date", "created_at"}),
    "phase": frozenset({"phase", "mode", "split", "stage", "subset"}),
}
NAME_COLUMNS = ("name", "metric", "metric_name", "tag", "key", "series")
VALUE_COLUMNS = ("value", "metric_value", "scalar_value", "values")
_UNNAMED = re.compile(r"^(unnamed(: ?\d+)?|index)?$", re.I)


@dataclass
class Plan:
    """What each column of a table is: index roles, metric columns, and the phase their context gives."""

    roles: dict[str, int] = field(default_factory=dict)
    metrics: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    #: Columns named like a wall clock; the first that holds one becomes ``wall_time``, the rest metrics.
    clocks: list[int] = field(default_factory=list)


def plan_columns(header: list[str]) -> Plan:
    """Assign each column a role by name (the first column wins a role), else make it a metric."""
    plan = Plan()
    for j, name in enumerate(header):
        key = norm_name(name)
        if _UNNAMED.match(name.strip()):
            plan.ignored.append(j)
            continue
        role = next((r for r, names in ROLE_NAMES.items() if key in names and r not in plan.roles), None)
        if role == "wall_time":
            plan.clocks.append(j)
        elif role is None:
            plan.metrics.append(j)
        else:
            plan.roles[role] = j
    return plan


# --------------------------------------------------------------------------- building raw scalars

def _index_values(t: Table, j: int, role: str, skipped) -> np.ndarray:
    values, present, bad, _ = to_numbers(t.columns[j])
    log_many(skipped, t.lines[bad], f"non-numeric {role} {t.header[j]!r} (row still read)", t.columns[j][bad])
    return np.where(present, values, np.nan)


def _find_clock(t: Table, plan: Plan) -> tuple[int | None, np.ndarray | None]:
    """The first clock-named column that holds wall-clock times, and its seconds since 1970."""
    for j in plan.clocks:
        wt = wall_seconds(t.columns[j])
        if wt is not None:
            return j, wt
    return None, None


def _row_phase(cells: np.ndarray) -> np.ndarray:
    low = pd.Series(cells, dtype=object).str.strip().str.lower()
    return low.map(PHASE_WORDS).astype(object).where(lambda s: s.notna(), None).to_numpy()


def wide_scalars(t: Table, path: Path, plan: Plan, context_phase: Callable[[str], str | None],
                 result: ReadResult) -> pd.DataFrame:
    """One raw scalar per numeric cell of every metric column."""
    skipped, n = result.skipped, len(t)
    ctx: dict[str, np.ndarray] = {}
    wall_j, wt = _find_clock(t, plan)
    if wt is not None:
        ctx["wall_time"] = wt
    plan.metrics = sorted(plan.metrics + [j for j in plan.clocks if j != wall_j])
    for role in ("step", "epoch", "batch"):
        if role in plan.roles:
            ctx[role] = _index_values(t, plan.roles[role], role, skipped)
    row_phase = np.full(n, None, object)
    if "phase" in plan.roles:
        row_phase = _row_phase(t.columns[plan.roles["phase"]])
        if not any(row_phase):  # a "stage" column of numbers, say: a metric after all
            plan.metrics = sorted(plan.metrics + [plan.roles.pop("phase")])
    names = [t.header[j] for j in plan.metrics]
    if len(names) == 1 and norm_name(names[0]) == "value":
        names = [tag_from_filename(path)]
        result.notes.append(f"single 'Value' column: metric name {names[0]!r} taken from the file name")
    rows, codes, vals, phases = [], [], [], []
    uniq = list(dict.fromkeys(names))
    for name, j in zip(names, plan.metrics):
        values, present, bad, unwrapped = to_numbers(t.columns[j], decimal_comma=t.delimiter != ",")
        if bad.sum() > present.sum():
            result.notes.append(f"column {t.header[j]!r} holds text, not numbers: ignored ({int(bad.sum())} cells)")
            continue
        log_many(skipped, t.lines[bad], f"non-numeric value in column {t.header[j]!r}", t.columns[j][bad])
        if unwrapped:
            result.notes.append(f"column {t.header[j]!r}: {unwrapped} 'tensor(...)' cells read as their number")
        idx = np.flatnonzero(present)
        rows.append(idx)
        codes.append(np.full(len(idx), uniq.index(name), dtype=np.int32))
        vals.append(values[idx])
        cp = context_phase(t.header[j])
        phases.append(row_phase[idx] if cp is None else np.full(len(idx), cp, object))
    if not rows:
        raise UnreadableFileError(path, "no numeric metric column (columns: "
                                        f"{', '.join(t.header[:12]) or 'none'})")
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")
    row = row[order]
    out = pd.DataFrame({"line": t.lines[row],
                        "raw_name": pd.Categorical.from_codes(np.concatenate(codes)[order], categories=uniq),
                        "value": np.concatenate(vals)[order]})
    phase = np.concatenate(phases)[order]
    if any(phase):
        out["phase"] = phase
    for c, arr in ctx.items():
        out[c] = arr[row]
    return out


def long_scalars(t: Table, path: Path, plan: Plan, name_j: int, value_j: int, result: ReadResult) -> pd.DataFrame:
    """A tidy table: one raw scalar per row, named by the name column."""
    skipped = result.skipped
    names = pd.Series(t.columns[name_j], dtype=object).str.strip()
    values, present, bad, _ = to_numbers(t.columns[value_j], decimal_comma=t.delimiter != ",")
    no_name = (names == "").to_numpy()
    log_many(skipped, t.lines[no_name], "row without a metric name")
    log_many(skipped, t.lines[bad & ~no_name], "non-numeric value", t.columns[value_j][bad & ~no_name])
    keep = present & ~no_name
    if not keep.any() and bad.any():
        raise UnreadableFileError(path, f"no numeric value in column {t.header[value_j]!r}")
    out = pd.DataFrame({"line": t.lines[keep], "raw_name": names[keep].astype("category").to_numpy(),
                        "value": values[keep]})
    if "phase" in plan.roles:
        out["phase"] = _row_phase(t.columns[plan.roles["phase"]])[keep]
    wall_j, wt = _find_clock(t, plan)
    if wt is not None:
        out["wall_time"] = wt[keep]
    for role in ("step", "epoch", "batch"):
        if role in plan.roles:
            out[role] = _index_values(t, plan.roles[role], role, skipped)[keep]
    other = [t.header[j] for j in range(len(t.header))
             if j not in (name_j, value_j, wall_j, *plan.roles.values(), *plan.ignored)]
    if other:
        result.notes.append(f"long table: columns {', '.join(other)} ignored")
    return out


def tag_from_filename(path: Path) -> str:
    """``run-version_0-tag-train_loss.csv`` (TensorBoard's export) -> ``train_loss``; else the file stem."""
    stem = Path(path).stem
    return stem.split("-tag-", 1)[1] if "-tag-" in stem else stem


def long_columns(header: list[str]) -> tuple[int, int] | None:
    """``(name column, value column)`` of a long table, else ``None``."""
    norm = [norm_name(h) for h in header]
    name_j = next((j for j, h in enumerate(norm) if h in NAME_COLUMNS), None)
    value_j = next((j for j, h in enumerate(norm) if h in VALUE_COLUMNS), None)
    return None if name_j is None or value_j is None else (name_j, value_j)


# --------------------------------------------------------------------------- the readers

class _CSVReader(Reader):
    """Common ``sniff`` and ``read``: parse, plan the columns, build raw scalars. Flavours override the hooks."""

    #: Columns (normalised names) a flavour's files always have.
    requires: ClassVar[tuple[str, ...]] = ()

    def sniff(self, head: bytes, path: Path) -> float:
        """0 unless the head is a headed table with a numeric column and the required columns; else
        the flavour's :meth:`score`."""
        h = sniff_head(head)
        if h is None or h.fraction_well_formed() < 0.6 or h.numeric_columns() < 1 or \
                not set(self.requires) <= set(h.norm):
            return 0.0
        return self.score(h, path)

    def score(self, h: Head, path: Path) -> float:  # pragma: no cover - interface
        """How sure this flavour is that a well-formed headed table ``h`` is its own."""
        raise NotImplementedError

    def context_phase(self, column: str) -> str | None:
        """The phase the *format* gives a column's values when its name says none."""
        return None

    def plan(self, t: Table) -> Plan:
        return plan_columns(t.header)

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        t = parse_table(path)
        result = ReadResult(source=str(path), format=self.name, scalars=empty_scalars(), skipped=t.skipped,
                            notes=list(t.notes))
        plan = self.plan(t)
        if plan.ignored:
            result.notes.append(f"unnamed column(s) {', '.join(str(j + 1) for j in plan.ignored)} ignored "
                                "(a row index)")
        if len(t) == 0:
            result.notes.append("header only: no data rows")
            return result
        long = long_columns(t.header) if self.name == "csv" else None
        if long is not None:
            result.scalars = long_scalars(t, path, plan, *long, result)
        else:
            result.scalars = wide_scalars(t, path, plan, self.context_phase, result)
        return result


@register
class LightningCSVReader(_CSVReader):
    name = "lightning-csv"
    description = "PyTorch Lightning CSVLogger metrics.csv (sparse rows, step and epoch columns)"
    requires = ("step", "epoch")

    def score(self, h: Head, path: Path) -> float:
        names = [x for x in h.header if x not in ("step", "epoch")]
        lightning_names = any(x.startswith("lr-") or x.endswith(("_step", "_epoch")) for x in names)
        if lightning_names or h.sparse():
            return 0.95
        return 0.7 if list(h.header) == sorted(h.header) else 0.0


@register
class KerasCSVReader(_CSVReader):
    name = "keras-csv"
    description = "Keras CSVLogger file (epoch first, metrics and val_* columns, optional lr)"

    def score(self, h: Head, path: Path) -> float:
        if h.norm[0] != "epoch" or len(h.header) < 2 or any("/" in x for x in h.header):
            return 0.0
        rest = list(h.header[1:])
        if any(x in names for x in h.norm[1:] for names in ROLE_NAMES.values()):
            return 0.0  # Keras writes no step, batch, time or phase column
        if not any(x == "loss" or x.startswith("val_") for x in rest):
            return 0.0
        return 0.9 if rest == sorted(rest) else 0.85

    def context_phase(self, column: str) -> str | None:
        if column.startswith("val_") or canonicalize(column)[0] in UNPHASED:
            return None
        return "train"

    def plan(self, t: Table) -> Plan:
        """``epoch`` is the index; every other column is a metric (Keras writes no other index)."""
        norm = [norm_name(h) for h in t.header]
        if "epoch" not in norm:
            return plan_columns(t.header)
        e = norm.index("epoch")
        plan = Plan(roles={"epoch": e})
        for j, h in enumerate(t.header):
            if j != e:
                (plan.ignored if _UNNAMED.match(h.strip()) else plan.metrics).append(j)
        return plan


@register
class UltralyticsCSVReader(_CSVReader):
    name = "ultralytics-csv"
    description = "Ultralytics YOLO results.csv (space-padded; train/*, val/*, metrics/*, lr/pg* columns)"

    requires = ("epoch",)
    _MARKERS = ("train/box_loss", "train/obj_loss", "train/cls_loss", "train/seg_loss", "metrics/map50(b)",
                "metrics/map_0.5", "metrics/map50-95(b)", "metrics/precision(b)", "metrics/precision")

    def score(self, h: Head, path: Path) -> float:
        low = {x.lower() for x in h.header}
        if low & set(self._MARKERS) or (any(x.startswith("metrics/") for x in low)
                                        and any(x.startswith("train/") for x in low)):
            return 0.97
        return 0.0

    def context_phase(self, column: str) -> str | None:
        return "val" if column.lower().startswith("metrics/") else None

    def plan(self, t: Table) -> Plan:
        plan = plan_columns(t.header)
        plan.metrics, plan.clocks = sorted(plan.metrics + plan.clocks), []  # "time": seconds since the start
        return plan


@register
class GenericCSVReader(_CSVReader):
    name = "csv"
    description = "Any CSV/TSV of metrics with a header: wide (a column per metric) or long (step,name,value)"

    def score(self, h: Head, path: Path) -> float:
        if long_columns(list(h.header)) is not None:
            return 0.55
        ext = Path(path).suffix.lower() in (".csv", ".tsv", ".txt", ".log", ".dat")
        return (0.5 if ext else 0.4) - (0.1 if h.fraction_well_formed() < 0.8 else 0.0)


__all__ = ["LightningCSVReader", "KerasCSVReader", "UltralyticsCSVReader", "GenericCSVReader", "plan_columns",
           "tag_from_filename"]
