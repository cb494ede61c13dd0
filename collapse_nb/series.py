"""What each logged series *is*: its role, its network, its eval set, its direction; and the objective.

Real runs do not log one series called ``loss``. They log loss components without a total
(Ultralytics ``box_loss, cls_loss, dfl_loss``), a total beside its components (detectron2
``total_loss``, DETR ``loss``), one loss per network (GANs: ``gen/loss, dis/loss``, pix2pix
``G_GAN, G_L1, D_real, D_fake``), one validation loss per eval set (HF ``eval_<set>_loss``), and eval
metrics that go up (accuracy, mAP, BLEU) or down (WER, perplexity). :func:`catalogue` names the role
of every series from its words, and :func:`objective` gives the checks a defined training objective:

- the logged total (canonical ``loss``) when there is one;
- else the one loss-like series, when there is one (Megatron's ``lm loss``);
- else the sum of the components at each time point where all of them are logged (said so in
  :attr:`Objective.description`).

A run whose loss series belong to several networks has no single objective: :func:`networks` gives
one per network, and the loss checks say why they did not run (the GAN check reads them).

Roles (``ROLES``): ``objective`` (the total), ``component`` (a term of the total), ``auxiliary`` (a
form of the loss that is not a term of it: unscaled copies, running means, the scaled loss for
backward), ``summary`` (a run-level value such as HF's final run-average ``train_loss`` or a
best-so-far value, never a point on a curve), ``eval_metric`` (with its ``direction``: ``up`` or
``down``), ``lr``, ``grad_norm`` (global gradient/weight/update norms and the AMP loss scale),
``throughput`` (time, speed, memory, counters) and ``other``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .ranks import one_rank

ROLES = ("objective", "component", "auxiliary", "summary", "eval_metric", "lr", "grad_norm", "throughput", "other")
NETWORKS = ("generator", "discriminator")

_TOKEN = re.compile(r"[a-z0-9]+")
#: Words of a raw name that attribute a series to a GAN's network.
NETWORK_WORDS = {
    "generator": {"gen", "generator", "g", "netg", "errg", "gan_g", "lossg"},
    "discriminator": {"dis", "disc", "discriminator", "d", "netd", "errd", "critic", "lossd"},
}
#: Words of a per-network series that make it a loss term (``D_real``, ``G_GAN``, ``errD``, ``G_L1``).
_NETWORK_LOSS_WORDS = {"loss", "err", "errg", "errd", "gan", "l1", "l2", "real", "fake", "adv", "adversarial", "gp",
                       "feat", "vgg", "perceptual", "cycle", "idt", "identity", "lossg", "lossd"}
#: A loss-like name with one of these words is a setting or a by-product, not a loss value.
_NOT_A_LOSS = {"scale", "scaler", "ppl", "perplexity", "weight", "weights", "multiplier", "coef", "coeff",
               "lambda", "fn", "type", "factor", "best", "min", "improvement", "patience", "delta"}
_AUXILIARY_WORDS = {"unscaled", "raw", "running", "avg", "average", "mean", "ema", "smoothed", "accumulated",
                    "scaled", "so", "far"}
_SUMMARY_WORDS = {"best", "final", "overall", "total_avg"}
_THROUGHPUT = re.compile(
    r"(^|_)(time|data_time|eta|eta_seconds|elapsed|elapsed_time|runtime|duration|seconds|secs|ms|iter_time|"
    r"throughput|samples_per_second|steps_per_second|tokens_per_second|it_s|fps|speed|memory|mem|gpu_mem|"
    r"max_mem|allocated|reserved|flos|total_flos|gflops|tokens|num_tokens|consumed_samples|consumed_tokens|"
    r"samples|epoch|step|iter|iteration|global_step|batch_size|gen_len|num_input_tokens_seen)(_|$)")
_GRAD_NORM = {"grad_norm", "weight_norm", "update_norm", "update_ratio", "loss_scale", "weight_norm_before"}
_OUTPUT_STATS = re.compile(r"^(pred|target)_(mean|std|var|min|max)$")

#: Eval metrics and their direction (a canonical name's words; longest match wins).
_UP = {"accuracy", "acc", "map", "map50", "map50_95", "ap", "ap50", "ap75", "aps", "apm", "apl", "f1", "f1_score",
       "fscore", "bleu", "rouge", "rouge_1", "rouge_2", "rouge_l", "rougel", "rouge1", "rouge2", "auc", "roc_auc",
       "auroc", "precision", "recall", "iou", "miou", "dice", "psnr", "ssim", "r2", "mcc", "top1", "top5",
       "accuracy_top5", "meteor", "cider", "exact_match", "em", "kappa", "coco_eval_bbox", "bbox_map", "segm_map",
       "ndcg", "hit", "hits", "mrr", "spearman", "pearson", "win_rate", "reward", "rewards"}
_DOWN = {"wer", "cer", "perplexity", "ppl", "error", "err", "error_rate", "class_error", "mae", "rmse", "mse", "fid",
         "nll", "ece", "brier", "cardinality_error", "ter", "distance", "eer", "top1_err", "top5_err"}
#: Down-metric words too short or common to trust inside a longer name (``samples_per_second``).
_WHOLE_NAME_ONLY = {"per", "ter", "em", "hit", "err"}


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(str(text).lower())


def network_of(raw_name: str) -> str | None:
    """``generator`` / ``discriminator`` when the raw name's words say so (``gen/loss``, ``D_real``, ``errG``)."""
    raw = str(raw_name)
    toks = set(_tokens(raw))
    # "loss_G", "G_GAN": a lone capital G/D as a word is the network; lower-case "d"/"g" alone is too weak
    caps = set(re.findall(r"(?:^|[^A-Za-z0-9])([GD])(?=$|[^A-Za-z0-9])", raw))     # "loss_G", not "loss_3D"
    for net, words in NETWORK_WORDS.items():
        strong = (words - {"g", "d"}) & toks
        letter = net[0].upper() in caps
        if strong or letter:
            other = next(n for n in NETWORK_WORDS if n != net)
            if not ((NETWORK_WORDS[other] - {"g", "d"}) & toks or other[0].upper() in caps):
                return net
    return None


