"""safetensors files and sharded checkpoints (format ``safetensors``) into the ``params`` table.

Recognised by content: 8 bytes of little-endian header length, then a JSON header whose
entries have ``dtype`` and ``data_offsets``; or a sharded-checkpoint index JSON
(``model.safetensors.index.json``, ``pytorch_model.bin.index.json``) with a ``weight_map``.

Tensors are opened with ``safe_open(framework="pt")`` (file-backed views) and summarised one at
a time, in chunks, their pages released after each (:mod:`collapse_nb.checkpoints.stats`).

**Sharded sets**: the index is the checkpoint. Reading it reads every shard it lists
(safetensors or torch ``.bin``), and every row's ``checkpoint`` is the index path. A shard
listed by an index beside it is not read on its own: in a directory it is left out (listed
in ``run.meta["ignored"]`` with the reason), so no tensor is counted twice.

The header's ``__metadata__`` goes to the config as ``metadata.<key>``; step and epoch come
from it (``step``/``global_step``/``epoch`` keys), a ``trainer_state.json`` beside the file
(Hugging Face ``checkpoint-N`` folders) or the file name. See
:mod:`collapse_nb.readers.torch_checkpoint` for the tables.
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoints import sniff_safetensors
from .base import ReadResult, Reader, register
from .torch_checkpoint import checkpoint_result


@register
class SafetensorsReader(Reader):
    name = "safetensors"
    description = "safetensors files and sharded-checkpoint *.index.json sets, into the params table"

    def sniff(self, head: bytes, path: Path) -> float:
        return sniff_safetensors(head, Path(path))

    def read(self, path: Path) -> ReadResult:
        return checkpoint_result(Path(path), self.name)
