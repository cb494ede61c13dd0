"""Checkpoints: open one safely, whatever its format, and summarise it tensor by tensor.

=============== ==================================================================
kind            what
=============== ==================================================================
``torch``       ``torch.save`` files (zip, or legacy pickle): plain state dicts, dicts
                nesting them, Lightning ``.ckpt``, Hugging Face ``pytorch_model.bin``,
                pickled ``nn.Module`` objects (Ultralytics ``best.pt``), optimizer states
``safetensors`` one ``*.safetensors`` file
``index``       a sharded set, through its ``*.index.json`` (``weight_map``): the index
                is the checkpoint (its path is the ``checkpoint`` id) and every shard
                (safetensors or torch) is read through it; a shard listed by an index
                beside it is not a checkpoint on its own
=============== ==================================================================

:func:`open_checkpoint` gives a :class:`~.layout.Checkpoint` whose tensors are loaded
lazily and file-backed (mapped) where the format allows; :func:`params_table` and
:func:`optimizer_table` read them one at a time, in chunks, releasing each tensor's
pages after it. Importing this package does not import torch; the functions that need
it do, and say what to install when it is missing.
"""
from __future__ import annotations

import functools
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UnreadableFileError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .layout import Checkpoint

ZIP_MAGIC = b"PK\x03\x04"
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
PARAM_COLUMNS = ("checkpoint", "step", "epoch", "param", "state", "kind", "shape", "numel", "dtype", "norm", "mean",
                 "std", "abs_max", "min", "max", "frac_zero", "n_nonfinite", "digest", "const_rows", "zero_rows")


# ---------------------------------------------------------------- recognising (bytes only, no torch)
def sniff_torch(head: bytes, path: Path) -> float:
    """Confidence that ``head`` starts a ``torch.save`` file."""
    if head.startswith(ZIP_MAGIC) and len(head) >= 30:
        n = struct.unpack_from("<H", head, 26)[0]
        name = head[30:30 + n]
        return 0.95 if name.endswith(b"data.pkl") or b"/data/" in name or name.endswith(b"/version") else 0.0
    if head.startswith(LEGACY_MAGIC):
        return 0.95
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") \
            and path.suffix.lower() in TORCH_SUFFIXES:
        return 0.5      # a raw pickle named like a checkpoint: read safely, or refused with a reason
    return 0.0


def safetensors_header_size(head: bytes) -> int | None:
    """The JSON header length of a safetensors file, if ``head`` looks like one."""
    if len(head) < 10:
        return None
    n = struct.unpack_from("<Q", head, 0)[0]
    if not 2 <= n <= 100 * 2**20 or head[8:9] != b"{":
        return None
    return n


def sniff_safetensors(head: bytes, path: Path) -> float:
    """Confidence that ``head`` starts a safetensors file or a sharded-checkpoint index JSON."""
    n = safetensors_header_size(head)
    if n is not None:
        if 8 + n <= len(head):
            try:
                header = json.loads(head[8:8 + n])
            except ValueError:
                return 0.0
            ok = isinstance(header, dict) and all(
                k == "__metadata__" or (isinstance(v, dict) and "dtype" in v and "data_offsets" in v)
                for k, v in header.items())
            return 0.95 if ok else 0.0
        return 0.8 if head[8:10] == b'{"' else 0.0
    text = head.lstrip()
    if text.startswith(b"{") and b'"weight_map"' in head:
        return 0.9
    return 0.0


