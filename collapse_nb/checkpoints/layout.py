"""Where the tensors are in a checkpoint, what step it is from, and in which order checkpoints go.

**Model tensors** (:func:`find_tensors`), from the object ``torch.load`` gave back:

- a plain state dict (most values tensors; nested dicts of tensors are joined with dots);
- a dict that nests state dicts or whole modules under :data:`MODEL_KEYS` (``state_dict``,
  ``model``, ``model_state_dict``, ``net``, ``module``, ``ema``, ...) or under any other key
  whose value is a state dict; each group keeps the key it came from in ``state``
  (``""`` for the top level), so a checkpoint holding both ``model`` and ``ema`` gives both;
- a pickled ``nn.Module`` (a :class:`~.safe_load.Placeholder`): its ``_parameters``,
  ``_buffers`` (persistent ones) and ``_modules`` are walked and named as ``state_dict()``
  would name them, with ``kind`` = ``parameter`` / ``buffer``.

Optimizer, scheduler, RNG, callback and loop states are not model tensors. The DDP
``module.`` prefix (when every name of a group has it) and torch.compile's ``_orig_mod.``
(anywhere) are stripped, and said so in the notes.

**Step and epoch** (:func:`find_progress`): the checkpoint's own ``global_step`` / ``step`` /
``iteration`` / ... and ``epoch`` keys (top level, or under ``meta`` / ``trainer_state`` /
...); else a Hugging Face ``trainer_state.json`` beside the file; else the file name
(:func:`progress_from_name`: ``epoch=3-step=1200``, ``checkpoint-500``, ``step_2000``,
``iter5000``, ``epoch_10``).

**Order** (:func:`order_checkpoints`): by step when every checkpoint has one, else by
epoch, else by the numbers in the file names (natural sort, ``7k`` = 7000), else as given;
the basis is returned so that callers can report it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeGuard

import torch

from .safe_load import Placeholder, numpy_array, placeholder_name

MODEL_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "network", "ema",
              "model_ema", "ema_model", "state_dict_ema", "ema_state_dict", "shadow", "generator",
              "discriminator", "student", "teacher", "weights", "params")
OPTIMIZER_KEYS = ("optimizer_states", "optimizer", "optimizer_state_dict", "optimizer_state", "optim",
                  "optimizers", "opt_state", "opt", "last_optimizer_state")
NOT_MODEL_KEYS = frozenset(OPTIMIZER_KEYS) | {
    "lr_schedulers", "lr_scheduler", "scheduler", "schedulers", "scheduler_state_dict", "callbacks", "loops",
    "rng_state", "rng_states", "scaler", "grad_scaler", "amp", "hyper_parameters", "hparams", "args", "config",
    "cfg", "train_args", "training_args", "datamodule_hyper_parameters", "lr_scheduler_state_dict", "model_args",
    "optimizer_history", "message_hub", "param_schedulers"}
CONFIG_KEYS = ("hyper_parameters", "hparams", "hyper_params", "args", "config", "cfg", "train_args",
               "training_args", "datamodule_hyper_parameters", "model_args")
SCHEDULER_KEYS = ("lr_schedulers", "lr_scheduler", "scheduler", "schedulers", "scheduler_state_dict",
                  "lr_scheduler_state_dict")
STEP_KEYS = ("global_step", "step", "iteration", "iter", "iter_num", "num_updates", "total_steps",
             "global_iteration", "n_iter", "it", "steps", "train_step", "step_num")
EPOCH_KEYS = ("epoch", "epochs", "current_epoch", "cur_epoch")
PROGRESS_HOLDERS = ("meta", "trainer_state", "progress", "training_state", "state", "info", "extra_state")
_WRAPPER_KEYS = frozenset(MODEL_KEYS) | NOT_MODEL_KEYS
_RNG_KEYS = frozenset({"python", "numpy", "cpu", "cuda", "mps", "xla", "npu", "hpu", "torch", "random"})
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class TensorRef:
    """One model tensor of a checkpoint; ``load()`` gives it (file-backed where possible)."""

    name: str
    state: str
    kind: str | None
    shape: tuple[int, ...]
    dtype: torch.dtype
    load: Callable[[], torch.Tensor]


@dataclass
class Checkpoint:
    """One checkpoint, whatever its format: its model tensors, optimizer states and facts."""

    path: Path
    format: str
    tensors: list[TensorRef] = field(default_factory=list)
    optimizers: list[Mapping] = field(default_factory=list)
    step: int | None = None
    epoch: float | None = None
    progress_from: str = ""           # "content", "trainer_state.json", "file name" or ""
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)
    #: The private file mappings (start, end) the tensors live in: pages there may be released.
    mapped: list[tuple[int, int]] = field(default_factory=list)
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return str(self.path)

    def close(self) -> None:
        """Let go of the tensors and close the files (their mappings go when the last view does)."""
        self.tensors, self.optimizers = [], []
        for c in self._closers:
            c()
        self._closers.clear()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------- model tensors
def _is_module(obj: Any) -> bool:
    return isinstance(obj, Placeholder) and isinstance(obj._cnb_state, dict) \
        and "_parameters" in obj._cnb_state and "_modules" in obj._cnb_state


def _tensor_leaves(d: Mapping, prefix: str = "", depth: int = 0) -> tuple[dict[str, torch.Tensor], int]:
    """Tensors of a (possibly nested) dict, dotted names, and how many leaves were not tensors."""
    found, other = {}, 0
    for k, v in d.items():
        name = f"{prefix}{k}"
        if (t := as_tensor(v)) is not None:
            found[name] = t
        elif _tensor_tuple(v):             # quantized Linear: _packed_params = (weight, bias)
            for i, x in enumerate(v):
                if (t := as_tensor(x)) is not None:
                    found[f"{name}.{i}"] = t
        elif isinstance(v, Mapping) and depth < 4 and not _is_optimizer_state(v):
            sub, o = _tensor_leaves(v, name + ".", depth + 1)
            found.update(sub)
            other += o
        elif v is not None:
            other += 1
    return found, other


def as_tensor(v: Any) -> torch.Tensor | None:
    """``v`` when it is a tensor; a numpy array pickled beside the tensors, rebuilt as one; else None."""
    if isinstance(v, torch.Tensor):
        return v
    return numpy_array(v)


def _tensor_tuple(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and 0 < len(v) <= 8 and any(as_tensor(x) is not None for x in v) and \
        all(as_tensor(x) is not None or x is None or isinstance(x, (int, float, str)) for x in v)


def is_state_dict(obj: Any) -> bool:
    """A mapping whose values are mostly tensors (or nested state dicts), not a wrapper around them.

    A key from :data:`MODEL_KEYS` or the optimizer/scheduler/config keys holding something
    other than a tensor makes it a wrapper (``{"epoch": 3, "model": {...}}``); RNG and
    optimizer states are not state dicts.
    """
    if not isinstance(obj, Mapping) or not obj or _is_optimizer_state(obj):
        return False
    if {str(k) for k in obj} <= _RNG_KEYS:
        return False
    tensors = other = 0
    for k, v in obj.items():
        if as_tensor(v) is not None or _tensor_tuple(v):
            tensors += 1
        elif str(k) in _WRAPPER_KEYS:
            return False
        elif isinstance(v, Mapping) and is_state_dict(v):
            tensors += 1
        elif v is not None:
            other += 1
    return tensors > other


def _is_optimizer_state(obj: Any) -> TypeGuard[Mapping]:
    return isinstance(obj, Mapping) and "state" in obj and "param_groups" in obj


def walk_module(obj: Any, prefix: str = "", seen: set[int] | None = None) -> list[tuple[str, torch.Tensor, str]]:
    """``(name, tensor, kind)`` of a pickled module as ``state_dict()`` would list them."""
    seen = set() if seen is None else seen
    if id(obj) in seen or not _is_module(obj):
        return []
    seen.add(id(obj))
    st = obj._cnb_state
    out = []
    for name, p in (st.get("_parameters") or {}).items():
        if isinstance(p, torch.Tensor):
            out.append((prefix + name, p, "parameter"))
    skip = st.get("_non_persistent_buffers_set") or set()
    for name, b in (st.get("_buffers") or {}).items():
        if isinstance(b, torch.Tensor) and name not in skip:
            out.append((prefix + name, b, "buffer"))
    for name, m in (st.get("_modules") or {}).items():
        out.extend(walk_module(m, f"{prefix}{name}.", seen))
    return out


def _kind(name: str, t: torch.Tensor) -> str | None:
    if isinstance(t, torch.nn.Parameter):
        return "parameter"
    if name.rsplit(".", 1)[-1] in _BUFFER_SUFFIXES:
        return "buffer"
    return None


def find_tensors(obj: Any) -> list[tuple[str, str, torch.Tensor, str | None]]:
    """``(state, name, tensor, kind)`` of every model tensor in a loaded checkpoint (see module doc)."""
    groups: list[tuple[str, Sequence[tuple[str, torch.Tensor, str | None]]]] = []

    def visit(value: Any, where: str, depth: int) -> None:
        if _is_module(value):
            groups.append((where, walk_module(value)))
        elif is_state_dict(value):
            leaves, _ = _tensor_leaves(value)
            groups.append((where, [(k, t, _kind(k, t)) for k, t in leaves.items()]))
        elif isinstance(value, Mapping) and depth < 3 and not _is_optimizer_state(value):
            for k, v in value.items():
                key = str(k)
                if key in NOT_MODEL_KEYS:
                    continue
                if key in MODEL_KEYS or _is_module(v) or is_state_dict(v) or \
                        (isinstance(v, Mapping) and any(m in v for m in MODEL_KEYS)):
                    visit(v, f"{where}.{key}" if where else key, depth + 1)

    if (t := as_tensor(obj)) is not None:          # a file that is one bare tensor (torch.save(tensor, f))
        return [("", "tensor", t, None)]
    visit(obj, "", 0)
    if not groups and isinstance(obj, Mapping) and not {str(k) for k in obj} <= _RNG_KEYS:
        # last resort: tensors lying at the top level beside metadata
        loose = [(str(k), v, _kind(str(k), v)) for k, v in obj.items()
                 if isinstance(v, torch.Tensor) and str(k) not in NOT_MODEL_KEYS]
        if loose:
            groups.append(("", loose))
    return [(state, name, t, kind) for state, items in groups for name, t, kind in items]


def strip_prefixes(names: list[str]) -> tuple[list[str], list[str]]:
    """Names without DDP's ``module.`` (when all have it) and torch.compile's ``_orig_mod.``; and notes."""
    notes = []
    if any("_orig_mod." in n for n in names):
        names = [n.replace("._orig_mod.", ".").removeprefix("_orig_mod.") for n in names]
        notes.append("stripped torch.compile's '_orig_mod.' from parameter names")
    while names and all(n.startswith("module.") for n in names):
        names = [n[len("module."):] for n in names]
        notes.append("stripped DDP's 'module.' prefix from parameter names")
    return names, notes


def _in_memory(t: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A :class:`TensorRef`'s ``load`` for a tensor already loaded."""
    return lambda: t


