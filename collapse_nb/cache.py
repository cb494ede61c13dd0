"""A cache of files already read, so that a second look at a folder of runs parses no log twice.

What one file gave (its :class:`~collapse_nb.readers.base.ReadResult`, scalars already normalised, or the
reason it was ignored) is stored under a key made of the file's absolute path, size, ``mtime_ns`` and
inode, the ``format=`` asked for, the collapse_nb version and a digest of collapse_nb's own source code
(a changed reader, or any other change to the package, is a new key). A hit opens neither the file nor a
reader; everything after reading (assembling the run, the tables, the checks) runs as without the cache.

Where: ``$COLLAPSE_NB_CACHE_DIR``, else ``$XDG_CACHE_HOME/collapse_nb``, else ``~/.cache/collapse_nb``
(entries under ``reads-v1/``). It is safe to delete at any time. ``COLLAPSE_NB_CACHE=0`` (or ``false``,
``no``, ``off``) turns it off; ``load(..., cache=False)`` too, and ``cache="DIR"`` uses DIR.

One entry is a folder named by the key's digest: Parquet files for the tables and ``entry.json`` for the
rest (source, format, config, skipped lines, notes, ...), written last. Every file is written to a temporary
name and renamed into place, so readers never see half an entry and concurrent processes (Dask workers
sharing one cache on shared storage) can write the same entry at once. Only what comes back exactly is
stored: each table is read back and compared before it is written, and the other fields must survive JSON
unchanged (types included), else the file is simply read again next time. An entry that cannot be read
(garbage bytes, a missing table) is a miss and is rewritten; a cache folder that cannot be written is
silently not used. Never fatal.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ._atomic import atomic_write
from .readers.base import ReadResult, SkipLog

ENV_DIR = "COLLAPSE_NB_CACHE_DIR"
ENV_SWITCH = "COLLAPSE_NB_CACHE"
LAYOUT = 1
#: A table file not named by its entry and older than this is left over from an interrupted or raced write.
STALE_S = 120.0

Outcome = tuple[str, Any]           # ("read", ReadResult) | ("ignored", reason) | ("skip", None)


def default_dir() -> Path:
    """``$COLLAPSE_NB_CACHE_DIR``, else ``$XDG_CACHE_HOME/collapse_nb``, else ``~/.cache/collapse_nb``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "collapse_nb"
    return Path.home() / ".cache" / "collapse_nb"


