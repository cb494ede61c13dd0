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
import io
import pickle
import pickletools
import re
import sys
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
    "pandas.read_pickle", "pandas.io.pickle.read_pickle", "joblib.load",
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
    py3 = _compat_pickle.NAME_MAPPING.get((module, name))
    py3 = ".".join(py3) if py3 else f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"
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


def make_placeholder(module: str, name: str, mode: str = "object") -> type:
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


def render(obj: Any) -> Any:
    """Placeholders as ``"<placeholder module.Class>"`` text, for configs and notes.

    A placeholder called with a few plain values (an enum member) shows them:
    ``"<placeholder transformers.trainer_utils.IntervalStrategy('steps')>"``. A dict standing
    in for a dict subclass renders as its contents.
    """
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
        return type(obj)(render(v) for v in obj) if type(obj) in (list, tuple) else [render(v) for v in obj]
    if isinstance(obj, dict):
        return {k: render(v) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------- scanning the pickle
def _mapped(module: str, name: str) -> tuple[str, str]:
    """The names torch's unpickler will look up (Python 2 names mapped the same way)."""
    if (module, name) in NAME_MAPPING:
        return NAME_MAPPING[(module, name)]
    return IMPORT_MAPPING.get(module, module), name


def _globals_in(stream: io.BufferedIOBase) -> list[tuple[str, str]]:
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
            index = n_memo if kind == "MEMOIZE" else int(arg)
            n_memo += kind == "MEMOIZE"
            if strings:
                memo[index] = strings[-1]
        elif kind in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
            strings.append(memo[int(arg)])
        elif kind == "STACK_GLOBAL" and len(strings) >= 2:
            found.append((strings[-2], strings[-1]))
    return found


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
                order = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
                data = z.read(pkl)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, KeyError) as exc:
            raise UnreadableFileError(path, f"truncated or corrupted zip archive ({exc})") from None
        try:
            found = _globals_in(io.BytesIO(data))
        except Exception as exc:  # noqa: BLE001 - any parse failure means a broken pickle
            raise UnreadableFileError(path, f"data.pkl inside the checkpoint is not a valid pickle ({exc})") from None
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


def _core_message(msg: str) -> str:
    """torch's weights-only error without its advice to turn safety off."""
    m = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\n\nCheck the documentation|$)", msg, re.S)
    text = (m.group(1) if m else msg).strip()
    return re.sub(r"\s+", " ", text)[:500]


def safe_torch_load(path: str | Path) -> Loaded:
    """``torch.load(path, weights_only=True, mmap=<zip>)`` with inert placeholders for unknown classes.

    Raises :class:`~collapse_nb.errors.UnreadableFileError` (naming the file and why) for a
    broken file, a file naming a dangerous global, or one the restricted unpickler cannot
    read even with placeholders.
    """
    path = Path(path)
    info = scan(path)
    allowed = _torch_allowed()
    classes: dict[str, type] = {}
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
            raise UnreadableFileError(path, f"not a readable torch checkpoint ({msg.splitlines()[0][:300]})") from None
        except (EOFError, ValueError, OSError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise UnreadableFileError(path, f"not a readable torch checkpoint ({type(exc).__name__}: "
                                      f"{str(exc)[:300]})") from None
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
           "placeholder_name", "render", "scan", "safe_torch_load", "LEGACY_MAGIC"]
