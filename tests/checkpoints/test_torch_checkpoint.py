"""The torch-checkpoint reader: real checkpoints of a really trained model, through collapse_nb.load."""
from __future__ import annotations

import enum
import json
import math
import pickle

import pandas as pd
import pytest
import torch

import collapse_nb as cnb
from collapse_nb.errors import NothingReadableError, UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers.base import read_head
from collapse_nb.readers.torch_checkpoint import TorchCheckpointReader

from . import TinyNet, adam_reference, assert_stats_match, close, save_steps, train


class LabelEncoder:
    """Defined here, so weights_only cannot import it: it must become a placeholder."""

    def __init__(self, classes):
        self.classes_ = list(classes)


class Strategy(enum.Enum):
    STEPS = "steps"
    EPOCH = "epoch"


class TrainingArguments:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _lightning(sd, osd, step, epoch=0):
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01), T_max=100, eta_min=1e-5)
    return {"epoch": epoch, "global_step": step, "pytorch-lightning_version": "2.3.3",
            "state_dict": {f"model.{k}": v for k, v in sd.items()},
            "loops": {"fit_loop": {"epoch_loop.state_dict": {"_batches_that_stepped": step}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25)}},
            "optimizer_states": [osd], "lr_schedulers": [sched.state_dict()], "hparams_name": "kwargs",
            "hyper_parameters": {"lr": 0.01, "weight_decay": 0.01, "batch_size": 16,
                                 "label_encoder": LabelEncoder(["cat", "dog"])}}


def test_params_table_matches_torch_for_every_step(tmp_path):
    tr = train(3)
    paths = save_steps(tr, tmp_path, "ckpt_{step}.pt",
                       wrap=lambda sd, osd, i: {"global_step": i, "epoch": 0, "model": sd, "optimizer": osd})
    for path, (sd, osd) in zip(paths, tr.history):
        run = cnb.load(path)
        assert run.meta["formats"] == ["torch-checkpoint"]
        p = run.params
        assert p["param"].tolist() == list(sd)
        assert set(p["checkpoint"]) == {str(path)} and set(p["source"]) == {str(path)}
        assert set(p["step"]) == {int(path.stem.split("_")[1])} and set(p["state"]) == {"model"}
        for _, row in p.iterrows():
            assert_stats_match(row, sd[row["param"]])
        kinds = dict(zip(p["param"], p["kind"]))
        assert kinds["fc1.weight"] == "parameter" and kinds["bn.running_var"] == "buffer"
        o = run.optimizer
        assert o["param"].tolist() == [n for n, _ in tr.model.named_parameters()]
        group = osd["param_groups"][0]
        for _, row in o.dropna(subset=["adam_step"]).iterrows():
            for k, v in adam_reference(osd["state"][row["param_index"]], group).items():
                assert close(row[k], v), (row["param"], k)


def test_lightning_checkpoint(tmp_path):
    tr = train(2)
    sd, osd = tr.history[-1]
    path = tmp_path / "epoch=0-step=2.ckpt"
    torch.save(_lightning(sd, osd, 2), path)
    run = cnb.load(path)
    p = run.params
    assert p["param"].tolist() == [f"model.{k}" for k in sd]
    assert set(p["step"]) == {2} and set(p["epoch"]) == {0.0}
    raw = run.meta["config_raw"][str(path)]
    assert raw["lr"] == 0.01 and raw["batch_size"] == 16
    assert raw["label_encoder"] == f"<placeholder {__name__}.LabelEncoder>"
    assert raw["lr_schedulers.0.eta_min"] == 1e-5 and raw["lr_schedulers.0.T_max"] == 100
    assert run.config["learning_rate"] == 0.01 and run.config["weight_decay"] == 0.01
    notes = run.meta["files"][0]["notes"]
    assert any("placeholders" in n and f"{__name__}.LabelEncoder" in n for n in notes)
    assert any(f"{__name__}.LabelEncoder" in n for n in run.meta["notes"])
    # callback tensors and loops are not parameters; the optimizer maps onto model.* names
    assert not p["param"].str.contains("best_model_score").any()
    assert run.optimizer["param"].tolist() == [f"model.{n}" for n, _ in tr.model.named_parameters()]


def test_whole_pickled_module(tmp_path):
    torch.manual_seed(0)
    model = TinyNet()
    path = tmp_path / "model.pth"
    torch.save(model, path)
    run = cnb.load(path)
    p = run.params.set_index("param")
    sd = model.state_dict()
    assert list(p.index) == list(sd)
    for name, t in sd.items():
        assert_stats_match(p.loc[name], t)
    assert p.loc["fc2.weight", "kind"] == "parameter" and p.loc["scale", "kind"] == "buffer"


