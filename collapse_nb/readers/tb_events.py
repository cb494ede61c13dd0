"""TensorBoard event files (``events.out.tfevents.*``), read without TensorFlow.

What becomes what:

- scalars (``simple_value``, or a scalar tensor of the ``scalars`` plugin as newer writers and
  TF2 write it) become raw scalars: ``raw_name`` is the tag (``train/loss``, ``lr-Adam``; names
  are canonicalised centrally), with ``value``, ``step``, ``wall_time`` and ``line``, the
  record's 1-based position in the file (record 1 is the file-version record). Values are the
  float32 (or float64) written.
- histograms (``histo``, as ``add_histogram`` writes them, and the ``histograms`` plugin's
  ``[k, 3]`` tensor) go to ``extra["histograms"]``, one row per bucket (``tag, param, kind, step,
  wall_time, bucket_left, bucket_right, count``; inner edges are the written bucket limits, the
  outer ones the histogram's min and max as TensorBoard draws them, widened where a limit lies
  beyond them), and ``extra["histogram_stats"]``, one row per tag and step (``min, max, num,
  mean, std`` (population), ``norm, sum, sum_squares``). ``kind`` is ``grad`` for tags under
  ``gradients/``, ``grad/``, ``grads/`` (or ending in ``/grad``, ``.grad``, ``_grad``),
  ``weight`` under ``parameters/``, ``params/``, ``weights/``, ``activation`` under
  ``activations/``; ``param`` is the tag without that part (the whole tag when it has none).
- derived rows: each gradient / parameter ``histo`` also adds a scalar row, the L2 norm
  ``sqrt(sum_squares)`` (exact, not estimated from buckets), so that ``run.grads`` has
  ``grad_norm`` / ``weight_norm`` per param. Its ``raw_name`` is the tag where the canonicaliser
  reads the tag as that norm (``gradients/fc.weight``), else ``grad_norm/<param>`` or
  ``weight_norm/<param>``. The tensor form has no ``sum_squares``: its ``sum``, ``sum_squares``,
  ``mean``, ``std``, ``norm`` are NaN, ``min``/``max`` are its outer edges, and it derives no row.
- the hparams plugin's session start (``add_hparams``) goes into the configuration; images,
  audio, text, graphs and other plugins are counted in the notes.
- ``add_scalars`` writes each key to a sub-directory holding only ``<main_tag>``: ``<main_tag>_<key>``
  (torch) or ``<main_tag>/<key>`` (tensorboardX); such a file's series is named ``<main_tag>/<key>``
  (``loss/train``), never merged with its siblings.
- segments: a restart is the step going back for the same tag, or a ``SessionLog.START``
  after data; a value repeated at one step (Ultralytics logs a running mean per batch at the
  epoch's step) is not a restart.

Engines (``TensorBoardReader(engine=...)``): ``numpy`` frames, checks and decodes the one-scalar
records with numpy (:mod:`._tfrecord`, :mod:`._tfscalars`); ``jit`` does the same with numba-compiled
kernels (:mod:`._tb_fast`), one pass each; ``auto`` (the default) uses ``jit`` for files of at least
:data:`JIT_MIN_BYTES` where numba is installed. Both give the same result; every other record is
decoded one at a time (:mod:`._tfproto`).

Damage is never fatal while anything is readable: a file cut off mid-record is read up to its
last whole record (noted, with a warning giving the bytes dropped and their offset); a record
with a wrong data checksum is skipped and counted (``bad checksum``); after a wrong length
checksum the reader scans forward to the next valid record and notes the bytes skipped.
"""
from __future__ import annotations

import importlib.util
import struct
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UnreadableFileError
from ..names import canonicalize
from ._tfproto import DecodeError, decode_event, decode_hparams_start, decode_histogram, decode_tensor, summary_values
from ._tfrecord import Framing, crc32c, frame, mask
from ._tfscalars import fast_scalars
from .base import ReadResult, Reader, SkipLog, register

_KIND_PREFIXES = {"gradients/": "grad", "gradient/": "grad", "grads/": "grad", "grad/": "grad",
                  "parameters/": "weight", "parameter/": "weight", "params/": "weight", "param/": "weight",
                  "weights/": "weight", "weight/": "weight",
                  "activations/": "activation", "activation/": "activation", "acts/": "activation"}
