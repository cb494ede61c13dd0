"""Hostile and odd inputs: a Run with the values, or a collapse_nb error naming the file; never a raw
traceback, a hang or a silent loss. One test per class of input (docs/formats.md, "Limits")."""
from __future__ import annotations

import json
import os
import sys

import pytest

import collapse_nb as cnb
from collapse_nb.errors import CollapseNBError, UnreadableFileError


def _skipped(run, i=0):
    return run.meta["files"][i]["skipped"]["by_reason"]


# ----------------------------------------------------------------------------- numbers

def test_an_integer_too_large_for_a_float_is_inf_and_said(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": %s}\n{"step": 3, "loss": 0.5}\n' % ("9" * 400))
    run = cnb.load(p)
    assert run.scalars["value"].tolist() == [1.0, float("inf"), 0.5]
    assert any("too large for a float64" in n and "loss" in n for n in run.meta["notes"])


@pytest.mark.parametrize("bad", ["Infinity", "-Infinity", "NaN", "1.5", '"ten"', "1e400"])
def test_a_step_that_is_no_counter_is_skipped_with_its_reason(tmp_path, bad):
    p = tmp_path / "log.jsonl"
    p.write_text('{"step": 1, "loss": 1.0}\n{"step": %s, "loss": 0.9}\n{"step": 3, "loss": 0.5}\n' % bad)
    run = cnb.load(p)
    assert run.scalars["step"].tolist() == [1, 3] and run.scalars["value"].tolist() == [1.0, 0.5]
    (reason,) = _skipped(run)
    assert reason.startswith("step is not a usable counter") and run.meta["files"][0]["skipped"]["count"] == 1


def test_counters_of_lightning_csv_mmengine_and_detectron2(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss\n0,1,1.0\n0,inf,0.9\n0,1.5,0.8\n0,,0.7\n")
    run = cnb.load(tmp_path / "metrics.csv")
    assert run.scalars["value"].tolist() == [1.0, 0.7]                    # an empty step is only missing
    assert sum(_skipped(run).values()) == 2
    d2 = tmp_path / "d2" / "metrics.json"
    d2.parent.mkdir()
    d2.write_text('{"iteration": 19, "total_loss": 1.0}\n{"iteration": NaN, "total_loss": 0.9}\n'
                  '{"iteration": 39, "total_loss": 0.8}\n')
    run = cnb.load(d2)
    assert run.scalars["step"].tolist() == [19, 39] and sum(_skipped(run).values()) == 1
    mm = tmp_path / "mm" / "scalars.json"
    mm.parent.mkdir()
    mm.write_text('{"lr": 0.1, "loss": 1.0, "step": 1}\n{"lr": 0.1, "loss": 0.9, "step": Infinity}\n')
    run = cnb.load(mm)
    assert set(run.scalars["step"]) == {1} and run.meta["files"][0]["skipped"]["count"] == 1


def test_a_metric_named_epoch_on_a_line_with_the_epoch_counter(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("Epoch 1/3 | loss=0.5 | epoch=1\nEpoch 2/3 | loss=0.4 | epoch=2\n")
    run = cnb.load(p)
    assert run.epochs["logged_epoch"].tolist() == [1.0, 2.0] and run.epochs["epoch"].tolist() == [1.0, 2.0]
    cnb.diagnose(run)


def test_a_metric_named_epoch_inside_a_text_block(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("EPOCH 1 | BATCH 1/10 | TRAINING MODE\nloss: 0.5\nepoch: 3\n"
                 "EPOCH 1 | BATCH 2/10 | TRAINING MODE\nloss: 0.4\nepoch: 3\n")
    run = cnb.load(p)
    assert run.metric("loss")["value"].tolist() == [0.5, 0.4]
    assert len(run.epochs)


# ----------------------------------------------------------------------------- nesting

def test_deeply_nested_json_lines_are_skipped_not_a_crash(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"step": 1, "loss": 1.0}\n' + '{"a":' * 20000 + "1" + "}" * 20000 + '\n{"step": 2, "loss": 0.9}\n')
    run = cnb.load(p)
    assert run.scalars["value"].tolist() == [1.0, 0.9]
    assert _skipped(run) == {"nested too deeply for the JSON parser": 1}


def test_a_config_nested_too_deeply_is_a_note_not_the_end_of_the_load(tmp_path):
    (tmp_path / "config.json").write_text('{"a":' * 30000 + "1" + "}" * 30000)
    (tmp_path / "trainer_state.json").write_text('{"log_history": [' + "[" * 30000 + "]" * 30000 + "]}")
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    run = cnb.load(tmp_path)
    assert [f["source"] for f in run.meta["files"]] == [str(tmp_path / "log.jsonl")]
    ignored = {os.path.basename(i["source"]): i["reason"] for i in run.meta["ignored"]}
    assert set(ignored) == {"config.json", "trainer_state.json"}
    with pytest.raises(UnreadableFileError, match="trainer_state.json"):
        cnb.load(tmp_path / "trainer_state.json")


# ----------------------------------------------------------------------------- what is in a directory

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file names are bytes")
def test_a_file_name_that_is_not_utf8(tmp_path):
    d = os.fsencode(tmp_path) + b"/run"
    os.mkdir(d)
    with open(d + b"/log\xff.jsonl", "w") as fh:
        fh.write('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    run = cnb.load(os.fsdecode(d))
    (f,) = run.meta["files"]
    assert f["source"].endswith("log\\xff.jsonl") and len(run.scalars) == 2
    f["source"].encode("utf-8")                                  # printable and writable
    from collapse_nb.report import report
    report(run, tmp_path / "r.md", findings=cnb.diagnose(run))
    assert "log\\\\xff.jsonl" in (tmp_path / "r.md").read_text() or "log\\xff" in (tmp_path / "r.md").read_text()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_is_never_opened(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    os.mkfifo(tmp_path / "live.log")                             # opening it would block forever
    run = cnb.load(tmp_path)
    assert run.meta["ignored"] == [{"source": str(tmp_path / "live.log"),
                                    "reason": "a named pipe (FIFO): only regular files are read"}]
    with pytest.raises(UnreadableFileError, match="named pipe"):
        cnb.load(tmp_path / "live.log")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_symlinks_leaving_the_directory_are_not_followed_unless_asked(tmp_path):
    outside = tmp_path / "secrets.txt"
    outside.write_text("API_KEY=12345\nloss=1.0\nloss=2.0\nloss=3.0\n")
    run_dir = tmp_path / "run"
    (run_dir / "sub").mkdir(parents=True)
    (run_dir / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    os.symlink(outside, run_dir / "notes.log")
    os.symlink(run_dir / "log.jsonl", run_dir / "sub" / "same.jsonl")     # inside: followed
    os.symlink(tmp_path, run_dir / "up")                                  # a folder outside
    os.symlink(tmp_path / "gone.log", run_dir / "broken.log")
    run = cnb.load(run_dir)
    assert sorted(os.path.relpath(f["source"], run_dir) for f in run.meta["files"]) == ["log.jsonl", "sub/same.jsonl"]
    reasons = {os.path.basename(i["source"]): i["reason"] for i in run.meta["ignored"]}
    assert "outside the directory" in reasons["notes.log"] and "outside" in reasons["up"]
    assert reasons["broken.log"] == "a broken symbolic link"
    assert "API_KEY" not in json.dumps(run.config, default=str)
    followed = cnb.load(run_dir, follow_symlinks=True)
    assert any(f["source"].endswith("notes.log") for f in followed.meta["files"])


def test_every_error_is_a_collapse_nb_error_naming_the_file(tmp_path):
    for name, data in {"a.jsonl": b'{"step": 1, "loss": [' + b"[" * 5000 + b"\n",
                       "b.csv": b"epoch,step,loss\n0,nan,1\n",
                       "c.json": b'{"log_history": [{"step": 1e999, "loss": 1}]}'}.items():
        p = tmp_path / name
        p.write_bytes(data)
        try:
            cnb.load(p)
        except CollapseNBError as exc:
            assert name in str(exc)


# ----------------------------------------------------------------------------- text that was refused whole

LOG = "".join(f"epoch {e} loss={1.0 / e:.4f}\n" for e in range(1, 6))


def test_a_log_padded_with_nul_bytes_by_a_killed_writer(tmp_path):
    p = tmp_path / "train.log"
    p.write_bytes(LOG[:36].encode() + b"\x00" * 4096 + LOG[36:].encode() + b"\x00" * 512)
    run = cnb.load(p)
    assert run.scalars["value"].round(4).tolist() == [1.0, 0.5, 0.3333, 0.25, 0.2]
    assert any("NUL byte(s) ignored" in n for n in run.meta["notes"])
    q = tmp_path / "binary.dat"
    q.write_bytes(b"\x00\x01loss\x00\x02" * 100)                     # NULs between bytes: binary
    with pytest.raises(CollapseNBError, match="binary"):
        cnb.load(q)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_logs_are_text(tmp_path, encoding):
    p = tmp_path / "train.log"
    p.write_bytes(LOG.replace("\n", "\r\n").encode(encoding))       # PowerShell Tee-Object writes UTF-16 + BOM
    run = cnb.load(p)
    assert len(run.scalars) == 5 and run.meta["files"][0]["source"] == str(p)
    assert any("converted to UTF-8" in n for n in run.meta["notes"])
    (tmp_path / "metrics.csv").write_bytes("epoch,loss\n0,1.0\n1,0.5\n".encode(encoding))
    assert len(cnb.load(tmp_path).scalars) == 7                      # found in a directory too


def test_lines_ended_by_carriage_returns_alone(tmp_path):
    p = tmp_path / "train.log"
    p.write_bytes("".join(f"epoch {i} loss={1 / (i + 1):.4f}\r" for i in range(8000)).encode())   # 150 KB
    run = cnb.load(p)
    assert len(run.scalars) == 8000 and any("carriage return" in n for n in run.meta["notes"])


def test_a_line_longer_than_64_kib_is_skipped_and_counted(tmp_path):
    p = tmp_path / "train.log"
    p.write_text("epoch 1 loss=1.0 " + "x" * 70000 + "\n" + LOG[LOG.index("epoch 2"):])
    run = cnb.load(p)
    assert len(run.scalars) == 4 and run.meta["files"][0]["skipped"]["count"] == 1


def test_csv_column_names_longer_than_120_characters(tmp_path):
    name = "val/loss/" + ",".join(f"hp{i}=0.{i}" for i in range(20)).replace(",", ";")   # a sweep's name, 170 chars
    p = tmp_path / "metrics.csv"
    p.write_text(f"epoch,{name},train_loss\n0,1.0,1.1\n1,0.9,1.0\n")
    run = cnb.load(p)
    assert run.meta["files"][0]["format"] != "text-log" and len(run.scalars) == 4


def test_a_torch_distributed_checkpoint_folder_says_how_to_convert_it(tmp_path):
    torch = pytest.importorskip("torch")
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        dcp.save({"model": {"w": torch.randn(4, 4)}}, checkpoint_id=str(tmp_path / "ck"))
    shard = next((tmp_path / "ck").glob("*.distcp"))
    with pytest.raises(UnreadableFileError, match="torch.distributed.checkpoint.*dcp_to_torch"):
        cnb.load(shard)
    (tmp_path / "ck" / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n')
    run = cnb.load(tmp_path / "ck")
    (ign,) = run.meta["ignored"]
    assert ign["source"] == str(shard) and ign["reason"].startswith("a torch.distributed.checkpoint (DCP) shard")
