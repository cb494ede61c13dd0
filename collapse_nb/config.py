"""The run's intended configuration: canonical keys, and merging what each file says.

Readers report configuration as flat ``{raw key: value}`` dicts (nested config
files are flattened to dotted keys). :func:`canonical_config` picks out the
settings the checks compare the run against, under canonical names, and
:func:`merge_configs` combines several files, remembering where each value
came from. Files listed first win; a later, different value is kept as a
conflict so nothing is lost silently.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

#: canonical key -> raw leaf keys (normalised: lower case, separators as ``_``)
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "learning_rate": ("learning_rate", "lr", "base_lr", "max_lr", "peak_lr", "initial_lr", "optimizer_lr",
                      "optim_lr"),
    "min_lr": ("min_lr", "lr_min", "eta_min", "final_lr", "minimum_lr", "end_lr", "min_learning_rate"),
    "warmup_epochs": ("warmup_epochs", "warmup_epoch", "lr_warmup_epochs", "num_warmup_epochs"),
    "warmup_steps": ("warmup_steps", "warmup_iters", "num_warmup_steps", "lr_warmup_steps", "t_warmup",
                     "warmup"),
    "warmup_ratio": ("warmup_ratio", "warmup_fraction", "pct_start"),
    "lr_scheduler": ("lr_scheduler", "lr_scheduler_type", "scheduler", "lr_schedule", "schedule",
                     "scheduler_type", "lr_policy", "decay_type"),
    "weight_decay": ("weight_decay", "wd", "l2", "l2_reg", "weight_decay_rate"),
    "clip_grad_norm": ("clip_grad_norm", "max_grad_norm", "grad_clip", "gradient_clip_val", "clip_grad",
                       "grad_clip_norm", "clip_norm", "gradient_clipping", "max_norm"),
    "dropout": ("dropout", "dropout_rate", "drop_rate", "dropout_p", "hidden_dropout_prob", "p_dropout",
                "resid_pdrop", "residual_dropout"),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", "grad_accum_steps", "accumulation_steps",
                                    "accumulate_grad_batches", "grad_accumulation_steps", "accum_iter",
                                    "gradient_accumulation", "accum_steps", "accumulate_steps",
                                    "gradient_accumulation_iters"),
    "batch_size": ("batch_size", "train_batch_size", "per_device_train_batch_size", "batch", "bs",
                   "micro_batch_size", "device_train_microbatch_size"),
    "epochs": ("epochs", "num_epochs", "train_epochs", "max_epochs", "num_train_epochs", "n_epochs"),
    "max_steps": ("max_steps", "max_iters", "total_steps", "num_training_steps", "max_duration"),
    "optimizer": ("optimizer", "optim", "optimizer_name", "optimizer_type"),
    "loss": ("loss", "loss_fn", "loss_function", "criterion", "loss_type"),
    "seed": ("seed", "random_seed"),
    "momentum": ("momentum", "beta1", "adam_beta1"),
    "mixed_precision": ("mixed_precision", "amp", "use_amp", "fp16", "bf16", "precision"),
}
_LEAF_TO_KEY = {leaf: key for key, leaves in CONFIG_KEYS.items() for leaf in leaves}
_SEP = re.compile(r"[\s\-./]+")


def _norm(key: str) -> str:
    return _SEP.sub("_", key.strip().lower()).strip("_")


#: How deep :func:`flatten` follows nested dicts, and how many entries it returns at most: a config that
#: contains itself, or one dict reused at every level (2**24 leaves from a 2 KB pickle), is cut there.
MAX_CONFIG_DEPTH = 32
MAX_CONFIG_ENTRIES = 10_000


def flatten(obj: Any, prefix: str = "", max_depth: int = MAX_CONFIG_DEPTH,
            max_entries: int = MAX_CONFIG_ENTRIES) -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; lists of scalars stay as lists.

    A dict met again below itself (a cycle) or elsewhere (a shared reference) becomes the leaf
    ``"<same as a.b>"``; nesting beyond ``max_depth`` becomes ``"<nested deeper than N levels>"``; after
    ``max_entries`` entries the rest is one entry ``"<truncated: ...>"`` under ``"..."``.
    """
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        if prefix:
            out[prefix] = obj
        return out
    first_seen: dict[int, str] = {id(obj): prefix or "(top)"}
    stack = [(prefix, iter(obj.items()), 0)]
    while stack:
        pre, items, depth = stack[-1]
        nxt = next(items, None)
        if nxt is None:
            stack.pop()
            continue
        if len(out) >= max_entries:
            out["..."] = f"<truncated: more than {max_entries:,} entries>"
            break
        k, v = nxt
        key = f"{pre}.{k}" if pre else str(k)
        if isinstance(v, dict):
            if id(v) in first_seen:
                out[key] = f"<same as {first_seen[id(v)]}>"
            elif depth + 1 >= max_depth:
                out[key] = f"<nested deeper than {max_depth} levels>"
            else:
                first_seen[id(v)] = key
                stack.append((key, iter(v.items()), depth + 1))
        else:
            out[key] = v
    return out


def coerce(value: Any) -> Any:
    """Numbers written as text (``"1e-3"``, ``"2,097,152"``) become numbers; other values stay."""
    if isinstance(value, str):
        s = value.strip().strip("'\"")
        low = s.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null", ""):
            return None
        try:
            f = float(s.replace(",", "")) if re.fullmatch(r"[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?", s) else None
        except ValueError:
            f = None
        if f is not None:
            return int(f) if f.is_integer() and not re.search(r"[.eE]", s) else f
        return s
    return value


def canonical_key(raw_key: str) -> str | None:
    """The canonical config key a (possibly dotted) raw key stands for, or ``None``."""
    parts = [p for p in re.split(r"[./]", raw_key) if p]
    if not parts:
        return None
    leaf = _norm(parts[-1])
    return _LEAF_TO_KEY.get(leaf)


def canonical_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Pick the canonical settings out of one file's flat raw config.

    When a key appears several times (``model.dropout`` and ``dropout``), the
    shortest (least nested) raw key wins.
    """
    best: dict[str, tuple[int, Any]] = {}
    for k, v in raw.items():
        if any(part.lower() in ("summary", "summaries") for part in str(k).split(".")[:-1]):
            continue                   # W&B's summary holds results (the last loss), not settings
        ck = canonical_key(k)
        if ck is None:
            continue
        v = coerce(v)
        if isinstance(v, (dict, list)) and ck not in ("lr_scheduler",):
            continue
        depth = k.count(".")
        if ck not in best or depth < best[ck][0]:
            best[ck] = (depth, v)
    return {k: v for k, (_, v) in best.items()}


def merge_configs(parts: Iterable[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, str],
                                                                         list[dict[str, Any]]]:
    """Merge ``(source, canonical config)`` pairs: first source wins.

    Returns ``(config, where, conflicts)``: ``where[key]`` names the source of each
    value; each conflict records a key two sources disagree on.
    """
    config: dict[str, Any] = {}
    where: dict[str, str] = {}
    conflicts: list[dict[str, Any]] = []
    for source, cfg in parts:
        for k, v in cfg.items():
            if v is None:
                continue
            if k not in config:
                config[k], where[k] = v, source
            elif config[k] != v:
                conflicts.append({"key": k, "kept": config[k], "kept_from": where[k], "other": v,
                                  "other_from": source})
    return config, where, conflicts