_GRAD_SUFFIXES = ("/grad", ".grad", "_grad", "/gradient", "/gradients")
_NORM_NAME = {"grad": "grad_norm", "weight": "weight_norm"}

#: Files at least this big are read with the compiled kernels when ``engine="auto"``: importing numba and
#: loading the kernels from its cache (~0.3 s) costs more than the numpy code needs for a smaller file
#: (about as much at ~10 MB, ~200,000 scalar events).
JIT_MIN_BYTES = 12 * 1024 * 1024
ENGINES = ("auto", "jit", "numpy")


def jit_available() -> bool:
    """Whether numba can be imported (without importing it: that alone takes a while)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):
        return False


def kernels_for(engine: str, size: int):
    """The compiled kernels (the :mod:`._tb_fast` module) for ``engine`` and a file of ``size`` bytes,
    or ``None`` for the numpy code."""
    if engine not in ENGINES:
        raise ValueError(f"unknown TensorBoard engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "numpy" or (engine == "auto" and (size < JIT_MIN_BYTES or not jit_available())):
        return None
    if engine == "jit" and not jit_available():
        raise ValueError("the 'jit' TensorBoard engine needs numba (pip install collapse_nb[fast])")
    from . import _tb_fast
    return _tb_fast if _tb_fast.AVAILABLE else None


def tag_kind(tag: str) -> tuple[str | None, str]:
    """``(kind, param)`` of a histogram tag: ``gradients/fc.weight`` -> ``('grad', 'fc.weight')``."""
    low = tag.lower()
    for prefix, kind in _KIND_PREFIXES.items():
        if low.startswith(prefix) and len(tag) > len(prefix):
            return kind, tag[len(prefix):]
    for suffix in _GRAD_SUFFIXES:
        if low.endswith(suffix) and len(tag) > len(suffix):
            return "grad", tag[:-len(suffix)]
    return None, tag


@dataclass
class _Rows:
    """Everything decoded record by record (all but the fast-path scalars)."""

    line: list[int] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    param: list[str | None] = field(default_factory=list)
    hists: list[tuple] = field(default_factory=list)
    plugins: dict[str, str] = field(default_factory=dict)
    unused: Counter = field(default_factory=Counter)
    config: dict[str, object] = field(default_factory=dict)
    config_where: dict[str, str] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)   # lines of SessionLog.START
    events: int = 0
    derived: int = 0
    tensor_hists: int = 0

    def scalar(self, line: int, tag: str, value: float, step: int, wall: float, param: str | None = None):
        self.line.append(line)
        self.tag.append(tag)
        self.value.append(value)
        self.step.append(step)
        self.wall.append(wall)
        self.param.append(param)


@register
class TensorBoardReader(Reader):
    name = "tensorboard"
    description = "TensorBoard event files (events.out.tfevents.*): scalars and histograms, no TensorFlow needed"

    def __init__(self, engine: str = "auto"):
        if engine not in ENGINES:
            raise ValueError(f"unknown TensorBoard engine {engine!r}; one of {', '.join(ENGINES)}")
        self.engine = engine

    def sniff(self, head: bytes, path: Path) -> float:
        """1.0 when the first record is an Event naming its file version ("brain.Event:2"); a
        valid record header or an ``*.tfevents.*`` name alone gives less."""
        hint = ".tfevents." in Path(path).name
        weak = 0.3 if hint else 0.0
        if len(head) < 12:
            return weak
        length, length_crc = struct.unpack_from("<QI", head)
        if mask(crc32c(head[:8])) != length_crc:
            return weak
        if 16 + length > len(head):
            return 0.9 if hint else 0.5           # a valid header; the record is longer than the head
        if mask(crc32c(head[12:12 + length])) != struct.unpack_from("<I", head, 12 + length)[0]:
            return weak
        try:
            ev = decode_event(head, 12, 12 + length)
        except DecodeError:
            return weak
        if ev.file_version and ev.file_version.startswith("brain.Event:"):
            return 1.0
        return 0.9 if ev.wall_time or ev.summary else weak

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        buf = path.read_bytes()
        if not buf:
            raise UnreadableFileError(path, "file is empty")
        jit = kernels_for(self.engine, len(buf))
        fr = frame(buf, jit)
        skipped, notes = SkipLog(), []
        for num, off, what in fr.bad:
            skipped.add(num, "bad checksum", f"record {num} at byte {off}: {what}")
        for off, nbytes in fr.gaps:
            notes.append(f"{nbytes} bytes from byte {off} skipped to find the next valid record "
                         "(a record's length checksum was wrong)" if off + nbytes < len(buf) else
                         f"{nbytes} bytes from byte {off} to the end of the file skipped: a record's length "
                         "checksum was wrong and no valid record follows")
        if not len(fr.starts):
            raise UnreadableFileError(path, _why_nothing(fr, len(buf)))
        if fr.truncated:
            off, nbytes = fr.truncated
            msg = (f"file ends inside a record (a crashed or still-running writer?): the last {nbytes} bytes, "
                   f"from byte {off}, were dropped; the {len(fr.starts)} whole records before them were read")
            notes.append(msg)
            warnings.warn(f"{path}: {msg}", stacklevel=2)
        fast = (fast_scalars if jit is None else jit.fast_scalars)(buf, fr.starts, fr.lengths)
        rows = _Rows()
        general = np.ones(len(fr.starts), dtype=bool)
        general[fast.index] = False
        for i in np.flatnonzero(general).tolist():
            _decode_record(buf, int(fr.starts[i]), int(fr.starts[i] + fr.lengths[i]), int(fr.numbers[i]),
                           rows, skipped)
        if rows.events + len(fast.index) == 0:
            raise UnreadableFileError(path, f"none of the {fr.found} records is a TensorBoard event "
                                            "(a TFRecord file of something else?)")
        scalars = _scalar_frame(fast, fr, rows, jit)
        _name_add_scalars_series(scalars, path, notes)
        extra = _histogram_tables(rows.hists)
        if rows.derived:
            notes.append(f"{rows.derived} grad_norm/weight_norm rows derived from gradient/parameter histograms: "
                         "the L2 norm sqrt(sum_squares), exact")
        if rows.tensor_hists:
            notes.append(f"{rows.tensor_hists} histograms in the tensor form: bucket counts and edges only "
                         "(sum, sum_squares, mean, std, norm unknown)")
        if rows.unused:
            notes.append("summaries not used: " + ", ".join(f"{k}: {v}" for k, v in sorted(rows.unused.items())))
        if scalars.empty and not extra:
            notes.append("the file holds no scalars or histograms")
        return ReadResult(source=str(path), format=self.name, scalars=scalars, config=rows.config,
                          skipped=skipped, notes=notes, config_where=rows.config_where, extra=extra)


def _why_nothing(fr: Framing, size: int) -> str:
    whole = fr.found - sum(1 for b in fr.bad if b[2].startswith("length"))
    if whole:
        return f"all {whole} records have a wrong checksum: nothing readable"
    if fr.truncated and not fr.bad:
        return f"file ends inside its first record ({size} bytes, the record needs more): nothing readable"
    return f"not a TensorBoard event file: no valid record in {size} bytes"


def _decode_record(buf: bytes, s: int, e: int, line: int, rows: _Rows, skipped: SkipLog) -> None:
    try:
        ev = decode_event(buf, s, e)
        if not (ev.wall_time or ev.file_version or ev.summary or ev.session_status or ev.other):
            skipped.add(line, "not an Event record", f"record {line} at byte {s - 12}")
            return
        rows.events += 1
        rows.unused.update(ev.other)
        if ev.session_status == 1:
            rows.starts.append(line)
        if ev.summary:
            for v in summary_values(buf, *ev.summary):
                _value(buf, v, ev, line, rows)
    except (ValueError, IndexError, struct.error) as exc:     # DecodeError is a ValueError
        skipped.add(line, "not an Event record", f"record {line} at byte {s - 12}: {exc}")


def _value(buf: bytes, v, ev, line: int, rows: _Rows) -> None:
    if v.plugin:
        rows.plugins.setdefault(v.tag, v.plugin)
    plugin = v.plugin or rows.plugins.get(v.tag)
    if plugin == "hparams":
        hp = decode_hparams_start(buf, *v.content) if v.content else None
        if hp:
            rows.config.update(hp)
            rows.config_where.update({k: f"record {line} (hparams session start)" for k in hp})
        else:
            rows.unused["hparams (experiment / session end)"] += 1
    elif v.kind == "simple":
        rows.scalar(line, v.tag, float(np.frombuffer(buf, "<f4", 1, v.span[0])[0]), ev.step, ev.wall_time)
    elif v.kind == "histo":
        h = decode_histogram(buf, *v.span)
        inner = h.limits[:-1]   # the outer edges are the min and max, widened to keep buckets ordered
        lefts = np.r_[min(h.min, h.limits[0]), inner] if len(h.limits) else h.limits
        rights = np.r_[inner, max(h.max, lefts[-1])] if len(h.limits) else h.limits
        rows.hists.append((v.tag, ev.step, ev.wall_time, lefts, rights, h.counts,
                           h.min, h.max, h.num, h.sum, h.sum_squares))
        kind, param = tag_kind(v.tag)
        if kind in _NORM_NAME:
            name = _NORM_NAME[kind]
            canon = canonicalize(v.tag)
            tag = v.tag if (canon[0], canon[2]) == (name, param) else f"{name}/{param}"
            rows.scalar(line, tag, float(np.sqrt(h.sum_squares)), ev.step, ev.wall_time, param)
            rows.derived += 1
    elif v.kind == "tensor" and plugin in (None, "scalars", "histograms"):
        try:
            arr = decode_tensor(buf, *v.span)
        except DecodeError:
            rows.unused[f"{plugin or 'tensor'} (not numeric)"] += 1
            return
        if plugin == "histograms" and arr.ndim == 2 and arr.shape[1] == 3:
            nonempty = len(arr) > 0
            rows.hists.append((v.tag, ev.step, ev.wall_time, arr[:, 0], arr[:, 1], arr[:, 2],
                               arr[0, 0] if nonempty else np.nan, arr[-1, 1] if nonempty else np.nan,
                               arr[:, 2].sum(), np.nan, np.nan))
            rows.tensor_hists += 1
        elif plugin != "histograms" and arr.size == 1:
            rows.scalar(line, v.tag, float(arr.reshape(-1)[0]), ev.step, ev.wall_time)
        else:
            rows.unused[f"{plugin or 'tensor'} (shape {list(arr.shape)})"] += 1
    else:
        rows.unused[plugin or v.kind] += 1


def _scalar_frame(fast, fr: Framing, rows: _Rows, jit=None) -> pd.DataFrame:
    """Fast-path and record-by-record scalars, in file order, with segments."""
    names: dict[str, int] = {}
    to_name = np.array([names.setdefault(t, len(names)) for t in fast.tags], dtype=np.int64)
    fast_codes = fast.tag if len(names) == len(fast.tags) else to_name[fast.tag]     # (tags decoded alike: merged)
    foreign = [names[t] for t, p in rows.plugins.items() if p not in ("scalars",) and t in names]
    keep: np.ndarray | slice = slice(None)
    if foreign:
        kept = ~(fast.bare_tensor & np.isin(fast_codes, foreign))
        keep = kept
        dropped = int((~kept).sum())
        rows.unused["scalar tensors of other plugins"] += dropped
    gen_codes = np.array([names.setdefault(t, len(names)) for t in rows.tag], dtype=np.int64)

    def cat(a: np.ndarray, b: list | np.ndarray, dtype) -> np.ndarray:          # (no copy when there is nothing to add)
        a = a[keep] if foreign else a
        return np.concatenate([a, np.asarray(b, dtype=dtype)]) if len(b) else a

    line = cat(fr.numbers[fast.index], rows.line, np.int64)
    code = cat(fast_codes, gen_codes, np.int64)
    value = cat(fast.value, rows.value, np.float64)
    step = cat(fast.step, rows.step, np.int64)
    wall = cat(fast.wall_time, rows.wall, np.float64)
    if rows.line:
        order = np.argsort(line, kind="stable")
        line, code, value, step, wall = line[order], code[order], value[order], step[order], wall[order]
    seen = pd.unique(code)                       # categories in order of first appearance
    remap = np.zeros(len(names), dtype=np.int64)
    remap[seen] = np.arange(len(seen))
    if not (seen == np.arange(len(seen))).all() or len(seen) < len(names):
        code = remap[code]
    tags = np.asarray(list(names), dtype=object)[seen].tolist()
    n = len(line)

    def known() -> np.ndarray:               # a mask of its own for each column
        return np.zeros(n, bool)

    # nullable columns built here, zero-copy, so that the central normalisation need not convert them
    data = {"raw_name": pd.Categorical.from_codes(code, categories=tags), "value": value,
            "step": pd.arrays.IntegerArray(step, known()), "wall_time": pd.arrays.FloatingArray(wall, known()),
            "line": pd.arrays.IntegerArray(line, known()),
            "segment": pd.arrays.IntegerArray(_segments(code, step, line, rows.starts, jit), known()),
            "epoch": pd.arrays.FloatingArray(np.zeros(n), ~known()),
            "batch": pd.arrays.IntegerArray(np.zeros(n, np.int64), ~known())}
    if rows.derived:
        param = np.concatenate([np.full(len(fast_codes[keep]), None, dtype=object),
                                np.asarray(rows.param, dtype=object)])
        data["param"] = param[order] if rows.line else param
    return pd.DataFrame(data, copy=False)


def _segments(code: np.ndarray, step: np.ndarray, line: np.ndarray, starts: list[int], jit=None) -> np.ndarray:
    """0 for the first run; +1 at each line where a tag's step goes back, or a SessionLog.START."""
    if jit is not None:
        back_lines = line[jit.steps_back(code, step)]
    else:
        small = code.astype(np.int16) if len(code) and code.max() < 2 ** 15 else code     # a radix sort
        order = np.argsort(small, kind="stable")
        c, s = code[order], step[order]
        back_lines = line[order][1:][(c[1:] == c[:-1]) & (s[1:] < s[:-1])]
    after_data = [s for s in starts if len(line) and s > line[0]]
    flags = np.unique(np.concatenate([back_lines, np.asarray(after_data, dtype=np.int64)]))
    return np.searchsorted(flags, line, side="right").astype(np.int64)


