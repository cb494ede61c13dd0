"""The text-log reader on real third-party logs (../shared/corpus; skipped when absent).

Expected values are read out of the files here with plain regexes, independently of the reader.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import collapse_nb
from collapse_nb.readers.text_log import TextLogReader


def _text(path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def diag():
    from tests.conftest import corpus_file
    path = corpus_file("tsl-diag-f7a0244", "training_diagnostic.log")
    return path, collapse_nb.load(path)


def test_diag_variance_collapse_in_outputs(diag):
    path, run = diag
    found = re.findall(r"EPOCH (\d+) \| BATCH (\d+)/\d+ \| TRAINING MODE\n.*?"
                       r"y_pred_for_loss mean/std: (\S+) / (\S+)\ny_true_for_loss mean/std: (\S+) / (\S+)",
                       _text(path), re.S)
    assert len(found) == 53
    out = run.outputs
    assert len(out) == len(found)
    assert (out["phase"] == "train").all() and (out["epoch"] == 1).all()
    assert out["batch"].tolist() == [int(f[1]) for f in found]
    for col, i in (("pred_mean", 2), ("pred_std", 3), ("target_mean", 4), ("target_std", 5)):
        assert out[col].tolist() == [float(f[i]) for f in found]
    # the collapse: prediction spread falls from ~0.5 to ~0.05 while the targets keep theirs
    early, late = out[out["batch"] <= 4], out[out["batch"] >= 1800]
    assert early["pred_std"].min() > 0.5
    assert late["pred_std"].max() < 0.08
    assert out["target_std"].between(0.3, 3.5).all()
    assert late["std_ratio"].max() < 0.15 < early["std_ratio"].min()


def test_diag_grads_and_dead_parameters(diag):
    path, run = diag
    text = _text(path)
    grad_lines = re.findall(r"^([\w.]+):\n(?:  .*\n){3}  grad_norm: (\S+)$", text, re.M)
    params = sorted({p for p, _ in grad_lines})
    dead = sorted({p for p in params if all(float(v) == 0 for q, v in grad_lines if q == p)})
    assert "dynamic_spatiotemporal_encoder.node_feature_projection.weight" in dead
    g = run.grads
    assert len(g) == len(grad_lines) == 53 * len(params)
    assert not g.duplicated(["epoch", "batch", "param"]).any()
    all_zero = g.groupby("param", observed=True)["grad_norm"].agg(lambda s: (s == 0).all())
    assert sorted(all_zero[all_zero].index.astype(str)) == dead
    steps = g.groupby("param", observed=True).size()
    assert (steps == 53).all()


def test_diag_block_before_first_header_belongs_to_batch_0(diag):
    path, run = diag
    g = run.grads
    first = g[(g["param"] == "celestial_projection.0.weight") & (g["batch"] == 0)]
    assert len(first) == 1
    row = first.iloc[0]
    assert row["epoch"] == 1.0
    assert (row["grad_norm"], row["weight_norm_before"], row["weight_norm"], row["update_norm"]) == \
        (0.04356183, 12.91740513, 12.89941597, 0.01798916)
    s = run.scalars
    lr = s[(s["raw_name"] == "current_lr") & (s["line"] == 290)]
    assert lr["batch"].tolist() == [0] and lr["value"].tolist() == [0.001]
    assert run.config["gradient_accumulation_steps"] == 1
    assert run.meta["restarts"] == []


def test_diag_start_time_is_text_not_a_number(diag):
    path, run = diag
    assert run.meta["config_raw"][str(path)]["Start time"] == "2025-10-27 13:15:54"
    assert not run.scalars["raw_name"].astype(str).str.contains("Start time").any()


def test_tsl_run_epochs_config_restart_traceback(corpus):
    path = corpus("tsl-run-1644469", "training_run.log")
    run = collapse_nb.load(path)
    lines = _text(path).splitlines()
    summary = [i for i, ln in enumerate(lines, 1) if "Epoch 1/3 complete" in ln]
    assert len(summary) == 1
    ep = run.epochs
    row = ep[(ep["epoch"] == 1) & (ep["segment"] == 1)].iloc[0]
    assert row["train_loss"] == 1.414947 and row["val_loss"] == 0.195179
    assert row["train_loss"] / row["val_loss"] == pytest.approx(7.25, abs=0.01)
    assert run.config["gradient_accumulation_steps"] == 3
    assert run.config["learning_rate"] == 0.003 and run.config["batch_size"] == 12
    # one restarted run appended: it starts at its repeated opening config line
    second = [i for i, ln in enumerate(lines, 1) if "Configuration summary" in ln][1]
    assert run.meta["restarts"] == [{"source": str(path), "line": second, "segment": 1}]
    assert run.scalars.loc[run.scalars["line"] >= second, "segment"].eq(1).all()
    assert run.scalars.loc[run.scalars["line"] < second, "segment"].eq(0).all()
    tb = lines.index("Traceback (most recent call last):") + 1
    assert any(f"traceback at line {tb}: PermissionError: [Errno 13]" in n for n in run.meta["notes"])


def test_olmo(corpus):
    path = corpus("olmo-train", "training.log")
    run = collapse_nb.load(path)
    s = run.scalars
    tok = s[(s["raw_name"] == "throughput/total_tokens") & (s["step"] == 1)]
    assert tok["value"].tolist() == [2097152.0] and tok["epoch"].tolist() == [0.0]
    mem = s[(s["raw_name"] == "System/Peak GPU Memory (MB)") & (s["step"] == 1)]
    assert mem["value"].tolist() == [111477.0]
    gn = run.metric("grad_norm")
    assert set(gn["raw_name"].astype(str)) == {"optim/total_grad_norm"}
    assert gn.loc[gn["step"] == 1, "value"].tolist() == [0.2370]
    assert len(gn) == _text(path).count("optim/total_grad_norm=")
    lines = _text(path).splitlines()
    tbs = [i for i, ln in enumerate(lines, 1) if ln == "Traceback (most recent call last):"]
    exc = "torch.distributed.elastic.multiprocessing.api.SignalException: Process 9724 got signal: 15"
    notes = run.meta["notes"]
    for tb in tbs:
        assert f"{path}: traceback at line {tb}: {exc}" in notes
    assert not any("no exception line" in n for n in notes)
    assert not s["raw_name"].astype(str).str.contains("signal").any()


def test_cifar_logging(corpus):
    path = corpus("cifar-logging", "training.log")
    run = collapse_nb.load(path)            # a header line of odd bytes must not stop the read
    ep = run.epochs
    assert ep["epoch"].tolist() == [float(e) for e in range(1, 36)]
    assert ep.loc[ep["epoch"] == 1, "train_loss"].tolist() == [1.6279]
    assert ep.loc[ep["epoch"] == 35, "train_loss"].tolist() == [0.5720]
    acc = run.metric("accuracy", "test")
    assert acc.loc[acc["epoch"] == 1, "value"].tolist() == [59.86]
    assert run.config["learning_rate"] == 0.001 and run.config["batch_size"] == 128
    assert run.config["epochs"] == 35


@pytest.mark.parametrize("parts", [("tsl-diag-f7a0244", "training_diagnostic.log"),
                                   ("tsl-run-1644469", "training_run.log"),
                                   ("olmo-train", "training.log"), ("cifar-logging", "training.log")])
def test_engines_agree_on_real_logs(corpus, parts, monkeypatch):
    from tests.readers.test_text_engines import _same
    from collapse_nb.readers import text_log
    path = corpus(*parts)
    ref = TextLogReader(engine="python").read(path)
    _same(ref, TextLogReader().read(path))
    monkeypatch.setattr(text_log, "CHUNK_BYTES", 16 * 1024)
    _same(ref, TextLogReader(threads=2).read(path))
    assert np.isfinite(ref.scalars["line"]).all()