def direction_of(name: str) -> str | None:
    """``up`` for metrics where higher is better, ``down`` for errors and perplexity, else ``None``."""
    key = str(name).lower()
    toks = _tokens(key)
    if key in _UP or key.rstrip("_0123456789") in _UP:
        return "up"
    if key in _DOWN or key == "per":
        return "down"
    for t in toks:
        if t in _DOWN and t not in _WHOLE_NAME_ONLY:
            return "down"
    for t in toks:
        if t in _UP:
            return "up"
    return None


def _loss_like(name: str) -> bool:
    toks = _tokens(name)
    return ("loss" in toks or any(t.endswith("loss") for t in toks)) and not (set(toks) & _NOT_A_LOSS)


def role_of(name: str, raw_names: tuple[str, ...] = (), param_scoped: bool = False) -> str:
    """The role of one canonical series name (before the run-level rules of :func:`catalogue`)."""
    key = str(name).lower()
    toks = set(_tokens(key))
    if param_scoped:
        return "grad_norm" if key != "lr" else "lr"
    if key == "lr":
        return "lr"
    if key in _GRAD_NORM:
        return "grad_norm"
    if key in ("running_loss", "accumulated_loss", "scaled_loss") or key.startswith("running_"):
        return "auxiliary"
    if toks & _SUMMARY_WORDS and (_loss_like(key.replace("best", "")) or direction_of(key)):
        return "summary"
    if key == "loss":
        return "objective"
    if _loss_like(key):
        if toks & _AUXILIARY_WORDS:
            return "auxiliary"
        return "component"
    if any(network_of(r) for r in raw_names) and toks & _NETWORK_LOSS_WORDS:
        return "component"
    if _OUTPUT_STATS.match(key):
        return "other"
    if _THROUGHPUT.search(key):
        return "throughput"
    if direction_of(key):
        return "eval_metric"
    return "other"


