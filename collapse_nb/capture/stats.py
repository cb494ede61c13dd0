"""Tensor statistics for the recorder, computed without a host sync until one final fetch.

- :func:`foreach_norms`: the L2 norm of each tensor of a list with one
  ``torch._foreach_norm`` per (device, dtype) group; half-precision tensors are
  reduced in float32.
- :class:`Fetch`: collects 0-d / 1-d tensors on any devices and brings them to
  the host with one ``cat`` + ``.tolist()`` per device (the only syncs of a
  recorded step).
- :func:`mean_std`: ``(mean, std)`` of a tensor as one float32 tensor.
- :class:`ActivationStats`: forward hooks that, while armed, keep the mean, std
  and number of exact zeros of selected modules' outputs.

Nothing here changes a tensor it is given, draws random numbers, or keeps a
reference to the autograd graph.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable, Sequence

import torch
from torch import nn

_HALF = (torch.float16, torch.bfloat16)


def _group(tensors: Sequence[torch.Tensor | None]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        if t is not None:
            groups.setdefault((t.device, t.dtype, t.layout), []).append(i)
    return groups


def foreach_norms(tensors: Sequence[torch.Tensor | None]) -> list[tuple[list[int], torch.Tensor]]:
    """L2 norms of ``tensors`` (``None`` entries skipped), as ``[(indices, 1-d norms tensor)]`` per group.

    No host sync: the norms stay on their device until :class:`Fetch` brings them over.
    """
    out = []
    with torch.no_grad():
        for (_device, dtype, layout), idx in _group(tensors).items():
            ts = [t for t in (tensors[i] for i in idx) if t is not None]     # _group leaves the Nones out
            if layout != torch.strided:       # sparse gradients (nn.Embedding(sparse=True))
                norms = [t.coalesce().values().float().norm() if t.is_sparse else t.float().norm() for t in ts]
            else:
                try:
                    norms = list(torch._foreach_norm(ts, 2, dtype=torch.float32) if dtype in _HALF
                                 else torch._foreach_norm(ts, 2))
                except (RuntimeError, TypeError, NotImplementedError):  # a backend without the foreach kernel
                    norms = [torch.linalg.vector_norm(t, dtype=torch.float32 if dtype in _HALF else None)
                             for t in ts]
            if norms and norms[0].is_complex():
                norms = [n.real for n in norms]
            out.append((idx, torch.stack(norms)))
    return out


def copy_tensors(tensors: Sequence[torch.Tensor], out: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Detached copies of ``tensors`` with one ``_foreach_copy_`` per (device, dtype) group.

    ``out``: buffers from an earlier call to copy into (reused when every shape,
    dtype and device still matches); fresh ones are allocated otherwise.
    """
    ok = out is not None and len(out) == len(tensors) and all(
        o.shape == t.shape and o.dtype == t.dtype and o.device == t.device and o.layout == t.layout
        for o, t in zip(out, tensors))
    dst = list(out) if ok and out is not None else [
        torch.empty_like(t, memory_format=torch.preserve_format) if t.layout == torch.strided
        else t.detach().clone() for t in tensors]
    with torch.no_grad():
        for (_d, _dt, layout), idx in _group(tensors).items():
            src = [tensors[i].detach() for i in idx]
            if layout == torch.strided:
                torch._foreach_copy_([dst[i] for i in idx], src)
            elif ok:
                for i, t in zip(idx, src):
                    dst[i] = t.clone()
    return dst


def subtract_(copies: Sequence[torch.Tensor], tensors: Sequence[torch.Tensor]) -> None:
    """``copies[i] -= tensors[i]`` in place (grouped foreach); the copies become the (negated) updates."""
    with torch.no_grad():
        for (_d, _dt, layout), idx in _group(copies).items():
            a = [copies[i] for i in idx]
            b = [tensors[i].detach() for i in idx]
            if layout == torch.strided:
                torch._foreach_sub_(a, b)
            else:
                for x, y in zip(a, b):
                    x.sub_(y)


def mean_std(x: torch.Tensor) -> torch.Tensor:
    """``[mean, std]`` (std with Bessel's correction when there are 2+ values) as float32, on x's device."""
    with torch.no_grad():
        x = x.detach()
        if x.is_complex():
            x = x.abs()
        if not x.is_floating_point() or x.dtype in _HALF:
            x = x.float()
        if x.numel() == 0:
            return torch.full((2,), float("nan"), device=x.device)
        std, mean = torch.std_mean(x, correction=1 if x.numel() > 1 else 0)
        return torch.stack([mean, std]).float()