def enabled_by_env() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def resolve(cache: "bool | str | os.PathLike | ReadCache | None") -> "ReadCache | None":
    """The cache to use: ``None`` (the default: on unless ``COLLAPSE_NB_CACHE=0``), ``True``, ``False``, a folder,
    or a :class:`ReadCache`."""
    if isinstance(cache, ReadCache):
        return cache
    if cache is None:
        return ReadCache(default_dir()) if enabled_by_env() else None
    if cache is True:
        return ReadCache(default_dir())
    if cache is False:
        return None
    return ReadCache(Path(cache))


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of collapse_nb's version and every ``.py`` file of the package: code that reads files changed,
    entries written before are not used."""
    from . import __version__
    root = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for p in sorted(root.rglob("*.py")):
        try:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
        except OSError:
            h.update(str(p).encode())
    return h.hexdigest()[:20]


@dataclass(frozen=True)
class Key:
    path: str
    size: int
    mtime_ns: int
    ino: int
    fmt: str

    @property
    def digest(self) -> str:
        text = json.dumps([LAYOUT, code_fingerprint(), self.path, self.size, self.mtime_ns, self.ino, self.fmt])
        return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _key(path: Path, fmt: str | None) -> Key | None:
    try:
        full = os.path.abspath(path)
        st = os.stat(full)
    except (OSError, ValueError):
        return None
    return Key(full, st.st_size, st.st_mtime_ns, st.st_ino, fmt or "")


class ReadCache:
    """The read cache in ``directory``; counts its ``hits``, ``misses`` and entries ``stored``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.root = self.directory / f"reads-v{LAYOUT}"
        self.hits = self.misses = self.stored = 0
        self._unwritable = False

    def __repr__(self) -> str:
        return f"<ReadCache {self.directory}: {self.hits} hit(s), {self.misses} miss(es), {self.stored} stored>"

    def stats(self) -> dict[str, Any]:
        return {"dir": str(self.directory), "hits": self.hits, "misses": self.misses, "stored": self.stored}

    def key(self, path: Path, fmt: str | None) -> Key | None:
        return _key(path, fmt)

    def _entry_dir(self, key: Key) -> Path:
        d = key.digest
        return self.root / d[:2] / d

    def get(self, key: Key | None) -> Outcome | None:
        """What the file of ``key`` gave when it was read, or ``None`` (a miss: absent, or unreadable)."""
        if key is None:
            return None
        try:
            out = self._load(key)
        except Exception:  # noqa: BLE001 - a broken entry is a miss, whatever is wrong with it
            out = None
        if out is None:
            self.misses += 1
        else:
            self.hits += 1
        return out

    def _load(self, key: Key) -> Outcome | None:
        where = self._entry_dir(key)
        try:
            entry = json.loads((where / "entry.json").read_text("utf-8"))
        except FileNotFoundError:
            return None
        if entry.get("key") != dataclasses.asdict(key):
            return None
        kind = entry["kind"]
        if kind != "read":
            return (kind, entry.get("reason"))
        fields = dict(entry["fields"])
        for name, spec in entry["tables"].items():
            fields[name] = _read_table(where / spec["file"], spec)
        for name, specs in entry["table_dicts"].items():
            fields[name] = {k: _read_table(where / s["file"], s) for k, s in specs}
        sk = fields["skipped"]
        fields["skipped"] = SkipLog(**{**sk, "examples": [tuple(e) for e in sk["examples"]]})
        return ("read", ReadResult(**fields))

    def put(self, key: Key | None, outcome: Outcome) -> bool:
        """Store ``outcome`` for the file of ``key`` (taken before it was read); ``False`` when it is not stored: the
        file changed while it was read, something would not come back exactly, or the folder is not writable."""
        if key is None or self._unwritable or _key(Path(key.path), key.fmt or None) != key:
            return False
        kind, value = outcome
        entry: dict[str, Any] = {"key": dataclasses.asdict(key), "kind": kind, "written": time.time()}
        blobs: dict[str, bytes] = {}
        if kind == "read":
            packed = _pack(value, blobs)
            if packed is None:
                return False
            entry.update(packed)
        else:
            entry["reason"] = value
        where = self._entry_dir(key)
        try:
            where.mkdir(parents=True, exist_ok=True)
            for name, data in blobs.items():
                atomic_write(where / name, data)
            atomic_write(where / "entry.json", json.dumps(entry, allow_nan=True).encode("utf-8", "surrogateescape"))
        except OSError:
            self._unwritable = True         # not writable (or full): read on without it, and stop trying
            return False
        _drop_leftovers(where, set(blobs))
        self.stored += 1
        return True


def _pack(r: ReadResult, blobs: dict[str, bytes]) -> dict[str, Any] | None:
    """The JSON part of ``r`` with its tables put in ``blobs`` as Parquet, or ``None`` if any part would not come
    back exactly."""
    nonce = secrets.token_hex(6)
    tables, table_dicts, fields = {}, {}, {}
    for f in dataclasses.fields(r):
        v = getattr(r, f.name)
        if isinstance(v, pd.DataFrame):
            spec = _table_blob(v, f"{nonce}-{f.name}.parquet", blobs)
            if spec is None:
                return None
            tables[f.name] = spec
        elif isinstance(v, dict) and v and all(isinstance(t, pd.DataFrame) for t in v.values()):
            specs = []
            for i, (k, t) in enumerate(v.items()):
                spec = _table_blob(t, f"{nonce}-{f.name}-{i}.parquet", blobs)
                if spec is None or not isinstance(k, str):
                    return None
                specs.append((k, spec))
            table_dicts[f.name] = specs
        elif isinstance(v, SkipLog):
            fields[f.name] = dataclasses.asdict(v)
            back = json.loads(json.dumps(fields[f.name], allow_nan=True))
            if SkipLog(**{**back, "examples": [tuple(e) for e in back["examples"]]}) != v:
                return None
        else:
            try:
                back = json.loads(json.dumps(v, allow_nan=True))
            except (TypeError, ValueError):
                return None
            if not _same(v, back):
                return None
            fields[f.name] = v
    return {"fields": fields, "tables": tables, "table_dicts": table_dicts}


