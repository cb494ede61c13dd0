"""layout: where the model tensors are, prefixes, step/epoch, ordering."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from collapse_nb.checkpoints import open_checkpoint
from collapse_nb.checkpoints.layout import (Checkpoint, find_progress, find_tensors, is_state_dict, natural_key,
                                            order_checkpoints, progress_from_name, strip_prefixes)

from . import TinyNet


def _sd():
    torch.manual_seed(0)
    return TinyNet().state_dict()


def _names(obj):
    return [(state, name) for state, name, _, _ in find_tensors(obj)]


@pytest.mark.parametrize("key", ["model", "state_dict", "model_state_dict", "net", "module", "ema"])
def test_nested_state_dicts_with_ddp_and_compile_prefixes(tmp_path, key):
    sd = _sd()
    wrapped = {"epoch": 4, "global_step": 120, key: {f"module._orig_mod.{k}": v for k, v in sd.items()},
               "optimizer": {"state": {}, "param_groups": []}}
    path = tmp_path / "c.pt"
    torch.save(wrapped, path)
    with open_checkpoint(path) as ck:
        assert [r.name for r in ck.tensors] == list(sd)
        assert {r.state for r in ck.tensors} == {key}
        assert any("module." in n for n in ck.notes) and any("_orig_mod" in n for n in ck.notes)
        assert (ck.step, ck.epoch, ck.progress_from) == (120, 4.0, "checkpoint")
        for r in ck.tensors:
            assert torch.equal(r.load(), sd[r.name])


def test_model_and_ema_both_kept_with_their_state():
    sd = _sd()
    obj = {"model": sd, "model_ema": {k: v + 1 for k, v in sd.items()}, "callbacks": {"x": {"t": torch.ones(1)}},
           "rng_state": {"cpu": torch.zeros(5, dtype=torch.uint8), "python": (3, (), None)}}
    names = _names(obj)
    assert [n for s, n in names if s == "model"] == list(sd)
    assert [n for s, n in names if s == "model_ema"] == list(sd)
    assert len(names) == 2 * len(sd)


def test_compile_prefix_inside_names_and_module_only_when_all_have_it():
    names, notes = strip_prefixes(["encoder._orig_mod.layer.weight", "head.weight"])
    assert names == ["encoder.layer.weight", "head.weight"] and len(notes) == 1
    names, notes = strip_prefixes(["module.a", "b"])
    assert names == ["module.a", "b"] and not notes


def test_state_dict_detection():
    t = torch.zeros(2)
    assert is_state_dict({"a": t, "b": t, "step": 3})
    assert not is_state_dict({"epoch": 3, "model": {"a": t}})           # a wrapper
    assert not is_state_dict({"python": 1, "numpy": 2, "cpu": t})       # an RNG state
    assert not is_state_dict({"state": {}, "param_groups": []})         # an optimizer state
    assert is_state_dict({"encoder": {"w": t}, "decoder": {"w": t}})    # nested groups
    assert _names({"encoder": {"w": t}, "decoder": {"w": t}}) == [("", "encoder.w"), ("", "decoder.w")]
    assert _names({"lr": 0.1, "name": "x", "step": 3, "w": t}) == [("", "w")]   # last resort: loose tensors


def test_pickled_module_named_like_state_dict(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with open_checkpoint(path) as ck:
        assert [r.name for r in ck.tensors] == list(model.state_dict())        # non-persistent 'scratch' left out
        kinds = {r.name: r.kind for r in ck.tensors}
        assert kinds["fc1.weight"] == "parameter" and kinds["bn.running_mean"] == "buffer"
        assert kinds["scale"] == "buffer"
        assert f"{TinyNet.__module__}.TinyNet" in ck.placeholders
        for r in ck.tensors:
            assert torch.equal(r.load(), model.state_dict()[r.name])


def test_ultralytics_style_model_object_in_dict(tmp_path):
    torch.manual_seed(0)
    model = TinyNet().half()
    path = tmp_path / "best.pt"
    torch.save({"epoch": 7, "best_fitness": 0.5, "model": model, "ema": None, "optimizer": None,
                "train_args": {"lr0": 0.01, "epochs": 100, "batch": 16}}, path)
    with open_checkpoint(path) as ck:
        assert [r.name for r in ck.tensors] == list(model.state_dict())
        assert {r.dtype for r in ck.tensors if r.name.endswith("weight")} == {torch.float16}
        assert ck.epoch == 7.0 and ck.config["train_args.lr0"] == 0.01


def test_progress_from_names():
    assert progress_from_name(Path("ckpts/epoch=3-step=1200.ckpt")) == (1200, 3.0)
    assert progress_from_name(Path("out/checkpoint-500/pytorch_model.bin")) == (500, None)
    assert progress_from_name(Path("step_2000.pt")) == (2000, None)
    assert progress_from_name(Path("iter5000.pth")) == (5000, None)
    assert progress_from_name(Path("model_epoch_10.pt")) == (None, 10.0)
    assert progress_from_name(Path("last.ckpt")) == (None, None)
    assert progress_from_name(Path("lr1e-4_final.pt")) == (None, None)


def test_natural_sort_with_k_suffix():
    names = ["10k.ckpt", "7k.ckpt", "500.ckpt", "1.5M.ckpt", "12000.ckpt"]
    assert sorted(names, key=lambda n: natural_key(Path(n))) == \
        ["500.ckpt", "7k.ckpt", "10k.ckpt", "12000.ckpt", "1.5M.ckpt"]


def test_order_by_content_then_epoch_then_names():
    def ck(name, step=None, epoch=None, src=""):
        return Checkpoint(Path(name), "torch", step=step, epoch=epoch, progress_from=src)
    # content steps contradict the names: content wins
    items = [ck("a_9.pt", 300, src="checkpoint"), ck("a_10.pt", 100, src="checkpoint"),
             ck("a_2.pt", 200, src="checkpoint")]
    ordered, basis = order_checkpoints(items)
    assert [c.step for c in ordered] == [100, 200, 300] and basis == "step (from checkpoint)"
    # not every one has a step: by epoch
    ordered, basis = order_checkpoints([ck("b.pt", epoch=2, src="checkpoint"), ck("a.pt", epoch=1, src="checkpoint"),
                                        ck("c.pt", step=5, epoch=1.5, src="checkpoint")])
    assert basis == "epoch (from checkpoint)" and [c.path.name for c in ordered] == ["a.pt", "c.pt", "b.pt"]
    ordered, basis = order_checkpoints([ck("7k.ckpt"), ck("10k.ckpt"), ck("500.ckpt")])
    assert basis == "file names (natural sort)" and [c.path.name for c in ordered] == \
        ["500.ckpt", "7k.ckpt", "10k.ckpt"]
    ordered, basis = order_checkpoints([ck("last.ckpt"), ck("best.ckpt")])
    assert basis == "given order" and [c.path.name for c in ordered] == ["last.ckpt", "best.ckpt"]


def test_trainer_state_json_gives_step(tmp_path):
    d = tmp_path / "checkpoint-40"
    d.mkdir()
    torch.save(_sd(), d / "pytorch_model.bin")
    (d / "trainer_state.json").write_text(json.dumps({"global_step": 40, "epoch": 1.25, "log_history": []}))
    with open_checkpoint(d / "pytorch_model.bin") as ck:
        assert (ck.step, ck.epoch, ck.progress_from) == (40, 1.25, "trainer_state.json")


def test_find_progress_nested_meta():
    assert find_progress({"meta": {"epoch": 3, "iter": 900}, "state_dict": {}}) == (900, 3.0)
    assert find_progress({"global_step": torch.tensor(12), "epoch": torch.tensor(2)}) == (12, 2.0)
    assert find_progress({"step": True}) == (None, None)


def test_nanogpt_style_checkpoint(tmp_path):
    sd = _sd()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {f"_orig_mod.{k}": v for k, v in sd.items()}, "optimizer": {"state": {}, "param_groups": []},
                "model_args": {"n_layer": 2, "dropout": 0.1}, "iter_num": 2000, "best_val_loss": torch.tensor(1.5),
                "config": {"learning_rate": 6e-4, "weight_decay": 0.1}}, path)
    with open_checkpoint(path) as ck:
        assert [r.name for r in ck.tensors] == list(sd)
        assert ck.step == 2000 and len(ck.optimizers) == 1
        assert ck.config["config.learning_rate"] == 6e-4 and ck.config["model_args.dropout"] == 0.1
