"""Dead parameters: tensors that never receive gradient or never change.

Evidence, strongest first: a parameter whose logged ``grad_norm`` is 0 (at most
``zero_grad``) at every logged optimizer step; one logged with weights but never a
gradient; one whose ``update_norm`` (weight change) is 0 at every step; across
checkpoints (``run.params``), a tensor whose norm (or digest) is identical in every
checkpoint, or that a checkpoint diff (``run.extra["diff"]``) says never changed.
Parameters are grouped by module (the name without its last component) so that
``attn.key_projection.weight`` and ``.bias`` read as one dead branch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..findings import Finding
from ._base import Check, fmt, head_param, module_of, optional_table, order, table_basis

if TYPE_CHECKING:
    from ..run import Run

_COLUMNS = ["param", "module", "status", "steps_seen", "zero_fraction", "grad_max", "update_max", "source", "reason"]
_DIFF_COLUMNS = ("max_abs_diff", "abs_diff", "diff_norm", "l2_diff", "rel_change", "max_diff", "change")


@dataclass
class DeadParameters(Check):
    """Parameters with zero (or no) gradient at every logged step, or unchanged across checkpoints.

    Thresholds
    ----------
    zero_grad : float, default 1e-12
        A gradient norm at or below this counts as zero. Logs print norms with ~8 decimals, so a
        logged ``0.00000000`` is any norm below 5e-9; SageMaker Debugger's ``AllZero`` rule uses
        exact zeros (threshold 100% of values).
    min_steps : int, default 2
        A parameter must be seen at this many logged steps before it can be called dead.
    unchanged_rtol : float, default 1e-7
        Across checkpoints, norms equal within this relative tolerance count as unchanged (the
        spirit of SageMaker Debugger's ``UnchangedTensor``, which uses ``numpy.allclose`` with
        rtol 1e-5 on whole tensors; a norm is a weaker fingerprint, so the tolerance is tighter).
    critical_fraction : float, default 0.5
        Dead parameters are ``critical`` when they are more than this fraction of all parameters
        seen, or include the output head; otherwise ``warning``.
    intermittent_fraction : float, default 0.5
        A live parameter whose gradient is exactly zero at this fraction of steps or more is listed
        as ``intermittent`` (reported alongside, or as an ``info`` finding on its own).

    Requires
    --------
    ``run.grads`` (``grad_norm``, optionally ``update_norm``) per parameter per step, or
    ``run.params`` with two or more checkpoints (``checkpoint, param, norm`` or a digest column),
    or a ``run.extra["diff"]`` table (``param`` and ``changed`` or a numeric difference).
    """

    name = "dead_parameters"
    reads = "run.grads: per-parameter gradient and update norms per logged step; run.params across checkpoints"
    zero_grad: float = 1e-12
    min_steps: int = 2
    unchanged_rtol: float = 1e-7
    critical_fraction: float = 0.5
    intermittent_fraction: float = 0.5


    explains = {
        "dead_output_head": {
            "variance_collapse": (0.9, "the output head gets no gradient, so the predictions cannot learn to vary"),
            "chance_level_loss": (0.8, "no gradient reaches the outputs"),
            "loss_plateau": (0.8, "no gradient reaches the outputs"),
        },
        "dead_majority": {
            "variance_collapse": (0.9, "most of the parameters get no gradient: what still learns (often little "
                                       "more than the output bias) cannot make the predictions vary"),
            "loss_plateau": (0.8, "most of the model cannot learn, so the loss cannot fall"),
            "chance_level_loss": (0.8, "with most of the model cut off, only a near-constant prediction is learned"),
        },
        "dead_parameters": {
            "variance_collapse": (0.3, "a dead branch removes capacity, but the rest of the model still trains: it "
                                       "explains part of a collapse at most"),
            "loss_plateau": (0.3, "the dead parameters cannot contribute to lowering the loss"),
            "chance_level_loss": (0.3, "part of the model is cut off from the loss"),
        },
    }
    quantity = "Parameters with zero gradient at every step"

    def rule_key(self, finding) -> str:
        """``dead_output_head`` when the head is dead, ``dead_majority`` when more than ``critical_fraction`` is."""
        d = finding.details
        if finding.code == "dead_parameters":
            if d.get("head_dead"):
                return "dead_output_head"
            frac, limit = d.get("fraction"), self.limits(finding).get("critical_fraction", self.critical_fraction)
            if isinstance(frac, (int, float)) and frac > limit:
                return "dead_majority"
        return finding.code

    def healthy_band(self, finding=None) -> str:
        return f"0 (a norm ≤ {fmt(self.limits(finding)['zero_grad'])} counts as zero)"

    def measure(self, d) -> str:
        inter = d.get("intermittent") or []
        return f"{d['n_dead']} of {d['n_params']}" + (f" (+{len(inter)} zero at most steps)" if inter else "")

    def __call__(self, run: Run) -> list[Finding]:
        parts, seen = [], set()
        g = run.grads
        self._basis = table_basis(g, f"per-parameter gradient norms of {g['param'].nunique()} parameters (run.grads)")
        if not g.empty and g["param"].notna().any():
            sc = run.scalars
            logged = sc.loc[(sc["name"] == "grad_norm") & sc["param"].notna(), "param"].astype(str).value_counts()
            parts.append(self._from_grads(g, logged))
            seen |= set(g["param"].dropna().astype(str))
        p = optional_table(run, "params")
        if not p.empty and {"param", "checkpoint"} <= set(p.columns) and p["checkpoint"].nunique() >= 2:
            parts.append(self._from_checkpoints(p))
            if not self._basis:
                self._basis = {"series": f"the norms of {p['param'].nunique()} tensors across checkpoints (run.params)",
                               "resolution": "checkpoint", "points": int(p["checkpoint"].nunique())}
            seen |= set(p["param"].dropna().astype(str))
        d = run.extra.get("diff") if isinstance(getattr(run, "extra", None), dict) else None
        if isinstance(d, pd.DataFrame) and "param" in d.columns and len(d):
            parts.append(self._from_diff(d))
            seen |= set(d["param"].dropna().astype(str))
        if not parts:
            return self.skip("no per-parameter gradients (run.grads) and no checkpoints to compare (run.params)")
        rows = pd.concat([x for x in parts if len(x)], ignore_index=True) if any(len(x) for x in parts) else \
            pd.DataFrame(columns=_COLUMNS)
        n_all = len(seen)
        names = _first_seen_order(g, p, seen)
        if not rows.empty:
            rank = {n: i for i, n in enumerate(names)}
            rows = (rows.assign(_dead=rows["status"] == "dead").sort_values("_dead", ascending=False, kind="stable")
                    .drop_duplicates("param").assign(_o=lambda t: t["param"].map(rank))
                    .sort_values(["_dead", "_o"], ascending=[False, True]).drop(columns=["_dead", "_o"])
                    .reset_index(drop=True))
        dead, inter = rows[rows["status"] == "dead"], rows[rows["status"] == "intermittent"]
        inter_text = ""
        if len(inter):
            zf = inter["zero_fraction"]
            inter_text = (f"{len(inter)} more parameter(s) get exactly zero gradient at {zf.min():.0%}-{zf.max():.0%} "
                          f"of steps ({_modules_text(_modules(inter), 4)}): a path that is cut off for some batches.")
        if dead.empty:
            if inter.empty:
                return [self.finding("parameters_receive_gradient", "ok",
                                     f"All {n_all} parameters receive gradient and change",
                                     summary=f"Every one of the {n_all} parameters logged has a non-zero gradient at "
                                             f"most steps (and changes, where updates or checkpoints show it).",
                                     details={"n_params": n_all, "n_dead": 0})]
            return [self.finding("intermittent_gradients", "info",
                                 f"{len(inter)} parameter(s) get zero gradient at most steps",
                                 summary=inter_text[0].upper() + inter_text[1:], evidence=inter,
                                 details={"n_params": n_all, "n_dead": 0, "intermittent": list(inter["param"])},
                                 actions=["Check what gates these modules (masks, routing, conditional branches): "
                                          "are they meant to be skipped for some batches?"],
                                 score=float(len(inter)) / max(n_all, 1))]
        modules = _modules(dead)
        head = head_param(names)
        head_dead = head is not None and head in set(dead["param"])
        frac = len(dead) / max(n_all, 1)
        severity = "critical" if head_dead or frac > self.critical_fraction else "warning"
        top = dead.iloc[0]
        summary = (f"{len(dead)} of {n_all} parameters ({frac:.0%}) in {len(modules)} module(s) never learn: "
                   f"{_modules_text(modules, 6)}. For example {top['param']}: {top['reason']}."
                   + (f" The output head {head} is among them: nothing reaches the predictions." if head_dead else
                      " The rest of the model trains, so this is a branch cut off from the loss (an output multiplied "
                      "by zero, a detached tensor, an unused module or a frozen layer).")
                   + (" " + inter_text if inter_text else ""))
        actions = [
            "Print the dead tensors' .grad after loss.backward(): None means the module is not on the loss's "
            "graph (unused, or its output detached); zeros mean its output is multiplied by 0 or masked out.",
            "Check that these modules are used in forward() and that their outputs reach the loss "
            "(no .detach(), torch.no_grad(), zero gates or all-masked attention).",
            "If they are frozen on purpose, exclude them from the optimizer (and from weight decay).",
        ]
        if head_dead:
            actions.insert(0, f"Fix the output head {head} first: with no gradient there, the model cannot learn.")
        details = {"n_params": n_all, "n_dead": len(dead), "fraction": frac, "dead": list(dead["param"]),
                   "modules": modules, "head": head, "head_dead": head_dead,
                   "steps": int(dead["steps_seen"].max()), "intermittent": list(inter["param"])}
        return [self.finding("dead_parameters", severity,
                             f"{len(dead)} parameter(s) never receive gradient ({len(modules)} module(s))",
                             summary=summary, evidence=rows, actions=actions, details=details,
                             score=frac + (1.0 if head_dead else 0.0))]

    def _from_grads(self, g: pd.DataFrame, logged: pd.Series) -> pd.DataFrame:
        """``logged``: rows of ``grad_norm`` per parameter in the scalars (a NaN gradient is logged, not missing)."""
        g = g.assign(param=g["param"].astype(str))
        gn = g["grad_norm"].astype("float64").abs()
        g = g.assign(_zero=(gn <= self.zero_grad).where(gn.notna()))
        has_update = "update_norm" in g and g["update_norm"].notna().any()
        agg = g.groupby("param", sort=False).agg(
            steps_seen=("param", "size"), grad_logged=("grad_norm", "count"),
            grad_max=("grad_norm", lambda s: float(np.nanmax(np.abs(s))) if s.notna().any() else np.nan),
            zero_steps=("_zero", lambda s: int(s.fillna(False).astype(bool).sum())),
            update_logged=("update_norm", "count"),
            update_max=("update_norm", lambda s: float(np.nanmax(np.abs(s))) if s.notna().any() else np.nan))
        agg = agg[agg["steps_seen"] >= self.min_steps]
        zero = (agg["grad_logged"] > 0) & (agg["grad_max"] <= self.zero_grad)
        missing = (agg["grad_logged"] == 0) & (agg.index.map(lambda q: logged.get(q, 0)) == 0)
        frozen = has_update & (agg["update_logged"] > 0) & (agg["update_max"] == 0) & ~zero & ~missing
        agg["zero_fraction"] = agg["zero_steps"] / agg["grad_logged"].where(agg["grad_logged"] > 0)
        partly = ~zero & ~missing & ~frozen & (agg["zero_fraction"] >= self.intermittent_fraction)
        # zero from some step to the end, after live gradients: that parameter died (dying_gradients), it is
        # not cut off for some batches
        if partly.any():
            g_ordered = order(g[g["param"].isin(set(agg.index[partly]))])
            for param, grp in g_ordered.groupby("param", sort=False):
                z = grp["_zero"].dropna().astype(bool).to_numpy()
                if len(z) and z[-1] and not z[:len(z) - int(np.argmin(z[::-1]))].any():
                    partly[param] = False
        rows = []
        for param, r in agg[zero | missing | frozen | partly].astype(object).iterrows():
            status = "dead"
            if missing[param]:
                reason = f"no gradient logged at any of {r.steps_seen} steps"
            elif zero[param]:
                reason = (f"grad_norm {'0' if r.grad_max == 0 else '<= ' + fmt(self.zero_grad)} at all "
                          f"{r.grad_logged} logged steps")
                if r.update_logged and r.update_max == 0:
                    reason += "; weights never change"
                elif r.update_logged:
                    reason += f"; weights move only by decay (max change {fmt(r.update_max)})"
            elif frozen[param]:
                reason = f"weights never change in {r.update_logged} logged steps (frozen or not in the optimizer)"
            else:
                status = "intermittent"
                reason = f"grad_norm 0 at {r.zero_steps} of {r.grad_logged} logged steps"
            rows.append({"param": param, "module": module_of(param), "status": status, "steps_seen": int(r.steps_seen),
                         "zero_fraction": r.zero_fraction, "grad_max": r.grad_max, "update_max": r.update_max,
                         "source": "grads", "reason": reason})
        return pd.DataFrame(rows, columns=_COLUMNS)

    def _from_checkpoints(self, p: pd.DataFrame) -> pd.DataFrame:
        p = trainable(p)
        key = next((c for c in ("digest", "sha1", "sha256", "md5", "hash", "checksum") if c in p.columns), None)
        rows = []
        for param, grp in p.groupby(p["param"].astype(str), sort=False):
            n = grp["checkpoint"].nunique()
            if n < 2:
                continue
            if key is not None and grp[key].notna().all():
                same = grp[key].nunique() == 1
            elif "norm" in grp:
                v = pd.to_numeric(grp["norm"], errors="coerce").to_numpy(dtype="float64")
                same = bool(np.isfinite(v).all() and np.allclose(v, v[0], rtol=self.unchanged_rtol, atol=0))
            else:
                continue
            if same:
                how = key if key is not None and grp[key].notna().all() else "norm"
                rows.append({"param": param, "module": module_of(param), "status": "dead", "steps_seen": int(n),
                             "zero_fraction": np.nan, "grad_max": np.nan, "update_max": 0.0, "source": "checkpoints",
                             "reason": f"identical in all {n} checkpoints ({how})"})
        return pd.DataFrame(rows, columns=_COLUMNS)

    def _from_diff(self, d: pd.DataFrame) -> pd.DataFrame:
        """``collapse_nb.diff`` output (one row per parameter per pair of checkpoints): dead when unchanged in
        every pair it could be compared in."""
        d = trainable(d)
        if "changed" in d.columns:
            unchanged = d["changed"].astype("boolean").eq(False).fillna(False)
            known = d["changed"].notna()
        else:
            col = next((c for c in _DIFF_COLUMNS if c in d.columns), None)
            if col is None:
                return pd.DataFrame(columns=_COLUMNS)
            v = pd.to_numeric(d[col], errors="coerce")
            unchanged, known = v.eq(0).fillna(False), v.notna()
        t = pd.DataFrame({"param": d["param"].astype(str).to_numpy(), "u": unchanged.to_numpy(dtype=bool),
                          "k": known.to_numpy(dtype=bool)})
        t = t[t["k"]].groupby("param", sort=False)["u"].agg(["all", "size"])
        return pd.DataFrame([{"param": p, "module": module_of(p), "status": "dead", "steps_seen": int(r["size"]) + 1,
                              "zero_fraction": np.nan, "grad_max": np.nan, "update_max": 0.0, "source": "diff",
                              "reason": f"unchanged in all {int(r['size'])} compared checkpoint pair(s)"}
                             for p, r in t[t["all"]].iterrows()], columns=_COLUMNS)


def trainable(t: pd.DataFrame) -> pd.DataFrame:
    """Checkpoint rows that can be trained parameters: the first ``state`` (not an EMA copy), not buffers,
    floating-point dtypes."""
    if "state" in t.columns and t["state"].notna().any():
        t = t[t["state"] == t["state"].dropna().iloc[0]]
    if "kind" in t.columns:
        t = t[t["kind"].astype(object).ne("buffer")]
    if "dtype" in t.columns:
        t = t[t["dtype"].isna() | t["dtype"].astype(str).str.contains("float|bf16|half|double", regex=True)]
    return t


def _first_seen_order(g: pd.DataFrame, p: pd.DataFrame, seen: set[str]) -> list[str]:
    names: list[str] = []
    for t in (g, p):
        if not t.empty and "param" in t:
            names += [str(x) for x in pd.unique(t["param"].dropna().astype(str))]
    names += sorted(seen)
    return list(dict.fromkeys(names))


def _modules(rows: pd.DataFrame) -> dict[str, list[str]]:
    return {m: list(grp["param"]) for m, grp in rows.groupby("module", sort=False)}


def _modules_text(modules: dict[str, list[str]], limit: int) -> str:
    text = "; ".join(f"{m}.* ({len(ps)})" if len(ps) > 1 else ps[0] for m, ps in list(modules.items())[:limit])
    return text + (f" and {len(modules) - limit} more modules" if len(modules) > limit else "")
