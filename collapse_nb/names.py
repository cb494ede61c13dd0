"""Canonical metric names.

A training log calls the same quantity many things: ``val_loss``, ``val/loss``,
``eval_loss``, ``loss`` in a row whose mode is ``val``. :func:`canonicalize`
turns a raw name into ``(name, phase, param)``:

- ``name``: the canonical name (``loss``, ``lr``, ``grad_norm``, ``pred_std``...)
  or, where none applies, the raw name with its phase marker removed;
- ``phase``: ``train`` / ``val`` / ``test`` when the name itself says so, else ``None``;
- ``param``: for per-parameter (or per-param-group) keys such as
  ``grad_norm/encoder.fc.weight`` or ``lr/pg0``, the parameter, else ``None``.

Lightning's suffixes for a metric logged both ``on_step`` and ``on_epoch``
(``train_loss_step``, ``train_loss_epoch``) are removed when what remains is a
known metric (``loss``, ``acc``, ``lr``, ...), or, through
:func:`canonicalize_names`, when the file holds the pair; other names ending in
``_step`` (``global_step``, ``update_step``) are left alone.
:func:`logged_every` tells which suffix was removed.

Everything here is a pure function of the string (or of one file's set of
names), so it is applied once per *distinct* raw name, never per row.
"""
from __future__ import annotations

import re
from functools import lru_cache

PHASES = ("train", "val", "test")

#: Words that mark a phase, mapped to the phase they mean.
PHASE_WORDS = {
    "train": "train", "training": "train", "trn": "train",
    "val": "val", "valid": "val", "validation": "val", "eval": "val", "evaluation": "val", "dev": "val",
    "validating": "val", "evaluating": "val",
    "test": "test", "testing": "test", "predict": "test", "prediction": "test",
}

# A phase word at the start or end of a name, separated by / _ - . or a space.
_PHASE_PREFIX = re.compile(r"^(?P<p>train|training|trn|val|valid|validation|eval|evaluation|dev|test|testing|predict"
                           r"|prediction)(?:[/_.\- ]+)(?P<rest>.+)$", re.I)
_PHASE_SUFFIX = re.compile(r"^(?P<rest>.+?)(?:[/_.\- ]+)(?P<p>train|training|val|valid|validation|eval|test|testing)$",
                           re.I)

#: Canonical metric name -> spellings (compared after lower-casing and
#: normalising separators to ``_``). Order matters only for documentation.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "raw_loss", "total_loss", "batch_loss", "full_batch_loss", "nll_loss", "crossentropyloss",
             "cross_entropy_loss", "ce_loss", "mse_loss", "objective", "loss_total", "loss_sum"),
    "scaled_loss": ("scaled_loss", "loss_scaled", "loss_scaled_for_backward"),
    "running_loss": ("avg_loss_so_far", "avg_train_loss_so_far", "average_loss", "avg_loss", "running_loss",
                     "mean_loss", "avg_train_loss"),
    "accumulated_loss": ("accumulated_loss", "accumulated_train_loss_so_far", "accumulated_train_loss",
                         "accumulated_loss_so_far", "loss_sum_so_far"),
    "lr": ("lr", "learning_rate", "current_lr", "learningrate", "lr_adam", "lr_adamw", "lr_sgd", "base_lr",
           "lr_rate"),
    "grad_norm": ("grad_norm", "gradient_norm", "grad_norm_total", "total_grad_norm", "global_grad_norm",
                  "grad_total_norm", "gradnorm", "grad_l2_norm", "clip_grad_norm_total"),
    "weight_norm": ("weight_norm", "param_norm", "parameter_norm", "weight_norm_after", "w_norm"),
    "weight_norm_before": ("weight_norm_before",),
    "update_norm": ("update_norm", "weight_change", "update", "delta_norm", "step_norm", "param_update_norm"),
    "update_ratio": ("update_ratio", "update_to_weight_ratio", "update_weight_ratio"),
    "pred_mean": ("pred_mean", "y_pred_mean", "prediction_mean", "predictions_mean", "output_mean",
                  "outputs_mean", "preds_mean", "y_hat_mean", "yhat_mean", "logits_mean"),
    "pred_std": ("pred_std", "y_pred_std", "prediction_std", "predictions_std", "output_std", "outputs_std",
                 "preds_std", "y_hat_std", "yhat_std", "logits_std"),
    "target_mean": ("target_mean", "y_true_mean", "y_mean", "label_mean", "labels_mean", "targets_mean",
                    "true_mean", "gt_mean"),
    "target_std": ("target_std", "y_true_std", "y_std", "label_std", "labels_std", "targets_std", "true_std",
                   "gt_std"),
    "accuracy": ("accuracy", "acc", "top1", "acc1", "accuracy_top1", "top_1_accuracy", "acc_top1"),
    "perplexity": ("perplexity", "ppl"),
    "loss_scale": ("loss_scale", "amp_scale", "grad_scale", "scaler_scale", "scale"),
    "grad_accum_steps": ("gradient_accumulation_steps", "grad_accum_steps", "accumulation_steps",
                         "effective_cycle", "grad_accumulation_steps", "accum_steps"),
}

