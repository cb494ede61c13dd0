"""Checkpoint weights: what the weights themselves say, from one checkpoint (the last, when there are more).

A checkpoint with no log is still evidence. From ``run.params`` (one row per tensor: norm, zeros,
non-finite elements, constant rows) of the last checkpoint's trainable tensors:

- **non-finite**: a tensor with NaN or inf elements (``critical``: the model is broken from there);
- **all zero**: a weight matrix that is exactly 0 everywhere (never initialised, never updated, or
  zeroed by a decay/pruning bug); all-zero biases are listed but do not count (a zero-initialised
  bias is normal);
- **dead units**: rows (output units) of a weight matrix whose values are all equal, e.g. a ReLU unit
  that never fired since initialisation, pushed to a constant by weight decay; embedding tables are
  left out (a padding row is constant by design) and so are tensors with rows of one element;
- **norm outliers**: among the weight matrices of one kind (linear/conv weights, embeddings), one
  whose root-mean-square value is more than ``outlier`` (100x) away from the kind's median, in either
  direction (an output head orders of magnitude smaller than its neighbours is the seed report's
  failure; ``output_head`` names the head itself when it can tell which one it is).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, fmt, is_bias, optional_table
from .dead_parameters import trainable

if TYPE_CHECKING:
    from ..run import Run

_EMBEDDING = re.compile(r"(?:^|[._])(?:emb|embed|embedding|embeddings|wte|wpe|tok_embeddings|word_embeddings|"
                        r"position_embeddings|embed_tokens|shared)(?:[._]|$)", re.I)
_NORM = re.compile(r"(?:^|[._])(?:norm|ln|bn|layernorm|batchnorm|rmsnorm|ln_f|ln_\d+|norm\d+|bn\d+)(?:[._]|$)", re.I)


@dataclass
class CheckpointWeights(Check):
    """Non-finite, all-zero or outlier tensors and dead units in the last checkpoint.

    Thresholds
    ----------
    dead_unit_fraction : float, default 0.1
        A weight matrix with at least this fraction of constant rows is reported as a ``warning``
        (fewer: listed in the ``ok``/``info`` summary).
    outlier : float, default 100
        A tensor whose RMS value is this many times above or below the median RMS of its kind.
    min_group : int, default 4
        Norm outliers need at least this many tensors of the kind to compare with.
    """

    name = "checkpoint_weights"
    reads = "run.params: the last checkpoint's trainable tensors"
    dead_unit_fraction: float = 0.1
    outlier: float = 100.0
    min_group: int = 4


    explains = {
        "checkpoint_norm_outlier": {
            "variance_collapse": (0.5, "a weight matrix orders of magnitude smaller than its neighbours (a tiny head) "
                                       "makes the outputs near-constant"),
        },
        "checkpoint_nonfinite": {"nonfinite_loss": (0.9, "NaN/inf weights make every output NaN")},
    }

    def __call__(self, run: Run) -> list[Finding]:
        p = optional_table(run, "params")
        if p.empty or "param" not in p:
            return self.skip("no checkpoint tensors (run.params)")
        p = trainable(p)
        if "checkpoint" in p and p["checkpoint"].nunique() > 1:
            last = p.sort_values("step", na_position="first", kind="stable")["checkpoint"].iloc[-1]
            p = p[p["checkpoint"] == last]
        p = p[p["kind"].astype(object).ne("buffer")] if "kind" in p else p
        if p.empty:
            return self.skip("no trainable tensors in the checkpoint")
        ck = str(p["checkpoint"].iloc[0]) if "checkpoint" in p else "the checkpoint"
        self._basis = {"series": f"{len(p)} trainable tensors of {ck} (run.params)", "resolution": "checkpoint",
                       "points": 1}
        out, notes = [], []
        bad = p[pd.to_numeric(p["n_nonfinite"], errors="coerce").fillna(0) > 0]
        details = {"checkpoint": ck, "tensors": int(len(p))}
        if len(bad):
            details["nonfinite"] = list(bad["param"].astype(str))
            out.append(self.finding(
                "checkpoint_nonfinite", "critical", f"{len(bad)} tensor(s) in the checkpoint hold NaN/inf",
                summary=f"{len(bad)} of {len(p)} tensors of {ck} have non-finite values ("
                        + ", ".join(f"{r.param}: {int(r.n_nonfinite):,} of {int(r.numel):,}"
                                    for r in bad.head(6).itertuples()) + "). Every output that touches them is "
                        "NaN; the run diverged before this checkpoint was saved.",
                evidence=bad[["param", "shape", "numel", "n_nonfinite"]].reset_index(drop=True), details=details,
                actions=["Find the last checkpoint without them and the first step of NaN loss; see nonfinite_loss "
                         "and exploding_gradients."], score=float(len(bad))))
        matrix = p[[len(tuple(s)) >= 2 if isinstance(s, (tuple, list)) else False for s in p["shape"]]]
        zero = p[(pd.to_numeric(p["frac_zero"], errors="coerce") == 1.0) & (p["numel"] > 1)]
        zero_w = zero[~zero["param"].astype(str).map(is_bias).to_numpy(dtype=bool)]
        if len(zero_w):
            details["all_zero"] = list(zero_w["param"].astype(str))
            out.append(self.finding(
                "checkpoint_zero_tensors", "warning", f"{len(zero_w)} weight tensor(s) are exactly zero",
                summary=f"In {ck}, {', '.join(zero_w['param'].astype(str).head(8))} "
                        f"{'is' if len(zero_w) == 1 else 'are'} 0 everywhere: never "
                        f"initialised or updated, or zeroed (pruning, a bad load, weight decay on a tensor with no "
                        f"gradient). Whatever they feed is constant.",
                evidence=zero_w[["param", "shape", "numel"]].reset_index(drop=True), details=details,
                actions=["Check the tensor is on the loss's graph and in the optimizer; check how the checkpoint "
                         "was written (a state dict saved before loading the weights)."], score=float(len(zero_w))))
        elif len(zero):
            notes.append(f"{len(zero)} bias(es) are exactly zero (normal for a zero-initialised bias)")
        units = self._dead_units(matrix[~matrix["param"].isin(set(zero_w["param"]))])    # all-zero: said above
        if len(units):
            heavy = units[units["fraction"] >= self.dead_unit_fraction]
            details["dead_units"] = units.to_dict(orient="records")
            if len(heavy):
                top = heavy.iloc[0]
                out.append(self.finding(
                    "checkpoint_dead_units", "warning",
                    f"Dead units: {int(top['constant_rows'])} of {int(top['rows'])} rows of {top['param']} are "
                    f"constant",
                    summary="Rows (output units) whose weights are all equal cannot respond to their inputs: "
                            + "; ".join(f"{r.param} {int(r.constant_rows)}/{int(r.rows)} ({r.fraction:.0%})"
                                        for r in heavy.head(6).itertuples())
                            + ". A ReLU unit that never fires gets no gradient and weight decay pulls it to a "
                              "constant (dying ReLU).",
                    evidence=heavy.reset_index(drop=True), details=details, score=float(heavy["fraction"].max()),
                    actions=["Lower the learning rate or use LeakyReLU/GELU; check the initialisation and the input "
                             "scale of these layers."]))
            else:
                notes.append(f"{int(units['constant_rows'].sum())} constant row(s) in {len(units)} matrix(es), "
                             f"under {self.dead_unit_fraction:.0%} of their units")
        outliers = self._outliers(matrix)
        if len(outliers):
            details["outliers"] = outliers.to_dict(orient="records")
            r0 = outliers.iloc[0]
            out.append(self.finding(
                "checkpoint_norm_outlier", "warning",
                f"{r0['param']} is {times_word(r0['factor'])} than the other {r0['kind']} tensors",
                summary="Weight scale (RMS of the values) far from the others of its kind: "
                        + "; ".join(f"{r.param} RMS {fmt(r.rms)} vs median {fmt(r.median_rms)} ({times_word(r.factor)})"
                                    for r in outliers.head(6).itertuples())
                        + ". A tensor orders of magnitude smaller than its neighbours (a tiny output head) makes "
                          "the outputs near-constant; one far larger dominates them.",
                evidence=outliers.reset_index(drop=True), details=details, score=float(abs(np.log10(r0["factor"]))),
                actions=["Check how these tensors were initialised (a head initialised with std 1e-4, a missing "
                         "scaling) and whether weight decay or the learning rate differs for them."]))
        if out:
            return out
        return [self.finding("checkpoint_weights_ok", "ok", f"The weights of {len(p)} tensors look sound",
                             summary=f"No NaN/inf, no all-zero weight matrix, no layer with "
                                     f"{self.dead_unit_fraction:.0%} or more constant units, and no weight matrix "
                                     f"{fmt(self.outlier)}x off the scale of its kind in {ck}"
                                     + (f" ({'; '.join(notes)})" if notes else "") + ".",
                             details=details)]

    def _dead_units(self, m: pd.DataFrame) -> pd.DataFrame:
        cols = ["param", "rows", "constant_rows", "zero_rows", "fraction"]
        if m.empty or "const_rows" not in m:
            return pd.DataFrame(columns=cols)
        m = m[~m["param"].astype(str).str.contains(_EMBEDDING) & pd.to_numeric(m["const_rows"], errors="coerce").gt(0)]
        rows = [{"param": str(r.param), "rows": int(tuple(r.shape)[0]), "constant_rows": int(r.const_rows),
                 "zero_rows": int(r.zero_rows) if r.zero_rows == r.zero_rows else 0,
                 "fraction": float(r.const_rows) / int(tuple(r.shape)[0])} for r in m.itertuples()]
        return pd.DataFrame(rows, columns=cols).sort_values("fraction", ascending=False, kind="stable")

    def _outliers(self, m: pd.DataFrame) -> pd.DataFrame:
        cols = ["param", "kind", "rms", "median_rms", "factor"]
        if m.empty:
            return pd.DataFrame(columns=cols)
        name = m["param"].astype(str)
        kind = np.where(name.str.contains(_EMBEDDING), "embedding",
                        np.where(name.str.contains(_NORM), "norm", "weight"))
        rms = pd.to_numeric(m["norm"], errors="coerce") / np.sqrt(m["numel"].astype("float64"))
        t = pd.DataFrame({"param": name.to_numpy(), "kind": kind, "rms": rms.to_numpy()})
        t = t[(t["kind"] != "norm") & np.isfinite(t["rms"]) & (t["rms"] > 0)]
        rows = []
        for k, grp in t.groupby("kind"):
            if len(grp) < self.min_group:
                continue
            med = float(np.median(grp["rms"]))
            for r in grp.itertuples():
                f = r.rms / med
                if f >= self.outlier or f <= 1 / self.outlier:
                    rows.append({"param": r.param, "kind": k, "rms": r.rms, "median_rms": med, "factor": f})
        df = pd.DataFrame(rows, columns=cols)
        return df.iloc[np.argsort(-np.abs(np.log10(df["factor"].to_numpy(dtype="float64"))))] if len(df) else df


def times_word(f: float) -> str:
    return f"{f:,.0f}x larger" if f >= 1 else f"{1 / f:,.0f}x smaller"