def _name_add_scalars_series(scalars: pd.DataFrame, path: Path, notes: list[str]) -> None:
    """A file holding one tag ``T`` in a directory ``T_<key>`` next to another event file was
    written by ``add_scalars``."""
    cats = list(scalars["raw_name"].cat.categories) if len(scalars) else []
    if len(cats) != 1 or "param" in scalars.columns:
        return
    tag = cats[0]
    prefix = tag.replace("/", "_") + "_"
    parent = path.parent.name
    key = None
    if parent.startswith(prefix) and len(parent) > len(prefix) and \
            any(path.parent.parent.glob("events.out.tfevents.*")):
        key, where = parent[len(prefix):], parent                     # torch: <run>/loss_train/
    else:
        # tensorboardX: <run>/<main_tag>/<key>/ (the main tag's slashes are folders too)
        depth = tag.count("/") + 1
        up = path.parents[depth + 1] if len(path.parents) > depth + 1 else None     # the run folder
        folders = path.parent.parts[-(depth + 1):]
        if up is not None and "/".join(folders[:-1]) == tag and any(up.glob("events.out.tfevents.*")):
            key, where = folders[-1], "/".join(folders)
    if key:
        new = f"{tag}/{key}"
        scalars["raw_name"] = scalars["raw_name"].cat.rename_categories([new])
        notes.append(f"series named {new!r}: tag {tag!r} in directory {where!r} (written by add_scalars)")


