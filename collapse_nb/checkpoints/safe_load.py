"""Open a ``torch.save`` file without running any code from it.

Every load goes through ``torch.load(..., weights_only=True)``: PyTorch's restricted
unpickler, which only builds tensors, containers and the classes it is given. Checkpoints
often pickle other objects beside the tensors (an sklearn ``LabelEncoder`` in Lightning's
``hyper_parameters``, the Ultralytics model class, ``argparse.Namespace``). For each such
class we hand the unpickler an inert **placeholder** class with the same module and name:

- it is made here, from the *name* in the pickle; the real module is never imported;
- its ``__new__`` / ``__init__`` / ``__setstate__`` / ``__call__`` only record their
  arguments, so REDUCE, NEWOBJ and BUILD on it can never reach a real callable;
- the restricted unpickler refuses to call a placeholder *instance* (only allow-listed
  callables may be called), so nothing a placeholder returns is ever called either.

A placeholder stands for a class or a function alike (calling it makes an instance that
records the call). A class that subclasses ``dict`` or ``list`` needs SETITEMS/APPENDS,
which the unpickler only allows on real dicts and lists: such a placeholder is retried as
a plain ``OrderedDict`` (remembering its class in ``_cnb_placeholder``) or ``list``.

Names that can only be there to run code (``os.system``, ``builtins.exec``,
``subprocess.*``, ...; see :data:`DENY_MODULES` and :data:`DENY_NAMES`) are refused with
:class:`~collapse_nb.errors.UnreadableFileError` before anything is unpickled, although a
placeholder for them would be inert too: a checkpoint never needs them, so the file is
suspect and the user should know.

The pickle is scanned up front (``pickletools.genops``, which only parses) for its
GLOBAL/STACK_GLOBAL/INST names: ``data.pkl`` inside a zip checkpoint, or the leading
pickles of a legacy (pre-1.6) file. Zip checkpoints are loaded with ``mmap=True``, so
their storages stay file-backed until read; legacy files cannot be mapped and are read
whole.
"""
from __future__ import annotations

import _compat_pickle
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, cast

import torch
from torch._utils import IMPORT_MAPPING, NAME_MAPPING

from ..errors import UnreadableFileError

#: Modules whose every name is refused: process, file system, network, import and code machinery.
DENY_MODULES = frozenset({
    "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "shutil", "socket", "importlib", "runpy",
    "code", "codeop", "pty", "ctypes", "multiprocessing", "pickle", "_pickle", "marshal", "webbrowser",
    "signal", "pdb", "bdb", "timeit", "asyncio", "threading", "_thread", "tempfile", "http", "urllib",
    "ftplib", "smtplib", "telnetlib", "commands", "popen2", "pip", "setuptools", "distutils", "cProfile",
    "profile", "trace", "dill", "cloudpickle", "torch.hub", "torch.jit", "torch.package", "torch._C",
    "torch.ops", "torch.utils.cpp_extension", "numpy.testing", "numpy.distutils", "numpy.f2py",
    # gadgets found by attack: each runs code, spawns a process or imports by name
    "pydoc", "platform", "pkgutil", "zipimport", "imp", "site", "sysconfig", "inspect", "torch.serialization",
    "numpy.lib.npyio", "numpy.lib.format", "shelve", "dbm", "sqlite3", "venv", "ensurepip", "xmlrpc",
    "socketserver", "wsgiref", "logging.config", "concurrent", "select", "selectors", "mmap", "fcntl",
    "termios", "resource", "_winapi", "winreg", "msvcrt", "builtins.__builtins__",
})
#: Single names refused (mostly builtins that evaluate code or reach arbitrary attributes).
DENY_NAMES = frozenset({
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.open", "builtins.__import__",
    "builtins.getattr", "builtins.setattr", "builtins.delattr", "builtins.globals", "builtins.locals",
    "builtins.vars", "builtins.input", "builtins.breakpoint", "builtins.exit", "builtins.quit",
    "builtins.help", "io.open", "_io.open", "io.FileIO", "_io.FileIO",
    "operator.attrgetter", "operator.methodcaller", "types.FunctionType", "types.CodeType",
    "types.LambdaType", "types.MethodType", "types.ModuleType", "functools.reduce", "torch.load",
    "torch.save", "numpy.load", "numpy.save", "numpy.loadtxt", "numpy.fromfile", "numpy.memmap",
    "pandas.read_pickle", "pandas.io.pickle.read_pickle", "joblib.load", "numpy.loads", "numpy.core.multiarray.loads",
    "numpy._core.multiarray.loads", "numpy.fromregex", "numpy.genfromtxt", "torch.from_file", "torch.classes",
})

