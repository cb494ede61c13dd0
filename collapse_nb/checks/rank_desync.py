"""Rank desync: the replicas of a data-parallel run that no longer agree where they must.

Data-parallel ranks hold copies of one model. After the gradient all-reduce every rank holds the same
averaged gradient, applies the same update, and so logs the same global gradient norm, weight norms,
update norm, loss scale and learning rate, step for step; their checkpoints hold the same tensors. The
loss each rank logs is usually its *local* loss, computed on its own batches: it differs from rank to
rank by batch noise and must not be compared like the others. This check reads every rank's rows
(``all_ranks``) and looks at three things:

- **values that must agree** (a series on which the ranks agree at ``sync_share`` of the first
  ``baseline_frac`` of its shared steps: grad/weight/update norms, total or per parameter, loss scale,
  lr, and a loss that is all-reduced before it is logged): a rank more than ``agree_rtol`` away from the
  ranks' median at ``min_steps`` or more steps has left them: ``rank_desync``, critical when it stays
  apart (at ``persist_share`` or more of the steps from its first disagreement on), else a warning. A
  series the ranks never agreed on is a per-rank value (a shard's norm) and is not judged so;
- **the local loss** (and a total gradient norm the ranks compute apart): each rank's distance from the
  ranks' median, less the offset it had over the first ``baseline_frac`` of the steps (a harder data
  shard is an offset, not a drift), smoothed over ``window`` steps: a rank whose smoothed drift exceeds
  ``z`` times the noise (the robust sd of those distances early on) and ``rel_floor`` of the loss level,
  for ``window`` steps in a row (or ``persist_share`` of the rest of the run), drifts away:
  ``rank_loss_drift`` (warning), from where it left the noise band;
- **checkpoints** of several ranks (files or folders named by rank: ``rank_1/model.pt``,
  ``model_rank1.pt``): the same tensor's norm in the ranks' copies of one checkpoint, more than
  ``param_rtol`` apart: ``rank_desync`` (critical), naming the tensors. Copies holding tensors of
  different sizes are shards (ZeRO, FSDP), not replicas, and are not compared.

Healthy band: after the all-reduce the replicas are bitwise identical (relative differences 0, well
within ``agree_rtol`` 1e-3 and ``param_rtol`` 1e-6); local losses scatter around the median by batch
noise with an offset per rank that does not grow. With two ranks a departure cannot be pinned on one of
them: both are named. A run with one rank (or none said) is not applicable.

Sources: PyTorch DDP design notes (gradients all-reduced in backward; parameters broadcast from rank 0
at construction, so replicas stay identical); the usual desync causes in practice: a rank that loaded
another checkpoint on resume, a seed that differs per rank before the broadcast, an optimizer step or
skip decided on a rank-local value (a non-finite check that is not all-reduced).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..findings import Finding
from ..ranks import describe, ranks
from ._base import Check, fmt, optional_table
from ._rank_compare import compare_checkpoints, compare_local, compare_synced, is_synced, rank_matrices

if TYPE_CHECKING:
    from ..run import Run

#: Values every replica holds after the all-reduce (without a parameter: the global one).
SYNCED = frozenset({"grad_norm", "weight_norm", "update_norm", "loss_scale", "lr"})
#: ... and per parameter (or param group).
SYNCED_PER_PARAM = frozenset({"grad_norm", "weight_norm", "update_norm", "lr"})


@dataclass
class RankDesync(Check):
    """Ranks of a distributed run that disagree where they must agree (desynchronised replicas).

    Thresholds
    ----------
    agree_rtol : float, default 1e-3
        A rank further than this (relative) from the ranks' median of a value that must agree disagrees.
    param_rtol : float, default 1e-6
        The same for one tensor's norm in the ranks' copies of a checkpoint.
    min_steps : int, default 3
        Fewer disagreeing steps than this are not reported.
    persist_share : float, default 0.5
        Critical (and, for the local loss, persistent) when the rank is off at this share of the steps from
        its first departure on.
    sync_share : float, default 0.9
        A series the ranks agree on at this share of its first ``baseline_frac`` of steps is one that must agree.
    baseline_frac : float, default 0.2
        The early part of a series: what "agreeing" and a rank's own offset and noise are taken from.
    window : int, default 20
        Steps the local-loss drift is smoothed over (centred rolling median), and the run of steps it must last.
    z : float, default 4.0
        A local-loss drift beyond this many noise sds ...
    rel_floor : float, default 0.05
        ... and beyond this fraction of the loss level.
    min_points : int, default 40
        Shared steps a local loss needs to be compared.
    """

    name = "rank_desync"
    reads = "every rank's gradient/weight norms, loss scale, lr and loss, and the ranks' checkpoints"
    all_ranks = True
    agree_rtol: float = 1e-3
    param_rtol: float = 1e-6
    min_steps: int = 3
    persist_share: float = 0.5
    sync_share: float = 0.9
    baseline_frac: float = 0.2
    window: int = 20
    z: float = 4.0
    rel_floor: float = 0.05
    min_points: int = 40

    symptoms = {"rank_desync": 1.0, "rank_loss_drift": 0.5}
    symptom_words = {"rank_desync": "the desynchronised replicas", "rank_loss_drift": "one rank's drifting loss"}
    explains = {
        "rank_desync": {
            "rank_loss_drift": (0.9, "a replica whose weights differ computes another loss on its batches"),
            "loss_divergence": (0.4, "replicas that hold different weights average gradients of different models"),
        },
    }
    quantity = "Agreement between ranks"

    def healthy_band(self, finding=None) -> str:
        t = self.limits(finding)
        return (f"all-reduced values within {fmt(t['agree_rtol'])} (relative) of the ranks' median, checkpoints "
                f"within {fmt(t['param_rtol'])}; local losses off the median by noise only")

    def measure(self, d) -> str:
        parts = []
        if d.get("max_rel_diff") is not None:
            parts.append(f"largest relative difference {fmt(d['max_rel_diff'])}")
        if d.get("drift") is not None:
            parts.append(f"loss drift {fmt(d['drift'])} (noise {fmt(d.get('noise'))})")
        return "; ".join(parts) or "ranks agree"

    def __call__(self, run: Run) -> list[Finding]:
        s = run.scalars
        logged = ranks(s)
        ck = compare_checkpoints(optional_table(run, "params"), self.param_rtol)
        if len(logged) < 2 and not ck["checkpoints"]:
            what = f"only {describe(s)} in the logs" if logged else "no rank in the logs or file names"
            shard = (f"; the checkpoints {', '.join(ck['sharded'][:3])} are shards, not replicas"
                     if ck["sharded"] else "")
            return self.skip(f"{what}: nothing to compare{shard}", applies=False)
        cat = run.series if hasattr(run, "series") else pd.DataFrame()
        losses = {"loss"}
        if len(cat):
            here = cat[cat["role"].isin(["objective", "component"]) & (cat["phase"].isna() | (cat["phase"] == "train"))]
            losses |= set(here["name"].astype(str))
        mats = rank_matrices(s, set(SYNCED) | losses, set(SYNCED_PER_PARAM))
        synced = {k: m for k, m in mats.items()
                  if is_synced(m["values"], self.agree_rtol, self.baseline_frac, self.sync_share)}
        local = {k: m for k, m in mats.items() if k not in synced and (m["name"] in losses or k == "grad_norm")
                 and len(m["values"]) >= self.min_points}
        desync = [{"series": k, **r} for k, m in synced.items()
                  for r in compare_synced(m, self.agree_rtol, self.min_steps)]
        drift: list[dict[str, Any]] = []
        noise: dict[str, float] = {}
        for k, m in local.items():
            found, figures = compare_local(m, self.window, self.z, self.rel_floor, self.baseline_frac,
                                           self.persist_share)
            noise[k] = figures["noise"]
            drift.extend({"series": k, "noise": figures["noise"], **r} for r in found)
        details = {"ranks": logged or ck["ranks"], "synced_series": sorted(synced), "local_series": sorted(local),
                   "checkpoints_compared": ck["checkpoints"], "tensors_compared": ck["tensors"],
                   "sharded_checkpoints": ck["sharded"]}
        if not mats and not ck["checkpoints"]:
            return self.skip(f"{describe(s)} are in the logs, but no gradient/weight norm, loss scale, lr or loss is "
                             f"logged by two of them at the same steps, and no checkpoint has copies from two ranks")
        out = []
        if desync or len(ck["differ"]):
            out.append(self._desync(desync, ck, details))
        if drift:
            out.append(self._drift(drift, synced, ck, details))
        if not out:
            out.append(self._agree(synced, local, noise, ck, details))
        return out

    # ------------------------------------------------------------------ findings

    def _desync(self, desync: list[dict], ck: dict, details: dict) -> Finding:
        differ = ck["differ"]
        parts, rows, critical = [], [], bool(len(differ))
        if desync:
            ev = pd.DataFrame(desync)
            first = ev.sort_values(["first", "rank"]).iloc[0]
            series = first["series"]
            who = sorted(ev.loc[ev["series"] == series, "rank"].tolist())
            n_ranks = len(details["ranks"])
            critical |= bool((ev["share_after"] >= self.persist_share).any())
            whom = _ranks_words(who, n_ranks)
            parts.append(f"{whom} {'leave' if len(who) > 1 else 'leaves'} the other ranks on {series} at "
                         f"{first['first_where']}: {fmt(first['value'])} against the ranks' median "
                         f"{fmt(first['median'])}, and {'stay' if len(who) > 1 else 'stays'} off it at "
                         f"{first['share_after']:.0%} of the steps since ({int(first['steps'])} steps); values "
                         f"that every replica holds after the all-reduce")
            others = sorted(set(ev["series"]) - {series})
            if others:
                parts.append(f"also off: {', '.join(others[:6])}{' ...' if len(others) > 6 else ''}")
            rows = ev[["series", "rank", "first_where", "steps", "share_after", "max_rel", "value", "median"]].rename(
                columns={"first_where": "from"})
            details.update(max_rel_diff=float(ev["max_rel"].replace(float("inf"), float("nan")).max()),
                           first_where=first["first_where"], first_series=series, desync_ranks=who)
            title = f"{_first_up(whom)} desynchronised: {series} departs from the other ranks at {first['first_where']}"
        if len(differ):
            top = differ.iloc[0]
            n_par = differ["param"].nunique()
            parts.append(f"the ranks' copies of checkpoint {top['checkpoint']} differ in {n_par} of "
                         f"{ck['tensors']} tensor(s) compared: {', '.join(differ['param'].unique()[:5].tolist())} "
                         f"(largest: {top['param']}, norm {fmt(top['norm'], 6)} on rank {int(top['rank'])} against "
                         f"{fmt(top['reference'], 6)})")
            details.update(differing_params=differ["param"].unique().tolist()[:50],
                           max_rel_diff=max(details.get("max_rel_diff") or 0.0, float(differ["rel_diff"].max())))
            if not desync:
                who = sorted(differ["rank"].unique().tolist())
                title = (f"{_first_up(_ranks_words(who, len(details['ranks'])))}' checkpoint differs: "
                         f"{top['param']} is not the same tensor on every rank")
            ck_rows = differ.rename(columns={"param": "series", "checkpoint": "from"})[
                ["series", "rank", "from", "norm", "reference", "rel_diff"]]
            rows = pd.concat([rows, ck_rows], ignore_index=True) if len(rows) else ck_rows
        summary = (_first_up("; ".join(parts)) + ". Replicas of a data-parallel model hold the same weights and, "
                   "after the "
                   "all-reduce, the same gradients: a rank that differs trains another model, and the averaged "
                   "gradient fits none of them." + _of_two(who, len(details["ranks"])))
        return self.finding("rank_desync", "critical" if critical else "warning", title, summary=summary,
                            evidence=rows, details=details, score=float(details.get("max_rel_diff") or 0.0),
                            actions=[
                                "Compare the ranks' weights directly (a norm or checksum of every parameter per rank): "
                                "a replica that differs was not broadcast from rank 0 (a rank that loaded another "
                                "checkpoint on resume, a seed that differs before DDP wraps the model) or skipped an "
                                "update the others made.",
                                "Make every rank take the same decisions: all-reduce the overflow/skip flag, the loss "
                                "scale and any early-stop or clipping condition; never branch on a rank-local value "
                                "before an optimizer step.",
                                "Look for parameters changed outside the all-reduced gradient: in-place edits on one "
                                "rank, buffers with broadcast_buffers=False, a branch taken on some ranks only "
                                "(find_unused_parameters)."])

    def _drift(self, drift: list[dict], synced: dict, ck: dict, details: dict) -> Finding:
        ev = pd.DataFrame(drift)
        top = ev.iloc[(ev["drift"].abs() / ev["noise"].where(ev["noise"] > 0, 1e-12)).argmax()]
        series = top["series"]
        who = sorted(ev.loc[ev["series"] == series, "rank"].tolist())
        whom = _ranks_words(who, len(details["ranks"]))
        side = "above" if top["drift"] > 0 else "below"
        weights = [k for k in synced if k.startswith("weight_norm")]
        tail = (" The weight norms of the ranks still agree, so the replicas are in step: look at that rank's data "
                "(its shard) or its hardware." if weights and ck["differ"].empty else "")
        summary = (f"{_first_up(whom)}'s {series} drifts away from the other ranks' from {top['first_where']}: by "
                   f"{top['drift_where']} its smoothed distance from the ranks' median has moved "
                   f"{fmt(abs(top['drift']))} "
                   f"{side} the offset it had early (noise {fmt(top['noise'])}, loss level {fmt(top['level'])}), "
                   f"off at "
                   f"{top['share_after']:.0%} of the steps since. Each rank's local loss differs by batch noise; one "
                   f"that moves away and stays away trains on different data or with different weights.{tail}"
                   f"{_of_two(who, len(details['ranks']))}")
        details.update(drift=float(top["drift"]), noise=float(top["noise"]), drift_ranks=who,
                       drift_from=top["first_where"], drift_series=series)
        rows = ev[["series", "rank", "first_where", "steps", "share_after", "drift", "noise", "level"]].rename(
            columns={"first_where": "from"})
        return self.finding("rank_loss_drift", "warning",
                            f"{_first_up(whom)}'s {series} drifts from the other ranks' from {top['first_where']}",
                            summary=summary, evidence=rows, details=details,
                            score=float(abs(top["drift"]) / max(top["noise"], 1e-12)),
                            actions=[f"Look at {whom}'s data: its shard of the data set (a corrupt file, another "
                                     "preprocessing, a sampler that repeats one batch) and its device (a faulty GPU "
                                     "shows as one rank's loss departing).",
                                     "Compare the ranks' weights (per-rank checkpoints or weight norms): if they "
                                     "differ, "
                                     "the replicas are desynchronised (see rank_desync)."])

    def _agree(self, synced: dict, local: dict, noise: dict, ck: dict, details: dict) -> Finding:
        parts = []
        if synced:
            parts.append(f"{', '.join(sorted(synced)[:6])}{' ...' if len(synced) > 6 else ''} agree across the ranks "
                         f"(within {fmt(self.agree_rtol)}) at every shared step")
        if local:
            parts.append(f"the local values of {', '.join(sorted(local))} differ by batch noise only "
                         f"(no rank drifts beyond "
                         f"{fmt(self.z)} noise sds and {self.rel_floor:.0%} of the level)")
        if ck["checkpoints"]:
            parts.append(f"{ck['checkpoints']} checkpoint(s) hold the same {ck['tensors']} tensor norms on every rank")
        n = len(details["ranks"])
        return self.finding("ranks_agree", "ok", f"The {n} ranks agree",
                            summary=f"{describe_ranks_list(details['ranks'])}: " + "; ".join(parts) + ".",
                            details={**details, "max_rel_diff": 0.0})


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ranks_words(who: list[int], n_ranks: int) -> str:
    if len(who) == 1:
        return f"rank {who[0]}"
    if len(who) == 2:
        return f"ranks {who[0]} and {who[1]}"
    return "ranks " + ", ".join(map(str, who))


def _of_two(who: list[int], n_ranks: int) -> str:
    return " With two ranks either may be the one that departed." if len(who) == 2 and n_ranks == 2 else ""


def describe_ranks_list(rs: list[int]) -> str:
    return f"{len(rs)} ranks ({', '.join(map(str, rs[:8]))}{', ...' if len(rs) > 8 else ''})"
