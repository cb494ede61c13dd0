"""The :class:`Recorder`: one line to instrument a PyTorch training loop.

It hooks ``optimizer.step()`` (``register_step_pre_hook`` /
``register_step_post_hook``) and, on every optimizer step whose index is a
multiple of ``every``, writes one JSON record with per-parameter gradient,
weight and update norms, the learning rate of each param group, the AMP loss
scale, the clipping norm, the number of micro-batches since the previous step,
the prediction/target statistics and the scalars the loop reported, and
optionally per-module activation statistics. The file format is documented in
``docs/capture.md``; ``collapse_nb.load`` reads it into the usual tables.

On the other steps a hook does one comparison (pre-step) or one counter
increment and one modulo (post-step); :meth:`Recorder.log` and
:meth:`Recorder.log_outputs` return at once. On a recorded step every
statistic stays on the device until one ``cat`` + ``.tolist()`` per device.
Nothing the recorder does changes the training result: it only reads
gradients and weights, draws no random numbers, and its hooks never return a
value to the optimizer.
"""
from __future__ import annotations

import atexit
import math
import numbers
import os
import sys
import time
import warnings
import weakref
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from .stats import ActivationStats, Fetch, copy_tensors, foreach_norms, mean_std, select_modules, subtract_
from .writer import JsonlWriter

#: The format name the header record carries (the reader sniffs it).
FORMAT_NAME = "collapse-capture"
#: Bumped when a record changes in a way an older reader would misread.
FORMAT_VERSION = 1

#: Keyword names of :meth:`Recorder.log` that are context, not scalars.
_CONTEXT_KEYS = ("phase", "epoch", "batch", "immediate")
_PHASES = ("train", "val", "test")
#: How many parameters carry a gradient-accumulation hook to count micro-batches (spread over the model).
_COUNTING_PARAMS = 3


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module under ``torch.compile`` (``_orig_mod``) and ``DataParallel``/``DistributedDataParallel`` wrappers."""
    m = model
    for _ in range(16):
        inner = getattr(m, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            m = inner
            continue
        if isinstance(m, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            m = m.module
            continue
        break
    return m


def clean_name(name: str) -> str:
    """A parameter or module name without the ``_orig_mod.`` that compiled submodules add."""
    return name.replace("_orig_mod.", "").replace("._orig_mod", "")


def _jsonable(v: Any) -> Any:
    """Optimizer hyper-parameters and metadata as JSON values (tensors to numbers, tuples to lists)."""
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in v]
    return str(v)


def _hyper(group: Mapping[str, Any]) -> dict[str, Any]:
    """A param group's settings (everything but the tensors), JSON-ready."""
    return {k: _jsonable(v) for k, v in group.items() if k not in ("params", "param_names")}