@pytest.mark.parametrize("legacy", [False, True])
def test_hf_pytorch_model_bin_with_mixed_dtypes(tmp_path, legacy):
    torch.manual_seed(0)
    sd = {"embed.weight": torch.randn(20, 8).bfloat16(), "ln.weight": torch.randn(8).half(),
          "ids": torch.arange(12).reshape(3, 4), "mask": torch.rand(9) > 0.5,
          "q.weight": torch.randint(-100, 100, (4, 4), dtype=torch.int8), "w64": torch.randn(5, dtype=torch.float64)}
    d = tmp_path / "checkpoint-30"
    d.mkdir()
    path = d / "pytorch_model.bin"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    (d / "trainer_state.json").write_text(json.dumps({"global_step": 30, "epoch": 0.5, "log_history": []}))
    run = cnb.load(path)
    p = run.params.set_index("param")
    for name, t in sd.items():
        assert_stats_match(p.loc[name], t)
    assert set(p["step"]) == {30} and set(p["epoch"]) == {0.5}
    assert any("legacy" in n for n in run.meta["notes"]) is legacy


def test_training_args_bin_gives_config_only(tmp_path):
    path = tmp_path / "training_args.bin"
    torch.save(TrainingArguments(learning_rate=3e-4, num_train_epochs=3, warmup_steps=10,
                                 eval_strategy=Strategy.STEPS), path)
    run = cnb.load(path)
    assert run.params.empty and run.config["learning_rate"] == 3e-4 and run.config["warmup_steps"] == 10
    assert run.meta["config_raw"][str(path)]["eval_strategy"] == "steps"      # an enum member: its value
    assert any("no model tensors" in n for n in run.meta["notes"])


def test_sniff(tmp_path):
    r = TorchCheckpointReader()
    torch.save({"w": torch.ones(2)}, tmp_path / "a.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "b.weird", _use_new_zipfile_serialization=False)
    with open(tmp_path / "c.pt", "wb") as f:
        pickle.dump({"w": [1.0]}, f, protocol=2)
    with open(tmp_path / "c.dat", "wb") as f:
        pickle.dump({"w": [1.0]}, f, protocol=2)
    (tmp_path / "log.txt").write_text("epoch 1 loss 0.5\n")
    scores = {n: r.sniff(read_head(tmp_path / n), tmp_path / n) for n in ("a.pt", "b.weird", "c.pt", "c.dat",
                                                                         "log.txt")}
    assert scores["a.pt"] >= 0.9 and scores["b.weird"] >= 0.9 and 0 < scores["c.pt"] < 0.9
    assert scores["c.dat"] == 0 and scores["log.txt"] == 0
    assert sniff(tmp_path / "a.pt")[0].name == "torch-checkpoint"
    # a raw pickle named like a checkpoint: read safely, refused with a reason (not a torch.save file)
    with pytest.raises(UnreadableFileError, match=r"c\.pt"):
        cnb.load(tmp_path / "c.pt")


def test_directory_of_checkpoints_through_load(tmp_path):
    tr = train(3)
    save_steps(tr, tmp_path / "ckpts", "step_{step}.pt", wrap=lambda sd, osd, i: {"model": sd, "optimizer": osd})
    (tmp_path / "ckpts" / "broken.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    try:
        run = cnb.load(tmp_path / "ckpts")
    except NothingReadableError:
        pytest.skip("the loader does not take a directory holding only checkpoints yet")
    p = run.params
    assert sorted(p["step"].unique().tolist()) == [1, 2, 3]
    assert len(p) == 3 * len(tr.history[0][0])
    assert p.groupby("checkpoint").size().nunique() == 1
    assert len(run.optimizer) == 3 * len(list(tr.model.parameters()))
    assert any(i["source"].endswith("broken.pt") for i in run.meta["ignored"])


def test_corpus_lightning_checkpoint(corpus):
    path = corpus("ckpt-opal", "7k.ckpt")
    run = cnb.load(path)
    p = run.params.set_index("param")
    # the reference: plain torch.load(weights_only=True) with throwaway stand-ins of our own
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))

    class Inert:
        def __init__(self, *a, **k):
            pass

        def __setstate__(self, state):
            pass

    stand_ins = [(type(n.rsplit(".", 1)[-1], (Inert,), {}), n) for n in names]
    with torch.serialization.safe_globals(stand_ins):
        ref = torch.load(path, weights_only=True, map_location="cpu")
    sd = ref["state_dict"]
    assert list(p.index) == list(sd)
    for name, t in sd.items():
        assert tuple(p.loc[name, "shape"]) == tuple(t.shape)
        assert math.isclose(p.loc[name, "norm"], float(t.double().norm()), rel_tol=1e-12)
        assert_stats_match(p.loc[name], t)
    assert set(p["step"]) == {ref["global_step"]} and set(p["epoch"]) == {float(ref["epoch"])}
    o = run.optimizer
    osd = ref["optimizer_states"][0]
    assert len(o) == len(osd["state"])
    group = osd["param_groups"][0]
    for _, row in o.iterrows():
        for k, v in adam_reference(osd["state"][row["param_index"]], group).items():
            assert close(row[k], v), (row["param"], k)
        assert tuple(row["shape"]) == tuple(sd[row["param"]].shape)      # names verified by shape
    notes = " ".join(run.meta["notes"])
    assert "sklearn.preprocessing._label.LabelEncoder" in notes
    assert run.meta["config_raw"][str(path)]["le_uid"] == "<placeholder sklearn.preprocessing._label.LabelEncoder>"
    assert run.config["learning_rate"] == 0.003
    assert isinstance(p, pd.DataFrame)
