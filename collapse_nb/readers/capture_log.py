"""Capture logs written by :class:`collapse_nb.capture.Recorder` (format ``collapse-capture``).

JSON lines; the first line of each recording session is a header::

    {"format":"collapse-capture","version":1,"type":"header","every":10,
     "params":[{"name":"fc.weight","shape":[8,4],...},...],
     "optimizer":{"class":"AdamW","param_groups":[{"lr":0.001,"weight_decay":0.01,...}]},
     "modules":[...],"metadata":{...},...}
    {"type":"step","step":0,"epoch":0,"batch":0,"phase":"train","lr":[0.001],
     "grad_norm":[...],"weight_norm":[...],"update_norm":[...],"total_grad_norm":0.9,
     "outputs":{"pred_mean":...},"scalars":{"loss":0.8},...}
    {"type":"log","phase":"val","step":120,"epoch":0,"scalars":{"val_loss":0.4}}
    {"type":"end","step":120,"recorded":12}

The per-parameter arrays (``grad_norm``, ``weight_norm``, ``update_norm``) are
in the order of the header's ``params``, the activation arrays (``act_mean``,
``act_std``, ``act_frac_zero``) in the order of its ``modules``. What becomes
what (raw name -> the canonical name :mod:`collapse_nb.names` gives it):

- ``grad_norm`` / ``weight_norm`` / ``update_norm`` with ``param`` set: ``run.grads``;
  a parameter without a gradient has ``grad_norm`` 0 and a ``grad_is_none`` row of 1;
- ``lr`` with ``param`` ``pg0``, ``pg1``...: the learning rate of each param group;
- ``grad_norm_total`` (the global norm of the recorded gradients) -> ``grad_norm``;
  when the loop reported its clipping norm, that one is ``clip_grad_norm_total``
  (-> ``grad_norm``, the norm before clipping) and the recorded one
  ``grad_norm_after_clip``;
- ``loss_scale``; ``micro_batches`` as ``grad_accum_steps``;
- ``outputs`` -> ``pred_mean``, ``pred_std``, ``target_mean``, ``target_std`` (``run.outputs``);
- ``act_mean``, ``act_std``, ``act_frac_zero`` with ``param`` = the module name;
- ``scalars`` -> their own names (``loss``, ``val_loss``...), in the record's phase.

Each header starts a new segment (a session appended to the same file). The
header's optimizer settings (group 0's initial learning rate, weight decay,
betas, momentum...), whether AMP was on, ``every`` and the user's
``metadata`` (``gradient_accumulation_steps``, ``batch_size``...) go to the
configuration. A record the reader cannot use (a line cut off by a killed
process, a record before any header, an unknown type) is counted in the skip
log with its line number.

This reader does not import :mod:`collapse_nb.capture` (or torch): data flows
from the capture code to files to readers, never back.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import flatten
from ..errors import UnreadableFileError
from .base import ReadResult, SkipLog, looks_binary, register
from ._json_common import as_float, is_number, loads, special_float
from .jsonl import JsonlReader

FORMAT_NAME = "collapse-capture"
#: The newest format version this reader knows; newer files are read as far as they agree, with a note.
SUPPORTED_VERSION = 1

_HEAD = re.compile(rb'^\s*\{\s*"format"\s*:\s*"collapse-capture"')
_PER_PARAM = ("grad_norm", "weight_norm", "update_norm")
_PER_MODULE = ("act_mean", "act_std", "act_frac_zero")
_OUTPUTS = ("pred_mean", "pred_std", "target_mean", "target_std")


def _num(v: Any) -> float | None:
    """A record value as a float; ``None`` for what is not a number (null, text, booleans)."""
    if is_number(v):
        return as_float(v)
    if isinstance(v, str):
        return special_float(v)
    return None


class _Rows:
    """Raw scalar columns: a context per record, values per row (spread at the end)."""

    def __init__(self) -> None:
        self.ctx: dict[str, list] = {k: [] for k in ("line", "phase", "epoch", "batch", "step", "wall_time",
                                                     "segment")}
        self.rec: list[int] = []
        self.names: list[str] = []
        self.values: list[float] = []
        self.params: list[str | None] = []

    def record(self, line: int, rec: dict, segment: int, phase: str | None) -> int:
        c = self.ctx
        c["line"].append(line)
        c["phase"].append(phase)
        c["epoch"].append(as_float(rec.get("epoch")))
        c["batch"].append(as_float(rec.get("batch")))
        c["step"].append(as_float(rec.get("step")))
        c["wall_time"].append(as_float(rec.get("wall_time")))
        c["segment"].append(segment)
        return len(c["line"]) - 1

    def add(self, rid: int, name: str, value: Any, param: str | None = None) -> None:
        v = _num(value)
        if v is None:
            return
        self.rec.append(rid)
        self.names.append(name)
        self.values.append(v)
        self.params.append(param)

    def add_array(self, rid: int, name: str, values: list, params: list[str]) -> None:
        if all(type(v) is float or type(v) is int for v in values):     # the common case, no per-value checks
            n = len(values)
            self.rec.extend([rid] * n)
            self.names.extend([name] * n)
            self.values.extend(float(v) for v in values)
            self.params.extend(params)
            return
        for v, p in zip(values, params):
            self.add(rid, name, v, p)

    def __len__(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        rec = np.asarray(self.rec, dtype=np.int64)
        data: dict[str, Any] = {"raw_name": pd.Categorical(self.names),
                                "value": np.asarray(self.values, dtype="float64")}
        for k in ("line", "epoch", "batch", "step", "wall_time", "segment"):
            col = np.asarray(self.ctx[k], dtype="float64")
            if len(col) and not np.isnan(col).all():
                data[k] = col[rec]
        phases = np.asarray(self.ctx["phase"], dtype=object)
        data["phase"] = pd.Categorical(phases[rec] if len(rec) else [], categories=["train", "val", "test"])
        data["param"] = pd.Categorical(self.params)
        return pd.DataFrame(data)


@register
class CaptureLogReader(JsonlReader):
    name = "collapse-capture"
    description = ("collapse_nb.capture.Recorder log: JSON lines opening with a collapse-capture header; "
                   "per-parameter grad/weight/update norms, outputs, activations")

    def sniff(self, head: bytes, path: Path) -> float:
        head = head.removeprefix(b"\xef\xbb\xbf")
        if looks_binary(head):
            return 0.0
        if _HEAD.match(head):
            return 0.99
        first, sep, _ = head.lstrip().partition(b"\n")
        if sep and b'"collapse-capture"' in first:       # a header written with another key order
            try:
                obj = loads(first.decode("utf-8", errors="replace"))
            except ValueError:
                return 0.0
            if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME and obj.get("type") == "header":
                return 0.95
        return 0.0

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        skipped = SkipLog()
        records = self.parse_lines(path, skipped)
        return self.build(path, records, skipped)

    def build(self, path: Path, records: list[tuple[int, dict]], skipped: SkipLog) -> ReadResult:
        rows = _Rows()
        notes: list[str] = []
        config: dict[str, Any] = {}
        segment = -1
        params: list[str] = []
        modules: list[str] = []
        ended = True
        mismatched: set[str] = set()
        unknown_keys: set[str] = set()
        for ln, rec in records:
            kind = rec.get("type")
            if kind == "header":
                if rec.get("format") != FORMAT_NAME:
                    skipped.add(ln, "header of another format", str(rec.get("format"))[:200])
                    continue
                segment += 1
                if not ended:
                    notes.append(f"segment {segment - 1} has no end record: the process stopped without "
                                 "closing the recorder (killed or crashed)")
                ended = False
                version = rec.get("version")
                if not isinstance(version, int) or version > SUPPORTED_VERSION:
                    notes.append(f"line {ln}: capture format version {version!r}; this reader knows up to "
                                 f"{SUPPORTED_VERSION} and reads what it recognises")
                params = [str(p.get("name", f"param{i}")) if isinstance(p, dict) else str(p)
                          for i, p in enumerate(rec.get("params") or [])]
                modules = [str(m) for m in rec.get("modules") or []]
                if segment == 0:
                    config = header_config(rec)
                continue
            if segment < 0:
                skipped.add(ln, "record before the capture header", str(rec)[:200])
                continue
            if kind == "step":
                self._step(rows, ln, rec, segment, params, modules, mismatched, unknown_keys)
            elif kind == "log":
                phase = rec.get("phase") if rec.get("phase") in ("train", "val", "test") else None
                rid = rows.record(ln, rec, segment, phase)
                self._common(rows, rid, rec)
            elif kind == "end":
                ended = True
                if rec.get("error"):
                    notes.append(f"segment {segment}: the loop stopped with an error at step {rec.get('step')}: "
                                 f"{rec['error']}")
            else:
                skipped.add(ln, f"unknown capture record type {kind!r}", str(rec)[:200])
        if segment < 0:
            raise UnreadableFileError(path, "no collapse-capture header record")
        if not ended:
            notes.append(f"segment {segment} has no end record: the process stopped without closing the "
                         "recorder (killed or crashed)")
        if segment > 0:
            notes.append(f"{segment + 1} capture sessions in this file (one segment each)")
        if mismatched:
            notes.append("arrays whose length differs from the header's parameter/module list were not read: "
                         + ", ".join(sorted(mismatched)))
        if unknown_keys:
            notes.append("record keys this reader does not know were not read: " + ", ".join(sorted(unknown_keys)))
        if not len(rows):
            # a header alone (a run killed before its first recorded step) is still a capture file
            notes.append("no recorded step or logged value yet (only the header)")
        return ReadResult(source=str(path), format=self.name, scalars=rows.frame(), config=config,
                          skipped=skipped, notes=notes)

    # ------------------------------------------------------------------ records
    _STEP_KEYS = frozenset({"type", "step", "phase", "epoch", "batch", "wall_time", "micro_batches", "lr",
                            "loss_scale", "grads_unscaled_by_recorder", "no_grad", "total_grad_norm",
                            "clip_total_norm", "outputs", "scalars", *_PER_PARAM, *_PER_MODULE})

    def _step(self, rows: _Rows, ln: int, rec: dict, segment: int, params: list[str], modules: list[str],
              mismatched: set[str], unknown_keys: set[str]) -> None:
        rid = rows.record(ln, rec, segment, "train")
        for key, names in [(k, params) for k in _PER_PARAM] + [(k, modules) for k in _PER_MODULE]:
            vals = rec.get(key)
            if not isinstance(vals, list):
                continue
            if len(vals) != len(names):
                mismatched.add(key)
                continue
            rows.add_array(rid, key, vals, names)
        for i in rec.get("no_grad") or []:
            if isinstance(i, int) and 0 <= i < len(params):
                rows.add(rid, "grad_is_none", 1.0, params[i])
        lrs = rec.get("lr")
        if isinstance(lrs, list):
            for gi, v in enumerate(lrs):
                rows.add(rid, "lr", v, f"pg{gi}")
        elif lrs is not None:
            rows.add(rid, "lr", lrs)
        rows.add(rid, "loss_scale", rec.get("loss_scale"))
        rows.add(rid, "grad_accum_steps", rec.get("micro_batches"))
        if rec.get("clip_total_norm") is not None:
            rows.add(rid, "clip_grad_norm_total", rec.get("clip_total_norm"))
            rows.add(rid, "grad_norm_after_clip", rec.get("total_grad_norm"))
        else:
            rows.add(rid, "grad_norm_total", rec.get("total_grad_norm"))
        self._common(rows, rid, rec)
        unknown_keys.update(k for k in rec if k not in self._STEP_KEYS)

    @staticmethod
    def _common(rows: _Rows, rid: int, rec: dict) -> None:
        outputs = rec.get("outputs")
        if isinstance(outputs, dict):
            for k in _OUTPUTS:
                rows.add(rid, k, outputs.get(k))
        scalars = rec.get("scalars")
        if isinstance(scalars, dict):
            for k, v in scalars.items():
                rows.add(rid, str(k), v)


def header_config(header: dict) -> dict[str, Any]:
    """The configuration a capture header states: optimizer settings, AMP, ``every`` and the user's metadata."""
    cfg: dict[str, Any] = {}
    raw_opt = header.get("optimizer")
    opt: dict = raw_opt if isinstance(raw_opt, dict) else {}
    if opt.get("class"):
        cfg["optimizer"] = opt["class"]
    raw_groups = opt.get("param_groups")
    groups: list = raw_groups if isinstance(raw_groups, list) else []
    g0 = groups[0] if groups and isinstance(groups[0], dict) else (opt.get("defaults") or {})
    lr = g0.get("initial_lr", g0.get("lr"))
    if lr is not None:
        cfg["optimizer.lr"] = lr
    for k, v in g0.items():
        if k in ("lr", "initial_lr", "n_params", "params", "param_names"):
            continue
        if k == "betas" and isinstance(v, list) and len(v) == 2:
            cfg["optimizer.beta1"], cfg["optimizer.beta2"] = v
            continue
        cfg[f"optimizer.{k}"] = v
    if len(groups) > 1:
        cfg["optimizer.param_groups"] = groups
    scaler = header.get("scaler")
    if isinstance(scaler, dict) and scaler.get("enabled"):
        cfg["amp"] = True
        if scaler.get("init_scale") is not None:
            cfg["amp_init_scale"] = scaler["init_scale"]
    for k in ("every", "start_step", "update_norm"):
        if k in header:
            cfg[f"capture.{k}"] = header[k]
    if header.get("model"):
        cfg["capture.model"] = header["model"]
    params = header.get("params")
    if isinstance(params, list):
        cfg["capture.n_params"] = sum(int(p.get("numel", 0)) for p in params if isinstance(p, dict)
                                      and isinstance(p.get("numel"), int))
        cfg["capture.n_tensors"] = len(params)
    meta = header.get("metadata")
    if isinstance(meta, dict):
        for k, v in flatten(meta).items():
            cfg[f"metadata.{k}"] = v
    return {k: v for k, v in cfg.items() if not (isinstance(v, float) and math.isnan(v))}