def tensor_refs(obj: Any) -> tuple[list[TensorRef], list[str]]:
    """The model tensors of a loaded object as :class:`TensorRef` (prefixes stripped per group)."""
    found = find_tensors(obj)
    refs: list[TensorRef] = []
    notes: list[str] = []
    for state in dict.fromkeys(s for s, _, _, _ in found):
        items = [(n, t, k) for s, n, t, k in found if s == state]
        names, why = strip_prefixes([n for n, _, _ in items])
        notes.extend(f"{w}{f' (in {state!r})' if state else ''}" for w in why)
        refs.extend(TensorRef(name, state, kind, tuple(t.shape), t.dtype, _in_memory(t))
                    for name, (_, t, kind) in zip(names, items))
    return refs, notes


# ---------------------------------------------------------------- optimizer and config
def find_optimizers(obj: Any) -> list[Mapping]:
    """Optimizer ``state_dict()``s: the object itself, under :data:`OPTIMIZER_KEYS`, or Lightning's list."""
    if _is_optimizer_state(obj):
        return [obj]
    out: list[Mapping] = []
    if isinstance(obj, Mapping):
        for key in OPTIMIZER_KEYS:
            v = obj.get(key)
            items = v if isinstance(v, (list, tuple)) else [v]
            out.extend(o for o in items if _is_optimizer_state(o))
            if isinstance(v, Mapping) and not _is_optimizer_state(v):   # {"opt_g": sd, "opt_d": sd}
                out.extend(o for o in v.values() if _is_optimizer_state(o))
    return out


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_complex():
        return float(v.reshape(()).item())
    return None