def summary_rows(scalars: pd.DataFrame) -> pd.Series:
    """True for the rows that describe the whole run rather than one point of a curve.

    A row is a summary when it has no epoch, batch or step beside a curve of the same series, or
    when its raw name is logged without an epoch at most twice while another raw name of the same
    canonical series (same file and phase) has epochs: HF Trainer's final ``train_loss`` (the run
    average) at the last step, next to the per-step ``loss``.
    """
    out = pd.Series(False, index=scalars.index)
    if scalars.empty:
        return out
    s = scalars[scalars["param"].isna()] if "param" in scalars else scalars
    if s.empty:
        return out
    no_epoch = s["epoch"].isna() & s["batch"].isna()
    no_time = no_epoch & s["step"].isna()
    series = [s["source"].astype(str), s["name"].astype(str), s["phase"].astype("string").fillna("")]
    timed = (~no_time).groupby(series, observed=True).transform("any")
    with_epoch = (~no_epoch).groupby(series, observed=True).transform("any")
    raw_key = series + [s["raw_name"].astype(str)]
    raw_no_epoch = no_epoch.groupby(raw_key, observed=True).transform("all")
    raw_count = no_epoch.groupby(raw_key, observed=True).transform("size")
    flag = (no_time & timed) | (raw_no_epoch & (raw_count <= 2) & with_epoch)
    out.loc[s.index] = flag.to_numpy()
    return out


def catalogue(scalars: pd.DataFrame) -> pd.DataFrame:
    """One row per logged series ``(name, phase)``: its role, network, eval set, direction and extent.

    Columns: ``name, phase, role, network, eval_set, direction, raw_names, points, epochs, steps,
    level`` (``step`` when the series has more distinct steps or batches than epochs, else ``epoch``).
    Only non-per-parameter rows are catalogued (per-parameter norms are :attr:`Run.grads`); the
    summary rows (:func:`summary_rows`) are their own ``summary`` series. A distributed run's series are
    counted in one rank's rows (:func:`collapse_nb.ranks.one_rank`): eight ranks logging a step are one point.
    """
    cols = ["name", "phase", "role", "network", "eval_set", "direction", "raw_names", "points", "epochs",
            "steps", "level"]
    if scalars is None or scalars.empty:
        return pd.DataFrame(columns=cols)
    scalars = one_rank(scalars)
    s = scalars[scalars["param"].isna()] if "param" in scalars else scalars
    if s.empty:
        return pd.DataFrame(columns=cols)
    is_summary = summary_rows(s)
    key = s["name"].astype(str) + "\x00" + s["phase"].astype("string").fillna("")
    rows = []
    for k, g in s.groupby(key, sort=True, observed=True):
        name, phase = k.split("\x00")
        phase = phase or None
        summ = is_summary.loc[g.index]
        for part, summary in ((g[~summ], False), (g[summ], True)):
            if part.empty:
                continue
            raws = tuple(sorted({str(r) for r in part["raw_name"].astype(str).unique()}))
            role = "summary" if summary else role_of(name, raws)
            n_ep = int(part["epoch"].nunique())
            when = [c for c in ("segment", "epoch", "batch", "step") if c in part]
            n_st = int(len(part[when].drop_duplicates())) if n_ep else int(part["step"].nunique())
            rows.append({"name": name, "phase": phase, "role": role, "network": None, "eval_set": None,
                         "direction": direction_of(name) if role == "eval_metric" else None, "raw_names": raws,
                         "points": int(len(part)), "epochs": n_ep, "steps": n_st,
                         "level": "step" if n_st > n_ep else "epoch"})
    cat = pd.DataFrame(rows, columns=cols)
    if cat.empty:
        return cat
    cat["network"] = [_network(r) for r in cat.itertuples()]
    _mark_eval_sets(cat)
    order = cat["role"].map(_role_order)
    return cat.assign(_o=order).sort_values(["_o", "name", "phase"], na_position="first").drop(
        columns="_o").reset_index(drop=True)


