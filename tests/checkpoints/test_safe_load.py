"""safe_load: no code from a checkpoint ever runs; unknown classes become inert placeholders."""
from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import zipfile
from collections import OrderedDict

import pytest
import torch

import collapse_nb as cnb
from collapse_nb.checkpoints.safe_load import (Placeholder, is_dangerous, make_placeholder, placeholder_name, render,
                                               safe_torch_load, scan)
from collapse_nb.errors import UnreadableFileError

MARKER = "pwned"


# ------------------------------------------------------------------ payloads (defined here: not importable
# by weights_only, so they are either refused or replaced by placeholders)
def touch(path):
    """Harmless-looking function that a placeholder must never call."""
    with open(path, "w") as f:
        f.write("ran")


class OsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class BuiltinExec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class SubprocessCall:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


class CallsTouch:
    """Not on any deny list: must become an inert placeholder that records the call."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (touch, (str(self.marker),))


class Encoder:
    """Stands for an sklearn LabelEncoder pickled beside the weights."""

    def __init__(self, classes):
        self.classes_ = list(classes)


class HParams(dict):
    """A dict subclass (like Lightning's AttributeDict): needs SETITEMS on the placeholder."""


class Tags(list):
    """A list subclass: needs APPENDS on the placeholder."""


PAYLOADS = [OsSystem, BuiltinExec, SubprocessCall]


def _save(obj, path, how):
    if how == "zip":
        torch.save(obj, path)
    elif how == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=int(how.removeprefix("pickle")))
    return path


# ------------------------------------------------------------------ refusing dangerous globals
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("how", ["zip", "legacy", "pickle2", "pickle5"])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, payload, how):
    marker = tmp_path / MARKER
    path = _save({"w": torch.ones(3), "evil": payload(marker)}, tmp_path / "evil.pt", how)
    with pytest.raises(UnreadableFileError, match=r"evil\.pt.*(refused|cannot be unpickled|not a readable)") as ei:
        safe_torch_load(path)
    assert not marker.exists()
    # GLOBAL (protocol 2) and STACK_GLOBAL (protocol 5) names alike are found by the scan and refused
    assert "refused" in str(ei.value) and "malicious" in str(ei.value) and "nothing was unpickled" in str(ei.value)
    # the loader gives the same clear error, naming the file
    with pytest.raises(cnb.CollapseNBError, match="evil.pt"):
        cnb.load(path)
    assert not marker.exists()


def test_unlisted_callable_becomes_inert_placeholder(tmp_path):
    marker = tmp_path / MARKER
    path = _save({"w": torch.arange(4.0), "x": CallsTouch(marker)}, tmp_path / "sneaky.pt", "zip")
    loaded = safe_torch_load(path)
    assert not marker.exists()
    x = loaded.obj["x"]
    assert isinstance(x, Placeholder) and placeholder_name(x) == f"{__name__}.touch"
    assert x._cnb_args == (str(marker),)         # the call was recorded, not made
    x("again")                                   # calling the placeholder does nothing either
    assert not marker.exists()
    assert torch.equal(loaded.obj["w"], torch.arange(4.0))
    assert f"{__name__}.touch" in loaded.placeholders
    assert any("placeholders" in n and "touch" in n for n in loaded.notes)


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def test_reduce_on_a_placeholder_result_is_refused(tmp_path):
    """A pickle that calls what a placeholder returned: the restricted unpickler refuses it."""
    marker = tmp_path / MARKER
    arg = str(marker).encode()
    data = (b"\x80\x02" + _global(__name__, "touch") + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R"
            + b"X" + len(arg).to_bytes(4, "little") + arg + b"\x85R.")
    path = tmp_path / "chain.pt"
    path.write_bytes(data)
    with pytest.raises(UnreadableFileError, match="chain.pt"):
        safe_torch_load(path)
    assert not marker.exists()


