"""What every check shares: the ``Check`` base class and small helpers over a run's tables.

A check is a dataclass whose fields are its thresholds (documented defaults);
``check(run)`` returns a list of :class:`~collapse_nb.findings.Finding`. The
helpers here only read the run's public tables (``scalars``, ``epochs``,
``outputs``, ``grads``, ``params``, ``config``) and never change them.

The time axis (order, segments, one file per curve, the densest honest series, ``where``) is
:mod:`collapse_nb.timeaxis`, and numbers in sentences are :mod:`collapse_nb.wording`; both are
re-exported here for the checks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from ..findings import Finding, not_checked
from ..timeaxis import (LOSS_COLUMNS, add_where, continues_each_other, curve, curve_basis,  # noqa: F401
                        finite, loss_rows, main_segment, missing_loss, order, step_is_global, table_basis,
                        where)
from ..wording import fmt, one_in, times  # noqa: F401

if TYPE_CHECKING:
    from ..run import Run

#: Name words of an output layer (used to tell the head among the parameters).
HEAD_WORDS = re.compile(r"(^|[._])(projection|proj|head|heads|output|out|fc|classifier|lm_head|logits|out_proj|"
                        r"final|readout|predictor|regressor|linear_out)([._]|$)", re.I)
NORM_WORDS = re.compile(r"(^|[._])(norm|ln|bn|layernorm|batchnorm|rmsnorm|ln_f|ln_\d+|norm\d+|bn\d+|scale|gamma|"
                        r"beta|embed_positions|pos_emb\w*|position\w*)([._]|$)", re.I)


@dataclass
class Check:
    """Base of all checks: ``name`` (class attribute), thresholds as dataclass fields.

    What is known about a check lives on it (the diagnosis and the report read it from here):

    - ``symptoms``: the codes it emits that are failure symptoms, with their weight in the observed
      failure (1, or less for a symptom that spoils no prediction);
    - ``explains``: per rule key (a code, or a narrower rule :meth:`rule_key` picks from a finding's
      details), the symptoms that rule explains, each with a weight (0-1) and the reason in words;
    - ``quantity``, :meth:`healthy_band` and :meth:`measure`: the row of the report's "healthy vs this
      run" table: what is measured, its healthy band from the thresholds, and the figure a finding's
      details give.
    """

    name: ClassVar[str] = ""
    #: what the check reads, in words (loss checks say their series in each finding's details instead)
    reads: ClassVar[str] = ""
    symptoms: ClassVar[dict[str, float]] = {}
    #: each symptom code in words, for the verdict ("the collapsed predictions")
    symptom_words: ClassVar[dict[str, str]] = {}
    explains: ClassVar[dict[str, dict[str, tuple[float, str]]]] = {}
    quantity: ClassVar[str] = ""
    #: ``diagnose`` gives a check a distributed run's one-rank view (:attr:`Run.one_rank`) unless this is set:
    #: a check that compares the ranks reads every rank's rows
    all_ranks: ClassVar[bool] = False

    def __call__(self, run: Run) -> list[Finding]:  # pragma: no cover - every check overrides it
        raise NotImplementedError

    def reset_basis(self) -> None:
        """Forget what the last call read (``diagnose`` calls it before each call; a check that reads one series
        sets ``_basis`` to it in ``__call__``, and :meth:`finding` adds it to the details)."""
        self._basis: dict[str, Any] | None = None

    def rule_key(self, finding: Finding) -> str:
        """The ``explains`` entry for ``finding``: its code, unless the check narrows it."""
        return finding.code

    def healthy_band(self, finding: Finding | None = None) -> str:
        """The healthy band of :attr:`quantity`, in words, from the thresholds (the finding's, else the defaults)."""
        return ""

    def measure(self, details: dict[str, Any]) -> str:
        """This run's value of :attr:`quantity`, from a finding's details."""
        return ""

    def verdict_opening(self, finding: Finding) -> str:
        """A sentence the report's verdict opens with, for a finding about the run as a whole (the coverage
        check's "no training objective" and "stopped early"); "" for the others."""
        return ""

    def not_assessed(self, finding: Finding) -> bool:
        """Whether ``finding`` means the run's training could not be assessed at all (no objective)."""
        return False

    def self_explanation(self, finding: Finding) -> str:
        """For a symptom that explains itself (``val_below_train`` by its top-ranked cause): the verdict's
        sentence about its cause; "" for the others."""
        return ""

    def limits(self, finding: Finding | None = None) -> dict[str, Any]:
        """The thresholds the finding was made with (its details), else this check's."""
        th = dict((finding.details.get("thresholds") or {})) if finding is not None else {}
        return th or self.thresholds()

    def thresholds(self) -> dict[str, Any]:
        """The check's threshold fields and their current values."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def finding(self, code: str, severity: str, title: str, **kw: Any) -> Finding:
        kw.setdefault("details", {})
        kw["details"].setdefault("thresholds", self.thresholds())
        if self.reads:
            kw["details"].setdefault("reads", self.reads)
        for k, v in (getattr(self, "_basis", None) or {}).items():     # what this call read (set in __call__)
            kw["details"].setdefault(k, v)
        return Finding(code=code, severity=severity, title=title, check=self.name, **kw)

    def skip(self, missing: str, applies: bool = True) -> list[Finding]:
        """The ``not_checked`` finding: the data is missing, or (``applies=False``) the check does not apply."""
        return [not_checked(self.name, missing, applies=applies)]


# ----------------------------------------------------------------------------- parameter names

def head_param(names: list[str]) -> str | None:
    """The output head's weight among parameter names in logging order, or ``None``.

    The weight matrices whose module is named like a head (``projection``, ``head``, ``fc``, ``output``,
    ``classifier``, ``lm_head``...); of those, the least nested (a model's head is usually a top-level
    module), and of equally nested ones the last logged.
    """
    cands = [(n.count("."), -i, n) for i, n in enumerate(names)
             if n.endswith("weight") and is_weight_matrix(n) and _head_word_outside_blocks(n.rsplit(".", 1)[0])]
    return min(cands)[2] if cands else None


def _head_word_outside_blocks(module: str) -> bool:
    """A head word in ``module`` that is not inside a repeated block: ``transformer.h.0.mlp.c_proj`` and
    ``layers.3.attn.out_proj`` are projections of layer 0 and 3, not the model's head; ``heads.0`` is."""
    for m in HEAD_WORDS.finditer(module):
        before = module[:m.start()].split(".")
        if not any(p.isdigit() for p in before):
            return True
    return False


def module_of(param: str) -> str:
    """``encoder.layers.0.attn.key.weight`` -> ``encoder.layers.0.attn.key``."""
    return param.rsplit(".", 1)[0] if "." in param else param


def is_bias(param: str) -> bool:
    return param.endswith("bias") or param.endswith(".b")


def is_weight_matrix(param: str) -> bool:
    """A weight that is (most likely) a matrix: not a bias, not a normalisation gain, not a position table."""
    return not is_bias(param) and not NORM_WORDS.search(param)


# ----------------------------------------------------------------------------- train and validation

def tail(values: np.ndarray, frac: float, minimum: int = 1) -> np.ndarray:
    """The last ``frac`` of ``values`` (at least ``minimum`` of them)."""
    n = len(values)
    k = min(n, max(minimum, int(math.ceil(n * frac))))
    return values[n - k:]


def aligned_train_val(run: Run, name: str = "loss", eval_set: str | None = None,
                      val_name: str | None = None, val_phase: str = "val") -> pd.DataFrame:
    """Train and val values at the same time points: ``x, where, train, val`` (+ epoch, step).

    The train side is the train objective (``name="loss"``) or metric ``name``; the val side is the
    validation series ``val_name`` (default: the same name) of ``eval_set``. Per epoch when both
    sides have epoch-level values at common epochs; else per step, each val point paired with the
    nearest train point at or before it. ``attrs["series"]`` names both sides.
    """
    cols = ["x", "epoch", "step", "train", "val", "where"]
    val_name = val_name or name
    tr_e = curve(run, "train", name, level="epoch")
    va_e = curve(run, val_phase, val_name, level="epoch", eval_set=eval_set)
    label = {"train_series": tr_e.attrs.get("series", ""), "val_series": va_e.attrs.get("series", ""),
             "missing": va_e.attrs.get("missing") or tr_e.attrs.get("missing") or ""}
    whole = all(len(c) and c["epoch"].notna().any() and
                bool((pd.to_numeric(c["epoch"], errors="coerce").dropna() % 1 == 0).all()) for c in (tr_e, va_e))
    if whole:           # fractional epochs (HF's 0.91) are places of steps: pair those by step
        m = va_e[["epoch", "step", "value"]].rename(columns={"value": "val"}).merge(
            tr_e[["epoch", "value"]].rename(columns={"value": "train"}), on="epoch", how="inner")
        if len(m):
            m["x"] = m["epoch"].astype("float64")
            m["where"] = [f"epoch {fmt(e)}" for e in m["epoch"]]
            out = m[cols].sort_values("x").reset_index(drop=True)
            out.attrs.update(label, resolution="epoch")
            return out
    tr = curve(run, "train", name, level="step")
    va = curve(run, val_phase, val_name, level="step", eval_set=eval_set)
    if tr.empty or va.empty or tr["step"].isna().any() or va["step"].isna().any():
        out = pd.DataFrame(columns=cols)
        out.attrs.update(label)
        return out
    t = tr[["step", "value"]].rename(columns={"value": "train"}).astype({"step": "float64"}).sort_values("step")
    v = va[["step", "value", "epoch"]].rename(columns={"value": "val"}).astype({"step": "float64"}).sort_values("step")
    m = pd.merge_asof(v, t, on="step", direction="backward").dropna(subset=["train"])
    m["x"] = m["step"]
    m["where"] = [f"step {int(s)}" for s in m["step"]]
    out = m[cols].reset_index(drop=True)
    out.attrs.update(label, resolution="step")
    return out


def validation_series(run: Run) -> list[dict[str, Any]]:
    """The validation series a train/val check can compare: one per eval set's loss, else eval metrics.

    Each is ``{"eval_set", "val_name", "direction", "label"}``: the set's objective (``val_name="loss"``,
    direction ``down``) for every eval set that logs a loss; for a set without one, its eval metrics
    that have a known direction (accuracy ``up``, WER ``down``...), most points first.
    """
    from ..series import eval_sets
    cat = run.series if hasattr(run, "series") else pd.DataFrame()
    out = []
    for es in eval_sets(cat):
        if run.objective("val", eval_set=es).found:
            out.append({"eval_set": es, "val_name": "loss", "direction": "down", "phase": "val",
                        "label": "validation loss" + (f" on '{es}'" if es else "")})
    if out or cat.empty:
        return out
    for phase in ("val", "test"):           # a test metric logged every epoch is the only validation some runs have
        metrics = cat[(cat["phase"] == phase) & (cat["role"] == "eval_metric") & cat["direction"].notna()]
        for r in metrics.sort_values("points", ascending=False, kind="stable").itertuples():
            out.append({"eval_set": None, "val_name": str(r.name), "direction": str(r.direction), "phase": phase,
                        "label": f"{'validation' if phase == 'val' else 'test'} {r.name}"})
        if out:
            return out
    return out


def config_number(run: Run, key: str) -> float | None:
    """A numeric canonical config value, or ``None``."""
    v = run.config.get(key) if hasattr(run, "config") else None
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def optional_table(run: Run, name: str) -> pd.DataFrame:
    """``run.params`` / ``run.optimizer`` / ... or an empty frame when the run has no such table."""
    try:
        t = getattr(run, name)
    except Exception:       # noqa: BLE001 - an optional table being built elsewhere must not break a check
        return pd.DataFrame()
    return t if isinstance(t, pd.DataFrame) else pd.DataFrame()