def find_progress(obj: Any) -> tuple[int | None, float | None]:
    """``(step, epoch)`` recorded in the checkpoint itself, where it has them."""
    step = epoch = None
    holders = [obj] + [obj.get(k) for k in PROGRESS_HOLDERS] if isinstance(obj, Mapping) else [obj]
    if placeholder_name(obj) and isinstance(getattr(obj, "_cnb_state", None), Mapping):
        holders.append(obj._cnb_state)
    for h in holders:
        if not isinstance(h, Mapping):
            continue
        for k in STEP_KEYS:
            v = _number(h.get(k))
            if step is None and v is not None and v >= 0 and v == int(v):
                step = int(v)
        for k in EPOCH_KEYS:
            v = _number(h.get(k))
            if epoch is None and v is not None:
                epoch = v
    return step, epoch


def _enum_value(value: Any, memo: dict[int, Any] | None = None, depth: int = 0) -> Any:
    """A placeholder rebuilt from one plain value (an enum member, ``SchedulerType('linear')``) as that value;
    in a mapping, each such entry (each mapping once: a shared or self-containing one stays shared or cyclic,
    for :func:`collapse_nb.config.flatten` to cut); anything else as it is."""
    if isinstance(value, Placeholder):
        args, kwargs = value._cnb_args, value._cnb_kwargs
        if len(args) == 1 and not kwargs and isinstance(args[0], (str, int, float)) and not isinstance(args[0], bool):
            return args[0]
    if isinstance(value, Mapping) and depth < 64:
        memo = {} if memo is None else memo
        if id(value) in memo:
            return memo[id(value)]
        out: dict = {}
        memo[id(value)] = out
        for k, v in value.items():
            out[k] = _enum_value(v, memo, depth + 1)
        return out
    return value