#: How many times a load is retried after teaching the placeholders something new.
MAX_RETRIES = 64

_TORCH_ZIP_MAGIC = b"PK\x03\x04"
#: A legacy torch.save file starts with the pickled (protocol 2) magic number 0x1950a86a20f9469cfc6c.
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def is_dangerous(full_name: str) -> bool:
    """True for a global that only code execution or file/process access would need.

    Python 2 spellings count as what Python 3 would read them as (``commands`` is ``subprocess``).
    """
    module, _, name = full_name.rpartition(".")
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    py3 = ".".join(mapped) if mapped else f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"
    for full in {full_name, py3}:
        if full in DENY_NAMES:
            return True
        parts = full.split(".")
        if any(".".join(parts[:i]) in DENY_MODULES for i in range(1, len(parts))):
            return True
    return False


class Placeholder:
    """Stands in for a class or function named in a checkpoint; never imported, never runs its code.

    ``_cnb_args`` / ``_cnb_kwargs`` hold what it was called with, ``_cnb_state`` what
    ``__setstate__`` (pickle's BUILD) gave it, ``_cnb_calls`` any calls of an instance.
    """

    _cnb_name: ClassVar[str] = "?"
    _cnb_mode: ClassVar[str] = "object"      # "object", or "dict"/"list" for container subclasses
    # set per instance by __new__ and __setstate__
    _cnb_args: tuple[Any, ...]
    _cnb_kwargs: dict[str, Any]
    _cnb_state: Any
    _cnb_calls: list[tuple[tuple[Any, ...], dict[str, Any]]]

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls._cnb_mode == "dict":
            d: OrderedDict = OrderedDict()
            d.__dict__["_cnb_placeholder"] = cls._cnb_name
            return d
        if cls._cnb_mode == "list":
            return []
        self = object.__new__(cls)
        self._cnb_args, self._cnb_kwargs, self._cnb_state, self._cnb_calls = args, kwargs, None, []
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:   # arguments were recorded by __new__
        pass

    def __setstate__(self, state: Any) -> None:
        self._cnb_state = state

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._cnb_calls.append((args, kwargs))

    def __repr__(self) -> str:
        return f"<placeholder {self._cnb_name}>"


def make_placeholder(module: str, name: str, mode: str = "object") -> type[Placeholder]:
    """A fresh placeholder class whose ``__module__``/``__qualname__`` are ``module``/``name``."""
    return type(name.rsplit(".", 1)[-1], (Placeholder,), {
        "__module__": module, "__qualname__": name, "_cnb_name": f"{module}.{name}", "_cnb_mode": mode})


def placeholder_name(obj: Any) -> str | None:
    """The class a placeholder (or a dict standing in for a dict subclass) replaced, else ``None``."""
    if isinstance(obj, Placeholder):
        return obj._cnb_name
    if type(obj) is OrderedDict:
        return obj.__dict__.get("_cnb_placeholder")
    return None


_NUMPY_RECONSTRUCT = {"numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct"}
#: numpy dtype codes whose bytes can be read as they are (no object arrays, no structured dtypes)
_PLAIN_DTYPE = re.compile(r"^[biufc]\d{1,2}$|^\?$")


def numpy_array(obj: Any) -> "torch.Tensor | None":
    """A numpy array pickled inside a checkpoint, rebuilt from its bytes (no numpy code runs: its shape, dtype
    code and raw buffer are read off the inert placeholder), as a tensor; None for anything else."""
    if not isinstance(obj, Placeholder) or obj._cnb_name not in _NUMPY_RECONSTRUCT:
        return None
    st = obj._cnb_state
    if not (isinstance(st, tuple) and len(st) == 5 and isinstance(st[4], (bytes, bytearray))):
        return None
    _, shape, dt, fortran, raw = st
    if not isinstance(dt, Placeholder) or not dt._cnb_args or not isinstance(dt._cnb_args[0], str):
        return None
    code = dt._cnb_args[0]
    order = dt._cnb_state[1] if isinstance(dt._cnb_state, tuple) and len(dt._cnb_state) > 1 else "|"
    if not _PLAIN_DTYPE.match(code) or order not in ("<", ">", "|", "="):
        return None
    import numpy as np
    try:
        arr = np.frombuffer(bytes(raw), dtype=np.dtype(order.replace("|", "=") + code))
        arr = arr.reshape(tuple(int(d) for d in shape), order="F" if fortran else "C")
        return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
    except (TypeError, ValueError):
        return None


