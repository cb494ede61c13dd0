"""Every text, CSV and JSON file of the real-log corpus loads (skipped when ../shared is absent)."""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from tests.conftest import CORPUS

FILES = {
    "tsl-diag-f7a0244/training_diagnostic.log": "text-log",
    "tsl-run-1644469/training_run.log": "text-log",
    "olmo-train/training.log": "text-log",
    "cifar-logging/training.log": "text-log",
    "hf-jaong/trainer_state.json": "hf-trainer-state",
    "pl-opal/metrics.csv": "lightning-csv",
    "keras-brats/training.log": "keras-csv",
    "yolo-fire-csv/results.csv": "ultralytics-csv",
    "d2-kevin/metrics.json": "detectron2-json",
    "mm-fruit/scalars.json": "mmengine-json",
    "detr-moqixis/log.txt": "detr-log",
    "chainer-dcgan/log": "chainer-log",
    "jsonl-nanollama/log.jsonl": "jsonl",
}


@pytest.mark.parametrize("rel,fmt", sorted(FILES.items()))
def test_corpus_file_loads_with_its_format(corpus, rel, fmt):
    path = corpus(*rel.split("/"))
    run = cnb.load(path)
    assert run.meta["formats"] == [fmt]
    assert len(run.scalars) > 0
    assert run.scalars["value"].notna().any()


def test_seed_log_shows_collapse_and_dead_parameters(corpus):
    run = cnb.load(corpus("tsl-diag-f7a0244", "training_diagnostic.log"))
    out = run.outputs.dropna(subset=["pred_std", "target_std"])
    assert out["pred_std"].iloc[0] > 0.4 and out["pred_std"].iloc[-10:].median() < 0.1
    assert out["target_std"].min() > 0.3
    per_param = run.grads.groupby("param", observed=True)["grad_norm"].max()
    assert (per_param == 0).sum() >= 2
    assert per_param["dynamic_spatiotemporal_encoder.node_feature_projection.weight"] == 0


def test_corpus_dir_is_absent_or_complete():
    if not CORPUS.exists():
        pytest.skip("../shared/corpus is absent")
    assert all((CORPUS / rel).exists() for rel in FILES)
