"""Hugging Face ``trainer_state.json`` (``TrainerState.save_to_json``).

One JSON object, written with ``json.dumps(asdict(state), indent=2, sort_keys=True)``;
the curves are in ``log_history``, a list of entries of four kinds::

    {
      "epoch": 10.0,
      "global_step": 5490,
      "log_history": [
        {"epoch": 0.91, "grad_norm": 2.76, "learning_rate": 1.8e-05, "loss": 1.1409, "step": 500},
        {"epoch": 1.0, "eval_loss": 0.6598, "eval_runtime": 2725.8, "step": 549},
        {"epoch": 1.0, "predict_loss": 0.6477, "predict_runtime": 2767.0},
        {"epoch": 10.0, "step": 5490, "train_loss": 0.448, "train_runtime": 64358.2, "total_flos": 3.7e+16}
      ],
      "max_steps": 5490,
      "num_train_epochs": 10,
      "train_batch_size": 6
    }

- training entries (``loss``, ``grad_norm``, ``learning_rate``) get phase
  ``train``, their ``step`` and their (fractional) ``epoch``;
- evaluation entries (``eval_*``) are ``val`` and prediction entries
  (``predict_*``, or ``test_*``) are ``test``: the names say so. Prediction
  entries have no ``step``: the step stays empty, the epoch is kept;
- the final summary entry (``train_loss``, ``train_runtime``, ``total_flos``...)
  describes the whole run: its values are kept at its step, but *without* an
  epoch, so the run-average ``train_loss`` does not replace the last epoch's
  training loss in ``run.epochs`` (a note says so);
- every top-level field except ``log_history`` (``global_step``, ``max_steps``,
  ``num_train_epochs``, ``train_batch_size``, ``logging_steps``, ``eval_steps``,
  nested ``stateful_callbacks`` as dotted keys...) goes to the config.

``line`` is the line in the file where each entry starts. The file is
recognised by content (a JSON object with a ``log_history`` list), whatever its
name. A file cut off while being written keeps every complete entry.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..config import flatten
from ..errors import UnreadableFileError
from .base import ReadResult, Reader, SkipLog, looks_binary, read_text, register
from ._json_common import ListNotes, RowBuilder, as_counter, iter_array_records, loads, numeric_items

_LOG_HISTORY = re.compile(r'"log_history"\s*:\s*\[')
_LOG_HISTORY_B = re.compile(rb'"log_history"\s*:\s*\[')
_SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second", "train_steps_per_second")
_INDEX_KEYS = ("step", "epoch")
SUMMARY_NOTE = ("the final summary entry (train_loss = average over the whole run, train_runtime...) is kept "
                "at its step without an epoch, so it does not stand for the last epoch in run.epochs")


def entry_kind(entry: dict) -> str:
    """``train``, ``eval``, ``predict`` or ``summary``."""
    keys = entry.keys()
    if any(k in keys for k in _SUMMARY_KEYS):
        return "summary"
    if any(k.startswith("eval_") for k in keys):
        return "eval"
    if any(k.startswith(("predict_", "test_")) for k in keys):
        return "predict"
    return "train"


_PHASE_OF_KIND = {"train": "train", "eval": "val", "predict": "test", "summary": None}


@register
class HFTrainerStateReader(Reader):
    name = "hf-trainer-state"
    description = "Hugging Face trainer_state.json: log_history of train, eval_*, predict_* entries"

    def sniff(self, head: bytes, path: Path) -> float:
        if looks_binary(head) or not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
            return 0.0
        if _LOG_HISTORY_B.search(head):
            return 0.95
        if b'"best_model_checkpoint"' in head and b'"global_step"' in head:
            return 0.7
        return 0.0

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        text = read_text(path, skipped).removeprefix("\ufeff")
        state, notes = self._parse_state(path, text)
        m = _LOG_HISTORY.search(text)
        if m is None:
            raise UnreadableFileError(path, "not a trainer_state.json: no 'log_history' list")
        rows, lists = RowBuilder(), ListNotes()
        n_entries, has_summary = 0, False
        for line, entry in iter_array_records(text, skipped, start=m.start()):
            if not isinstance(entry, dict):
                skipped.add(line, "log_history entry is not a JSON object", str(entry)[:200])
                continue
            n_entries += 1
            has_summary |= self._add_entry(rows, lists, line, entry)
        if not len(rows):
            raise UnreadableFileError(path, f"no numeric values in log_history ({n_entries} entries)")
        if has_summary:
            notes.append(SUMMARY_NOTE)
        config = flatten({k: v for k, v in state.items() if k != "log_history"})
        return ReadResult(source=str(path), format=self.name, scalars=rows.frame(), config=config,
                          skipped=skipped, notes=notes + lists.notes())

    @staticmethod
    def _parse_state(path: Path, text: str) -> tuple[dict, list[str]]:
        """The whole JSON object (for the config); a cut-off file gives ``{}`` and a note."""
        try:
            state = loads(text)
        except ValueError as exc:
            if _LOG_HISTORY.search(text):
                return {}, [f"file is not complete JSON ({exc}); the complete log_history entries were "
                            "read, the top-level fields (config) were not"]
            raise UnreadableFileError(path, f"not JSON: {exc}") from exc
        if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
            raise UnreadableFileError(path, "not a trainer_state.json: no 'log_history' list in a JSON object")
        return state, []

    @staticmethod
    def _add_entry(rows: RowBuilder, lists: ListNotes, line: int, entry: dict) -> bool:
        """Add one log_history entry's values; True if it was the run summary."""
        kind = entry_kind(entry)
        step = as_counter(entry.get("step"))
        epoch = math.nan if kind == "summary" else as_counter(entry.get("epoch"))
        phase = _PHASE_OF_KIND[kind]
        body = {k: v for k, v in entry.items() if k not in _INDEX_KEYS}
        rec_id = rows.record(line=line, epoch=epoch, step=step)
        for name, value in numeric_items(body, lists):
            rows.add(rec_id, name, value, phase)
        return kind == "summary"
