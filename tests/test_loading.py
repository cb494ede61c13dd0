"""``collapse_nb.load`` on bad input: every failure is a clear error that names the file, never a hang or a
traceback from deep inside pandas; damaged files still give what can be read."""
from __future__ import annotations

import json
import os
import re
import time

import pytest

import collapse_nb
from collapse_nb import (CollapseNBError, MissingPathError, NothingReadableError, UnknownFormatError,
                         UnreadableFileError)

LOG = b"".join(f"Epoch {e}/3 | train_loss={1 / e:.4f} val_loss={0.5 / e:.4f} lr=0.001\n".encode() for e in (1, 2, 3))


def named(path) -> str:
    return re.escape(str(path))


def test_missing_path(tmp_path):
    p = tmp_path / "nope" / "training.log"
    with pytest.raises(MissingPathError, match=named(p)) as exc:
        collapse_nb.load(p)
    assert "no such file or directory" in str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)


def test_missing_path_in_a_list(tmp_path):
    good = tmp_path / "a.log"
    good.write_bytes(LOG)
    with pytest.raises(MissingPathError, match=named(tmp_path / "b.log")):
        collapse_nb.load([good, tmp_path / "b.log"])


def test_empty_list():
    with pytest.raises(NothingReadableError):
        collapse_nb.load([])


def test_empty_file(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=named(p) + ".*empty"):
        collapse_nb.load(p)
    with pytest.raises(UnreadableFileError, match=named(p) + ".*empty"):
        collapse_nb.load(p, format="text-log")