def _table_blob(df: pd.DataFrame, name: str, blobs: dict[str, bytes]) -> dict[str, Any] | None:
    """Put ``df`` as Parquet bytes in ``blobs[name]`` if it reads back equal (dtypes included)."""
    spec = {"file": name,
            "object": [str(c) for c in df.columns if df[c].dtype == object],
            "cats": {str(c): {"values": list(df[c].cat.categories), "object": df[c].cat.categories.dtype == object,
                              "ordered": bool(df[c].cat.ordered)}
                     for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)
                     and all(isinstance(x, str) for x in df[c].cat.categories)}}
    tuples = [c for c in spec["object"] if len(df) and df[c].map(lambda x: isinstance(x, tuple) or x is None).all()]
    if tuples:                                  # a tensor's shape: kept as JSON text, given back as tuples
        spec["tuples"] = tuples
        stored = df.copy()
        for c in tuples:
            stored[c] = [None if x is None else json.dumps(x) for x in df[c]]
    else:
        stored = df
    try:
        buf = io.BytesIO()
        stored.to_parquet(buf)
        data = buf.getvalue()
        pd.testing.assert_frame_equal(_restore(pd.read_parquet(io.BytesIO(data)), spec), df, check_exact=True)
    except Exception:  # noqa: BLE001 - a table that does not survive Parquet is not cached
        return None
    blobs[name] = data
    return spec


def _read_table(path: Path, spec: dict[str, Any]) -> pd.DataFrame:
    return _restore(pd.read_parquet(path), spec)


def _restore(df: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Parquet gives strings back as ``str``, a category column's categories as those used, and a category column
    without categories as ``object``: put back the dtypes (and categories) of the reader's frame."""
    for c in spec["object"]:
        if c in df.columns and df[c].dtype != object:
            df[c] = df[c].astype(object)
    for c in spec.get("tuples", []):
        df[c] = [tuple(json.loads(x)) if isinstance(x, str) else None for x in df[c]]
    for c, cat in spec["cats"].items():   # the categories as they were (unused ones too), of the dtype they had
        if c in df.columns:
            want = pd.CategoricalDtype(pd.Index(cat["values"], dtype=object if cat["object"] else None),
                                       ordered=cat["ordered"])
            col = df[c]
            df[c] = col.cat.set_categories(want.categories, ordered=want.ordered) \
                if isinstance(col.dtype, pd.CategoricalDtype) else col.astype(object).astype(want)
    return df


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (a tuple that came back a list is not the same)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _drop_leftovers(where: Path, keep: set[str]) -> None:
    """Table files of earlier writes of this entry that no ``entry.json`` names any more (old enough that no
    concurrent writer is still about to name them)."""
    now = time.time()
    try:
        for p in where.iterdir():
            if p.name != "entry.json" and p.name not in keep and now - p.stat().st_mtime > STALE_S:
                p.unlink()
    except OSError:
        pass


# ----------------------------------------------------------------------------- a run's triage row

def run_key(files: list[Path], fmt: str | None, extra: Any = None) -> str | None:
    """The key of a run's triage row: the keys of all its files (path, size, mtime, inode), the format asked for,
    ``extra`` (the thresholds, an MLflow run id), the code's fingerprint; None when a file cannot be stat'ed."""
    maybe = [_key(f, fmt) for f in sorted(files)]
    keys = [k for k in maybe if k is not None]
    if len(keys) != len(maybe):
        return None
    text = json.dumps([LAYOUT, code_fingerprint(), [dataclasses.astuple(k) for k in keys], fmt or "", extra],
                      default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _row_path(cache: ReadCache, key: str) -> Path:
    return cache.directory / f"rows-v{LAYOUT}" / key[:2] / f"{key}.json"


def get_row(cache: "ReadCache | None", key: str | None) -> dict[str, Any] | None:
    """The triage row stored for ``key``, or None (absent or unreadable: a miss)."""
    if cache is None or key is None:
        return None
    try:
        entry = json.loads(_row_path(cache, key).read_bytes().decode("utf-8", "surrogateescape"))
        if entry.get("key") == key and isinstance(entry.get("row"), dict):
            cache.hits += 1
            return entry["row"]
    except (OSError, ValueError):
        pass
    cache.misses += 1
    return None


def put_row(cache: "ReadCache | None", key: str | None, row: dict[str, Any], files: list[Path], fmt: str | None,
            extra: Any = None) -> bool:
    """Store a run's triage ``row`` under ``key`` (taken before the run was read), unless a file changed since."""
    if cache is None or key is None or cache._unwritable or run_key(files, fmt, extra) != key:
        return False
    path = _row_path(cache, key)
    try:
        data = json.dumps({"key": key, "row": row, "written": time.time()}, allow_nan=True, default=str)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data.encode("utf-8", "surrogateescape"))
    except (OSError, TypeError, ValueError):
        return False
    cache.stored += 1
    return True


__all__ = ["ReadCache", "Key", "default_dir", "enabled_by_env", "resolve", "code_fingerprint", "ENV_DIR",
           "ENV_SWITCH", "run_key", "get_row", "put_row"]