def find_config(obj: Any, flatten: Callable[[Any], dict], render: Callable[[Any], Any]) -> dict[str, Any]:
    """Hyper-parameters (Lightning ``hyper_parameters`` unprefixed, like ``hparams.yaml``), other config
    holders and scheduler states (``lr_schedulers.0.eta_min``) as a flat dict; objects rendered as text."""
    out: dict[str, Any] = {}

    def add(value: Any, prefix: str) -> None:
        state = getattr(value, "_cnb_state", None)
        if isinstance(value, Placeholder) and isinstance(state, Mapping):   # e.g. argparse.Namespace
            value = dict(state)
        value = render(_enum_value(value))
        if isinstance(value, Mapping):
            for k, v in flatten(value).items():
                if isinstance(v, (str, int, float, bool)) or v is None or \
                        (isinstance(v, (list, tuple)) and all(isinstance(x, (str, int, float, bool)) for x in v)):
                    out.setdefault(f"{prefix}{k}", v)
        elif prefix:
            out.setdefault(prefix.rstrip("."), value)

    if isinstance(obj, Mapping):
        for key in CONFIG_KEYS:
            if key in obj:
                add(obj[key], "" if key in ("hyper_parameters", "hparams") else f"{key}.")
        for key in SCHEDULER_KEYS:
            v = obj.get(key)
            for i, s in enumerate(v if isinstance(v, (list, tuple)) else [v]):
                if isinstance(s, Mapping):
                    add(s, f"{key}.{i}." if isinstance(v, (list, tuple)) else f"{key}.")
    elif isinstance(obj, Placeholder) and not _is_module(obj):     # e.g. HF training_args.bin
        add(obj, "")
    return out