_SPELLING: dict[str, str] = {s: canon for canon, spellings in SYNONYMS.items() for s in spellings}

# Prediction / target statistics are written in many ways; the subject words and
# the statistic are recognised separately ("y_pred_for_loss mean", "outputs_tensor std").
_PRED_WORDS = r"(?:y_?pred\w*|preds?|predictions?|outputs?(?:_tensor)?|model_outputs?(?:_stats)?|y_?hat|logits|yhat)"
_TRUE_WORDS = r"(?:y_?true\w*|targets?|labels?|y_?gt|gt|ground_?truth|y)"
_STAT = r"(?P<stat>mean|std|var|min|max)"
# up to two qualifier words either side: "scaled_targets_stats_mean", "raw_batch_y_ohlc_stats_std"
# (but an "enc_output_std" or "fused_output_std" is an internal activation, not the model's prediction)
_PRED_STAT = re.compile(rf"^(?:(?:model|final|net|network|head)_)?{_PRED_WORDS}(?:_[a-z0-9]+){{0,2}}_{_STAT}$")
_TRUE_STAT = re.compile(rf"^(?:[a-z0-9]+_){{0,2}}{_TRUE_WORDS}(?:_[a-z0-9]+){{0,2}}_{_STAT}$")

# Per-parameter keys: "grad_norm/<param>", "gradients/<param>", "<param>/grad_norm", "lr/pg0", "lr-Adam/pg1".
_PER_PARAM_PREFIX = re.compile(
    r"^(?P<kind>grad_norm|grad-norm|gradnorm|gradients?|grads?|grad_norms|weight_norm|param_norm|parameters?|"
    r"weights?|update_norm|update_ratio|lr|lr-\w+|learning_rate)[/:](?P<param>.+)$", re.I)
_PER_PARAM_SUFFIX = re.compile(r"^(?P<param>.+)[/:](?P<kind>grad_norm|weight_norm|update_norm|update_ratio|grad)$",
                               re.I)
_KIND_TO_NAME = {
    "grad_norm": "grad_norm", "grad-norm": "grad_norm", "gradnorm": "grad_norm", "gradient": "grad_norm",
    "gradients": "grad_norm", "grad": "grad_norm", "grads": "grad_norm", "grad_norms": "grad_norm",
    "weight_norm": "weight_norm", "param_norm": "weight_norm", "parameter": "weight_norm",
    "parameters": "weight_norm", "weight": "weight_norm", "weights": "weight_norm",
    "update_norm": "update_norm", "update_ratio": "update_ratio", "lr": "lr", "learning_rate": "lr",
}

# YOLOv5's results.csv: "x/lr0", "x/lr1", "x/lr2" are the learning rates of param groups 0, 1, 2.
_YOLO_LR = re.compile(r"^x/lr(?P<group>\d+)$", re.I)
# Lightning's "<metric>_step" / "<metric>_epoch" (a metric logged both on_step and on_epoch).
_LOGGED_SUFFIX = re.compile(r"^(?P<base>.+)_(?P<when>step|epoch)$", re.I)
#: Known spellings that, before ``_step``, more likely name a counter than the metric ("update_step").
_NOT_BEFORE_SUFFIX = frozenset({"update", "scale", "objective"})

_PAREN = re.compile(r"\s*\([^)]*\)")
_PAREN_KEEP = re.compile(r"[()]")
#: Group prefixes that only organise a dashboard ("optim/total_grad_norm"); stripped when the rest is known.
GROUP_PREFIXES = ("main", "optim", "optimizer", "opt", "trainer", "metrics", "charts", "perf", "stats", "diagnostics")
_SEP = re.compile(r"[\s/\-.]+")


def normalise(raw: str, keep_remarks: bool = False) -> str:
    """Lower-case, drop parenthesised remarks (or just their brackets), and turn separators into ``_``."""
    s = (_PAREN_KEEP.sub(" ", raw) if keep_remarks else _PAREN.sub("", raw)).strip().lower()
    return _SEP.sub("_", s).strip("_")


def split_phase(raw: str) -> tuple[str | None, str]:
    """Split a leading or trailing phase word off a raw name.

    >>> split_phase("val/loss")
    ('val', 'loss')
    >>> split_phase("eval_rouge-1")
    ('val', 'rouge-1')
    >>> split_phase("loss")
    (None, 'loss')
    """
    m = _PHASE_PREFIX.match(raw)
    if m:
        return PHASE_WORDS[m["p"].lower()], m["rest"]
    m = _PHASE_SUFFIX.match(raw)
    if m and m["rest"]:
        word = m["p"].lower()
        return PHASE_WORDS[word], m["rest"]
    return None, raw


