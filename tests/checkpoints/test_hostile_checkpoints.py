"""Hostile and odd checkpoints: each class built here with torch.save (or by hand), read within seconds and
bounded memory, to a row per tensor or a collapse_nb error naming the file."""
from __future__ import annotations

import io
import math
import pickle
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import collapse_nb as cnb  # noqa: E402
from collapse_nb.checkpoints import safe_load  # noqa: E402
from collapse_nb.errors import UnreadableFileError  # noqa: E402


def _params(path):
    return cnb.load(path).params.set_index("param")


def test_zip_bomb_pickle_is_refused_before_it_inflates(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_load, "MAX_PICKLE_BYTES", 1 << 20)
    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.randn(3, 3)}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data += b"\x00" * (4 << 20)                   # deflated padding after the pickle's STOP
            z.writestr(info.filename, data)
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(UnreadableFileError, match="bomb.pt.*MAX_PICKLE_BYTES"):
        cnb.load(path)


def test_a_zero_stride_view_is_summarised_from_its_storage(tmp_path):
    torch.save(torch.ones(1).expand(2 ** 34), tmp_path / "view.pt")      # a 1.6 KB file of 2**34 "elements"
    run = cnb.load(tmp_path / "view.pt")
    row = run.params.iloc[0]
    assert row["numel"] == 2 ** 34 and row["norm"] == 1.0 and row["frac_zero"] == 0.0
    assert any("storage of 1 (stride 0)" in n for n in run.meta["notes"])


def test_a_bare_tensor_file(tmp_path):
    t = torch.arange(12.0).reshape(3, 4)
    torch.save(t, tmp_path / "t.pt")
    p = _params(tmp_path / "t.pt")
    assert list(p.index) == ["tensor"] and p.loc["tensor", "norm"] == pytest.approx(float(t.norm()))


def test_self_referencing_and_shared_configs_are_cut(tmp_path):
    me = {"lr": 0.1}
    me["self"] = me
    torch.save({"state_dict": {"w": torch.randn(3, 3)}, "hparams": me}, tmp_path / "selfref.pt")
    run = cnb.load(tmp_path / "selfref.pt")
    raw = next(iter(run.meta["config_raw"].values()))
    assert raw["lr"] == 0.1 and raw["self"].startswith("<same as")
    shared = {"x": 1}
    for _ in range(24):                                          # 2**24 leaves if flattened naively
        shared = {"a": shared, "b": shared}
    torch.save({"state_dict": {"w": torch.randn(3, 3)}, "hyper_parameters": shared}, tmp_path / "shared.pt")
    run = cnb.load(tmp_path / "shared.pt")
    assert len(next(iter(run.meta["config_raw"].values()))) < 100 and len(run.params) == 1


def test_one_odd_tensor_never_refuses_the_file(tmp_path):
    sd = {"w": torch.randn(3, 3), "coo": torch.randn(4, 4).to_sparse(), "csr": torch.randn(4, 4).to_sparse_csr()}
    if hasattr(torch, "float4_e2m1fn_x2"):
        sd["fp4"] = torch.zeros(4, 2, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    torch.save({"state_dict": sd}, tmp_path / "odd.pt")
    run = cnb.load(tmp_path / "odd.pt")
    p = run.params.set_index("param")
    assert set(p.index) == set(sd)
    for name in ("coo", "csr"):                                  # sparse norms are the norms of the values
        assert p.loc[name, "norm"] == pytest.approx(float(sd[name].to_dense().norm()), rel=1e-5)
    if "fp4" in sd:
        assert p.loc["fp4", "shape"] == (4, 2) and math.isnan(p.loc["fp4", "norm"])
        assert any(n.startswith(f"{tmp_path / 'odd.pt'}: fp4: not summarised") for n in run.meta["notes"])


def test_numpy_arrays_and_quantized_tuples_are_read(tmp_path):
    q = torch.quantize_per_tensor(torch.randn(4, 4), 0.1, 0, torch.qint8)
    sd = {"w": torch.randn(3, 3), "arr": np.arange(6.0).reshape(2, 3),
          "fc._packed_params._packed_params": (q, torch.randn(4))}
    torch.save({"state_dict": sd}, tmp_path / "mixed.pt")
    p = _params(tmp_path / "mixed.pt")
    assert p.loc["arr", "norm"] == pytest.approx(float(np.linalg.norm(np.arange(6.0))))
    assert p.loc["arr", "shape"] == (2, 3)
    assert {"fc._packed_params._packed_params.0", "fc._packed_params._packed_params.1", "w"} <= set(p.index)


class _Marker:
    """Pickled by reference; its GLOBAL is then rewritten to name the gadget (nothing here imports it)."""

    def __init__(self, *args):
        self.args = args


class _Calls:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return _Marker, self.args


def _with_global(path, module: str, name: str) -> None:
    """Rewrite ``path``'s pickle so that the reference to :class:`_Marker` names ``module.name``."""
    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    ours = f"{_Marker.__module__}\n{_Marker.__qualname__}\n".encode()
    with zipfile.ZipFile(path, "w") as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert ours in data
                data = data.replace(ours, f"{module}\n{name}\n".encode())
            z.writestr(info, data)


@pytest.mark.parametrize("gadget", ["pydoc.pipepager", "platform.popen", "pkgutil.resolve_name",
                                    "zipimport.zipimporter", "torch.serialization.load", "numpy.loads"])
def test_code_running_gadgets_are_refused_and_flagged(tmp_path, gadget):
    marker = tmp_path / "PWNED"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    bad = run_dir / "bad.pt"
    torch.save({"state_dict": {"w": torch.randn(2, 2)}, "x": _Calls(f"touch {marker}")}, bad, pickle_protocol=2)
    _with_global(bad, *gadget.rsplit(".", 1))
    with pytest.raises(UnreadableFileError, match=f"refused: the pickle references {gadget}"):
        cnb.load(bad)
    findings = cnb.diagnose(cnb.load(run_dir))
    (f,) = [f for f in findings if f.check == "suspicious_files"]
    assert (f.code, f.severity) == ("suspicious_checkpoint", "warning") and gadget in f.title
    assert not marker.exists()


def test_errors_never_pass_on_the_advice_to_turn_safety_off(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"w": torch.randn(2), "x": _Calls("arg")}, path)
    with pytest.raises(pickle.UnpicklingError) as raw:           # torch's own message, with its advice
        torch.load(path, weights_only=True)
    assert "weights_only" in str(raw.value)
    text = safe_load._core_message(str(raw.value))
    assert text and "weights_only" not in text and "trust" not in text.lower()
    run = cnb.load(path)                                         # and the file itself reads, with a placeholder
    assert "w" in set(run.params["param"])