def render(obj: Any) -> Any:
    """Placeholders as ``"<placeholder module.Class>"`` text, for configs and notes.

    A placeholder called with a few plain values (an enum member) shows them:
    ``"<placeholder transformers.trainer_utils.IntervalStrategy('steps')>"``. A dict standing
    in for a dict subclass renders as its contents.
    """
    return _render(obj, {}, 0)


#: How deep :func:`render` follows containers (deeper ones are shown as text): configs are shallow.
MAX_RENDER_DEPTH = 32


def _render(obj: Any, memo: dict[int, Any], depth: int) -> Any:
    """:func:`render`, with each container rendered once (a shared one is the same result again, a cycle
    stays a cycle that :func:`collapse_nb.config.flatten` cuts) and a depth limit."""
    if isinstance(obj, (dict, list, tuple)):
        if id(obj) in memo:
            return memo[id(obj)]
        if depth >= MAX_RENDER_DEPTH:
            return f"<nested deeper than {MAX_RENDER_DEPTH} levels>"
    if isinstance(obj, Placeholder):
        args = obj._cnb_args
        if args and not obj._cnb_kwargs and len(args) <= 3 and \
                all(isinstance(a, (str, int, float, bool)) or a is None for a in args):
            shown = ", ".join(repr(a) for a in args)
            if len(shown) <= 80:
                return f"<placeholder {obj._cnb_name}({shown})>"
        return f"<placeholder {obj._cnb_name}>"
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 and obj.dim() == 0 else \
            f"<tensor {tuple(obj.shape)} {str(obj.dtype).removeprefix('torch.')}>"
    if isinstance(obj, (list, tuple)):
        if type(obj) is tuple:
            memo[id(obj)] = "<tuple containing itself>"           # only a cycle sees this
            out = tuple(_render(v, memo, depth + 1) for v in obj)
            memo[id(obj)] = out
            return out
        lst: list = []
        memo[id(obj)] = lst
        lst.extend(_render(v, memo, depth + 1) for v in obj)
        return lst
    if isinstance(obj, dict):
        d: dict = {}
        memo[id(obj)] = d
        for k, v in obj.items():
            d[k] = _render(v, memo, depth + 1)
        return d
    return obj


# ---------------------------------------------------------------- scanning the pickle
def _mapped(module: str, name: str) -> tuple[str, str]:
    """The names torch's unpickler will look up (Python 2 names mapped the same way)."""
    if (module, name) in NAME_MAPPING:
        return NAME_MAPPING[(module, name)]
    return IMPORT_MAPPING.get(module, module), name