def split_logged_suffix(raw: str) -> tuple[str, str | None]:
    """``("train_loss", "step")`` for ``"train_loss_step"``; ``(raw, None)`` without the suffix.

    Only splits the string: whether the suffix *is* Lightning's is for
    :func:`canonicalize` / :func:`canonicalize_names` to decide.
    """
    m = _LOGGED_SUFFIX.match(raw.strip())
    return (m["base"], m["when"].lower()) if m else (raw.strip(), None)


_CANONICAL = frozenset(SYNONYMS) | {f"{who}_{stat}" for who in ("pred", "target")
                                    for stat in ("mean", "std", "var", "min", "max")} \
    | {"running_" + k for k in SYNONYMS}


def _known_metric(base: str) -> bool:
    """Is ``base`` (a raw name without its ``_step``/``_epoch``) a known metric, not a counter's stem?"""
    name, _, param = _canonicalize(base)
    last = normalise(split_phase(base)[1].rpartition("/")[2])
    return param is None and name in _CANONICAL and last not in _NOT_BEFORE_SUFFIX


@lru_cache(maxsize=65536)
def canonicalize(raw: str) -> tuple[str, str | None, str | None]:
    """Return ``(name, phase, param)`` for a raw metric name. See the module docstring."""
    base, when = split_logged_suffix(raw)
    if when is not None and _known_metric(base):
        return _canonicalize(base)
    return _canonicalize(raw)


def canonicalize_names(raws: list[str]) -> list[tuple[str, str | None, str | None]]:
    """:func:`canonicalize` for one file's distinct raw names, knowing the others.

    A ``<metric>_step`` next to a ``<metric>_epoch`` in the same file is
    Lightning's pair even when ``<metric>`` is not a known name
    (``train_f1_step`` / ``train_f1_epoch`` -> ``f1``).
    """
    present = {str(r).strip().lower() for r in raws}
    out = []
    for r in raws:
        base, when = split_logged_suffix(str(r))
        partner = f"{base}_{'epoch' if when == 'step' else 'step'}".lower()
        out.append(_canonicalize(base) if when is not None and partner in present else canonicalize(str(r)))
    return out


def logged_every(raw: str, name: str) -> str | None:
    """``"step"`` / ``"epoch"`` when ``name`` was reached by removing Lightning's suffix from ``raw``."""
    when = split_logged_suffix(raw)[1]
    return when if when is not None and _canonicalize(raw)[0] != name else None


@lru_cache(maxsize=65536)
def _canonicalize(raw: str) -> tuple[str, str | None, str | None]:
    """:func:`canonicalize` without the ``_step``/``_epoch`` rule."""
    raw = raw.strip()
    y = _YOLO_LR.match(raw)
    if y:
        return "lr", None, f"pg{int(y['group'])}"
    m = _PER_PARAM_PREFIX.match(raw) or _PER_PARAM_SUFFIX.match(raw)
    if m and m["param"].strip() and not _is_phase_word(m["param"]):
        kind = m["kind"].lower()
        name = "lr" if kind.startswith("lr") else _KIND_TO_NAME.get(kind, kind)
        return name, None, m["param"].strip()
    if raw.lower().startswith("lr-") and "/" not in raw:      # Lightning LearningRateMonitor: "lr-Adam"
        return "lr", None, None
    phase, rest = split_phase(raw)
    group, _, last = rest.rpartition("/")
    if group and group.lower() in GROUP_PREFIXES:
        phase2, last = split_phase(last)
        phase = phase or phase2
        if normalise(last) in _SPELLING or normalise(last, True) in _SPELLING:
            rest = last
    full = normalise(rest, keep_remarks=True)
    if full in _SPELLING:
        return _SPELLING[full], phase, None
    key = normalise(rest)
    if key in _SPELLING:
        return _SPELLING[key], phase, None
    if key.endswith("_so_far") and key[:-7] in _SPELLING:
        return "running_" + _SPELLING[key[:-7]], phase, None
    for pattern, prefix in ((_PRED_STAT, "pred"), (_TRUE_STAT, "target")):
        sm = pattern.match(key)
        if sm:
            return f"{prefix}_{sm['stat']}", phase, None
    return (key or normalise(raw) or raw), phase, None


def _is_phase_word(s: str) -> bool:
    return s.strip().lower() in PHASE_WORDS


def phase_from_text(text: str) -> str | None:
    """The phase a free-text header names (``"TRAINING MODE"`` -> ``train``), else ``None``."""
    low = text.lower()
    for word in re.findall(r"[a-z]+", low):
        if word in PHASE_WORDS and word not in ("dev",):
            return PHASE_WORDS[word]
    return None