def kind_of(path: str | Path) -> str | None:
    """``torch``, ``safetensors``, ``index`` or ``None``, from the file's first bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    if sniff_torch(head, path) > 0:
        return "torch"
    if safetensors_header_size(head) is not None and sniff_safetensors(head, path) > 0:
        return "safetensors"
    if sniff_safetensors(head, path) > 0:
        return "index"
    return None


def sharded_index_for(path: Path) -> Path | None:
    """The ``*.index.json`` beside ``path`` whose ``weight_map`` lists it (a shard of a sharded set)."""
    try:
        candidates = sorted(path.parent.glob("*.index.json"))
    except OSError:
        return None
    for idx in candidates:
        try:
            if idx.stat().st_size > 256 * 2**20:
                continue
            wm = json.loads(idx.read_text(encoding="utf-8")).get("weight_map")
        except (ValueError, OSError, AttributeError):
            continue
        if isinstance(wm, dict) and path.name in set(wm.values()):
            return idx
    return None


# ---------------------------------------------------------------- opening
def _need(module: str, path: Path, what: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise UnreadableFileError(path, f"reading {what} needs the '{module}' package: pip install {module}") \
            from None


def open_checkpoint(path: str | Path) -> "Checkpoint":
    """Open a checkpoint file safely (see module doc); close it (or use ``with``) when done."""
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise UnreadableFileError(path, "not a torch.save, safetensors or sharded-index checkpoint")
    _need("torch", path, "checkpoints")
    if kind == "torch":
        return open_torch(path)
    _need("safetensors", path, "safetensors checkpoints")
    return open_safetensors(path) if kind == "safetensors" else open_index(path)


def _progress(ck: "Checkpoint", found: tuple) -> None:
    """Step and epoch: the checkpoint's own, else trainer_state.json beside it, else its name."""
    from .layout import progress_from_name, trainer_state_progress
    used = []
    for where, (step, epoch) in (("checkpoint", found), ("trainer_state.json", trainer_state_progress(ck.path)),
                                 ("file name", progress_from_name(ck.path))):
        if ck.step is None and step is not None:
            ck.step = step
            used.append(where)
        if ck.epoch is None and epoch is not None:
            ck.epoch = epoch
            used.append(where)
    ck.progress_from = " and ".join(dict.fromkeys(used))


def _mapped(loaded) -> list[tuple[int, int]]:
    """The private file mappings of a safely loaded torch checkpoint (none when it was read whole)."""
    from .stats import file_mappings
    return file_mappings(loaded.path) if loaded.file_backed else []


def open_torch(path: Path) -> "Checkpoint":
    """A ``torch.save`` file, loaded with :func:`~.safe_load.safe_torch_load`."""
    from ..config import flatten
    from .layout import Checkpoint, find_config, find_optimizers, find_progress, tensor_refs
    from .safe_load import render, safe_torch_load
    loaded = safe_torch_load(path)
    obj = loaded.obj
    refs, notes = tensor_refs(obj)
    ck = Checkpoint(path, "torch", refs, find_optimizers(obj), config=find_config(obj, flatten, render),
                    notes=loaded.notes + notes, placeholders=loaded.placeholders, mapped=_mapped(loaded))
    _progress(ck, find_progress(obj))
    if not refs and not ck.optimizers:
        top = ", ".join(map(str, list(obj)[:12])) if isinstance(obj, dict) else type(obj).__name__
        ck.notes.append(f"no model tensors or optimizer state found (top level: {top})")
    return ck


_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16",
              "U32": "uint32", "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
              "C64": "complex64", "C128": "complex128"}


def _safetensors_refs(path: Path, names: set[str] | None = None):
    """``(handle, [(name, shape, dtype, loader)], metadata)`` of one safetensors file."""
    import torch
    from safetensors import SafetensorError, safe_open
    try:
        h = safe_open(str(path), framework="pt")
        # in file order (sequential reads of the mapping); the writer's dict order is not kept
        keys = list(h.offset_keys()) if hasattr(h, "offset_keys") else list(h.keys())
        meta = h.metadata() or {}
        items = []
        for k in keys:
            if names is not None and k not in names:
                continue
            sl = h.get_slice(k)
            dt = getattr(torch, _ST_DTYPES.get(sl.get_dtype(), ""), None) or torch.uint8
            items.append((k, tuple(sl.get_shape()), dt, (lambda k=k: h.get_tensor(k))))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnreadableFileError(path, f"not a readable safetensors file ({exc})") from None
    return h, items, meta


