"""OpenMMLab JSON logs reader (format ``mmengine-json``): mmengine scalars.json and mmcv *.log.json."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

import collapse_nb as cnb
from collapse_nb.loading import sniff

ITERS_PER_EPOCH = 96


def mmengine_line(tag: dict, step: int) -> str:
    """``LocalVisBackend.add_scalars``: ``tag.setdefault('step', step)``, ``json.dump``, newline."""
    tag = dict(tag)
    tag.setdefault("step", step)
    return json.dumps(tag) + "\n"


def train_tag(epoch: int) -> dict:
    it = epoch * ITERS_PER_EPOCH
    return {"lr": 0.08 / epoch, "data_time": 0.0003, "loss": 3.0 / epoch, "time": 0.073, "epoch": epoch,
            "iter": it, "memory": 2965}


def val_tag(epoch: int) -> dict:
    return {"accuracy/top1": 20.0 + epoch * 1.5, "accuracy/top5": 60.0 + epoch, "data_time": 0.005,
            "time": 0.03}


def scalars_file(tmp_path, epochs, name="scalars.json"):
    lines = []
    for e in epochs:
        lines.append(mmengine_line(train_tag(e), e * ITERS_PER_EPOCH))  # step = runner.iter + 1
        lines.append(mmengine_line(val_tag(e), e))                      # step = runner.epoch
    p = tmp_path / name
    p.write_text("".join(lines))
    return p


def test_train_and_val_rows(tmp_path):
    p = scalars_file(tmp_path, range(1, 6))
    reader, score = sniff(p)
    assert reader.name == "mmengine-json" and score >= 0.9
    run = cnb.load(p)
    s = run.scalars
    loss = s[s["raw_name"] == "loss"]
    assert loss["step"].tolist() == [96, 192, 288, 384, 480]
    assert loss["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert loss["value"].tolist() == [3.0 / e for e in range(1, 6)]
    assert set(loss["phase"]) == {"train"} and loss["batch"].isna().all()
    top1 = s[s["raw_name"] == "accuracy/top1"]
    assert top1["phase"].tolist() == ["val"] * 5
    assert top1["epoch"].tolist() == [1, 2, 3, 4, 5]  # the val rows' step is the epoch...
    assert top1["step"].isna().all()                   # ...so it is not a step
    assert top1["value"].tolist() == [20.0 + e * 1.5 for e in range(1, 6)]
    assert not s["raw_name"].isin(["step", "epoch", "iter"]).any()
    assert run.meta["restarts"] == []  # step 96 then 1 must not look like a restart
    assert any("5 validation rows" in n and "step' is the epoch" in n for n in run.meta["notes"])


def test_epochs_table(tmp_path):
    run = cnb.load(scalars_file(tmp_path, range(1, 4)))
    ep = run.epochs
    assert ep["epoch"].tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(ep["train_loss"], [3.0, 1.5, 1.0])
    np.testing.assert_array_equal(ep["lr"], [0.08, 0.04, 0.08 / 3])
    np.testing.assert_array_equal(ep["val_accuracy"], [21.5, 23.0, 24.5])


def test_restart_in_scalars_json(tmp_path):
    p = tmp_path / "scalars.json"
    lines = [mmengine_line(train_tag(e), e * ITERS_PER_EPOCH) for e in (1, 2, 3)]
    lines += [mmengine_line(train_tag(e), e * ITERS_PER_EPOCH) for e in (1, 2)]  # run started again
    p.write_text("".join(lines))
    run = cnb.load(p)
    assert run.scalars.groupby("line")["segment"].first().tolist() == [0, 0, 0, 1, 1]
    assert [r["line"] for r in run.meta["restarts"]] == [4]


def test_iteration_based_run_keeps_val_step(tmp_path):
    p = tmp_path / "scalars.json"
    lines = []
    for it in (1000, 2000):
        tag = {"lr": 0.01, "data_time": 0.001, "loss": 1.0 / it, "time": 0.2, "iter": it, "memory": 100}
        lines.append(mmengine_line(tag, it))
        lines.append(mmengine_line({"mIoU": it / 100.0, "data_time": 0.01, "time": 0.1}, it))
    p.write_text("".join(lines))
    run = cnb.load(p)
    s = run.scalars
    miou = s[s["raw_name"] == "mIoU"]
    assert miou["step"].tolist() == [1000, 2000] and miou["epoch"].isna().all()
    assert set(miou["phase"]) == {"val"}
    assert run.meta["notes"] == []


def mmcv_file(tmp_path, inner_iters=(50, 100)):
    """mmcv ``TextLoggerHook``: the runner meta first, then ``mode``/``epoch``/``iter`` rows."""
    lines = [json.dumps({"env_info": "sys.platform: linux\nPython: 3.8", "config": "optimizer = dict(lr=0.02)",
                         "seed": 42, "exp_name": "faster_rcnn.py"}) + "\n"]
    for epoch in (1, 2):
        for it in inner_iters:
            lines.append(json.dumps({"mode": "train", "epoch": epoch, "iter": it, "lr": 0.02, "memory": 3601,
                                     "data_time": 0.05, "loss_cls": 0.5 / epoch, "loss": 1.25 / epoch + it / 1e4,
                                     "time": 0.4}) + "\n")
        lines.append(json.dumps({"mode": "val", "epoch": epoch, "iter": 625, "lr": 0.02,
                                 "bbox_mAP": 0.25 * epoch}) + "\n")
    p = tmp_path / "20230101_000000.log.json"
    p.write_text("".join(lines))
    return p


def test_mmcv_log_json(tmp_path):
    p = mmcv_file(tmp_path)
    assert sniff(p)[0].name == "mmengine-json"
    run = cnb.load(p)
    s = run.scalars
    loss = s[s["raw_name"] == "loss"]
    assert loss["epoch"].tolist() == [1, 1, 2, 2]
    assert loss["batch"].tolist() == [50, 100, 50, 100]  # iter falls back each epoch: batch within the epoch
    assert loss["step"].isna().all() and set(loss["phase"]) == {"train"}
    assert loss["value"].tolist() == [1.25 + 0.005, 1.25 + 0.01, 0.625 + 0.005, 0.625 + 0.01]
    m = s[s["raw_name"] == "bbox_mAP"]
    assert m["phase"].tolist() == ["val", "val"] and m["epoch"].tolist() == [1, 2]
    assert m["batch"].isna().all() and m["step"].isna().all()
    assert not s["raw_name"].isin(["mode", "iter", "epoch", "seed"]).any()
    raw = run.meta["config_raw"][str(p)]
    assert raw["seed"] == 42 and raw["exp_name"] == "faster_rcnn.py"
    assert run.config["seed"] == 42
    assert run.meta["restarts"] == [] and run.meta["notes"] == []


def test_mmcv_iter_based_iter_is_step(tmp_path):
    p = tmp_path / "x.log.json"
    p.write_text("".join(json.dumps({"mode": "train", "epoch": 1, "iter": it, "lr": 0.01, "memory": 10,
                                     "data_time": 0.1, "loss": 1.0, "time": 0.3}) + "\n"
                         for it in (100, 200, 300)))
    run = cnb.load(p)
    loss = run.scalars[run.scalars["raw_name"] == "loss"]
    assert loss["step"].tolist() == [100, 200, 300] and loss["batch"].isna().all()


def test_corpus_mm_fruit(corpus):
    p = corpus("mm-fruit", "scalars.json")
    run = cnb.load(p)
    assert run.meta["formats"] == ["mmengine-json"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    assert run.meta["restarts"] == []
    s = run.scalars
    loss = s[s["raw_name"] == "loss"].set_index("step")
    assert loss.loc[96, "value"] == 2.800637459754944 and loss.loc[96, "epoch"] == 1
    assert loss.loc[9600, "value"] == 0.5357093036174774 and loss.loc[9600, "epoch"] == 100
    top1 = s[s["raw_name"] == "accuracy/top1"]
    assert len(top1) == 100 and set(top1["phase"]) == {"val"} and top1["step"].isna().all()
    last = top1.set_index("epoch")["value"]
    assert last[1.0] == 24.375 and last[100.0] == 75.46875
    ep = run.epochs
    assert len(ep) == 100
    row = ep.set_index("epoch").loc[100.0]
    assert row["train_loss"] == 0.5357093036174774 and row["lr"] == 8e-05
    assert row["val_accuracy"] == 75.46875
    assert pd.notna(ep["val_accuracy"]).all()
