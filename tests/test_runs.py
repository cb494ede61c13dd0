"""Folders of many runs: discovery rules, load_runs, triage and `collapse-nb triage`."""
from __future__ import annotations

import json
import os

import pytest

import collapse_nb as cnb
from collapse_nb.discovery import find_runs

CSV = ("epoch,step,train_loss_step,val_loss\n"
       + "".join(f"{s // 10},{s},{1.0 / (s + 1):.4f},\n" for s in range(0, 50, 5)))


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_discovery_rules(tmp_path):
    torch = pytest.importorskip("torch")
    root = tmp_path / "exp"
    _write(root / "README.md", "# sweep\nlr 0.1 gave loss 0.5, lr 0.01 gave 0.4\n")           # not a run
    _write(root / "config.yaml", "lr: 0.1\n")                                                 # a container's config
    _write(root / "lightning_logs" / "version_0" / "metrics.csv", CSV)
    torch.save({"state_dict": {"w": torch.ones(2)}}, _write(root / "lightning_logs" / "version_0" / "checkpoints"
                                                             / "last.ckpt", ""))
    later = "epoch,step,train_loss_step,val_loss\n" + "".join(f"{s // 10},{s},{0.02:.4f},\n" for s in range(50, 80, 5))
    _write(root / "lightning_logs" / "version_1" / "metrics.csv", later)
    hf = root / "hf_out"
    state = {"log_history": [{"step": s, "loss": 1.0 / s, "epoch": s / 10} for s in range(1, 11)],
             "global_step": 10, "max_steps": 10, "best_model_checkpoint": None}
    _write(hf / "trainer_state.json", json.dumps(state))
    _write(hf / "checkpoint-5" / "trainer_state.json", json.dumps({**state, "log_history": state["log_history"][:5]}))
    _write(root / "tb_run" / "tb" / "x.txt", "")                                             # an empty part
    _write(root / "tb_run" / "log.jsonl", '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    torch.save({"w": torch.ones(3)}, _write(root / "only_weights" / "model.pt", ""))
    if hasattr(os, "symlink"):
        os.symlink(root / "tb_run", root / "latest-run")                                      # a link to a run
    runs = {r.name: r for r in find_runs(root)}
    assert sorted(runs) == ["hf_out", "lightning_logs/version_0", "lightning_logs/version_1", "only_weights",
                            "tb_run"]
    assert runs["hf_out"].parts == [hf / "checkpoint-5"]
    assert root / "lightning_logs" / "version_0" / "checkpoints" in runs["lightning_logs/version_0"].parts
    loaded = cnb.load_runs(root)
    assert loaded["lightning_logs/version_1"].meta["resumed_from"] == "lightning_logs/version_0"
    assert loaded["hf_out"].meta["run_name"] == "hf_out" and len(loaded["hf_out"].objective("train").rows) == 10
    assert len(loaded) == 5 and not loaded.failed


def test_mlflow_and_wandb_folders_are_one_run_each(tmp_path):
    run = tmp_path / "mlruns" / "1" / "abc"
    _write(tmp_path / "mlruns" / "1" / "meta.yaml", "artifact_location: x\nexperiment_id: '1'\nname: e\n")
    _write(run / "meta.yaml", "experiment_id: '1'\nrun_id: abc\nrun_name: r\nstatus: 5\n")
    for name in ("train/loss", "val/loss"):
        _write(run / "metrics" / name, "".join(f"{1700000000000 + s} {1.0 / (s + 1)} {s}\n" for s in range(10)))
    _write(run / "params" / "lr", "0.1")
    (found,) = find_runs(tmp_path)
    assert found.name == "mlruns/1/abc"
    runs = cnb.load_runs(tmp_path)
    (stop,) = [f for f in cnb.diagnose(runs[0]) if f.code == "run_incomplete"]
    assert "KILLED" in stop.summary


def test_triage_of_zoo_scenarios_names_each_expected_cause(tmp_path):
    zoo = pytest.importorskip("collapse_nb.zoo")
    names = ["healthy_mlp", "dead_branch", "overfitting", "variance_collapse"]
    for name in names:
        zoo.generate(name, tmp_path / name, seed=0)
    table = cnb.load_runs(tmp_path).triage().set_index("run")
    for name in names:
        expected = zoo.expected_findings(name)[0]
        if name.startswith("healthy"):
            assert table.loc[name, "status"] == "healthy" and table.loc[name, "critical"] == 0
        else:
            assert table.loc[name, "top_cause"] == expected, (name, table.loc[name].to_dict())
    order = list(table.index)
    assert order[-1] == "healthy_mlp"                          # worst first
    from collapse_nb.cli import main
    assert main(["triage", str(tmp_path), "--json"]) == 0


def test_an_unreadable_run_is_listed_not_dropped(tmp_path):
    _write(tmp_path / "good" / "log.jsonl", '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    _write(tmp_path / "bad" / "train.log", "epoch 1 loss=1.0\n")
    (tmp_path / "bad" / "train.log").write_bytes(b"\x00\x01\x02 binary \x03" * 50)
    runs = cnb.load_runs(tmp_path)
    assert runs.names == ["good"]
    table = runs.triage()
    assert len(table) == 1
    with pytest.raises(KeyError, match="no run named"):
        runs["nope"]


def test_load_on_a_folder_of_several_runs_refuses_and_points_to_load_runs(tmp_path):
    for name in ("a", "b"):
        _write(tmp_path / name / "log.jsonl", '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    with pytest.raises(cnb.errors.SeveralRunsError, match=r"holds 2 runs \(a, b\).*load_runs") as e:
        cnb.load(tmp_path)
    assert e.value.names == ["a", "b"]
    run = cnb.load(tmp_path, merge=True)                              # asked for: read as one, and said
    assert run.meta["runs_found"] == ["a", "b"]
    assert any("holds 2 runs (a, b)" in n and "load_runs" in n for n in run.meta["notes"])
    assert "runs_found" not in cnb.load(tmp_path / "a").meta


def test_lightning_versions_that_do_not_continue_each_other_are_refused(tmp_path):
    for name, first in (("version_0", 0), ("version_1", 0)):       # two fresh runs, both from step 0
        rows = "".join(f'{{"step": {first + s}, "loss": {1 - s / 100}}}\n' for s in range(10))
        _write(tmp_path / name / "log.jsonl", rows)
    with pytest.raises(cnb.errors.SeveralRunsError):
        cnb.load(tmp_path)




def test_folders_a_tensorboard_writer_adds_stay_part_of_its_run(tmp_path):
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    w = torch_tb.SummaryWriter(str(tmp_path / "exp"))
    for s in range(5):
        w.add_scalar("train/loss", 1.0 / (s + 1), s)
        w.add_scalars("loss", {"train": 1.0, "val": 2.0}, s)           # exp/loss_train/, exp/loss_val/
    w.add_hparams({"lr": 0.01}, {"hp/acc": 0.9})                       # exp/<time>/
    w.close()
    other = torch_tb.SummaryWriter(str(tmp_path / "exp2"))             # a run of its own beside it
    other.add_scalar("train/loss", 1.0, 0)
    other.close()
    found = find_runs(tmp_path)
    assert [r.name for r in found] == ["exp", "exp2"]
    assert len(found[0].parts) == 3
    assert cnb.load(tmp_path / "exp").config["learning_rate"] == 0.01