def _role_order(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _network(row) -> str | None:
    if row.role not in ("objective", "component", "auxiliary"):
        return None
    nets = {network_of(r) for r in row.raw_names} - {None}
    return nets.pop() if len(nets) == 1 else None


_DATALOADER_SET = re.compile(r"(?P<base>.+?)_(?P<set>dataloader_idx_\d+)")


def _mark_eval_sets(cat: pd.DataFrame) -> None:
    """Validation sets: Lightning's ``val/loss/dataloader_idx_<n>`` (one per val dataloader) is set
    ``dataloader_idx_<n>``; HF's ``eval_<set>_loss`` (val, with no plain val ``loss`` and no train term of that
    name) is set ``<set>``."""
    for i, r in cat.iterrows():
        m = _DATALOADER_SET.fullmatch(str(r["name"]))
        if r["phase"] not in ("val", "test") or m is None:
            continue
        cat.at[i, "eval_set"] = m["set"]
        if m["base"] == "loss" and r["role"] in ("component", "objective"):
            cat.at[i, "role"] = "objective"
    loss_val = (cat["phase"] == "val") & (cat["name"] == "loss") & (cat["role"] == "objective")
    train_names = set(cat.loc[cat["phase"].isin(["train"]) | cat["phase"].isna(), "name"])
    if loss_val.any():
        return
    sets = {}
    for i, r in cat.iterrows():
        if r["phase"] != "val" or r["role"] != "component" or r["name"] in train_names:
            continue
        # HF names each eval dataset's loss eval_<set>_loss; val/box_loss is a term of one validation loss
        if not all(str(raw).lower().startswith("eval_") for raw in r["raw_names"]):
            continue
        m = re.fullmatch(r"(?P<set>[a-z0-9_]+?)_loss", str(r["name"]))
        if m:
            sets[i] = m["set"]
    if not sets:
        return
    for i, name in sets.items():
        cat.at[i, "role"] = "objective"
        cat.at[i, "eval_set"] = name
    for i, r in cat.iterrows():          # eval_<set>_<metric> belongs to the set
        if r["phase"] == "val" and r["role"] == "eval_metric":
            for name in sets.values():
                if str(r["name"]).startswith(name + "_"):
                    cat.at[i, "eval_set"] = name


# ----------------------------------------------------------------------------- the objective

@dataclass
class Objective:
    """The series a loss check reads, and how it was formed.

    ``rows``: the scalars-like rows (``segment, epoch, batch, step, value, line, source``);
    ``names``: the series it is made of; ``how``: ``logged`` (a total that was logged), ``single`` (the
    one loss-like series), ``sum`` (the sum of the components where all are logged) or ``none``;
    ``description``: the sentence a finding quotes; ``network`` / ``eval_set`` when it is one of several.
    """

    phase: str
    rows: pd.DataFrame
    names: list[str] = field(default_factory=list)
    how: str = "none"
    description: str = ""
    network: str | None = None
    eval_set: str | None = None
    reason: str = ""

    @property
    def found(self) -> bool:
        return self.how != "none" and not self.rows.empty


ROW_COLUMNS = ["segment", "epoch", "batch", "step", "value", "line", "source", "raw_name"]


def _series_rows(scalars: pd.DataFrame, names: list[str], phase: str) -> pd.DataFrame:
    """The curve rows (no summary rows) of ``names`` in ``phase`` (``train`` also takes unphased rows)."""
    s = scalars
    mask = s["name"].isin(names) & s["param"].isna()
    ph = s["phase"]
    mask &= (ph == phase) | (ph.isna() if phase == "train" else False)
    picked = s.loc[mask]
    picked = picked[~summary_rows(picked).to_numpy()]
    return picked[ROW_COLUMNS + ["name"]] if "raw_name" in picked else \
        picked.assign(raw_name=picked["name"])[ROW_COLUMNS + ["name"]]


def _sum_components(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The sum of ``names`` at each time point where every one of them is logged."""
    if rows.empty:
        return rows[ROW_COLUMNS]
    key = ["source", "segment", "epoch", "batch", "step"]
    r = rows.copy()
    for c in key:
        r[c] = r[c].astype("object").where(r[c].notna(), "\x00na")
    # one value per component and time point first (a file may repeat a value), then the sum over them
    per = r.groupby(key + ["name"], sort=False, observed=True, dropna=False).agg(
        value=("value", "mean"), line=("line", "min")).reset_index()
    g = per.groupby(key, sort=False, observed=True, dropna=False).agg(
        value=("value", "sum"), line=("line", "min"), n=("name", "nunique"))
    g = g[g["n"] == len(names)].reset_index()
    g["raw_name"] = "+".join(names)
    for c in key:
        g[c] = g[c].where(g[c] != "\x00na", np.nan)
    out = g[ROW_COLUMNS].copy()
    for c in ("segment", "epoch", "batch", "step", "line"):
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out


def _form(scalars: pd.DataFrame, cat: pd.DataFrame, phase: str, network: str | None,
          eval_set: str | None) -> Objective:
    here = cat[(cat["phase"] == phase) | (cat["phase"].isna() if phase == "train" else False)]
    if network:
        here = here[here["network"] == network]
    elif networks(cat):
        here = here[here["network"].isna()]
    if eval_set is not None:
        here = here[here["eval_set"] == eval_set]
    elif phase == "val":
        here = here[here["eval_set"].isna()]
    label = f" of the {network}" if network else (f" on eval set '{eval_set}'" if eval_set else "")
    total = here[here["role"] == "objective"]
    if len(total):
        names = sorted(set(total["name"]))
        rows = _series_rows(scalars, names[:1], phase)
        return Objective(phase, rows[ROW_COLUMNS], names[:1], "logged",
                         f"the logged {phase} loss '{names[0]}'{label}", network, eval_set)
    comps = sorted(set(here.loc[here["role"] == "component", "name"]))
    if len(comps) == 1:
        rows = _series_rows(scalars, comps, phase)
        return Objective(phase, rows[ROW_COLUMNS], comps, "single", f"the {phase} loss '{comps[0]}'{label}",
                         network, eval_set)
    if len(comps) > 1:
        rows = _sum_components(_series_rows(scalars, comps, phase), comps)
        if len(rows):
            return Objective(phase, rows, comps, "sum",
                             f"the sum of the {phase} loss components {', '.join(comps)}{label} (no total is "
                             f"logged)", network, eval_set)
        return Objective(phase, rows, comps, "none", "", network, eval_set,
                         f"the {phase} loss components {', '.join(comps)} are never logged at the same time point")
    return Objective(phase, pd.DataFrame(columns=ROW_COLUMNS), [], "none", "", network, eval_set,
                     f"no {phase} loss series recognised")


def networks(cat: pd.DataFrame) -> list[str]:
    """The GAN networks that log a loss: both of them, or ``[]`` (one network's words alone make no GAN)."""
    if cat.empty:
        return []
    nets = set(cat.loc[cat["role"].isin(["objective", "component"]), "network"].dropna().unique())
    return list(NETWORKS) if set(NETWORKS) <= nets else []


def eval_sets(cat: pd.DataFrame) -> list[str | None]:
    """The validation sets: ``[None]`` for a run with one, else their names (``[]`` when none is logged)."""
    if cat.empty:
        return []
    val = cat[(cat["phase"] == "val") & cat["role"].isin(["objective", "component"])]
    named = sorted(set(val["eval_set"].dropna()))
    if named:
        return named
    return [None] if len(val) else []


def objective(scalars: pd.DataFrame, cat: pd.DataFrame, phase: str = "train", network: str | None = None,
              eval_set: str | None = None) -> Objective:
    """The objective of one phase (see the module docstring).

    For a run with several networks and ``network=None`` the result is not found, with ``reason``
    naming the networks: their losses are not one training loss. The rows are one rank's
    (:func:`collapse_nb.ranks.one_rank`).
    """
    scalars = one_rank(scalars)
    if network is None and networks(cat):
        nets = networks(cat)
        return Objective(phase, pd.DataFrame(columns=ROW_COLUMNS), [], "none", "", None, eval_set,
                         f"the losses belong to the {' and the '.join(nets)} of a GAN, which are not one "
                         f"training loss")
    return _form(scalars, cat, phase, network, eval_set)


def seen(cat: pd.DataFrame, limit: int = 12) -> str:
    """The series a run logged, for a 'not assessed' sentence: ``loss (train), acc (val), ...``."""
    if cat.empty:
        return "none"
    labels = [f"{r.name} ({r.phase})" if isinstance(r.phase, str) and r.phase else str(r.name)
              for r in cat.itertuples()]
    more = len(labels) - limit
    return ", ".join(labels[:limit]) + (f" and {more} more" if more > 0 else "") if labels else "none"
