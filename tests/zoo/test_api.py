"""collapse_nb.zoo's API: the registry, argument checks, determinism, and what generate() leaves alone."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import collapse_nb
from collapse_nb import zoo

REQUIRED = {"healthy_mlp", "healthy_classifier", "healthy_cnn", "variance_collapse", "dead_branch", "dying_relu",
            "vanishing_gradients", "exploding_gradients", "lr_too_low", "overfitting",
            "val_below_train_accumulation", "val_below_train_dropout", "leakage", "lr_schedule_bug",
            "chance_level", "seed_replica"}


def test_scenarios_lists_names_with_descriptions():
    s = zoo.scenarios()
    assert REQUIRED <= set(s)
    assert all(isinstance(d, str) and len(d) > 20 for d in s.values())
    assert zoo.parameters("lr_too_low") == {"lr": 1e-6, "epochs": 6}
    assert "arch" not in zoo.parameters("healthy_cnn")


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario 'nope'; scenarios are: healthy_mlp"):
        zoo.generate("nope", tmp_path)
    with pytest.raises(TypeError, match=r"scenario 'lr_too_low' has no parameter 'wd'; it takes: lr=1e-06"):
        zoo.generate("lr_too_low", tmp_path, wd=1)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        zoo.generate("lr_too_low", tmp_path, seed=-1)
    with pytest.raises(ValueError, match="arch must be one of"):
        from collapse_nb.zoo.scenarios import healthy
        healthy(arch="rnn")
    assert not any(tmp_path.iterdir())                       # nothing written before the arguments were checked


def _numbers(run_dir):
    """Everything a run logged, without wall-clock times: text log, metrics, capture records, scalars."""
    recs = [json.loads(line) for line in (run_dir / "capture.jsonl").read_text().splitlines()]
    for r in recs:
        for k in ("wall_time", "python", "torch"):
            r.pop(k, None)
    s = collapse_nb.load(run_dir).scalars.drop(columns=["wall_time", "source"])
    return ((run_dir / "training_diagnostic.log").read_text(), (run_dir / "metrics.csv").read_text(),
            json.dumps(recs, sort_keys=True), s)


@pytest.mark.parametrize("name", ["healthy_classifier", "val_below_train_dropout"])
def test_same_seed_same_numbers(tmp_path, name):
    a = _numbers(zoo.generate(name, tmp_path / "a", seed=0, epochs=2))
    b = _numbers(zoo.generate(name, tmp_path / "b", seed=0, epochs=2))
    assert a[:3] == b[:3]
    pd.testing.assert_frame_equal(a[3], b[3])
    ck_a = torch.load(tmp_path / "a" / "checkpoints" / "epoch_002.pt", weights_only=True)
    ck_b = torch.load(tmp_path / "b" / "checkpoints" / "epoch_002.pt", weights_only=True)
    assert all(torch.equal(ck_a["model"][k], ck_b["model"][k]) for k in ck_a["model"])
    c = _numbers(zoo.generate(name, tmp_path / "c", seed=1, epochs=2))
    assert c[1] != a[1]


def test_generate_leaves_torch_state_alone(tmp_path):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zoo.generate("chance_level", tmp_path, epochs=1)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads


def test_overrides_and_regenerating_into_the_same_directory(tmp_path):
    d = zoo.generate("lr_too_low", tmp_path, lr=1e-5, epochs=2)
    d = zoo.generate("lr_too_low", tmp_path, lr=1e-5, epochs=2)
    run = collapse_nb.load(d)
    assert run.config["learning_rate"] == 1e-5 and run.config["epochs"] == 2
    assert json.loads((d / "scenario.json").read_text())["parameters"] == {"lr": 1e-5, "epochs": 2}
    assert len(list((d / "tb").iterdir())) == 1                 # the earlier event file was replaced
    assert len(run.epochs) == 2 and run.meta["restarts"] == []


def test_example_module_is_the_seed_replica(tmp_path):
    from collapse_nb import example

    assert example.SCENARIO == "seed_replica"
    assert "attn.key_projection.weight" in example.INJECTED["dead_parameters"]
    assert example.default_example_dir().name == "example_run"
