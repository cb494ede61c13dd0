"""collapse_nb.diff between consecutive checkpoints of a really trained model."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

import collapse_nb as cnb
from collapse_nb.diff import diff
from collapse_nb.errors import MissingPathError, NothingReadableError, UnreadableFileError

from . import close, save_steps, train


def _ref(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    a, b = a.double(), b.double()
    return {"update_norm": float((b - a).norm()), "weight_norm": float(a.norm()),
            "max_abs_change": float((b - a).abs().max())}


def test_frozen_unchanged_others_changed_with_exact_norms(tmp_path):
    tr = train(3, freeze=("fc1.bias",))
    # names that sort the wrong way round: the content's global_step decides
    names = {1: "z_first.pt", 2: "m_second.pt", 3: "a_third.pt"}
    for i, (sd, osd) in enumerate(tr.history, start=1):
        torch.save({"global_step": i * 10, "model": sd, "optimizer": osd}, tmp_path / names[i])
    d = diff(tmp_path)
    assert d.attrs["order_by"] == "step (from checkpoint)"
    assert [c["step"] for c in d.attrs["checkpoints"]] == [10, 20, 30]
    assert len(d) == 2 * len(tr.history[0][0])
    for pair, (a_sd, b_sd) in enumerate(zip(tr.history, tr.history[1:])):
        rows = d[d["step_from"] == (pair + 1) * 10].set_index("param")
        assert set(rows["step_to"]) == {(pair + 2) * 10}
        assert set(rows["checkpoint_to"]) == {str(tmp_path / names[pair + 2])}
        for name, a in a_sd[0].items():
            row, ref = rows.loc[name], _ref(a, b_sd[0][name])
            for k, v in ref.items():
                assert close(row[k], v), (name, k, row[k], v)
            assert close(row["update_ratio"], ref["update_norm"] / ref["weight_norm"])
        assert not rows.loc["fc1.bias", "changed"] and rows.loc["fc1.bias", "unchanged_reason"] == "identical"
        assert not rows.loc["scale", "changed"] and rows.loc["scale", "update_norm"] == 0.0
        for name in ("embed.weight", "fc1.weight", "bn.weight", "fc2.bias", "bn.running_mean"):
            assert rows.loc[name, "changed"] and rows.loc[name, "update_norm"] > 0
            assert rows.loc[name, "unchanged_reason"] is pd_na()


def pd_na():
    import pandas as pd
    return pd.NA


def test_order_from_file_names(tmp_path):
    tr = train(3)
    for name, (sd, _) in zip(["500.pt", "7k.pt", "10k.pt"], tr.history):
        torch.save(sd, tmp_path / name)
    d = diff([tmp_path / "10k.pt", tmp_path / "500.pt", tmp_path / "7k.pt"])
    assert d.attrs["order_by"] == "file names (natural sort)"
    assert [c["checkpoint"].rsplit("/", 1)[-1] for c in d.attrs["checkpoints"]] == ["500.pt", "7k.pt", "10k.pt"]
    first = d[d["checkpoint_from"].str.endswith("500.pt")].set_index("param")
    assert close(first.loc["fc2.weight", "update_norm"],
                 _ref(tr.history[0][0]["fc2.weight"], tr.history[1][0]["fc2.weight"])["update_norm"])


def test_order_from_lightning_names_gives_steps(tmp_path):
    tr = train(2)
    for (sd, _), name in zip(tr.history, ["epoch=0-step=100.ckpt", "epoch=1-step=50.ckpt"]):
        torch.save({"state_dict": sd}, tmp_path / name)
    d = diff(tmp_path)
    assert d.attrs["order_by"] == "step (from file name)"
    assert set(d["step_from"]) == {50} and set(d["step_to"]) == {100}


def test_tolerance(tmp_path):
    w = torch.linspace(-1, 1, 1000)
    torch.save({"w": w, "b": torch.ones(3)}, tmp_path / "step_1.pt")
    torch.save({"w": w + 1e-8, "b": torch.ones(3) * 2}, tmp_path / "step_2.pt")
    d = diff(tmp_path).set_index("param")
    assert not d.loc["w", "changed"] and d.loc["w", "unchanged_reason"] == "below tolerance"
    assert d.loc["b", "changed"]
    d0 = diff(tmp_path, rtol=0.0).set_index("param")
    assert d0.loc["w", "changed"] and d0.attrs["rtol"] == 0.0
    d1 = diff(tmp_path, atol=2.0).set_index("param")
    assert not d1.loc["b", "changed"]


def test_shape_dtype_and_missing_params_flagged(tmp_path):
    torch.save({"a": torch.ones(3), "b": torch.ones(2, 2), "c": torch.ones(4), "gone": torch.ones(1)},
               tmp_path / "step_1.pt")
    torch.save({"a": torch.ones(3).half(), "b": torch.ones(4), "c": torch.ones(4), "new": torch.ones(1)},
               tmp_path / "step_2.pt")
    d = diff(tmp_path).set_index("param")
    assert d.loc["a", "issue"] == "dtype float32 -> float16" and not d.loc["a", "changed"]
    assert d.loc["a", "unchanged_reason"] == "below tolerance"          # same values, other bytes
    assert d.loc["b", "issue"] == "shape (2, 2) -> (4,)" and d.loc["b", "changed"] is pd_na()
    assert d.loc["gone", "issue"] == "missing in checkpoint_to"
    assert d.loc["new", "issue"] == "missing in checkpoint_from"
    assert d.loc["c", "issue"] is pd_na() and d.loc["c", "unchanged_reason"] == "identical"


def test_run_input_and_skipped_files(tmp_path):
    tr = train(2)
    save_steps(tr, tmp_path, "step_{step}.pt", wrap=lambda sd, osd, i: {"model": sd})
    torch.save(tr.history[-1][1], tmp_path / "optimizer.pt")
    data = (tmp_path / "step_1.pt").read_bytes()
    (tmp_path / "broken.pt").write_bytes(data[: len(data) // 2])            # truncated
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    d = diff(tmp_path)
    skipped = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in d.attrs["skipped"]}
    assert skipped["optimizer.pt"] == "no model tensors" and "truncated" in skipped["broken.pt"]
    assert "notes.txt" not in skipped
    try:
        run = cnb.load(tmp_path)
    except NothingReadableError:
        pytest.skip("the loader does not take a directory holding only checkpoints yet")
    dr = diff(run)
    assert dr[["param", "update_norm"]].equals(d[["param", "update_norm"]])
    # a broken file named explicitly is an error
    with pytest.raises(UnreadableFileError, match="broken.pt"):
        diff([tmp_path / "step_1.pt", tmp_path / "broken.pt"])


def test_sharded_and_safetensors_pairs(tmp_path):
    tr = train(2)
    for i, (sd, _) in enumerate(tr.history, start=1):
        save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / f"checkpoint-{i}.safetensors")
    d = diff(tmp_path).set_index("param")
    a, b = tr.history[0][0], tr.history[1][0]
    assert close(d.loc["fc1.weight", "update_norm"], _ref(a["fc1.weight"], b["fc1.weight"])["update_norm"])
    assert d.loc["fc1.bias", "unchanged_reason"] == "identical"


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="atol must be a finite number >= 0, got -1"):
        diff(tmp_path, atol=-1)
    with pytest.raises(ValueError, match="rtol"):
        diff(tmp_path, rtol=float("nan"))
    with pytest.raises(MissingPathError):
        diff(tmp_path / "nope")
    torch.save({"w": torch.ones(1)}, tmp_path / "only.pt")
    with pytest.raises(NothingReadableError, match="at least two checkpoints"):
        diff(tmp_path)
    with pytest.raises(TypeError, match="run_or_checkpoints"):
        diff(42)


def test_nan_weights_are_not_unchanged(tmp_path):
    torch.save({"w": torch.tensor([1.0, 2.0])}, tmp_path / "step_1.pt")
    torch.save({"w": torch.tensor([1.0, math.nan])}, tmp_path / "step_2.pt")
    torch.save({"w": torch.tensor([1.0, math.nan])}, tmp_path / "step_3.pt")
    d = diff(tmp_path)
    assert d["changed"].tolist() == [True, False]
    assert d["unchanged_reason"].tolist()[1] == "identical"       # the same NaN bytes


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_tensors_without_dense_data_are_flagged_not_compared(tmp_path):
    for i in (1, 2):
        sparse = torch.sparse_coo_tensor([[0, 2]], [float(i), 4.0], (5,))
        torch.save({"w": torch.ones(2) * i, "s": sparse}, tmp_path / f"step_{i}.pt")
    d = diff(tmp_path).set_index("param")
    assert d.loc["w", "changed"]
    assert d.loc["s", "issue"].startswith("not compared") and d.loc["s", "changed"] is pd_na()
    p = cnb.load(tmp_path / "step_1.pt").params.set_index("param")
    assert p.loc["s", "norm"] == pytest.approx(math.sqrt(17)) and p.loc["w", "norm"] == math.sqrt(2)  # its values