def _globals_in(stream: IO[bytes]) -> list[tuple[str, str]]:
    """``(module, name)`` of every GLOBAL / INST / STACK_GLOBAL in one pickle; stops at STOP."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []            # string pushes so far, for STACK_GLOBAL
    memo: dict[int, str] = {}          # memoised strings (fetched again with GET)
    n_memo = 0
    for op, arg, _ in pickletools.genops(stream):
        kind = op.name
        if kind in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append(_mapped(module, name))
        elif "UNICODE" in kind:
            strings.append(str(arg))
        elif kind in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
            index = n_memo if kind == "MEMOIZE" else cast(int, arg)      # the memo index of a PUT
            n_memo += kind == "MEMOIZE"
            if strings:
                memo[index] = strings[-1]
        elif kind in ("BINGET", "LONG_BINGET", "GET") and cast(int, arg) in memo:
            strings.append(memo[cast(int, arg)])
        elif kind == "STACK_GLOBAL" and len(strings) >= 2:
            found.append((strings[-2], strings[-1]))
    return found


#: The largest a checkpoint's pickle (``data.pkl``: the object tree, not the tensor data) may be: a large
#: model's is a few MB. Larger is refused before anything inflates it.
MAX_PICKLE_BYTES = 256 * 1024 * 1024
#: The largest any compressed record of a checkpoint archive may inflate to, and the largest inflation ratio
#: it may have (torch.save stores tensor data uncompressed; a deflated record that grows a thousandfold is a
#: zip bomb).
MAX_INFLATED_BYTES = 8 * 1024 ** 3
MAX_INFLATE_RATIO = 1000


def _check_sizes(path: Path, z: zipfile.ZipFile, pkl: str) -> None:
    """Refuse an archive whose records would inflate past the limits above (their declared sizes)."""
    for info in z.infolist():
        if info.filename == pkl and info.file_size > MAX_PICKLE_BYTES:
            raise UnreadableFileError(path, f"its pickle {pkl} is {info.file_size:,} bytes when inflated, more "
                                            f"than the {MAX_PICKLE_BYTES:,} a checkpoint's object tree needs "
                                            f"(collapse_nb.checkpoints.safe_load.MAX_PICKLE_BYTES); not read")
        if info.compress_type != zipfile.ZIP_STORED and (
                info.file_size > MAX_INFLATED_BYTES or
                info.file_size > 64 * 1024 * 1024 and info.file_size > MAX_INFLATE_RATIO * max(info.compress_size, 1)):
            raise UnreadableFileError(path, f"record {info.filename} inflates from {info.compress_size:,} to "
                                            f"{info.file_size:,} bytes: a zip bomb, not a checkpoint "
                                            f"(limits: {MAX_INFLATED_BYTES:,} bytes, {MAX_INFLATE_RATIO}x); not read")


@dataclass
class Scan:
    """What the up-front look at a file found."""

    is_zip: bool
    globals: list[tuple[str, str]]
    little_endian: bool = True


def scan(path: Path) -> Scan:
    """Find the pickle(s) in a torch file and the globals they name, without unpickling anything."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    if head.startswith(_TORCH_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                pkl = next((n for n in names if n.endswith("/data.pkl") and n.count("/") == 1), None) \
                    or next((n for n in names if n.endswith("data.pkl")), None)
                if pkl is None:
                    raise UnreadableFileError(path, "zip archive without data.pkl: not a torch.save checkpoint")
                prefix = pkl[: -len("data.pkl")]
                _check_sizes(path, z, pkl)
                order = z.read(prefix + "byteorder")[:16].decode(errors="replace").strip() \
                    if prefix + "byteorder" in names else "little"
                try:        # streamed: genops stops at STOP, so nothing after the pickle is ever inflated
                    with z.open(pkl) as stream:
                        found = _globals_in(stream)
                except (zipfile.BadZipFile, EOFError, OSError):
                    raise
                except Exception as exc:  # noqa: BLE001 - any parse failure means a broken pickle
                    raise UnreadableFileError(path, f"data.pkl inside the checkpoint is not a valid pickle "
                                                    f"({exc})") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError) as exc:
            raise UnreadableFileError(path, f"truncated or corrupted zip archive ({exc})") from None
        return Scan(True, found, order == "little")
    found = []
    with open(path, "rb") as f:
        # legacy torch.save: magic number, protocol, sys info, the object (then raw storages)
        for _ in range(4 if head == LEGACY_MAGIC else 1):
            try:
                found.extend(_globals_in(f))
            except Exception as exc:  # noqa: BLE001
                raise UnreadableFileError(path, f"not a valid pickle ({type(exc).__name__}: {exc})") from None
    return Scan(False, found)


# ---------------------------------------------------------------- loading
@dataclass
class Loaded:
    """A checkpoint's object tree, loaded safely."""

    obj: Any
    path: Path
    #: Storages are views of a private, read-only-used file mapping (their pages may be released).
    file_backed: bool
    placeholders: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _torch_allowed() -> set[str]:
    """The globals torch's restricted unpickler builds itself (the real objects, vetted by torch)."""
    try:
        return set(torch._weights_only_unpickler._get_allowed_globals())
    except AttributeError:  # pragma: no cover - a torch without the private helper: placeholders are harmless
        return set()


_UNSUPPORTED = re.compile(r"GLOBAL (\S+) was not an allowed global")
_CONTAINER = re.compile(r"Can only (SETITEMS?|append|extend)\b.*?but got <class '([^']+)'>")