def test_whitespace_only_file(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(b"  \n\n\t\r\n   \n")
    with pytest.raises(UnreadableFileError, match=named(p) + ".*(empty|whitespace)"):
        collapse_nb.load(p)
    with pytest.raises(UnreadableFileError, match=named(p) + ".*(empty|whitespace)"):
        collapse_nb.load(p, format="text-log")


@pytest.mark.parametrize("data", [os.urandom(8192), b"\0" * 4096], ids=["random-bytes", "nul-bytes"])
def test_binary_file(tmp_path, data):
    p = tmp_path / "training.log"
    p.write_bytes(data)
    with pytest.raises((UnknownFormatError, UnreadableFileError), match=named(p) + ".*binary"):
        collapse_nb.load(p)
    with pytest.raises(UnreadableFileError, match=named(p) + ".*binary"):
        collapse_nb.load(p, format="text-log")


def test_truncated_last_line(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(LOG + b"Epoch 4/3 | train_loss=0.2")         # cut mid-number, no newline
    run = collapse_nb.load(p)
    ep = run.epochs.set_index("epoch")
    assert ep.loc[1.0, "train_loss"] == 1.0 and ep.loc[3.0, "val_loss"] == round(0.5 / 3, 4)
    assert ep.loc[2.0, "lr"] == 0.001
    assert set(run.scalars.loc[run.scalars["line"] <= 3, "raw_name"].astype(str)) == {"train_loss", "val_loss", "lr"}
    assert len(run.scalars[run.scalars["line"] <= 3]) == 9


def test_truncated_mid_key(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(LOG + b"Epoch 4/3 | train_lo")
    run = collapse_nb.load(p)
    assert len(run.scalars) == 9 and run.scalars["line"].max() == 3


def test_non_utf8_bytes_in_the_middle(tmp_path):
    p = tmp_path / "training.log"
    lines = LOG.splitlines(keepends=True)
    p.write_bytes(lines[0] + b"caf\xe9 \xff\xfe note: loss=0.75\n" + b"".join(lines[1:]))
    run = collapse_nb.load(p)
    assert run.scalars.loc[run.scalars["line"] == 2, "value"].tolist() == [0.75]
    assert run.epochs["train_loss"].tolist() == [1.0, 0.5, round(1 / 3, 4)]
    assert any("not UTF-8" in n and "line 2" in n for n in run.meta["notes"])


def test_five_megabyte_single_line_is_skipped_quickly(tmp_path):
    p = tmp_path / "training.log"
    lines = LOG.splitlines(keepends=True)
    p.write_bytes(lines[0] + b"loss: 1, x=" * 500_000 + b"\n" + b"".join(lines[1:]))
    assert p.stat().st_size > 5_000_000
    t = time.perf_counter()
    run = collapse_nb.load(p)
    assert time.perf_counter() - t < 10
    skipped = run.meta["files"][0]["skipped"]
    assert skipped["count"] == 1
    assert skipped["examples"][0]["line"] == 2 and "longer than" in skipped["examples"][0]["reason"]
    assert run.epochs["train_loss"].tolist() == [1.0, 0.5, round(1 / 3, 4)]
    assert run.scalars["line"].tolist() == [1, 1, 1, 3, 3, 3, 4, 4, 4]


def test_file_that_is_one_huge_line(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(b"x" * 5_500_000)
    t = time.perf_counter()
    with pytest.raises(CollapseNBError, match=named(p)):
        collapse_nb.load(p)
    assert time.perf_counter() - t < 10


def test_text_without_numbers(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("Training started\nModel initialized\nDone\n")
    with pytest.raises(CollapseNBError, match=named(p)):
        collapse_nb.load(p, format="text-log")


def test_directory_with_nothing_readable(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "empty.log").write_bytes(b"")
    (d / "blob.bin").write_bytes(os.urandom(4096))
    (d / "zeros.dat").write_bytes(b"\0" * 512)
    with pytest.raises(NothingReadableError, match=named(d)) as exc:
        collapse_nb.load(d)
    msg = str(exc.value)
    for name in ("empty.log", "blob.bin", "zeros.dat"):
        assert str(d / name) in msg
    assert "empty" in msg and "binary" in msg


def test_empty_directory(tmp_path):
    with pytest.raises(NothingReadableError, match=named(tmp_path) + ".*empty"):
        collapse_nb.load(tmp_path)


def test_directory_skips_unreadable_files_and_lists_them(tmp_path):
    (tmp_path / "training.log").write_bytes(LOG)
    (tmp_path / "blob.bin").write_bytes(os.urandom(4096))
    run = collapse_nb.load(tmp_path)
    assert run.sources == [str(tmp_path / "training.log")]
    assert [i["source"] for i in run.meta["ignored"]] == [str(tmp_path / "blob.bin")]
    assert "binary" in run.meta["ignored"][0]["reason"]


def test_unknown_format(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(LOG)
    with pytest.raises(UnknownFormatError, match="'nope'") as exc:
        collapse_nb.load(p, format="nope")
    for known in collapse_nb.formats():
        assert known in str(exc.value)
    assert "text-log" in str(exc.value)


def test_format_forced_on_a_file_of_another_format(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(LOG)
    if "hf-trainer-state" not in collapse_nb.formats():
        pytest.skip("hf-trainer-state reader not registered")
    with pytest.raises(CollapseNBError, match=named(p)):
        collapse_nb.load(p, format="hf-trainer-state")


def test_trainer_state_json_with_another_name(tmp_path):
    if "hf-trainer-state" not in collapse_nb.formats():
        pytest.skip("hf-trainer-state reader not registered")
    state = {"global_step": 20, "max_steps": 20, "num_train_epochs": 2, "log_history": [
        {"epoch": 0.5, "learning_rate": 1e-4, "loss": 1.25, "step": 5},
        {"epoch": 1.0, "eval_loss": 0.75, "step": 10},
        {"epoch": 2.0, "eval_loss": 0.5, "step": 20}]}
    p = tmp_path / "whatever.txt"
    p.write_text(json.dumps(state, indent=2))
    run = collapse_nb.load(p, format="hf-trainer-state")
    assert run.meta["formats"] == ["hf-trainer-state"]
    assert run.metric("loss", "val")["value"].tolist() == [0.75, 0.5]
    assert run.metric("loss", "train")[["step", "value"]].values.tolist() == [[5, 1.25]]


def test_directory_with_text_log_and_config_yaml(tmp_path):
    if "config" not in collapse_nb.formats():
        pytest.skip("config reader not registered")
    (tmp_path / "training.log").write_text(
        "Optimization summary | batch_size=12 learning_rate=0.003\n" + LOG.decode())
    (tmp_path / "config.yaml").write_text(
        "optimizer:\n  lr: 0.001\n  weight_decay: 0.0001\ntraining:\n  gradient_accumulation_steps: 3\n")
    run = collapse_nb.load(tmp_path)
    assert run.meta["formats"] == ["config", "text-log"]
    cfg, where = run.config, run.meta["config_sources"]
    assert cfg["learning_rate"] == 0.001 and where["learning_rate"] == str(tmp_path / "config.yaml")
    assert cfg["weight_decay"] == 0.0001 and cfg["gradient_accumulation_steps"] == 3
    assert cfg["batch_size"] == 12 and where["batch_size"] == str(tmp_path / "training.log")
    conflict, = run.meta["config_conflicts"]           # the config file states intent: it wins
    assert conflict["key"] == "learning_rate" and conflict["kept"] == 0.001 and conflict["other"] == 0.003
    assert run.epochs["val_loss"].tolist() == [0.5, 0.25, round(0.5 / 3, 4)]


def test_directory_with_only_a_config_file(tmp_path):
    if "config" not in collapse_nb.formats():
        pytest.skip("config reader not registered")
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    with pytest.raises(NothingReadableError, match=named(tmp_path) + ".*config.yaml"):
        collapse_nb.load(tmp_path)


def test_summary_mentions_format_and_counts(tmp_path):
    p = tmp_path / "training.log"
    p.write_bytes(b"Starting the run\n" + LOG)
    run = collapse_nb.load(p)
    text = run.summary()
    assert f"{p}: text-log, 9 values" in text
    assert "1 not understood" in text and "at line 1" in text
    assert "scalars: 9 rows, 2 distinct names" in text          # loss (train and val) and lr
    assert "epochs: 3 rows" in text and "outputs: 0 rows" in text and "grads: 0 rows" in text
    assert "text-log" in repr(run) and "9 scalars" in repr(run)