class Fetch:
    """Tensors to bring to the host together: one ``cat`` + ``.tolist()`` per device.

    ``add(key, tensor)`` queues a 0-d or 1-d tensor (any dtype); :meth:`values`
    returns ``{key: list of floats}``.
    """

    def __init__(self) -> None:
        self._items: list[tuple[Hashable, torch.Tensor]] = []

    def add(self, key: Hashable, tensor: torch.Tensor) -> None:
        self._items.append((key, tensor.detach().reshape(-1)))

    def __len__(self) -> int:
        return len(self._items)

    def values(self) -> dict[Hashable, list[float]]:
        by_device: dict[torch.device, list[tuple[Hashable, torch.Tensor]]] = {}
        for key, t in self._items:
            by_device.setdefault(t.device, []).append((key, t))
        out: dict[Hashable, list[float]] = {}
        with torch.no_grad():
            for device, items in by_device.items():
                dt = torch.float32 if device.type == "mps" else torch.float64
                flat = torch.cat([t.to(dt) if t.dtype != dt else t for _, t in items])
                vals = flat.tolist()  # the one sync for this device
                pos = 0
                for key, t in items:
                    n = t.numel()
                    out[key] = vals[pos:pos + n]
                    pos += n
        self._items.clear()
        return out


Selector = bool | Iterable[str] | Callable[[str, nn.Module], bool]


def select_modules(root: nn.Module, which: Selector) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs :class:`ActivationStats` watches.

    ``True``: every leaf module (one without children) except dropout and
    identity layers; a list of names: exactly those (an unknown name is an
    error); a callable ``(name, module) -> bool``: the modules it accepts.
    """
    named = [(n, m) for n, m in root.named_modules() if n]
    if which is True:
        skip = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)
        return [(n, m) for n, m in named if not any(True for _ in m.children()) and not isinstance(m, skip)]
    if callable(which):
        return [(n, m) for n, m in named if which(n, m)]
    wanted = list(which)  # type: ignore[arg-type]
    table = dict(named)
    missing = [w for w in wanted if w not in table]
    if missing:
        raise ValueError(f"activations: no module named {', '.join(map(repr, missing[:5]))} in the model "
                         f"(names look like {', '.join(repr(n) for n, _ in named[:5])})")
    return [(w, table[w]) for w in wanted]


class ActivationStats:
    """Forward hooks on ``modules`` that keep, while ``armed()`` is true and grad mode is on,
    each module's output ``[mean, std]`` and its number of exact zeros (as device tensors).

    The hooks are registered once (so that a compiled model sees stable hooks)
    and return at once when not armed. A module called several times in one
    forward, or in several micro-batches before a recorded step, keeps its last
    call's statistics.
    """

    def __init__(self, modules: list[tuple[str, nn.Module]], armed: Callable[[], bool]) -> None:
        self.names = [n for n, _ in modules]
        # a fixed-length list, changed in place: a compiled model's guards stay the same from step to step
        self.pending: list[tuple[torch.Tensor, torch.Tensor, int] | None] = [None] * len(modules)
        self._armed = armed
        self._handles = [m.register_forward_hook(self._make_hook(i)) for i, (_, m) in enumerate(modules)]

    def _make_hook(self, i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not self._armed() or not torch.is_grad_enabled():
                return
            out = output
            if isinstance(out, (tuple, list)) and out:
                out = out[0]
            if not isinstance(out, torch.Tensor) or not (out.is_floating_point() or out.is_complex()):
                return
            with torch.no_grad():
                x = out.detach()
                self.pending[i] = (mean_std(x), torch.count_nonzero(x), x.numel())
        return hook

    def take(self, fetch: Fetch) -> dict[int, int]:
        """Queue the pending statistics on ``fetch`` (keys ``("act", i)`` and ``("act0", i)``); clear them.

        Returns ``{module index: number of output elements}`` for the modules that ran.
        """
        numel = {}
        for i, item in enumerate(self.pending):
            if item is not None:
                ms, nz, n = item
                fetch.add(("act", i), ms)
                fetch.add(("act0", i), nz)
                numel[i] = n
        self.clear()
        return numel

    def clear(self) -> None:
        for i in range(len(self.pending)):
            self.pending[i] = None

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.clear()
