"""detectron2 ``metrics.json`` reader (format ``detectron2-json``)."""
from __future__ import annotations

import json
import math

import pandas as pd

import collapse_nb as cnb
from collapse_nb.loading import sniff


def d2_line(iteration: int, **scalars) -> str:
    """What ``detectron2.utils.events.JSONWriter`` writes for one iteration."""
    scalars["iteration"] = iteration
    return json.dumps(scalars, sort_keys=True) + "\n"


def train_scalars(i: int) -> dict:
    return {"data_time": 0.004 + i * 1e-6, "eta_seconds": 100.0 - i, "fast_rcnn/cls_accuracy": 0.5 + i / 1000,
            "loss_box_reg": 0.66 - i / 1000, "loss_cls": 0.72 - i / 2000, "lr": 1.6e-05 * (i + 1),
            "rank_data_time": 0.004, "roi_head/num_fg_samples": 24.5, "time": 0.35, "total_loss": 2.0 - i / 500}


def metrics_file(tmp_path, iterations, eval_at=None):
    lines = []
    for it in iterations:
        sc = train_scalars(it)
        if it == eval_at:  # evaluation results share the line of the iteration they ran at
            sc.update({"bbox/AP": 40.125, "bbox/AP50": 61.5, "segm/AP": 35.25, "segm/APs": float("nan")})
        lines.append(d2_line(it, **sc))
    p = tmp_path / "metrics.json"
    p.write_text("".join(lines))
    return p


def test_sniffed_and_values_round_trip(tmp_path):
    p = metrics_file(tmp_path, [19, 39, 59], eval_at=59)
    reader, score = sniff(p)
    assert reader.name == "detectron2-json" and score >= 0.9
    run = cnb.load(p)
    assert run.meta["formats"] == ["detectron2-json"]
    s = run.scalars
    tl = s[s["raw_name"] == "total_loss"]
    assert tl["step"].tolist() == [19, 39, 59]
    assert tl["value"].tolist() == [train_scalars(i)["total_loss"] for i in (19, 39, 59)]
    assert set(tl["name"]) == {"loss"} and set(tl["phase"]) == {"train"}
    assert not s["raw_name"].isin(["iteration"]).any()
    assert s["epoch"].isna().all()
    ap = s[s["raw_name"] == "bbox/AP"].iloc[0]
    assert (ap["value"], ap["step"], ap["phase"], ap["line"]) == (40.125, 59, "val", 3)
    assert math.isnan(s.loc[s["raw_name"] == "segm/APs", "value"].iloc[0])


def test_phase_per_key(tmp_path):
    run = cnb.load(metrics_file(tmp_path, [99], eval_at=99))
    phase = dict(zip(run.scalars["raw_name"].astype(str), run.scalars["phase"].astype(object)))
    assert phase["loss_cls"] == phase["loss_box_reg"] == phase["total_loss"] == "train"
    assert phase["fast_rcnn/cls_accuracy"] == phase["roi_head/num_fg_samples"] == "train"
    assert phase["bbox/AP"] == phase["segm/AP"] == "val"
    for unphased in ("lr", "time", "data_time", "eta_seconds", "rank_data_time"):
        assert pd.isna(phase[unphased])


def test_repeated_iteration_is_a_restart(tmp_path):
    p = metrics_file(tmp_path, [19, 19, 39, 59])  # first run died after iteration 19
    run = cnb.load(p)
    seg = run.scalars.groupby("line")["segment"].first()
    assert seg.tolist() == [0, 1, 1, 1]
    assert run.meta["restarts"] == [{"source": str(p), "line": 2, "segment": 1}]


def test_corpus_d2_kevin(corpus):
    p = corpus("d2-kevin", "metrics.json")
    run = cnb.load(p)
    assert run.meta["formats"] == ["detectron2-json"]
    s = run.scalars
    assert run.meta["files"][0]["skipped"]["count"] == 0
    assert len(s) == 16 * 21  # 16 lines, 22 keys each, one of them the iteration
    assert sorted(s["segment"].unique().tolist()) == [0, 1]
    assert [r["line"] for r in run.meta["restarts"]] == [2]
    tl = s[s["raw_name"] == "total_loss"].set_index("line")
    assert tl.loc[1, "value"] == 2.1678951284848154 and tl.loc[1, "step"] == 19 and tl.loc[1, "segment"] == 0
    assert tl.loc[2, "value"] == 2.152726454194635 and tl.loc[2, "step"] == 19 and tl.loc[2, "segment"] == 1
    assert tl.loc[16, "value"] == 0.3522665523341857 and tl.loc[16, "step"] == 299
    lr = s[(s["raw_name"] == "lr") & (s["step"] == 299)]["value"]
    assert lr.tolist() == [0.0002491675]
    eta = s[(s["raw_name"] == "eta_seconds") & (s["step"] == 299)]["value"]
    assert eta.tolist() == [0.0]