def test_dangerous_name_inside_zip_found_by_scan_without_unpickling(tmp_path):
    path = _save({"hp": {"cb": OsSystem(tmp_path / MARKER)}}, tmp_path / "a.ckpt", "zip")
    found = {f"{m}.{n}" for m, n in scan(path).globals}
    assert "posix.system" in found or "nt.system" in found
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name,bad", [("posix.system", True), ("os.system", True), ("builtins.exec", True),
                                      ("builtins.eval", True), ("subprocess.Popen", True),
                                      ("torch.hub.load", True), ("numpy.testing._private.utils.runstring", True),
                                      ("sklearn.preprocessing._label.LabelEncoder", False),
                                      ("builtins.slice", False), ("torch.nn.modules.linear.Linear", False),
                                      ("argparse.Namespace", False), ("ossify.thing", False)])
def test_is_dangerous(name, bad):
    assert is_dangerous(name) is bad


# ------------------------------------------------------------------ placeholders for ordinary objects
def test_objects_beside_tensors_become_placeholders(tmp_path):
    sd = {"fc.weight": torch.randn(3, 2), "fc.bias": torch.zeros(3)}
    ckpt = {"state_dict": sd, "hyper_parameters": HParams(lr=0.1, enc=Encoder(["a", "b"])),
            "tags": Tags(["x", "y"]), "epoch": 3}
    path = _save(ckpt, tmp_path / "obj.ckpt", "zip")
    with pytest.raises(pickle.UnpicklingError):   # plain weights_only refuses it
        torch.load(path, weights_only=True)
    loaded = safe_torch_load(path)
    assert loaded.file_backed
    obj = loaded.obj
    for k, v in sd.items():
        assert torch.equal(obj["state_dict"][k], v)
    hp = obj["hyper_parameters"]                 # dict subclass: a real OrderedDict marked with its class
    assert isinstance(hp, OrderedDict) and placeholder_name(hp) == f"{__name__}.HParams"
    assert hp["lr"] == 0.1 and placeholder_name(hp["enc"]) == f"{__name__}.Encoder"
    assert hp["enc"]._cnb_state == {"classes_": ["a", "b"]}
    assert obj["tags"] == ["x", "y"]
    assert set(loaded.placeholders) == {f"{__name__}.{c}" for c in ("HParams", "Encoder", "Tags")}
    assert render(hp) == {"lr": 0.1, "enc": f"<placeholder {__name__}.Encoder>"}


def test_placeholder_class_never_imports_its_module():
    cls = make_placeholder("no_such_module_xyz.sub", "Thing.Inner")
    assert cls.__module__ == "no_such_module_xyz.sub" and cls.__qualname__ == "Thing.Inner"
    obj = cls(1, k=2)
    obj.__setstate__({"a": 1})
    assert (obj._cnb_args, obj._cnb_kwargs, obj._cnb_state) == ((1,), {"k": 2}, {"a": 1})
    assert repr(obj) == "<placeholder no_such_module_xyz.sub.Thing.Inner>"
    import sys
    assert "no_such_module_xyz" not in sys.modules


def test_legacy_format_is_read_whole_and_noted(tmp_path):
    path = _save({"w": torch.arange(6.0).reshape(2, 3)}, tmp_path / "old.pt", "legacy")
    loaded = safe_torch_load(path)
    assert not loaded.file_backed
    assert torch.equal(loaded.obj["w"], torch.arange(6.0).reshape(2, 3))
    assert any("legacy" in n for n in loaded.notes)


# ------------------------------------------------------------------ broken files
def test_truncated_zip_names_the_file(tmp_path):
    path = _save({"w": torch.randn(1000)}, tmp_path / "cut.pt", "zip")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableFileError, match=r"cut\.pt: truncated or corrupted zip"):
        safe_torch_load(path)
    with pytest.raises(UnreadableFileError, match=r"cut\.pt"):
        cnb.load(path)


def test_corrupted_pickle_inside_zip(tmp_path):
    path = _save({"w": torch.randn(10)}, tmp_path / "bad.pt", "zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("data.pkl"):
                data = data[:5] + b"\xff\xfe garbage" + data[20:]
            zout.writestr(item, data)
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnreadableFileError, match=r"bad\.pt"):
        safe_torch_load(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused_clearly(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(UnreadableFileError, match=r"scripted\.pt: TorchScript archive"):
        safe_torch_load(path)


def test_not_a_pickle(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"\x80\x02" + b"\x00garbage" * 10)
    with pytest.raises(UnreadableFileError, match=r"junk\.pt"):
        safe_torch_load(path)