def _histogram_tables(hists: list[tuple]) -> dict[str, pd.DataFrame]:
    if not hists:
        return {}
    tags = [h[0] for h in hists]
    kinds = [tag_kind(t) for t in tags]
    sizes = np.array([len(h[5]) for h in hists])
    per = {"tag": pd.Categorical(tags), "param": pd.Categorical([k[1] for k in kinds]),
           "kind": pd.Categorical([k[0] for k in kinds], categories=["grad", "weight", "activation"]),
           "step": np.array([h[1] for h in hists], dtype=np.int64),
           "wall_time": np.array([h[2] for h in hists], dtype=np.float64)}
    buckets = pd.DataFrame({k: (v.take(np.repeat(np.arange(len(hists)), sizes)) if isinstance(v, pd.Categorical)
                                else np.repeat(v, sizes)) for k, v in per.items()})
    for col, j in (("bucket_left", 3), ("bucket_right", 4), ("count", 5)):
        buckets[col] = np.concatenate([np.asarray(h[j], dtype=np.float64) for h in hists]) if sizes.sum() \
            else np.zeros(0)
    st = np.array([h[6:11] for h in hists], dtype=np.float64).reshape(-1, 5)
    mn, mx, num, sm, sq = st.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = sm / num
        std = np.sqrt(np.maximum(sq / num - mean * mean, 0.0))
    stats = pd.DataFrame({**per, "min": mn, "max": mx, "num": num, "mean": mean, "std": std, "norm": np.sqrt(sq),
                          "sum": sm, "sum_squares": sq})
    return {"histograms": buckets, "histogram_stats": stats}
