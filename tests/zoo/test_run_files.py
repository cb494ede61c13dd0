"""Every file a zoo run leaves is recognised by collapse_nb.load, and says what the run intended."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from collapse_nb import zoo

NAMES = list(zoo.scenarios())


@pytest.mark.parametrize("name", NAMES)
def test_every_file_is_recognised(zoo_run, name):
    d, run = zoo_run(name)
    fmts = {Path(f["source"]).relative_to(d).as_posix(): f["format"] for f in run.meta["files"]}
    on_disk = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
    assert set(fmts) == on_disk and run.meta["ignored"] == []
    assert fmts["capture.jsonl"] == "collapse-capture"
    assert fmts["training_diagnostic.log"] == "text-log"
    assert fmts["metrics.csv"] in ("keras-csv", "csv")
    assert fmts["config.yaml"] == "config" and fmts["scenario.json"] == "config"
    (tb,) = [k for k in fmts if k.startswith("tb/")]
    assert fmts[tb] == "tensorboard"
    epochs = int(run.config["epochs"])
    ckpts = sorted(k for k in fmts if k.startswith("checkpoints/"))
    assert ckpts == [f"checkpoints/epoch_{e:03d}.pt" for e in range(1, epochs + 1)]
    assert {fmts[k] for k in ckpts} == {"torch-checkpoint"}
    for f in run.meta["files"]:
        reasons = {r for e in f["skipped"]["examples"] for r in [e["reason"]]}
        # only the text log's "Config: config.yaml" and "optimizer_step_executed: True" lines are not numbers
        assert f["skipped"]["count"] == 0 or (f["format"] == "text-log" and reasons == {"non-numeric value"})
    assert run.meta["config_conflicts"] == []


@pytest.mark.parametrize("name", NAMES)
def test_tables_from_every_kind_of_file(zoo_run, name):
    d, run = zoo_run(name)
    sources = set(run.scalars["source"].astype(str))
    for suffix in ("capture.jsonl", "training_diagnostic.log", "metrics.csv"):
        assert any(s.endswith(suffix) for s in sources), suffix
    tb = run.scalars[run.scalars["source"].astype(str).str.contains("tfevents")]
    assert {"train/loss", "val/loss", "lr"} <= set(tb["raw_name"].astype(str))
    tags = set(run.histogram_stats["tag"].astype(str))
    params = {p for p in run.grads["param"].astype(str)}
    assert {f"parameters/{p}" for p in params} <= tags
    assert any(t.startswith("gradients/") for t in tags)
    ck = run.params
    assert sorted(ck["epoch"].dropna().unique()) == list(range(1, int(run.config["epochs"]) + 1))
    assert ck["step"].max() == json.loads((d / "scenario.json").read_text())["optimizer_steps"]
    assert len(run.optimizer) > 0


@pytest.mark.parametrize("name", NAMES)
def test_config_and_scenario_json(zoo_run, name):
    d, run = zoo_run(name)
    cfg = run.config
    for key in ("learning_rate", "weight_decay", "lr_scheduler", "gradient_accumulation_steps", "batch_size",
                "epochs", "dropout", "optimizer", "seed"):
        assert key in cfg, key
    meta = json.loads((d / "scenario.json").read_text())
    assert meta["scenario"] == name and meta["seed"] == 0
    assert meta["expected_findings"] == list(zoo.expected_findings(name))
    assert meta["description"] == zoo.scenarios()[name] and meta["injected"]
    assert set(meta["parameters"]) == set(zoo.parameters(name))
    size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
    assert size < 8e6
