"""Hugging Face ``trainer_state.json`` reader (format ``hf-trainer-state``)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import collapse_nb as cnb
from collapse_nb.errors import UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers.hf_trainer_state import HFTrainerStateReader, entry_kind

STEPS_PER_EPOCH = 100


def log_history(n_epochs: int = 3) -> list[dict]:
    """Entries as ``Trainer.log`` appends them: train every 50 steps, eval and predict every epoch, summary."""
    hist = []
    for e in range(1, n_epochs + 1):
        for s in (50, 100):
            step = (e - 1) * STEPS_PER_EPOCH + s
            hist.append({"epoch": round(step / STEPS_PER_EPOCH - 0.01, 2), "grad_norm": 2.0 + step / 1000,
                         "learning_rate": 5e-05 * (1 - step / 300), "loss": round(2.0 / step * 50, 4),
                         "step": step})
        hist.append({"epoch": float(e), "eval_loss": 0.9 / e, "eval_rouge-1": 40.0 + e, "eval_runtime": 12.5,
                     "eval_samples_per_second": 8.0, "step": e * STEPS_PER_EPOCH})
        hist.append({"epoch": float(e), "predict_loss": 0.8 / e, "predict_rouge-1": 41.0 + e,
                     "predict_runtime": 13.0})
    hist.append({"epoch": float(n_epochs), "step": n_epochs * STEPS_PER_EPOCH, "total_flos": 3.7e16,
                 "train_loss": 0.75, "train_runtime": 6435.8, "train_samples_per_second": 0.51,
                 "train_steps_per_second": 0.085})
    return hist


def state(hist: list[dict]) -> dict:
    return {"best_global_step": None, "best_metric": None, "best_model_checkpoint": None,
            "epoch": 3.0, "eval_steps": 500, "global_step": 300, "is_hyper_param_search": False,
            "is_local_process_zero": True, "is_world_process_zero": True, "log_history": hist,
            "logging_steps": 50, "max_steps": 300, "num_input_tokens_seen": 0, "num_train_epochs": 3,
            "save_steps": 500, "stateful_callbacks": {"TrainerControl": {"args": {"should_save": True},
                                                                         "attributes": {}}},
            "total_flos": 3.7e16, "train_batch_size": 8, "trial_name": None, "trial_params": None}


def write_state(path, st):
    """``TrainerState.save_to_json``: ``json.dumps(asdict(self), indent=2, sort_keys=True) + "\\n"``."""
    path.write_text(json.dumps(st, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def values(run, raw_name):
    s = run.scalars
    return s[s["raw_name"] == raw_name].reset_index(drop=True)


@pytest.fixture
def state_file(tmp_path):
    return write_state(tmp_path / "trainer_state.json", state(log_history()))


def test_sniffed_and_train_entries(state_file):
    reader, score = sniff(state_file)
    assert reader.name == "hf-trainer-state" and score >= 0.9
    run = cnb.load(state_file)
    assert run.meta["formats"] == ["hf-trainer-state"]
    hist = log_history()
    train = [h for h in hist if "loss" in h]
    loss = values(run, "loss")
    assert loss["value"].tolist() == [h["loss"] for h in train]
    assert loss["step"].tolist() == [h["step"] for h in train]
    assert loss["epoch"].tolist() == [h["epoch"] for h in train]
    assert set(loss["phase"]) == {"train"}
    assert values(run, "learning_rate")["value"].tolist() == [h["learning_rate"] for h in train]
    assert set(values(run, "grad_norm")["name"]) == {"grad_norm"}
    assert not run.scalars["raw_name"].isin(["step", "epoch"]).any()
    assert run.meta["restarts"] == []
    assert run.meta["files"][0]["skipped"]["count"] == 0


def test_eval_predict_and_summary_entries(state_file):
    run = cnb.load(state_file)
    ev = values(run, "eval_loss")
    assert ev["value"].tolist() == [0.9, 0.45, 0.3] and ev["step"].tolist() == [100, 200, 300]
    assert set(ev["phase"]) == {"val"} and set(ev["name"]) == {"loss"}
    pr = values(run, "predict_loss")
    assert pr["value"].tolist() == [0.8, 0.4, 0.8 / 3]
    assert pr["step"].isna().all() and pr["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert set(pr["phase"]) == {"test"} and set(pr["name"]) == {"loss"}
    assert set(values(run, "predict_rouge-1")["phase"]) == {"test"}
    summary = values(run, "train_loss")
    assert summary["value"].tolist() == [0.75] and summary["step"].tolist() == [300]
    assert summary["epoch"].isna().all() and summary["name"].tolist() == ["loss"]
    assert summary["phase"].tolist() == ["train"]
    assert values(run, "total_flos")["value"].tolist() == [3.7e16]
    assert any("summary" in n for n in run.meta["notes"])


def test_epochs_table(state_file):
    ep = cnb.load(state_file).epochs
    assert ep["epoch"].tolist() == [1.0, 2.0, 3.0]
    # the last training entry of each epoch (0.99, 1.99, 2.99) stands for the epoch; not the run summary
    np.testing.assert_array_equal(ep["train_loss"], [1.0, 0.5, round(2.0 / 300 * 50, 4)])
    np.testing.assert_array_equal(ep["val_loss"], [0.9, 0.45, 0.3])
    np.testing.assert_array_equal(ep["test_loss"], [0.8, 0.4, 0.8 / 3])
    np.testing.assert_array_equal(ep["lr"], [5e-05 * (1 - s / 300) for s in (100, 200, 300)])


def test_config_from_top_level_fields(state_file):
    run = cnb.load(state_file)
    raw = run.meta["config_raw"][str(state_file)]
    assert "log_history" not in raw
    for key, val in {"global_step": 300, "max_steps": 300, "num_train_epochs": 3, "train_batch_size": 8,
                     "logging_steps": 50, "eval_steps": 500, "save_steps": 500,
                     "stateful_callbacks.TrainerControl.args.should_save": True}.items():
        assert raw[key] == val
    assert run.config["max_steps"] == 300 and run.config["epochs"] == 3 and run.config["batch_size"] == 8


def test_lines_point_at_entries(state_file):
    run = cnb.load(state_file)
    lines = state_file.read_text().splitlines()
    first = values(run, "loss")["line"].iloc[0]
    assert lines[first - 1].strip() == "{" and '"epoch": 0.49' in lines[first]


def test_content_not_name_decides(tmp_path):
    p = write_state(tmp_path / "state_backup.txt", state(log_history(1)))
    assert cnb.load(p).meta["formats"] == ["hf-trainer-state"]
    assert cnb.load(p, format="hf-trainer-state").meta["formats"] == ["hf-trainer-state"]


def test_nan_loss_kept(tmp_path):
    hist = [{"epoch": 0.5, "grad_norm": float("nan"), "learning_rate": 1e-05, "loss": float("nan"), "step": 10},
            {"epoch": 1.0, "grad_norm": float("inf"), "learning_rate": 1e-05, "loss": 0.0, "step": 20}]
    p = write_state(tmp_path / "trainer_state.json", state(hist))
    assert "NaN" in p.read_text()
    run = cnb.load(p)
    loss = values(run, "loss")["value"].tolist()
    assert math.isnan(loss[0]) and loss[1] == 0.0
    assert values(run, "grad_norm")["value"].iloc[1] == math.inf


def test_cut_off_file_keeps_complete_entries(tmp_path, state_file):
    text = state_file.read_text()
    cut = text[: text.index('"eval_loss": 0.45')]  # inside the second epoch's eval entry
    p = tmp_path / "trainer_state.json"
    p.write_text(cut)
    run = cnb.load(p)
    assert run.meta["formats"] == ["hf-trainer-state"]
    assert values(run, "loss")["step"].tolist() == [50, 100, 150, 200]
    assert values(run, "eval_loss")["step"].tolist() == [100]
    assert run.meta["files"][0]["skipped"]["count"] == 1
    assert any("not complete JSON" in n for n in run.meta["notes"])
    assert run.meta["config_raw"] == {}


@pytest.mark.parametrize("content, reason", [
    ("", "empty"),
    ("not json", "not JSON"),
    ('{"global_step": 3}', "no 'log_history' list"),
    ('{"log_history": "x"}', "no 'log_history' list"),
    ('{"log_history": []}', "no numeric values"),
    ('{"log_history": [{"note": "hi"}]}', "no numeric values"),
])
def test_unreadable(tmp_path, content, reason):
    p = tmp_path / "trainer_state.json"
    p.write_text(content)
    with pytest.raises(UnreadableFileError, match=reason):
        HFTrainerStateReader().read(p)


def test_sniff_and_entry_kinds(tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"lr": 0.1, "epochs": 3}, indent=2))
    assert HFTrainerStateReader().sniff(p.read_bytes(), p) == 0.0
    assert entry_kind({"loss": 1.0, "step": 1}) == "train"
    assert entry_kind({"eval_loss": 1.0, "step": 1}) == "eval"
    assert entry_kind({"predict_loss": 1.0}) == entry_kind({"test_loss": 1.0}) == "predict"
    assert entry_kind({"train_runtime": 1.0, "step": 1}) == "summary"


def test_corpus_hf_jaong(corpus):
    p = corpus("hf-jaong", "trainer_state.json")
    run = cnb.load(p)
    assert run.meta["formats"] == ["hf-trainer-state"]
    assert run.meta["files"][0]["skipped"]["count"] == 0
    s = run.scalars
    loss = values(run, "loss").set_index("step")
    assert loss.loc[500, "value"] == 1.1409 and loss.loc[500, "epoch"] == 0.91
    assert loss.loc[5000, "value"] == 0.2645
    ev = values(run, "eval_loss").set_index("step")
    assert ev.loc[549, "value"] == 0.6597685217857361 and ev.loc[5490, "value"] == 0.4916660189628601
    pr = values(run, "predict_loss")
    assert len(pr) == 10 and pr["step"].isna().all() and set(pr["phase"]) == {"test"}
    assert pr.set_index("epoch").loc[10.0, "value"] == 0.4661196768283844
    test_rows = s[s["phase"] == "test"]
    assert set(test_rows["raw_name"].astype(str)) == {"predict_gen_len", "predict_loss", "predict_rouge-1",
                                                      "predict_rouge-2", "predict_rouge-l", "predict_runtime",
                                                      "predict_samples_per_second", "predict_steps_per_second"}
    assert values(run, "train_loss")["value"].tolist() == [0.4479398911550831]
    assert run.config["max_steps"] == 5490 and run.config["batch_size"] == 6 and run.config["epochs"] == 10
    assert run.meta["config_raw"][str(p)]["global_step"] == 5490
    ep = run.epochs.set_index("epoch")
    assert ep.loc[10.0, "train_loss"] == 0.2645 and ep.loc[10.0, "val_loss"] == 0.4916660189628601
    assert ep.loc[10.0, "test_loss"] == 0.4661196768283844
    assert pd.notna(ep["lr"]).all()
    assert run.meta["restarts"] == []


def test_byte_order_mark(tmp_path):
    p = tmp_path / "trainer_state.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(state(log_history(1)), indent=2, sort_keys=True).encode())
    run = cnb.load(p)
    assert run.meta["formats"] == ["hf-trainer-state"] and not any("not complete JSON" in n for n in run.meta["notes"])
    assert run.config["max_steps"] == 300
