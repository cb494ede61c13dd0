"""Generic JSON lines reader (format ``jsonl``) and the shared JSON helpers."""
from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.errors import UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers import _json_common
from collapse_nb.readers.base import read_head
from collapse_nb.readers.jsonl import JsonlReader


def write_lines(path, records, tail: str = ""):
    """One ``json.dumps`` per line, as loggers that append JSON lines write them."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def rows(run, raw_name):
    s = run.scalars
    return s[s["raw_name"] == raw_name].reset_index(drop=True)


# ------------------------------------------------------------------ values, steps, phases
def test_round_trip_values_steps_phases(tmp_path):
    recs = [{"iter": i * 100, "train/loss": 10.0 / (i + 1), "val/loss": 5.0 + i * 0.123456789,
             "lr": 1e-4 * i} for i in range(6)]
    run = cnb.load(write_lines(tmp_path / "log.jsonl", recs))
    assert run.meta["formats"] == ["jsonl"]
    assert len(run.scalars) == 18
    tl = rows(run, "train/loss")
    assert tl["value"].tolist() == [r["train/loss"] for r in recs]
    assert tl["step"].tolist() == [r["iter"] for r in recs]
    assert tl["line"].tolist() == [1, 2, 3, 4, 5, 6]
    assert set(tl["phase"]) == {"train"} and set(tl["name"]) == {"loss"}
    vl = rows(run, "val/loss")
    assert vl["value"].tolist() == [r["val/loss"] for r in recs]
    assert set(vl["phase"]) == {"val"}
    lr = rows(run, "lr")
    assert lr["phase"].isna().all() and lr["value"].tolist() == [r["lr"] for r in recs]
    # index keys are not values
    assert not run.scalars["raw_name"].isin(["iter", "step"]).any()
    assert run.meta["restarts"] == []
    assert run.meta["files"][0]["skipped"]["count"] == 0


def test_step_key_priority_and_other_index_keys(tmp_path):
    recs = [{"global_step": 7, "iteration": 3, "epoch": 0.5, "batch": 2, "loss": 1.0}]
    run = cnb.load(write_lines(tmp_path / "a.jsonl", recs))
    r = run.scalars.iloc[0]
    assert (r["step"], r["epoch"], r["batch"], r["raw_name"]) == (7, 0.5, 2, "loss")
    assert len(run.scalars) == 1


def test_nan_inf_literals_and_strings_kept(tmp_path):
    rec = {"step": 1, "loss": float("nan"), "grad_norm": float("inf"), "m": -float("inf"),
           "s1": "nan", "s2": "NaN", "s3": "inf", "s4": "-Infinity", "s5": "Inf",
           "flag": True, "name": "resnet", "none": None}
    p = tmp_path / "n.jsonl"
    p.write_text(json.dumps(rec) + "\n")  # Python writes NaN / Infinity / -Infinity literals
    assert "NaN" in p.read_text() and "Infinity" in p.read_text()
    run = cnb.load(p)
    got = dict(zip(run.scalars["raw_name"].astype(str), run.scalars["value"]))
    assert set(got) == {"loss", "grad_norm", "m", "s1", "s2", "s3", "s4", "s5"}
    assert math.isnan(got["loss"]) and math.isnan(got["s1"]) and math.isnan(got["s2"])
    assert got["grad_norm"] == math.inf and got["s3"] == math.inf and got["s5"] == math.inf
    assert got["m"] == -math.inf and got["s4"] == -math.inf
    assert any("text values not kept" in n and "name" in n for n in run.meta["notes"])


def test_nested_dicts_and_lists(tmp_path):
    rec = {"step": 3, "train": {"loss": 0.5, "acc": {"top1": 0.7}}, "short": [1, 2.5, 3],
           "long": list(range(40)), "coco": [0.5, -1.0, 0.25], "words": ["a", "b"], "empty": []}
    run = cnb.load(write_lines(tmp_path / "n.jsonl", [rec]))
    got = dict(zip(run.scalars["raw_name"].astype(str), run.scalars["value"]))
    assert got == {"train/loss": 0.5, "train/acc/top1": 0.7, "short/0": 1.0, "short/1": 2.5, "short/2": 3.0,
                   "coco/0": 0.5, "coco/1": -1.0, "coco/2": 0.25}
    notes = " | ".join(run.meta["notes"])
    assert "long (40)" in notes and "not kept" in notes
    assert "-1.0" in notes and "coco" in notes
    assert "words" in notes
    assert rows(run, "train/loss")["phase"].tolist() == ["train"]


def test_phase_key_sets_context_phase(tmp_path):
    recs = [{"step": 10, "mode": "train", "loss": 1.0}, {"step": 10, "mode": "eval", "loss": 2.0},
            {"step": 10, "split": "test", "loss": 3.0}]
    run = cnb.load(write_lines(tmp_path / "m.jsonl", recs))
    assert run.scalars["phase"].tolist() == ["train", "val", "test"]
    assert run.scalars["value"].tolist() == [1.0, 2.0, 3.0]
    assert not run.scalars["raw_name"].isin(["mode", "split"]).any()
    assert run.meta["restarts"] == []  # same step, different phases: not a restart


def test_wall_time_from_timestamps(tmp_path):
    recs = [{"_step": 0, "_timestamp": 1700000000.5, "loss": 1.0},
            {"_step": 1, "timestamp": 1700000001500, "loss": 0.9}]  # milliseconds
    run = cnb.load(write_lines(tmp_path / "w.jsonl", recs))
    assert run.scalars["wall_time"].tolist() == [1700000000.5, 1700000001.5]
    assert run.scalars["raw_name"].astype(str).tolist() == ["loss", "loss"]


def test_epochs_table(tmp_path):
    recs = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 2.0 / e, "lr": 0.1 * e} for e in (1, 2, 3)]
    run = cnb.load(write_lines(tmp_path / "e.jsonl", recs))
    ep = run.epochs
    assert ep["epoch"].tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(ep["train_loss"], [1.0, 0.5, 1 / 3])
    np.testing.assert_array_equal(ep["val_loss"], [2.0, 1.0, 2 / 3])
    np.testing.assert_array_equal(ep["lr"], [0.1, 0.2, 0.1 * 3])


def test_config_lines(tmp_path):
    recs = [{"config": {"lr": 0.003, "batch_size": 64, "optimizer": "adamw"}},
            {"run_name": "exp1", "host": "gpu7"},
            {"step": 1, "loss": 2.0}]
    run = cnb.load(write_lines(tmp_path / "c.jsonl", recs))
    assert run.config["learning_rate"] == 0.003 and run.config["batch_size"] == 64
    raw = next(iter(run.meta["config_raw"].values()))
    assert raw["run_name"] == "exp1" and raw["config.optimizer"] == "adamw"
    assert run.scalars["raw_name"].astype(str).tolist() == ["loss"]


# ------------------------------------------------------------------ broken lines
def test_garbage_and_truncated_last_line(tmp_path):
    good = [json.dumps({"step": i, "loss": 1.0 / (i + 1)}) for i in range(5)]
    text = "\n".join([good[0], "Traceback (most recent call last):", good[1], "", good[2], "[1, 2]",
                      good[3], good[4], '{"step": 5, "loss": 0.1']) # cut off, no newline
    p = tmp_path / "t.jsonl"
    p.write_text(text)
    run = cnb.load(p)
    assert rows(run, "loss")["step"].tolist() == [0, 1, 2, 3, 4]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 3
    assert [(e["line"], e["reason"]) for e in sk["examples"]] == [
        (2, "not valid JSON"), (6, "not a JSON object"), (9, "not valid JSON (truncated last line)")]
    assert "line 2, 6, 9" in run.meta["files"][0]["skipped_text"]


def test_non_utf8_bytes_line_still_read(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes(b'{"step": 0, "loss": 1.5, "note": "caf\xe9"}\n{"step": 1, "loss": 1.25}\n')
    run = cnb.load(p)
    assert rows(run, "loss")["value"].tolist() == [1.5, 1.25]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 0 == sum(sk["by_reason"].values())
    assert sk["replaced"] == 1 and sk["replaced_lines"] == [1]
    assert any("non-UTF-8" in n and "line 1" in n for n in run.meta["notes"])


def test_huge_line_is_skipped_and_megabyte_line_parsed(tmp_path):
    big_value_line = json.dumps({"step": 1, "loss": 0.5, "blob": "x" * (_json_common.MAX_LINE_BYTES + 10)})
    many_keys = {"step": 2, **{f"m{i}": float(i) for i in range(60000)}}  # ~1 MB line
    p = tmp_path / "h.jsonl"
    p.write_text(json.dumps({"step": 0, "loss": 1.0}) + "\n" + big_value_line + "\n" + json.dumps(many_keys)
                 + "\n" + json.dumps({"step": 3, "loss": 0.25}) + "\n")
    run = cnb.load(p, format="jsonl")
    assert rows(run, "loss")["step"].tolist() == [0, 3]
    assert rows(run, "m59999")["value"].tolist() == [59999.0]
    sk = run.meta["files"][0]["skipped"]
    assert sk["count"] == 1 and sk["examples"][0]["line"] == 2
    assert "longer than" in sk["examples"][0]["reason"]


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"\n  \n\n", "empty"),
    (b"\x00\x01\x02\x03binary\x00", "binary"),
    (b"hello world\nnot json at all\n", "none of 2 lines is a JSON object"),
    (b'{"name": "x", "ok": true}\n{"step": 1}\n', "no numeric values"),
])
def test_unreadable(tmp_path, content, reason):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=reason) as exc:
        JsonlReader().read(p)
    assert str(p) in str(exc.value)
    with pytest.raises(cnb.CollapseNBError):
        cnb.load(p, format="jsonl")


# ------------------------------------------------------------------ restarts
def test_restart_becomes_segment(tmp_path):
    recs = [{"step": s, "loss": 1.0 + s} for s in (0, 10, 20, 30)] + \
           [{"step": s, "loss": 2.0 + s} for s in (0, 10, 20)]
    run = cnb.load(write_lines(tmp_path / "r.jsonl", recs))
    assert run.scalars["segment"].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert run.meta["restarts"] == [{"source": str(tmp_path / "r.jsonl"), "line": 5, "segment": 1}]


# ------------------------------------------------------------------ sniffing and JSON parsing
def test_sniff_prefers_jsonl_for_json_lines_only(tmp_path):
    p = write_lines(tmp_path / "metrics.txt", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
    reader, score = sniff(p)
    assert reader.name == "jsonl" and score >= 0.5
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({"step": 1, "loss": 2.0}, indent=2))
    assert JsonlReader().sniff(read_head(pretty), pretty) == 0.0
    text = tmp_path / "t.log"
    text.write_text("epoch 1 loss 0.5\n" * 10)
    assert JsonlReader().sniff(read_head(text), text) == 0.0


def test_sniff_first_line_longer_than_window(tmp_path):
    p = tmp_path / "long.jsonl"
    p.write_text(json.dumps({"step": 1, **{f"k{i}": float(i) for i in range(20000)}}) + "\n")
    assert 0 < JsonlReader().sniff(read_head(p), p) < 0.5
    run = cnb.load(p)
    assert run.meta["formats"] == ["jsonl"] and len(run.scalars) == 20000


def test_loads_accepts_nan_literals_with_or_without_orjson(monkeypatch):
    text = '{"a": NaN, "b": Infinity, "c": -Infinity, "d": 1}'
    out = _json_common.loads(text)
    assert math.isnan(out["a"]) and out["b"] == math.inf and out["c"] == -math.inf

    class FakeDecodeError(ValueError):
        pass

    def fake_loads(s):
        if "NaN" in s or "Infinity" in s:
            raise FakeDecodeError("orjson refuses NaN")
        return json.loads(s)

    monkeypatch.setattr(_json_common, "_orjson", types.SimpleNamespace(loads=fake_loads,
                                                                         JSONDecodeError=FakeDecodeError))
    out = _json_common.loads(text)
    assert math.isnan(out["a"]) and out["d"] == 1
    with pytest.raises(ValueError):
        _json_common.loads('{"a": ')


# ------------------------------------------------------------------ real file
def test_corpus_nanollama_memorisation(corpus):
    p = corpus("jsonl-nanollama", "log.jsonl")
    run = cnb.load(p)
    assert run.meta["formats"] == ["jsonl"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    train = run.metric("loss", "train").set_index("step")["value"]
    val = run.metric("loss", "val").set_index("step")["value"]
    assert len(train) == len(val) == 23
    assert train[0] == 11.054343223571777 and val[0] == 11.065452575683594
    assert train[2200] == 0.026311242952942848 and val[2200] == 8.533324241638184
    assert run.metric("lr").set_index("step")["value"][500] == 0.0006
    # memorisation: train loss keeps falling to ~0.026 while val loss bottoms out at step 200 and climbs to ~8.5
    assert train.is_monotonic_decreasing
    assert val.idxmin() == 200 and val.iloc[-1] > 8.5 > 4.0 > train.iloc[-1] * 100
    assert (val - train).iloc[-1] > 8.4
    assert run.scalars["segment"].eq(0).all()


def test_single_unindexed_object_scores_low(tmp_path):
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"accuracy": 0.9, "f1": 0.8}) + "\n")
    assert JsonlReader().sniff(read_head(p), p) < 0.5
    q = tmp_path / "one.jsonl"
    q.write_text(json.dumps({"step": 5, "loss": 0.8}) + "\n")
    assert JsonlReader().sniff(read_head(q), q) == 0.6
    assert cnb.load(p, format="jsonl").scalars["value"].tolist() == [0.9, 0.8]


def test_no_final_newline(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n" + json.dumps({"step": 2, "loss": 0.25}))
    assert JsonlReader().sniff(read_head(p), p) == 0.6
    run = cnb.load(p)
    assert rows(run, "loss")["value"].tolist() == [0.5, 0.25]
    assert run.meta["files"][0]["skipped"]["count"] == 0


def test_byte_order_mark(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"step": 1, "loss": 0.5}) + "\n").encode() * 2)
    assert JsonlReader().sniff(read_head(p), p) == 0.6
    run = cnb.load(p)
    assert len(run.scalars) == 2 and run.meta["files"][0]["skipped"]["count"] == 0