def _meta_progress(meta: dict) -> tuple:
    from .layout import EPOCH_KEYS, STEP_KEYS
    step = next((int(float(meta[k])) for k in STEP_KEYS if _is_num(meta.get(k))), None)
    epoch = next((float(meta[k]) for k in EPOCH_KEYS if _is_num(meta.get(k))), None)
    return step, epoch


def _is_num(v) -> bool:
    try:
        float(v)
        return v is not None and not isinstance(v, bool)
    except (TypeError, ValueError):
        return False


def open_safetensors(path: Path) -> "Checkpoint":
    """One ``*.safetensors`` file through ``safe_open`` (tensors are file-backed views)."""
    from .layout import Checkpoint, TensorRef, strip_prefixes
    h, items, meta = _safetensors_refs(path)
    names, notes = strip_prefixes([k for k, _, _, _ in items])
    refs = [TensorRef(n, "", None, shape, dt, load) for n, (_, shape, dt, load) in zip(names, items)]
    from .stats import file_mappings
    ck = Checkpoint(path, "safetensors", refs, notes=notes, mapped=file_mappings(path),
                    config={f"metadata.{k}": v for k, v in meta.items()})
    ck._closers.append(lambda: h.__exit__(None, None, None))
    _progress(ck, _meta_progress(meta))
    return ck


def open_index(path: Path) -> "Checkpoint":
    """A sharded checkpoint through its ``*.index.json``; every shard is opened (mapped) and read lazily."""
    from .layout import Checkpoint, TensorRef, find_tensors, strip_prefixes
    from .safe_load import safe_torch_load
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        assert isinstance(weight_map, dict)
    except (ValueError, KeyError, AssertionError, OSError) as exc:
        raise UnreadableFileError(path, f"not a sharded-checkpoint index (no weight_map: {exc})") from None
    from .stats import file_mappings
    ck = Checkpoint(path, "index")
    items: list[tuple] = []
    for shard in dict.fromkeys(weight_map.values()):
        sp = path.parent / str(shard)
        if not sp.is_file():
            ck.close()
            raise UnreadableFileError(path, f"shard {shard} listed in the index is missing")
        wanted = {k for k, v in weight_map.items() if v == shard}
        if kind_of(sp) == "safetensors":
            h, found, meta = _safetensors_refs(sp, wanted)
            ck._closers.append(functools.partial(h.__exit__, None, None, None))
            ck.mapped.extend(file_mappings(sp))
        else:
            loaded = safe_torch_load(sp)
            ck.mapped.extend(_mapped(loaded))
            ck.placeholders = sorted(set(ck.placeholders) | set(loaded.placeholders))
            found = [(n, tuple(t.shape), t.dtype, (lambda t=t: t)) for _, n, t, _ in find_tensors(loaded.obj)
                     if n in wanted]
        if len(found) < len(wanted):
            ck.notes.append(f"{len(wanted) - len(found)} tensor(s) the index puts in {shard} are not in it")
        items.extend(found)
    names, notes = strip_prefixes([k for k, _, _, _ in items])
    ck.tensors = [TensorRef(n, "", None, shape, dt, load) for n, (_, shape, dt, load) in zip(names, items)]
    ck.notes.extend(notes)
    ck.notes.append(f"sharded checkpoint: {len(dict.fromkeys(weight_map.values()))} shard(s) read through the index")
    _progress(ck, (None, None))
    return ck


def params_table(ck: "Checkpoint", *, chunk: int | None = None) -> "pd.DataFrame":
    """One row per model tensor of ``ck`` (:data:`PARAM_COLUMNS`), read in chunks, pages released."""
    from .stats import params_table as build
    return build(ck, chunk=chunk)


def optimizer_table(ck: "Checkpoint", *, chunk: int | None = None) -> "pd.DataFrame":
    """One row per parameter per optimizer state of ``ck`` (see :mod:`.optimizer`)."""
    from .optimizer import optimizer_table as build
    return build(ck, chunk=chunk)


__all__ = ["open_checkpoint", "open_torch", "open_safetensors", "open_index", "params_table", "optimizer_table",
           "kind_of", "sniff_torch", "sniff_safetensors", "sharded_index_for", "PARAM_COLUMNS"]
