"""PyTorch checkpoints (format ``torch-checkpoint``), read safely into the ``params`` and ``optimizer`` tables.

Recognised by content: a zip whose first record is ``<archive>/data.pkl`` (``torch.save``
since 1.6) or the legacy pickled magic number; a raw pickle only when it is named like a
checkpoint (``.pt .pth .ckpt .bin ...``). Plain state dicts, dicts nesting them, Lightning
``.ckpt``, Hugging Face ``pytorch_model.bin``, optimizer-only files (``optimizer.pt``) and
pickled ``nn.Module`` objects (Ultralytics ``best.pt``) are all read the same way; see
:mod:`collapse_nb.checkpoints` for where tensors, step and epoch are found.

Nothing from the file runs: ``torch.load(weights_only=True)`` with inert placeholders for
the classes it pickles (:mod:`collapse_nb.checkpoints.safe_load`); the classes replaced are
listed in the notes. Tensors are memory-mapped and summarised one at a time in chunks.

What the result holds:

- ``extra["params"]``: one row per model tensor (``checkpoint, step, epoch, param, state,
  kind, shape, numel, dtype, norm, mean, std, abs_max, min, max, frac_zero, n_nonfinite,
  digest``); ``kind`` is ``parameter``/``buffer`` when a pickled module, a batch-norm
  buffer name or the optimizer (a verified name) says so;
- ``extra["optimizer"]``: one row per parameter per optimizer state
  (:mod:`collapse_nb.checkpoints.optimizer`);
- ``config``: Lightning ``hyper_parameters`` (unprefixed, like ``hparams.yaml``), ``args`` /
  ``config`` / ``train_args`` / ... (prefixed), scheduler states (``lr_schedulers.0.eta_min``);
  objects as ``"<placeholder module.Class>"``;
- ``scalars``: none (step and epoch are columns of the tables, and logs carry the metrics);
- ``notes``: placeholders, prefixes stripped, where step/epoch came from.

A shard of a sharded checkpoint (listed by a ``*.index.json`` beside it) is read through its
index (format ``safetensors``); read on its own it is refused with a message saying so.
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import sharded_index_for, sniff_torch
from ..errors import CollapseNBError, UnreadableFileError
from .base import ReadResult, Reader, empty_scalars, register


def checkpoint_result(path: Path, fmt: str) -> ReadResult:
    """Open a checkpoint safely and summarise it into a :class:`ReadResult` (shared by both readers)."""
    path = Path(path)
    if not path.name.endswith(".index.json") and (idx := sharded_index_for(path)) is not None:
        raise UnreadableFileError(path, f"a shard of the sharded checkpoint {idx.name}: its tensors are read "
                                  "through that index")
    from ..checkpoints import open_checkpoint, optimizer_table, params_table
    try:
        with open_checkpoint(path) as ck:
            params, optim = params_table(ck), optimizer_table(ck)
            notes, config = list(ck.notes), dict(ck.config)
            step, epoch, where = ck.step, ck.epoch, ck.progress_from
    except CollapseNBError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError, KeyError, IndexError, AttributeError) as exc:
        raise UnreadableFileError(path, f"not readable as a checkpoint: {type(exc).__name__}: {exc}") from exc
    if len(optim) and len(params):      # a verified optimizer name is a parameter
        named = set(optim["param"].dropna())
        primary = params["state"] == params["state"].iloc[0]
        fill = params["kind"].isna() & params["param"].isin(named) & primary
        params.loc[fill, "kind"] = "parameter"
    if where:
        notes.append(f"step {step}, epoch {epoch} (from the {where})")
    notes.append(f"{len(params)} tensor(s) summarised" + (f", {len(optim)} optimizer row(s)" if len(optim) else ""))
    extra = {name: t for name, t in (("params", params), ("optimizer", optim)) if len(t)}
    return ReadResult(source=str(path), format=fmt, scalars=empty_scalars(), config=config, notes=notes,
                      extra=extra)


@register
class TorchCheckpointReader(Reader):
    name = "torch-checkpoint"
    description = ("PyTorch checkpoints (torch.save state dicts, Lightning .ckpt, pytorch_model.bin, optimizer.pt, "
                   "pickled modules), loaded safely into params/optimizer tables")

    def sniff(self, head: bytes, path: Path) -> float:
        return sniff_torch(head, Path(path))

    def read(self, path: Path) -> ReadResult:
        return checkpoint_result(Path(path), self.name)
