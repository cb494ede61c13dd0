"""MLflow's file store (mlruns/<exp>/<run>/metrics|params|tags, meta.yaml), written by mlflow itself."""
from __future__ import annotations

import math

import pytest

import collapse_nb as cnb


@pytest.fixture
def mlruns(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")         # mlflow 3 keeps the file store behind a flag
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    mlflow.set_experiment("birds")
    with mlflow.start_run(run_name="vit-small") as run:
        mlflow.log_params({"num_classes": 11, "learning_rate": 0.001, "depth": 6})
        for epoch in range(10):
            step = 13 * epoch + 12
            mlflow.log_metric("train/loss", 2.38 - 0.1 * epoch, step=step)
            mlflow.log_metric("val/loss", math.log(11) + 0.03 * (-1) ** epoch, step=step)
            mlflow.log_metric("val/acc", 0.09 + 0.002 * epoch, step=step)
            mlflow.log_metric("epoch", epoch, step=step)
    mlflow.set_tracking_uri(None)
    return tmp_path / "mlruns", run.info.run_id


def test_metrics_params_and_status_of_a_run(mlruns):
    root, run_id = mlruns
    run = cnb.load(root)
    cat = run.series.set_index(["name", "phase"])
    assert cat.loc[("loss", "train"), "raw_names"] == ("train/loss",)          # a slash name: nested folders
    assert cat.loc[("loss", "val"), "points"] == 10 and cat.loc[("accuracy", "val"), "role"] == "eval_metric"
    train = run.objective("train").rows
    assert train["step"].tolist()[:2] == [12, 25] and train["epoch"].tolist()[:2] == [0.0, 1.0]
    raw = {k: v for cfg in run.meta["config_raw"].values() for k, v in cfg.items()}
    assert raw["num_classes"] == "11" and raw["mlflow.status"] == "FINISHED" and raw["mlflow.run_name"] == "vit-small"
    assert raw["mlflow.experiment"] == "birds"
    assert not run.meta["ignored"]                                             # meta.yaml is no text log now
    assert "epoch" not in set(run.scalars["name"].astype(str))


def test_validation_at_chance_is_found_in_an_mlflow_run(mlruns):
    root, _ = mlruns
    findings = cnb.diagnose(cnb.load(root))
    (f,) = [f for f in findings if f.check == "val_at_chance"]
    assert (f.code, f.severity) == ("val_at_chance", "critical") and "ln 11" in f.details["chance_from"]


def test_corpus_mlflow_vit_stays_at_chance(corpus):
    run = cnb.load(corpus("mlflow-vit-val-at-chance"))
    assert {"loss", "accuracy", "f1"} <= set(run.series["name"])
    (f,) = [f for f in cnb.diagnose(run) if f.check == "val_at_chance"]
    assert f.severity == "critical" and f.details["last"] == pytest.approx(2.37, abs=0.01)