# ---------------------------------------------------------------- names and order
_NUM = re.compile(r"(\d+(?:\.\d+)?)([kKmMbB](?![a-zA-Z]))?")
_MULT = {"k": 1e3, "m": 1e6, "b": 1e9}
_STEP_NAME = re.compile(r"(?:^|[^a-z])(?:global_step|step|steps|iter|iters|iteration|it|checkpoint|ckpt|update)"
                        r"[=_\-]?(\d+(?:\.\d+)?[kKmM]?)(?![a-zA-Z\d])", re.I)
_EPOCH_NAME = re.compile(r"(?:^|[^a-z])(?:epoch|ep)[=_\-]?(\d+)(?![\d])", re.I)


_SUFFIXES = re.compile(r"(\.(pt|pth|ckpt|bin|safetensors|index|json|tar))+$", re.I)


def _value(token: str) -> float:
    m = _NUM.fullmatch(token)
    if not m:
        return float("nan")
    return float(m.group(1)) * _MULT.get((m.group(2) or "").lower(), 1)


def progress_from_name(path: Path) -> tuple[int | None, float | None]:
    """``(step, epoch)`` spelled in a checkpoint's file (or ``checkpoint-N`` folder) name."""
    step = epoch = None
    for part in (path.name, path.parent.name):
        stem = _SUFFIXES.sub("", part)              # model.safetensors.index.json -> model
        if step is None and (m := _STEP_NAME.search(stem)):
            step = int(_value(m.group(1)))
        if epoch is None and (m := _EPOCH_NAME.search(stem)):
            epoch = float(m.group(1))
    return step, epoch


def natural_key(path: Path) -> tuple:
    """Sort key: text parts case-folded, numbers as numbers (``7k`` = 7000, ``1.5M`` = 1.5e6)."""
    key: list = []
    text = str(path)
    pos = 0
    for m in _NUM.finditer(text):
        key.append((0, text[pos:m.start()].lower()))
        key.append((1, _value(m.group(0))))
        pos = m.end()
    key.append((0, text[pos:].lower()))
    return tuple(key)


def trainer_state_progress(path: Path) -> tuple[int | None, float | None]:
    """``global_step`` and ``epoch`` from a Hugging Face ``trainer_state.json`` next to ``path``."""
    ts = path.parent / "trainer_state.json"
    if not ts.is_file() or ts.stat().st_size > 64 * 2**20:
        return None, None
    try:
        data = json.loads(ts.read_text(encoding="utf-8", errors="replace"))
    except (ValueError, OSError):
        return None, None
    step, epoch = _number(data.get("global_step")), _number(data.get("epoch"))
    return (int(step) if step is not None else None), epoch


def order_checkpoints(items: list[Checkpoint]) -> tuple[list[Checkpoint], str]:
    """Checkpoints sorted by step, else epoch, else file-name numbers; and the basis used."""
    if not items:
        return [], "nothing to order"
    sources = sorted({c.progress_from for c in items if c.progress_from})
    where = f" (from {' and '.join(sources)})" if sources else ""
    if all(c.step is not None for c in items):
        return sorted(items, key=lambda c: (c.step, c.epoch if c.epoch is not None else -1,
                                            natural_key(c.path))), f"step{where}"
    if all(c.epoch is not None for c in items):
        return sorted(items, key=lambda c: (c.epoch, natural_key(c.path))), f"epoch{where}"
    if all(_NUM.search(c.path.name) or _NUM.search(c.path.parent.name) for c in items):
        return sorted(items, key=lambda c: natural_key(c.path)), "file names (natural sort)"
    return list(items), "given order"


__all__ = ["TensorRef", "Checkpoint", "MODEL_KEYS", "OPTIMIZER_KEYS", "find_tensors", "walk_module",
           "is_state_dict", "strip_prefixes", "tensor_refs", "find_optimizers", "find_progress", "find_config",
           "progress_from_name", "natural_key", "trainer_state_progress", "order_checkpoints"]