#: Where torch's errors start advising to turn the safety off (``weights_only=False``, allow-listing the
#: global); nothing from there on is passed on.
_UNSAFE_ADVICE = re.compile(r"\s*(?:Please use `?torch\.serialization|Re-running `?torch\.load|Alternatively, to load|"
                            r"Do it only if|This file can still be loaded|to allowlist|if you trust)\b.*$", re.I | re.S)


def _core_message(msg: str) -> str:
    """torch's weights-only error without its advice to turn safety off."""
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\nCheck the documentation|$)", msg, re.S)
    text = (m.group(1) if m else msg).strip()
    text = re.sub(r"\s+", " ", _UNSAFE_ADVICE.sub("", text)).strip()
    return re.sub(r"[^.]*weights_only[^.]*\.?", "", text).strip()[:500] or "refused by the weights-only unpickler"


def safe_torch_load(path: str | Path) -> Loaded:
    """``torch.load(path, weights_only=True, mmap=<zip>)`` with inert placeholders for unknown classes.

    Raises :class:`~collapse_nb.errors.UnreadableFileError` (naming the file and why) for a
    broken file, a file naming a dangerous global, or one the restricted unpickler cannot
    read even with placeholders.
    """
    path = Path(path)
    info = scan(path)
    allowed = _torch_allowed()
    classes: dict[str, type[Placeholder]] = {}
    for module, name in info.globals:
        full = f"{module}.{name}"
        if full in allowed or full in classes:
            continue
        if is_dangerous(full):
            raise UnreadableFileError(path, f"refused: the pickle references {full}, which could run code or touch "
                                      "the system when unpickled; a checkpoint never needs it, so the file may be "
                                      "malicious (nothing was unpickled)")
        classes[full] = make_placeholder(module, name)
    mmap = info.is_zip
    for _ in range(MAX_RETRIES):
        try:
            with warnings.catch_warnings(), \
                    torch.serialization.safe_globals([(c, n) for n, c in classes.items()]):
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            break
        except pickle.UnpicklingError as exc:
            msg = str(exc)
            if (m := _UNSUPPORTED.search(msg)) is not None:   # missed by the scan: add it and retry
                full = m.group(1) if "." in m.group(1) else f"builtins.{m.group(1)}"
                if is_dangerous(full):
                    raise UnreadableFileError(path, f"refused: the pickle references {full} (file may be malicious; "
                                              "nothing was run)") from None
                if full not in classes:
                    module, _, name = full.rpartition(".")
                    classes[full] = make_placeholder(module, name)
                    continue
            if (m := _CONTAINER.search(msg)) is not None and m.group(2) in classes \
                    and classes[m.group(2)]._cnb_mode == "object":
                module, name = classes[m.group(2)].__module__, classes[m.group(2)].__qualname__
                mode = "dict" if m.group(1).startswith("SETITEM") else "list"
                classes[m.group(2)] = make_placeholder(module, name, mode)
                continue
            raise UnreadableFileError(path, f"cannot be unpickled safely: {_core_message(msg)}") from None
        except RuntimeError as exc:
            msg = str(exc)
            if "TorchScript" in msg:
                raise UnreadableFileError(path, "TorchScript archive (torch.jit.save): its code would have to run "
                                          "to load it; not read") from None
            if mmap and "mmap" in msg:
                mmap = False
                continue
            raise UnreadableFileError(path, f"not a readable torch checkpoint ({_core_message(msg)[:300]})") from None
        except (EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise UnreadableFileError(path, f"not a readable torch checkpoint ({type(exc).__name__}: "
                                      f"{_core_message(str(exc))[:300]})") from None
    else:
        raise UnreadableFileError(path, f"gave up after {MAX_RETRIES} attempts to stand in for its classes")
    names = sorted(classes)
    notes = []
    if names:
        notes.append(f"{len(names)} class(es)/function(s) in the pickle replaced by inert placeholders "
                     f"(never imported or run): {', '.join(names)}")
    if not info.is_zip:
        notes.append("legacy (non-zip) torch.save format: read whole into memory, not memory-mapped")
    file_backed = mmap and info.little_endian and sys.byteorder == "little"
    return Loaded(obj, path, file_backed, names, notes)


__all__ = ["DENY_MODULES", "DENY_NAMES", "Placeholder", "Loaded", "Scan", "is_dangerous", "make_placeholder",
           "numpy_array",
           "placeholder_name", "render", "scan", "safe_torch_load", "LEGACY_MAGIC"]
