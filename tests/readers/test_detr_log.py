"""DETR ``log.txt`` reader (format ``detr-log``)."""
from __future__ import annotations

import json

import numpy as np

import collapse_nb as cnb
from collapse_nb.loading import sniff

N_PARAMS = 41279495
COCO = [0.71, 0.98, 0.87, -1.0, 0.16, 0.73, 0.74, 0.78, 0.84, -1.0, 0.5, 0.85]


def detr_line(epoch: int) -> str:
    """``main.py``: ``f.write(json.dumps(log_stats) + "\\n")`` after every epoch."""
    train_stats = {"lr": 1e-4, "class_error": 15.0 / (epoch + 1), "loss": 4.0 / (epoch + 1), "loss_ce": 0.08,
                   "loss_bbox_0": 0.29, "cardinality_error_unscaled": 0.76}
    test_stats = {"class_error": 5.0 / (epoch + 1), "loss": 3.0 / (epoch + 1), "loss_giou": 0.28,
                  "coco_eval_bbox": [x * (1 + epoch / 100) if x > 0 else x for x in COCO]}
    log_stats = {**{f"train_{k}": v for k, v in train_stats.items()},
                 **{f"test_{k}": v for k, v in test_stats.items()},
                 "epoch": epoch, "n_parameters": N_PARAMS}
    return json.dumps(log_stats) + "\n"


def log_file(tmp_path, epochs):
    p = tmp_path / "log.txt"
    p.write_text("".join(detr_line(e) for e in epochs))
    return p


def values(run, raw_name):
    s = run.scalars
    return s[s["raw_name"] == raw_name].reset_index(drop=True)


def test_sniff_and_train_values(tmp_path):
    p = log_file(tmp_path, range(3))
    reader, score = sniff(p)
    assert reader.name == "detr-log" and score >= 0.9
    run = cnb.load(p)
    tl = values(run, "train_loss")
    assert tl["epoch"].tolist() == [0, 1, 2] and tl["step"].isna().all()
    assert tl["value"].tolist() == [4.0, 2.0, 4.0 / 3]
    assert set(tl["phase"]) == {"train"} and set(tl["name"]) == {"loss"}
    assert not run.scalars["raw_name"].isin(["epoch", "n_parameters"]).any()


def test_n_parameters_is_config(tmp_path):
    run = cnb.load(log_file(tmp_path, range(2)))
    assert run.meta["config_raw"][str(tmp_path / "log.txt")] == {"n_parameters": N_PARAMS}


def test_coco_list_kept_with_sentinel_note(tmp_path):
    run = cnb.load(log_file(tmp_path, range(2)))
    for i, x in enumerate(COCO):
        assert values(run, f"test_coco_eval_bbox/{i}")["value"].tolist() == [x, x * 1.01 if x > 0 else x]
    assert any("-1.0" in n and "test_coco_eval_bbox" in n for n in run.meta["notes"])


def test_restart_epoch_goes_back(tmp_path):
    p = log_file(tmp_path, [0, 1, 2, 0, 1])
    run = cnb.load(p)
    assert run.scalars.groupby("line")["segment"].first().tolist() == [0, 0, 0, 1, 1]
    assert run.meta["restarts"] == [{"source": str(p), "line": 4, "segment": 1}]


def test_test_values_are_the_validation_set(tmp_path):
    """DETR evaluates its ``test_*`` values on val2017: the reader gives them phase ``val``.

    Needs the core to let a reader's context phase win over the ``test`` word in
    the raw name (see the report: tables.normalise_raw takes the name's phase first).
    """
    run = cnb.load(log_file(tmp_path, range(3)))
    assert any("validation set" in n for n in run.meta["notes"])
    tl = values(run, "test_loss")
    assert set(tl["phase"]) == {"val"}
    ep = run.epochs
    np.testing.assert_array_equal(ep["val_loss"], [3.0, 1.5, 1.0])
    np.testing.assert_array_equal(ep["train_loss"], [4.0, 2.0, 4.0 / 3])
    np.testing.assert_array_equal(ep["lr"], [1e-4] * 3)


def test_corpus_detr_moqixis(corpus):
    p = corpus("detr-moqixis", "log.txt")
    run = cnb.load(p)
    assert run.meta["formats"] == ["detr-log"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    assert run.meta["config_raw"][str(p)]["n_parameters"] == 41279495
    # epochs 0..4, then a second run from epoch 0 appended at line 6
    assert [r["line"] for r in run.meta["restarts"]] == [6]
    tl = values(run, "train_loss")
    assert tl["epoch"].tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert tl["segment"].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert tl["value"].iloc[0] == 4.234414317799276 and tl["value"].iloc[5] == 4.12762659557747
    te = values(run, "test_loss")
    assert te["value"].iloc[0] == 2.9657104679968507
    ap = values(run, "test_coco_eval_bbox/0")
    assert ap["value"].iloc[0] == 0.7128255300967893
    assert values(run, "test_coco_eval_bbox/3")["value"].iloc[0] == -1.0
    # per line: 94 keys = 91 numbers + the 12-value COCO list + epoch + n_parameters (not values)
    assert len(run.scalars) == 7 * (91 + 12)