def _scalar(name: str, value: Any) -> float | torch.Tensor:
    """A value for a record: a Python float, or a one-element tensor kept (detached) for the step's fetch."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"log(): {name!r} must be a number or a one-element tensor, "
                             f"got a tensor of shape {tuple(value.shape)}")
        return value.detach()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"log(): {name!r} must be a number or a one-element tensor, got {type(value).__name__}")
    return float(value)


def _close_ref(ref: "weakref.ref[Recorder]") -> None:
    rec = ref()
    if rec is not None:
        rec.close()


class Recorder:
    """Record gradient, weight and update norms, outputs and scalars of a training run.

    >>> rec = Recorder(model, optimizer, "runs/x/capture.jsonl", every=10)   # doctest: +SKIP

    Parameters
    ----------
    model
        The model (``torch.compile``'d, ``DataParallel`` and DDP models are
        unwrapped: names have no ``_orig_mod.`` / ``module.`` prefix). May be
        ``None``: parameters are then named ``group<g>.param<j>``.
    optimizer
        A ``torch.optim.Optimizer``. Its parameters (in param-group order, as
        they are when the recorder is made) are the ones recorded.
    path
        The capture file (JSON lines). Parent directories are created.
    every
        Record optimizer steps whose index (0-based, counted from
        ``start_step``) is a multiple of ``every``. Default 10.
    activations
        ``False`` (default); ``True`` for every leaf module of the model except
        dropout/identity layers; a list of module names; or a callable
        ``(name, module) -> bool``. Each watched module's output mean, std and
        fraction of exact zeros (the dead-ReLU share) are recorded.
    scaler
        The ``torch.amp.GradScaler`` in use, if any: its scale is recorded and
        gradient norms are divided by it when the gradients are still scaled
        at the step (``scaler.step()`` unscales them first; a bare
        ``optimizer.step()`` after ``scaler.scale(loss).backward()`` does not).
    metadata
        Anything JSON-able to keep in the header (``gradient_accumulation_steps``,
        ``batch_size``, ``clip_grad_norm``, a run name...). Canonical keys become
        the run's configuration when the file is loaded.
    update_norm
        Record ``update_norm`` (needs a copy of the weights on recorded steps). Default True.
    start_step
        Index of the first optimizer step (for a resumed run). Default 0.
    mode
        ``"a"`` (default) appends to an existing file, a new header starting a
        new segment; ``"w"`` overwrites it.
    flush_every
        Records kept in memory before they are written. Default 20; the tail is
        written on :meth:`close`, on leaving a ``with`` block, and at exit.
    """

    def __init__(self, model: nn.Module | None, optimizer: torch.optim.Optimizer, path: str | os.PathLike,
                 every: int = 25, activations: bool | Iterable[str] | Callable[[str, nn.Module], bool] = False,
                 scaler: Any = None, metadata: Mapping[str, Any] | None = None, *, update_norm: bool = True,
                 start_step: int = 0, mode: str = "a", flush_every: int = 20) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if not isinstance(start_step, int) or isinstance(start_step, bool) or start_step < 0:
            raise ValueError(f"start_step must be an int >= 0, got {start_step!r}")
        if activations is not False and model is None:
            raise ValueError("activations needs a model to hook, but model is None")
        if isinstance(activations, str):
            raise TypeError("activations must be True/False, a list of module names or a callable, "
                            f"got the string {activations!r} (wrap one name in a list)")
        if scaler is not None and not (hasattr(scaler, "is_enabled") and hasattr(scaler, "get_scale")):
            raise TypeError(f"scaler must be a torch.amp.GradScaler or None, got {type(scaler).__name__}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping or None, got {type(metadata).__name__}")

        self.every = every
        self.optimizer = optimizer
        self.scaler = scaler
        self.update_norm = bool(update_norm)
        self.step = start_step                 # index of the next optimizer step
        self.recorded = 0                      # records of optimizer steps written
        self._closed = False
        self._warned: set[str] = set()

        root = unwrap_model(model) if model is not None else None
        names = {id(p): clean_name(n) for n, p in root.named_parameters()} if root is not None else {}
        self._params: list[torch.Tensor] = []
        self.param_names: list[str] = []
        param_rows = []
        for gi, group in enumerate(optimizer.param_groups):
            for j, p in enumerate(group["params"]):
                name = names.get(id(p), f"group{gi}.param{j}")
                self._params.append(p)
                self.param_names.append(name)
                param_rows.append({"name": name, "shape": list(p.shape), "dtype": str(p.dtype).replace("torch.", ""),
                                   "numel": p.numel(), "group": gi, "requires_grad": bool(p.requires_grad)})
        trainable = [i for i, p in enumerate(self._params) if p.requires_grad]
        k = min(_COUNTING_PARAMS, len(trainable))
        self._count_idx = sorted({trainable[round(j * (len(trainable) - 1) / max(k - 1, 1))] for j in range(k)})

        self._acts: ActivationStats | None = None
        if activations is not False and root is not None:
            modules = [(clean_name(n), m) for n, m in select_modules(root, activations)]
            self._acts = ActivationStats(modules, lambda: self._armed)

        header = {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "type": "header",
            "wall_time": time.time(), "torch": torch.__version__, "python": sys.version.split()[0],
            "every": every, "start_step": start_step, "update_norm": self.update_norm,
            "model": type(root).__name__ if root is not None else None,
            "params": param_rows,
            "optimizer": {"class": type(optimizer).__name__, "defaults": _hyper(optimizer.defaults),
                          "param_groups": [{**_hyper(g), "n_params": len(g["params"])}
                                           for g in optimizer.param_groups]},
            "scaler": self._scaler_header(),
            "modules": self._acts.names if self._acts is not None else [],
            "metadata": _jsonable(dict(metadata or {})),
        }
        self._writer = JsonlWriter(path, mode=mode, flush_every=flush_every)
        self.path = self._writer.path
        self._writer.write(header)
        self._writer.flush()

        # per-step state, filled only while armed
        self._pending: dict[str, float | torch.Tensor] = {}
        self._ctx: dict[str, Any] = {}
        self._outputs: torch.Tensor | None = None
        self._clip: float | torch.Tensor | None = None
        self._counts = [0] * len(self._count_idx)
        self._count_handles: list[Any] = []
        self._pre: dict[str, Any] | None = None
        self._buffers: list[torch.Tensor] | None = None
        self._armed = False
        self._hooks = [optimizer.register_step_pre_hook(self._pre_step),
                       optimizer.register_step_post_hook(self._post_step)]
        ref = weakref.ref(self)
        self._atexit: Callable[[], None] | None = lambda: _close_ref(ref)
        atexit.register(self._atexit)          # a recorder never closed still ends its file at exit
        self._arm()

    # ------------------------------------------------------------------ user API
    def log(self, *, phase: str = "train", epoch: float | None = None, batch: int | None = None,
            immediate: bool | None = None, **scalars: Any) -> None:
        """Report scalars (``loss=...``, ``acc=...``); numbers or one-element tensors.

        ``phase="train"`` values (the default) go with the next optimizer step
        and are kept only when that step is recorded (the last value of each
        name wins; tensors are read on the recorded step, never here). Call it
        before ``optimizer.step()``. ``val`` / ``test`` values, and any values
        with ``immediate=True`` (e.g. an epoch's mean train loss), are written
        at once as their own record. ``epoch`` and ``batch`` are the loop's
        own counters; the step is the recorder's count of optimizer steps.
        """
        if phase == "train" and not immediate and not self._armed:
            return
        if phase not in _PHASES:
            raise ValueError(f"log(): phase must be one of {', '.join(_PHASES)}, got {phase!r}")
        if self._closed:
            raise ValueError("log(): the recorder is closed")
        values = {k: _scalar(k, v) for k, v in scalars.items()}
        if phase == "train" and not immediate:
            self._pending.update(values)
            if epoch is not None:
                self._ctx["epoch"] = epoch
            if batch is not None:
                self._ctx["batch"] = batch
            return
        fetch = Fetch()
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                fetch.add(k, v)
        got = fetch.values() if len(fetch) else {}
        rec: dict[str, Any] = {"type": "log", "phase": phase, "step": self.step, "wall_time": time.time()}
        if epoch is not None:
            rec["epoch"] = _jsonable(epoch)
        if batch is not None:
            rec["batch"] = _jsonable(batch)
        rec["scalars"] = {k: (got[k][0] if isinstance(v, torch.Tensor) else v) for k, v in values.items()}
        self._writer.write(rec)

    def log_outputs(self, pred: torch.Tensor, target: torch.Tensor, *, phase: str = "train",
                    epoch: float | None = None, batch: int | None = None) -> None:
        """Report the predictions and targets the loss saw: their mean and std are recorded.

        Training outputs (the default phase) are summarised only when the next
        optimizer step is recorded (the last call before it wins); the mean and
        std are computed on the device right away and the tensors are not kept.
        ``val`` / ``test`` outputs are written at once.
        """
        if phase == "train" and not self._armed:
            return
        if phase not in _PHASES:
            raise ValueError(f"log_outputs(): phase must be one of {', '.join(_PHASES)}, got {phase!r}")
        if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
            raise TypeError("log_outputs(): pred and target must be tensors, got "
                            f"{type(pred).__name__} and {type(target).__name__}")
        stats = torch.cat([mean_std(pred), mean_std(target).to(pred.device)])
        if phase == "train":
            self._outputs = stats
            if epoch is not None:
                self._ctx["epoch"] = epoch
            if batch is not None:
                self._ctx["batch"] = batch
            return
        v = stats.tolist()
        rec: dict[str, Any] = {"type": "log", "phase": phase, "step": self.step, "wall_time": time.time()}
        if epoch is not None:
            rec["epoch"] = _jsonable(epoch)
        if batch is not None:
            rec["batch"] = _jsonable(batch)
        rec["outputs"] = dict(zip(("pred_mean", "pred_std", "target_mean", "target_std"), v))
        self._writer.write(rec)

    def set_clip_norm(self, total_norm: Any) -> Any:
        """Report the total norm ``clip_grad_norm_`` returned (the norm *before* clipping); returns it unchanged.

        ``rec.set_clip_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))``
        """
        if self._armed:
            self._clip = total_norm.detach() if isinstance(total_norm, torch.Tensor) else float(total_norm)
        return total_norm

    def flush(self) -> None:
        """Write the buffered records to the file now."""
        self._writer.flush()

    def close(self, error: BaseException | None = None) -> None:
        """Remove the hooks, write an ``end`` record and flush. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._armed = False
        try:
            for h in self._hooks:
                h.remove()
            self._remove_counters()
            if self._acts is not None:
                self._acts.remove()
            self._buffers = None
            end: dict[str, Any] = {"type": "end", "step": self.step, "recorded": self.recorded,
                                   "wall_time": time.time()}
            if error is not None:
                end["error"] = f"{type(error).__name__}: {error}"[:500]
            self._writer.write(end)
        finally:
            self._writer.close()
            if self._atexit is not None:
                atexit.unregister(self._atexit)
                self._atexit = None

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.close(error=exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"next step {self.step}"
        return f"<Recorder {self.path} every={self.every}, {len(self._params)} params, {state}>"

    # ------------------------------------------------------------------ hooks
    def _arm(self) -> None:
        """Decide whether the coming optimizer step is recorded; if so, start counting its micro-batches."""
        self._armed = self.step % self.every == 0
        if self._armed:
            self._counts = [0] * len(self._count_idx)
            self._count_handles = [self._params[i].register_post_accumulate_grad_hook(self._counter(j))
                                   for j, i in enumerate(self._count_idx)]

    def _counter(self, j: int) -> Callable[[torch.Tensor], None]:
        def hook(_p: torch.Tensor) -> None:
            self._counts[j] += 1
        return hook

    def _remove_counters(self) -> None:
        for h in self._count_handles:
            h.remove()
        self._count_handles = []

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._armed:
            return None
        try:
            self._pre = self._capture_before()
        except Exception as exc:  # never break the training loop
            self._pre = None
            self._warn_once("pre", f"collapse_nb Recorder: could not record step {self.step}: {exc!r}")
        return None

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._armed:
            try:
                if self._pre is not None:
                    self._writer.write(self._capture_after(self._pre))
                    self.recorded += 1
            except Exception as exc:  # never break the training loop
                self._warn_once("post", f"collapse_nb Recorder: could not record step {self.step}: {exc!r}")
            finally:
                self._pre = None
                self._pending = {}
                self._ctx = {}
                self._outputs = None
                self._clip = None
                self._remove_counters()
                if self._acts is not None:
                    self._acts.clear()
        self.step += 1
        if self.step % self.every == 0:
            self._arm()
        else:
            self._armed = False

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------ the work of a recorded step
    def _scaler_header(self) -> dict[str, Any] | None:
        s = self.scaler
        if s is None:
            return None
        out: dict[str, Any] = {"class": type(s).__name__, "enabled": bool(s.is_enabled())}
        for k in ("_init_scale", "_growth_factor", "_backoff_factor", "_growth_interval"):
            if hasattr(s, k):
                out[k.lstrip("_")] = _jsonable(getattr(s, k))
        return out

    def _scale(self) -> tuple[torch.Tensor | float | None, bool]:
        """The AMP scale now (a device tensor when the scaler has one) and whether the grads still carry it."""
        s = self.scaler
        if s is None or not s.is_enabled():
            return None, False
        scale = getattr(s, "_scale", None)
        if scale is None:                 # a scaler that has not scaled anything yet
            return None, False
        states = getattr(s, "_per_optimizer_states", {})
        state = dict.get(states, id(self.optimizer)) if isinstance(states, dict) else None
        stage = getattr(state.get("stage") if state else None, "name", "READY")
        return scale, stage != "UNSCALED"

    def _capture_before(self) -> dict[str, Any]:
        """Pre-step: gradient norms (still on the device), a copy of the weights, learning rates, AMP scale."""
        fetch = Fetch()
        grads = [p.grad for p in self._params]
        grad_groups = []
        for n, (idx, norms) in enumerate(foreach_norms(grads)):
            fetch.add(("grad", n), norms)
            grad_groups.append(idx)
        before = None
        if self.update_norm:
            before = copy_tensors(self._params, self._buffers)
            # CPU: keep the copy for the next recorded step (fresh large buffers cost page faults each time);
            # CUDA & co: its caching allocator already reuses the memory, and nothing is held between steps
            self._buffers = before if all(p.device.type == "cpu" for p in self._params) else None
        lrs: list[float | None] = []
        for gi, g in enumerate(self.optimizer.param_groups):
            lr = g.get("lr", math.nan)
            if isinstance(lr, torch.Tensor):
                fetch.add(("lr", gi), lr)
                lrs.append(None)
            else:
                lrs.append(float(lr))
        scale, scaled = self._scale()
        if isinstance(scale, torch.Tensor):
            fetch.add("scale", scale)
        return {"fetch": fetch, "grad_groups": grad_groups,
                "no_grad": [i for i, g in enumerate(grads) if g is None], "before": before, "lrs": lrs,
                "scale": scale, "scaled": scaled, "wall_time": time.time(),
                "micro": max(self._counts) if self._counts else None}

    def _capture_after(self, pre: dict[str, Any]) -> dict[str, Any]:
        """Post-step: weight and update norms, then the one fetch, then the record."""
        fetch: Fetch = pre["fetch"]
        weight_groups = []
        for n, (idx, norms) in enumerate(foreach_norms(self._params)):
            fetch.add(("weight", n), norms)
            weight_groups.append(idx)
        update_groups = []
        before = pre.pop("before")
        if before is not None:
            subtract_(before, self._params)          # before - after, in place
            for n, (idx, norms) in enumerate(foreach_norms(before)):
                fetch.add(("update", n), norms)
                update_groups.append(idx)
            del before
        if self._outputs is not None:
            fetch.add("outputs", self._outputs)
        if isinstance(self._clip, torch.Tensor):
            fetch.add("clip", self._clip)
        for k, v in self._pending.items():
            if isinstance(v, torch.Tensor):
                fetch.add(("user", k), v)
        act_numel = self._acts.take(fetch) if self._acts is not None else {}
        vals = fetch.values()

        n = len(self._params)

        def scatter(kind: str, groups: list[list[int]], fill: float) -> list[float]:
            out = [fill] * n
            for gi, idx in enumerate(groups):
                for i, v in zip(idx, vals[(kind, gi)]):
                    out[i] = v
            return out

        scale = pre["scale"]
        scale_v = vals["scale"][0] if isinstance(scale, torch.Tensor) else scale
        grad = scatter("grad", pre["grad_groups"], 0.0)
        divided = bool(pre["scaled"] and scale_v)
        if divided:
            grad = [g / scale_v for g in grad]
        rec: dict[str, Any] = {"type": "step", "step": self.step, "phase": "train"}
        for k in ("epoch", "batch"):
            if k in self._ctx:
                rec[k] = _jsonable(self._ctx[k])
        rec["wall_time"] = pre["wall_time"]
        rec["micro_batches"] = pre["micro"]
        rec["lr"] = [vals[("lr", gi)][0] if v is None else v for gi, v in enumerate(pre["lrs"])]
        if scale_v is not None:
            rec["loss_scale"] = scale_v
            rec["grads_unscaled_by_recorder"] = divided
        rec["grad_norm"] = grad
        rec["weight_norm"] = scatter("weight", weight_groups, math.nan)
        if update_groups:
            rec["update_norm"] = scatter("update", update_groups, math.nan)
        if pre["no_grad"]:
            rec["no_grad"] = pre["no_grad"]
        rec["total_grad_norm"] = math.sqrt(math.fsum(g * g for g in grad)) if grad else 0.0
        if self._clip is not None:
            rec["clip_total_norm"] = vals["clip"][0] if isinstance(self._clip, torch.Tensor) else self._clip
        if "outputs" in vals:
            rec["outputs"] = dict(zip(("pred_mean", "pred_std", "target_mean", "target_std"), vals["outputs"]))
        if self._acts is not None:
            m = len(self._acts.names)
            mean: list[float | None] = [None] * m
            std: list[float | None] = [None] * m
            zero: list[float | None] = [None] * m
            for i, numel in act_numel.items():
                mean[i], std[i] = vals[("act", i)]
                nonzero = vals[("act0", i)][0]
                zero[i] = (numel - nonzero) / numel if numel else math.nan
            rec["act_mean"], rec["act_std"], rec["act_frac_zero"] = mean, std, zero
            if not act_numel and self.recorded >= 1:
                self._warn_once("acts", "collapse_nb Recorder: no watched module ran with grad enabled before "
                                f"step {self.step}, so no activation statistics were recorded. With torch.compile, "
                                "hooks added after the first compiled call are not seen (dynamo does not guard "
                                "on module hooks): create the Recorder before the first forward pass, or call "
                                "torch._dynamo.reset() first.")
        if self._pending:
            rec["scalars"] = {k: (vals[("user", k)][0] if isinstance(v, torch.Tensor) else v)
                              for k, v in self._pending.items()}
        return rec
