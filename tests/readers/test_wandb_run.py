"""W&B run folders written by wandb itself (offline), read without wandb: history, config, exit record."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest

import collapse_nb as cnb
from collapse_nb.readers import wandb_run

RUN = """
import math, os, sys, wandb
run = wandb.init(mode="offline", project="p", dir=sys.argv[1],
                 config={{"epochs": 5, "learning_rate": 0.01, "num_classes": 10}})
for s in range(40):
    wandb.log({{"train/loss": 2.3 - 0.03 * s, "val/loss": math.log(10) + 0.01 * (-1) ** s, "epoch": s // 8}})
{end}
"""


def _wandb_run(tmp_path, end="run.finish()"):
    pytest.importorskip("wandb")
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(RUN.format(end=end)))
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, timeout=120, capture_output=True)
    assert done.returncode == (0 if end == "run.finish()" else 1), done.stderr[-2000:]
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    return run_dir


def test_history_config_and_exit_of_a_finished_offline_run(tmp_path):
    run_dir = _wandb_run(tmp_path)
    run = cnb.load(run_dir)
    (f,) = [f for f in run.meta["files"] if f["format"] == "wandb"]
    cat = run.series.set_index(["name", "phase"])
    assert cat.loc[("loss", "train"), "points"] == 40 and cat.loc[("loss", "val"), "points"] == 40
    assert "epoch" not in set(run.series["name"])                    # the logged epoch is each row's epoch
    train = run.objective("train").rows
    assert train["epoch"].max() == 4 and train["value"].iloc[0] == pytest.approx(2.3)
    assert run.config["epochs"] == 5 and run.config["learning_rate"] == 0.01
    raw = {k: v for cfg in run.meta["config_raw"].values() for k, v in cfg.items()}
    assert raw["num_classes"] == 10 and raw["wandb.exit_code"] == 0
    assert any("W&B's own debug log" in i["reason"] for i in run.meta["ignored"])
    findings = cnb.diagnose(run)
    assert not [x for x in findings if x.code == "run_incomplete"]
    (chance,) = [x for x in findings if x.check == "val_at_chance"]
    assert chance.severity == "critical"                              # val/loss at ln 10 while train learns


def test_a_killed_run_has_no_exit_record_and_says_it_stopped(tmp_path):
    # what a killed process leaves: the records written before it died, no exit record (wandb appends records
    # in order; a process killed seconds in has not flushed any history yet, so the file is cut instead)
    run_dir = _wandb_run(tmp_path)
    (path,) = run_dir.glob("*.wandb")
    data = path.read_bytes()
    log = wandb_run.SkipLog()
    exit_at = next(off for off, rec in wandb_run.records(data, log)
                   if any(num == 18 for num, _, _ in wandb_run.fields(rec)))
    path.write_bytes(data[:exit_at])
    run = cnb.load(run_dir)
    assert any("no exit record" in n for n in run.meta["notes"])
    assert len(run.objective("train").rows) == 40
    (stop,) = [x for x in cnb.diagnose(run) if x.code == "run_incomplete"]
    assert "exit record" in stop.summary and "not finished" in stop.title


def test_a_record_with_a_bad_checksum_is_skipped_and_counted(tmp_path):
    run_dir = _wandb_run(tmp_path)
    (path,) = run_dir.glob("*.wandb")
    data = bytearray(path.read_bytes())
    good = len(cnb.load(path).scalars)
    history = [(off, rec) for off, rec in wandb_run.records(bytes(data), wandb_run.SkipLog())
               if any(num == 2 for num, _, _ in wandb_run.fields(rec))]  # Record.history = 2
    off, rec = history[len(history) // 2]
    assert len(rec) < wandb_run.BLOCK - 7                           # one whole record: its checksum covers it
    data[off + 7 + rec.index(b"val/loss")] ^= 0xFF                 # a byte inside that history record
    path.write_bytes(bytes(data))
    run = cnb.load(path)
    assert run.meta["files"][0]["skipped"]["by_reason"] == {"bad checksum": 1}
    assert good - 3 <= len(run.scalars) < good                     # one record's values are gone, said


def test_the_record_log_survives_a_file_cut_mid_record(tmp_path):
    run_dir = _wandb_run(tmp_path)
    (path,) = run_dir.glob("*.wandb")
    path.write_bytes(path.read_bytes()[:-37])
    run = cnb.load(path)
    assert len(run.scalars) > 40


def test_protobuf_fields_decode():
    msg = bytes([0x08, 0x96, 0x01, 0x12, 0x03]) + b"abc"            # field 1 = 150, field 2 = "abc"
    assert list(wandb_run.fields(msg)) == [(1, 0, 150), (2, 2, b"abc")]
    with pytest.raises(ValueError):
        list(wandb_run.fields(bytes([0x12, 0x09]) + b"abc"))        # a length past the end


def test_corpus_wandb_run_killed_during_epoch_0(corpus):
    run = cnb.load(corpus("wandb-transformer-killed"))
    train = run.objective("train").rows
    assert len(train) == 48 and train["value"].iloc[0] == pytest.approx(10.04, abs=0.01)
    assert train["value"].iloc[-1] == pytest.approx(7.99, abs=0.01) and math.isclose(train["value"].min(), 7.63,
                                                                                      abs_tol=0.01)
    (stop,) = [f for f in cnb.diagnose(run) if f.code == "run_incomplete"]
    assert "step 47" in stop.title and "30 epochs" in stop.title and "exit record" in stop.summary
    assert "loss" not in run.config                                   # the summary's last loss is no setting
