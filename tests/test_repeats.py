"""Files of one run that repeat each other, and the HF accumulation-logging bug, on an HF output folder.

The folder is laid out as ``Trainer`` writes it: ``checkpoint-N/trainer_state.json`` (``TrainerState.save_to_json``:
``json.dumps(asdict(state), indent=2, sort_keys=True)``), ``checkpoint-N/training_args.bin`` (``torch.save(args)``)
and the model's ``config.json`` with ``transformers_version``.
"""
from __future__ import annotations

import json
import math
import sys
import textwrap

import pytest

import collapse_nb as cnb
from collapse_nb.checks import ValBelowTrain


def _history(ga: int):
    hist = []
    for s in range(10, 310, 10):
        ev = 2.0 * math.exp(-s / 300) + 0.5
        hist.append({"epoch": s / 100, "grad_norm": 1.0, "learning_rate": 5e-5,
                     "loss": round(ga * ev * (1 + 0.02 * math.sin(s)), 4), "step": s})
        if s % 50 == 0:
            hist.append({"epoch": s / 100, "eval_loss": ev, "eval_runtime": 10.0, "step": s})
    return hist


def _hf_folder(root, ga: int = 4, version: str = "4.46.3"):
    for ck in (100, 200, 300):
        d = root / f"checkpoint-{ck}"
        d.mkdir(parents=True)
        state = {"log_history": [e for e in _history(ga) if e["step"] <= ck], "global_step": ck, "max_steps": 300,
                 "num_train_epochs": 3, "train_batch_size": 8}
        (d / "trainer_state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    (root / "config.json").write_text(json.dumps({"transformers_version": version, "vocab_size": 32000}))
    return root


@pytest.fixture
def training_args_bin(tmp_path, monkeypatch):
    """``torch.save(TrainingArguments(...))`` as HF writes it, from a stand-in class of the same module path."""
    torch = pytest.importorskip("torch")
    pkg = tmp_path / "fakehf" / "transformers"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "training_args.py").write_text(textwrap.dedent("""
        from dataclasses import dataclass
        @dataclass
        class TrainingArguments:
            output_dir: str = "out"
            per_device_train_batch_size: int = 8
            gradient_accumulation_steps: int = 4
            learning_rate: float = 5e-5
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "fakehf"))
    from transformers.training_args import TrainingArguments

    def write(path, ga):
        torch.save(TrainingArguments(gradient_accumulation_steps=ga), path)
    yield write
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        del sys.modules[name]


def test_checkpoint_snapshots_of_one_history_are_read_once(tmp_path):
    run = cnb.load(_hf_folder(tmp_path / "out"))
    s = run.scalars
    train = s[(s["name"] == "loss") & (s["phase"] == "train")]
    assert len(train) == 30 and train["source"].astype(str).str.endswith("checkpoint-300/trainer_state.json").all()
    notes = [n for n in run.meta["notes"] if "repeats the history" in n]
    assert len(notes) == 2 and all("read once" in n for n in notes)


def test_a_partial_repeat_keeps_the_new_rows(tmp_path):
    a = [{"step": s, "train/loss": 2.0 - s / 100} for s in range(0, 50)]
    b = [{"step": s, "train/loss": 2.0 - s / 100} for s in range(30, 100)]
    (tmp_path / "first.jsonl").write_text("\n".join(json.dumps(r) for r in a) + "\n")
    (tmp_path / "resumed.jsonl").write_text("\n".join(json.dumps(r) for r in b) + "\n")
    run = cnb.load(tmp_path)
    loss = run.scalars[run.scalars["name"] == "loss"]
    assert sorted(loss["step"].tolist()) == list(range(100))          # 20 repeated steps counted once
    assert any("20 of its 50 values repeat" in n for n in run.meta["notes"])


def test_hf_446_accumulation_bug_is_named(tmp_path, training_args_bin):
    root = _hf_folder(tmp_path / "out", ga=4)
    training_args_bin(root / "checkpoint-300" / "training_args.bin", 4)
    run = cnb.load(root)
    assert run.config["gradient_accumulation_steps"] == 4
    [f] = ValBelowTrain()(run)
    top = f.details["causes"][0]
    assert top["cause"] == "gradient_accumulation" and top["score"] == 0.95
    assert "transformers 4.46.3" in top["text"] and "#35204" in top["text"]
    assert f.details["resolution"] == "step"          # step-level pairs, not epoch means
    assert f.details["ratio_median"] == pytest.approx(4.0, rel=0.05)


def test_without_the_version_the_bug_is_a_possibility_only(tmp_path, training_args_bin):
    root = _hf_folder(tmp_path / "out", ga=4, version="4.44.0")
    training_args_bin(root / "checkpoint-300" / "training_args.bin", 4)
    [f] = ValBelowTrain()(cnb.load(root))
    top = f.details["causes"][0]
    assert top["cause"] == "gradient_accumulation" and top["score"] == 0.8
    assert "check the version" in top["text"]


def test_a_lightning_run_resumed_into_a_new_version_is_one_timeline(tmp_path):
    from tests.readers.test_csv_metrics import write_lightning
    from collapse_nb.checks._base import curve
    for version, steps in (("version_0", range(0, 500, 10)), ("version_1", range(500, 1000, 10))):
        d = tmp_path / "lightning_logs" / version
        d.mkdir(parents=True)
        rows = [{"epoch": s // 100, "step": s, "train_loss": 2.0 - s / 1000} for s in steps]
        write_lightning(d / "metrics.csv", rows)
    run = cnb.load(tmp_path)
    assert run.meta["resumes"] == [{"source": str(tmp_path / "lightning_logs" / "version_1" / "metrics.csv"),
                                    "after": str(tmp_path / "lightning_logs" / "version_0" / "metrics.csv"),
                                    "step": 500}]
    c = curve(run, "train", level="step")
    assert len(c) == 100 and c["step"].iloc[0] == 0 and c["step"].iloc[-1] == 990


def test_values_that_merely_coincide_in_two_runs_are_kept(tmp_path):
    """Two runs in one folder with the same constant lr and the same first loss: nothing is a repeat."""
    for name, slope in (("a.csv", 0.1), ("b.csv", 0.05)):
        (tmp_path / name).write_text("epoch,loss,val_loss,lr\n" + "".join(
            f"{e},{2 - slope * e if e else 2.0},{2.1 - slope * e if e else 2.1},0.001\n" for e in range(20)))
    run = cnb.load(tmp_path)
    per_file = run.scalars.groupby(run.scalars["source"].astype(str), observed=True).size()
    assert per_file.tolist() == [60, 60] and not [n for n in run.meta["notes"] if "repeat" in n]
