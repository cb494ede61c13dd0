"""CSV metric readers: lightning-csv, keras-csv, ultralytics-csv and generic csv.

Inputs are written the way the real writers write them (csv.DictWriter with
its default ``\\r\\n`` for Lightning and Keras, ``%23.5g`` padding for
Ultralytics, pandas ``to_csv`` for generic files).
"""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse_nb
from collapse_nb.errors import UnreadableFileError
from collapse_nb.loading import sniff
from collapse_nb.readers.base import SkipLog, decode_text, get_reader


# --------------------------------------------------------------------------- writers, as the real ones write

def write_lightning(path: Path, rows: list[dict]) -> Path:
    """Lightning's CSVLogger: sorted union of keys, csv.DictWriter (missing keys -> empty cells)."""
    keys = sorted(set().union(*rows))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return path


def write_keras(path: Path, epochs: list[dict], sep: str = ",") -> Path:
    """Keras' CSVLogger: ``epoch`` then the sorted log keys; a missing key is written as ``NA``."""
    keys = sorted(epochs[0])

    class Dialect(csv.excel):
        delimiter = sep

    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["epoch"] + keys, dialect=Dialect)
        w.writeheader()
        for i, logs in enumerate(epochs):
            w.writerow({"epoch": i, **{k: logs.get(k, "NA") for k in keys}})
    return path


def write_ultralytics(path: Path, keys: list[str], rows: list[list[float]]) -> Path:
    """Ultralytics 8.0 ``save_metrics``: every field ``%23s`` / ``%23.5g``, epochs from 0."""
    n = len(keys) + 1
    with open(path, "a") as f:
        for epoch, vals in enumerate(rows):
            s = "" if epoch else ("%23s," * n % tuple(["epoch"] + keys)).rstrip(",") + "\n"
            f.write(s + ("%23.5g," * n % tuple([epoch] + vals)).rstrip(",") + "\n")
    return path


def raw(path: Path, fmt: str):
    return get_reader(fmt).read(path)


def values_of(df: pd.DataFrame, name: str) -> list[float]:
    return df.loc[df["raw_name"] == name, "value"].tolist()


# --------------------------------------------------------------------------- lightning-csv

@pytest.fixture
def lightning_file(tmp_path: Path) -> Path:
    rows = []
    for epoch in range(3):
        for s in (49, 99):
            step = epoch * 100 + s
            rows.append({"lr-Adam": 0.001 * (epoch + 1), "step": step})
            rows.append({"train/loss": 1.0 / (step + 1), "train_acc_step": 0.5, "epoch": epoch, "step": step})
        rows.append({"val/loss": 0.25 + epoch, "epoch": epoch, "step": epoch * 100 + 99})
        rows.append({"train_acc_epoch": 0.6 + epoch / 10, "epoch": epoch, "step": epoch * 100 + 99})
    return write_lightning(tmp_path / "metrics.csv", rows)


def test_lightning_sparse_rows(lightning_file: Path):
    r = raw(lightning_file, "lightning-csv")
    df = r.scalars
    assert r.skipped.count == 0
    # one raw scalar per non-empty cell: 6 lr + 6 loss + 6 acc_step + 3 val + 3 acc_epoch
    assert len(df) == 24
    lr = df[df["raw_name"] == "lr-Adam"]
    assert lr["epoch"].isna().all()               # the lr rows have no epoch: not invented
    assert lr["step"].tolist() == [49, 99, 149, 199, 249, 299]
    assert lr["value"].tolist() == [0.001, 0.001, 0.002, 0.002, 0.003, 0.003]
    loss = df[df["raw_name"] == "train/loss"]
    assert loss["value"].tolist() == [1.0 / (s + 1) for s in (49, 99, 149, 199, 249, 299)]  # exact round trip
    assert loss["epoch"].tolist() == [0, 0, 1, 1, 2, 2]
    assert "phase" not in df.columns              # the names carry the phase; the rows say none
    # line: header is line 1, first lr row line 2, first loss row line 3
    assert df["line"].iloc[:2].tolist() == [2, 3]
    assert values_of(df, "val/loss") == [0.25, 1.25, 2.25]


def test_lightning_sniffed_and_loaded(lightning_file: Path):
    reader, score = sniff(lightning_file)
    assert reader.name == "lightning-csv" and score >= 0.9
    run = collapse_nb.load(lightning_file)
    assert run.meta["formats"] == ["lightning-csv"]
    s = run.scalars
    assert set(s.loc[s["raw_name"] == "lr-Adam", "name"]) == {"lr"}
    val = run.metric("loss", phase="val")
    assert val["value"].tolist() == [0.25, 1.25, 2.25]
    assert val["step"].tolist() == [99, 199, 299]
    assert {"train_loss", "val_loss"} <= set(run.epochs.columns)
    assert run.epochs["val_loss"].tolist() == [0.25, 1.25, 2.25]


def test_lightning_epochs_from_step_rows(lightning_file: Path):
    """Per-step rows are averaged over the epoch; ``*_epoch`` beats ``*_step``; ``lr-Adam`` rows get an epoch."""
    run = collapse_nb.load(lightning_file)
    ep = run.epochs
    assert ep["epoch"].tolist() == [0, 1, 2]
    # train/loss is logged at two steps per epoch (no epoch-level column): the mean, not the last
    assert ep["train_loss"].tolist() == [(1 / (e * 100 + 50) + 1 / (e * 100 + 100)) / 2 for e in range(3)]
    # train_acc_step / train_acc_epoch: one name, the epoch column wins
    assert ep["train_accuracy"].tolist() == [0.6, 0.7, 0.8]
    assert not {"train_acc_step", "train_acc_epoch", "train_accuracy_step"} & set(ep.columns)
    # lr-Adam rows have a step but no epoch: their epoch comes from the rows at the same steps
    assert ep["lr"].tolist() == [0.001, 0.002, 0.003]
    assert run.scalars.loc[run.scalars["raw_name"] == "lr-Adam", "epoch"].isna().all()  # scalars: as logged


def write_lightning_step_epoch(path: Path, metric: str = "train_loss") -> tuple[Path, list[float], list[float]]:
    """``self.log(metric, on_step=True, on_epoch=True)``: ``<metric>_step`` rows, ``<metric>_epoch`` at the end."""
    rows, step_vals, epoch_vals = [], [], []
    for epoch in range(2):
        vals = [1.0 / (epoch + 1) + k / 8 for k in range(3)]
        for k, v in enumerate(vals):
            rows.append({f"{metric}_step": v, "epoch": epoch, "step": epoch * 30 + k * 10 + 9})
        epoch_vals.append(0.3 + epoch)                      # Lightning's epoch value: over every batch
        step_vals.append(sum(vals) / 3)
        rows.append({f"{metric}_epoch": epoch_vals[-1], "val_loss": 2.0 - epoch, "epoch": epoch,
                     "step": epoch * 30 + 29})
    return write_lightning(path, rows), step_vals, epoch_vals


def test_lightning_step_and_epoch_suffixes(tmp_path: Path):
    p, _, epoch_vals = write_lightning_step_epoch(tmp_path / "metrics.csv")
    run = collapse_nb.load(p)
    s = run.scalars
    for raw_name in ("train_loss_step", "train_loss_epoch"):
        rows = s[s["raw_name"] == raw_name]
        assert set(rows["name"]) == {"loss"} and set(rows["phase"]) == {"train"}
    ep = run.epochs
    assert ep["train_loss"].tolist() == epoch_vals          # the explicit epoch-level column
    assert ep["val_loss"].tolist() == [2.0, 1.0]
    assert not any(c.endswith(("_step", "_epoch")) for c in ep.columns)


def test_lightning_unknown_metric_pair_and_step_names_kept(tmp_path: Path):
    """An unknown metric loses its suffix only when the file has both halves of the pair."""
    p, _, epoch_vals = write_lightning_step_epoch(tmp_path / "metrics.csv", "train_f1")
    run = collapse_nb.load(p)
    s = run.scalars
    assert set(s.loc[s["raw_name"].isin(["train_f1_step", "train_f1_epoch"]), "name"]) == {"f1"}
    assert run.epochs["train_f1"].tolist() == epoch_vals
    p2 = write_lightning(tmp_path / "other.csv", [  # (a global_step column would be the step index)
        {"optimizer_step_executed": 1, "effective_step_norm": 0.5, "custom_step": 2.0, "update_step": 3,
         "epoch": 0, "step": 9}])
    s2 = collapse_nb.load(p2).scalars
    assert dict(zip(s2["raw_name"].astype(str), s2["name"].astype(str))) == {
        "custom_step": "custom_step", "effective_step_norm": "effective_step_norm",
        "optimizer_step_executed": "optimizer_step_executed", "update_step": "update_step"}


def test_lightning_step_column_without_epoch_column_is_averaged(tmp_path: Path):
    """``train_loss_step`` with no ``train_loss_epoch`` in the file: the epoch's value is the mean of its steps."""
    p, step_vals, _ = write_lightning_step_epoch(tmp_path / "metrics.csv")
    df = pd.read_csv(p).drop(columns="train_loss_epoch")
    df.to_csv(p, index=False)
    ep = collapse_nb.load(p).epochs
    np.testing.assert_allclose(ep["train_loss"], step_vals, rtol=1e-15)
    np.testing.assert_allclose(ep["train_loss"], df.groupby("epoch")["train_loss_step"].mean(), rtol=1e-15)


# --------------------------------------------------------------------------- keras-csv

KERAS_EPOCHS = [
    {"accuracy": 0.5, "loss": 1.25, "lr": 0.001, "val_accuracy": 0.45, "val_loss": 1.5},
    {"accuracy": 0.75, "loss": float("nan"), "lr": 0.001, "val_accuracy": 0.5, "val_loss": float("inf")},
    {"accuracy": 0.875, "loss": 0.3125, "lr": 1e-06, "val_accuracy": 0.625, "val_loss": 0.5},
]


def test_keras_values_phases_epochs(tmp_path: Path):
    p = write_keras(tmp_path / "training.log", KERAS_EPOCHS)   # a .log name: sniffed by content
    reader, score = sniff(p)
    assert reader.name == "keras-csv" and score >= 0.85
    df = raw(p, "keras-csv").scalars
    assert len(df) == 15
    assert df["epoch"].tolist()[:5] == [0] * 5                  # 0-based, as in the file
    loss = df[df["raw_name"] == "loss"]
    assert loss["value"].iloc[0] == 1.25 and math.isnan(loss["value"].iloc[1]) and loss["value"].iloc[2] == 0.3125
    assert (loss["phase"] == "train").all()
    assert df.loc[df["raw_name"] == "lr", "phase"].isna().all()  # the learning rate is no phase's
    assert df.loc[df["raw_name"] == "val_loss", "phase"].isna().all()  # val via its name, centrally
    assert values_of(df, "val_loss")[1] == math.inf
    assert values_of(df, "lr") == [0.001, 0.001, 1e-06]

    run = collapse_nb.load(p)
    ep = run.epochs
    assert ep["epoch"].tolist() == [0, 1, 2]
    assert ep["train_loss"].iloc[0] == 1.25 and math.isnan(ep["train_loss"].iloc[1])
    assert ep["val_loss"].tolist() == [1.5, math.inf, 0.5]
    assert ep["lr"].tolist() == [0.001, 0.001, 1e-06]
    assert ep["train_accuracy"].tolist() == [0.5, 0.75, 0.875]


def test_keras_na_cells_and_learning_rate_key(tmp_path: Path):
    epochs = [{"loss": 1.0, "learning_rate": 0.01}, {"loss": 0.5}]  # Keras writes "NA" for a missing key
    p = write_keras(tmp_path / "log.csv", epochs)
    r = raw(p, "keras-csv")
    assert r.skipped.count == 0                                  # "NA" is "nothing logged", not an error
    assert values_of(r.scalars, "learning_rate") == [0.01]
    assert collapse_nb.load(p).epochs["lr"].tolist()[0] == 0.01


def test_keras_appended_restart_is_a_new_segment(tmp_path: Path):
    p = write_keras(tmp_path / "training.log", KERAS_EPOCHS[:2])
    with open(p, "a", newline="") as f:  # CSVLogger(append=True): no second header, epochs from 0 again
        w = csv.writer(f)
        w.writerow([0, 0.6, 0.9, 0.001, 0.5, 0.8])
    run = collapse_nb.load(p)
    assert run.meta["restarts"] and run.meta["restarts"][0]["line"] == 4
    assert sorted(run.scalars["segment"].unique().tolist()) == [0, 1]


# --------------------------------------------------------------------------- ultralytics-csv

YOLO_KEYS = ["train/box_loss", "train/cls_loss", "metrics/precision(B)", "metrics/mAP50(B)", "val/box_loss",
             "lr/pg0", "lr/pg1"]


def test_ultralytics_padded(tmp_path: Path):
    rows = [[1.6878, 3.3859, 0.1762, 0.15826, 2.335, 0.070545, 0.0032727],
            [1.267, 1.9629, 0.34394, 0.25946, 2.2896, 0.040284, 0.0063445]]
    p = write_ultralytics(tmp_path / "results.csv", YOLO_KEYS, rows)
    assert p.read_text().startswith(" " * 18 + "epoch,")
    reader, _ = sniff(p)
    assert reader.name == "ultralytics-csv"
    df = raw(p, "ultralytics-csv").scalars
    assert list(df["raw_name"].unique()) == YOLO_KEYS               # padding stripped from the names
    assert values_of(df, "train/box_loss") == [1.6878, 1.267]
    assert values_of(df, "lr/pg1") == [0.0032727, 0.0063445]
    assert df["epoch"].unique().tolist() == [0, 1]
    assert set(df.loc[df["raw_name"].str.startswith("metrics/"), "phase"]) == {"val"}

    run = collapse_nb.load(p)
    ep = run.epochs
    assert {"train_box_loss", "val_box_loss", "lr"} <= set(ep.columns)
    assert ep["lr"].tolist() == [0.070545, 0.040284]                   # the first param group
    assert ep["lr_pg1"].tolist() == [0.0032727, 0.0063445]             # the others: lr_<group>
    assert ep["val_box_loss"].tolist() == [2.335, 2.2896]


def test_ultralytics_yolov5_header_sniffed(tmp_path: Path):
    keys = ["train/box_loss", "train/obj_loss", "train/cls_loss", "metrics/precision", "metrics/recall",
            "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "x/lr0"]
    p = write_ultralytics(tmp_path / "results.csv", keys, [[0.1] * 9, [0.05] * 9])
    assert sniff(p)[0].name == "ultralytics-csv"
    assert values_of(raw(p, "ultralytics-csv").scalars, "x/lr0") == [0.1, 0.05]


def test_yolov5_lr_columns_are_param_groups(tmp_path: Path):
    """YOLOv5 writes the param groups' learning rates as ``x/lr0``, ``x/lr1``, ``x/lr2``."""
    keys = ["train/box_loss", "train/obj_loss", "metrics/precision", "metrics/mAP_0.5", "val/box_loss",
            "x/lr0", "x/lr1", "x/lr2"]
    p = write_ultralytics(tmp_path / "results.csv", keys, [[0.5, 0.4, 0.1, 0.2, 0.6, 0.07, 0.003, 0.002],
                                                           [0.4, 0.3, 0.2, 0.3, 0.5, 0.04, 0.006, 0.005]])
    run = collapse_nb.load(p)
    lr = run.scalars[run.scalars["name"] == "lr"]
    assert dict(zip(lr["raw_name"].astype(str), lr["param"].astype(str))) == \
        {"x/lr0": "pg0", "x/lr1": "pg1", "x/lr2": "pg2"}
    ep = run.epochs
    assert ep["lr"].tolist() == [0.07, 0.04]
    assert ep["lr_pg1"].tolist() == [0.003, 0.006] and ep["lr_pg2"].tolist() == [0.002, 0.005]
    assert list(ep.columns).index("lr_pg1") == list(ep.columns).index("lr") + 1
    assert not any(c.startswith("x_") for c in ep.columns)


def test_ultralytics_new_style_time_is_a_metric(tmp_path: Path):
    p = tmp_path / "results.csv"
    p.write_text("epoch,time,train/box_loss,metrics/mAP50(B),val/box_loss,lr/pg0\n"
                 "1,61.2,1.5,0.2,2.1,0.0033\n2,120.9,1.25,0.3,1.9,0.0031\n")
    assert sniff(p)[0].name == "ultralytics-csv"
    df = raw(p, "ultralytics-csv").scalars
    assert values_of(df, "time") == [61.2, 120.9]
    assert "wall_time" not in df.columns or df["wall_time"].isna().all()


# --------------------------------------------------------------------------- generic csv: wide

def test_generic_wide_from_pandas(tmp_path: Path):
    df = pd.DataFrame({"global_step": [10, 20, 30], "epoch": [0.5, 1.0, 1.5],
                       "loss": [0.9, np.nan, 0.7], "grad_norm": [1.5, np.inf, -np.inf]})
    p = tmp_path / "log.csv"
    df.to_csv(p, index=False, na_rep="nan")
    assert sniff(p)[0].name == "csv"
    r = raw(p, "csv")
    out = r.scalars
    assert r.skipped.count == 0
    assert out["step"].tolist() == [10, 10, 20, 20, 30, 30]
    assert out["epoch"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
    g = values_of(out, "grad_norm")
    assert g[0] == 1.5 and g[1] == math.inf and g[2] == -math.inf
    assert math.isnan(values_of(out, "loss")[1])                     # "nan" is a value: kept
    assert out["line"].tolist() == [2, 2, 3, 3, 4, 4]


def test_generic_pandas_index_column_ignored(tmp_path: Path):
    p = tmp_path / "hist.csv"
    pd.DataFrame({"step": [1, 2], "loss": [0.5, 0.25]}).to_csv(p)    # index=True: an unnamed first column
    r = raw(p, "csv")
    assert r.scalars["raw_name"].unique().tolist() == ["loss"]
    assert any("unnamed" in n for n in r.notes)


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_generic_delimiters(tmp_path: Path, sep: str):
    p = tmp_path / "log.tsv"
    pd.DataFrame({"iter": [1, 2], "loss": [0.5, 0.25], "acc": [0.1, 0.2]}).to_csv(p, sep=sep, index=False)
    assert sniff(p)[0].name == "csv"
    out = raw(p, "csv").scalars
    assert values_of(out, "acc") == [0.1, 0.2] and out["step"].tolist() == [1, 1, 2, 2]


def test_generic_semicolon_decimal_comma(tmp_path: Path):
    p = tmp_path / "eu.csv"
    p.write_text("epoch;loss;acc\n1;0,5;0,75\n2;0,25;1,5e-1\n")
    out = raw(p, "csv").scalars
    assert values_of(out, "loss") == [0.5, 0.25] and values_of(out, "acc") == [0.75, 0.15]


def test_generic_bad_cells_and_rows_counted_with_lines(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text("step,loss,acc,note\n"      # 1
                 "1,0.5,0.9,ok\n"              # 2
                 "2,oops,0.8,ok\n"             # 3: one bad cell
                 "3,0.4\n"                     # 4: too few fields
                 "\n"                          # 5: blank, not counted
                 "4,0.3,0.7,ok,extra\n"        # 6: too many fields
                 "5,None,,ok\n"                # 7: None and empty: nothing logged
                 "step,loss,acc,note\n"        # 8: header again
                 "6,0.2,NaN,ok\n"              # 9
                 "7,0.1,0.")                   # 10: truncated last line
    r = raw(p, "csv")
    sk = r.skipped
    assert sk.count == 5
    lines = {ln: reason for ln, reason, _ in sk.examples}
    assert "non-numeric" in lines[3] and "'loss'" in lines[3]
    assert "wrong number of fields" in lines[4] and "wrong number of fields" in lines[6]
    assert "header" in lines[8]
    assert "truncated last line" in lines[10]
    out = r.scalars
    assert values_of(out, "loss") == [0.5, 0.2]
    assert out.loc[out["raw_name"] == "acc", "line"].tolist() == [2, 3, 9]
    assert math.isnan(values_of(out, "acc")[2])
    assert "note" not in set(out["raw_name"])          # a text column is ignored whole, with a note
    assert any("'note'" in n for n in r.notes)
    run = collapse_nb.load(p)
    assert run.meta["files"][0]["skipped"]["count"] == 5


def test_generic_complete_last_line_without_newline_is_read(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text("step,loss\n1,0.5\n2,0.25")
    r = raw(p, "csv")
    assert r.skipped.count == 0 and values_of(r.scalars, "loss") == [0.5, 0.25]


def test_generic_stray_quote_does_not_swallow_rows(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text('step,loss\n1,0.5\n2,"0.4\n3,0.3\n4,0.2\n')
    r = raw(p, "csv")
    assert values_of(r.scalars, "loss") == [0.5, 0.3, 0.2]
    assert r.skipped.count == 1 and r.skipped.examples[0][0] == 3


def test_generic_quoted_multiline_text_cell_is_one_row(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text('step,loss,comment\n1,0.5,"two\nlines"\n2,0.25,plain\n')
    r = raw(p, "csv")
    assert values_of(r.scalars, "loss") == [0.5, 0.25]
    assert r.scalars["line"].tolist() == [2, 4]


def test_generic_comments_bom_crlf_and_non_utf8(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_bytes(b"\xef\xbb\xbf# written by my script\r\nstep,loss,tag\r\n1,0.5,caf\xe9\r\n2,0.25,x\r\n")
    r = raw(p, "csv")
    assert values_of(r.scalars, "loss") == [0.5, 0.25]
    assert r.scalars["line"].tolist() == [3, 4]
    assert r.skipped.count == 1 and r.skipped.by_reason["comment line"] == 1
    assert (1, "comment line", "") in r.skipped.examples
    # the line with a non-UTF-8 byte is still read: a note, not a skip, so count == sum(by_reason)
    assert r.skipped.count == sum(r.skipped.by_reason.values())
    assert r.skipped.replaced == 1 and r.skipped.replaced_lines == [3]
    assert any("non-UTF-8" in n and "line 3" in n for n in r.notes)
    assert collapse_nb.load(p).meta["files"][0]["skipped"]["replaced"] == 1


def test_non_utf8_lines_are_noted_not_skipped():
    """decode_text: lines still read after replacing bad bytes are no skip, so count == sum(by_reason)."""
    sk = SkipLog()
    sk.add(1, "comment line")
    text = decode_text(b"# c\ncaf\xe9,1\nok,2\n\xff\xfe,3\n", "x.csv", sk)
    assert text.splitlines()[3] == "\ufffd\ufffd,3"
    assert sk.count == sum(sk.by_reason.values()) == 1
    assert sk.replaced == 2 and sk.replaced_lines == [2, 4]
    assert sk.replaced_note() == "2 line(s) had non-UTF-8 bytes (replaced, still read) at line 2, 4"
    assert sk.describe().startswith("1 not understood (comment line: 1) at line 1; 2 line(s) had non-UTF-8")
    merged = SkipLog()
    merged.merge(sk)
    merged.merge(sk)
    assert merged.count == 2 == sum(merged.by_reason.values()) and merged.replaced == 4
    assert merged.as_dict()["replaced_lines"] == [2, 4, 2, 4]


def test_generic_wall_time_numbers_dates_and_elapsed(tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text("timestamp,step,loss\n1700000000.5,1,0.5\n1700000010.5,2,0.4\n")
    out = raw(p, "csv").scalars
    assert out["wall_time"].tolist() == [1700000000.5, 1700000010.5]
    p2 = tmp_path / "b.csv"
    p2.write_text("time,step,loss\n2024-01-01T00:00:00Z,1,0.5\n2024-01-01T00:01:00Z,2,0.4\n")
    assert raw(p2, "csv").scalars["wall_time"].tolist() == [1704067200.0, 1704067260.0]
    p3 = tmp_path / "c.csv"
    p3.write_text("step,time,loss\n1,0.25,0.5\n2,0.5,0.4\n")                  # elapsed seconds: a metric
    out3 = raw(p3, "csv").scalars
    assert values_of(out3, "time") == [0.25, 0.5] and "wall_time" not in out3.columns


def test_generic_phase_column(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text("epoch,mode,loss\n1,train,0.5\n1,valid,0.75\n2,train,0.25\n2,valid,0.5\n")
    out = raw(p, "csv").scalars
    assert out["phase"].tolist() == ["train", "val", "train", "val"]
    assert sniff(p)[0].name == "csv"              # not Keras: Keras writes no phase column
    ep = collapse_nb.load(p).epochs
    assert ep["train_loss"].tolist() == [0.5, 0.25] and ep["val_loss"].tolist() == [0.75, 0.5]


def test_generic_tensor_cells_unwrapped(tmp_path: Path):
    p = tmp_path / "log.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss"])
        w.writerow([1, "tensor(0.5000, device='cuda:0')"])
        w.writerow([2, "0.25"])
    r = raw(p, "csv")
    assert values_of(r.scalars, "loss") == [0.5, 0.25] and r.skipped.count == 0
    assert any("tensor" in n for n in r.notes)


def test_generic_numeric_stage_column_is_a_metric(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text("step,stage,loss\n1,1,0.5\n2,2,0.25\n")
    out = raw(p, "csv").scalars
    assert values_of(out, "stage") == [1.0, 2.0] and "phase" not in out.columns


def test_generic_trailing_delimiter_and_ms_timestamps(tmp_path: Path):
    p = tmp_path / "log.csv"
    p.write_text("step,loss,_timestamp\n1,0.5,1700000000500,\n2,0.25,1700000001500,\n")
    r = raw(p, "csv")
    assert r.skipped.count == 0
    assert values_of(r.scalars, "loss") == [0.5, 0.25]
    assert r.scalars["wall_time"].tolist() == [1700000000.5, 1700000001.5]


# --------------------------------------------------------------------------- generic csv: long

def test_generic_long_table(tmp_path: Path):
    p = tmp_path / "scalars.csv"
    pd.DataFrame({"step": [1, 1, 2, 2, 3], "tag": ["train/loss", "val/loss", "train/loss", "lr", ""],
                  "value": [0.5, 0.75, "bad", 0.001, 0.1], "wall_time": [1.7e9] * 5}).to_csv(p, index=False)
    reader, score = sniff(p)
    assert reader.name == "csv" and score > 0.5
    r = raw(p, "csv")
    out = r.scalars
    assert out["raw_name"].astype(str).tolist() == ["train/loss", "val/loss", "lr"]
    assert out["value"].tolist() == [0.5, 0.75, 0.001]
    assert out["step"].tolist() == [1, 1, 2]
    assert out["wall_time"].tolist() == [1.7e9] * 3
    assert r.skipped.count == 2 and {ln for ln, _, _ in r.skipped.examples} == {4, 6}
    run = collapse_nb.load(p)
    assert run.metric("loss", phase="val")["value"].tolist() == [0.75]


def test_generic_long_table_without_numbers_is_an_error(tmp_path: Path):
    p = tmp_path / "scalars.csv"
    p.write_text("step,metric,value\n1,loss,high\n2,loss,low\n")
    with pytest.raises(UnreadableFileError, match="no numeric value in column 'value'"):
        raw(p, "csv")


def test_tensorboard_single_series_export(tmp_path: Path):
    p = tmp_path / "run-version_0-tag-val_loss.csv"
    p.write_text("Wall time,Step,Value\n1675348815.25,0,0.5\n1675348900.75,100,0.25\n")
    out = raw(p, "csv").scalars
    assert out["raw_name"].astype(str).tolist() == ["val_loss", "val_loss"]
    assert out["step"].tolist() == [0, 100] and out["wall_time"].tolist() == [1675348815.25, 1675348900.75]


# --------------------------------------------------------------------------- sniffing and errors

def test_sniff_scores_order(tmp_path: Path, lightning_file: Path):
    keras = write_keras(tmp_path / "k.csv", KERAS_EPOCHS)
    from collapse_nb.readers.base import read_head
    for path, best in ((lightning_file, "lightning-csv"), (keras, "keras-csv")):
        head = read_head(path)
        scores = {n: get_reader(n).sniff(head, path) for n in ("lightning-csv", "keras-csv",
                                                                "ultralytics-csv", "csv")}
        assert max(scores, key=scores.get) == best
        assert 0 < scores["csv"] < scores[best]


@pytest.mark.parametrize("content", [
    b'{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n',
    b"2024-01-01 10:00:00,123 - INFO - Epoch 1/3, Train Loss: 0.5, Test Acc: 50%\n"
    b"2024-01-01 10:00:01,456 - INFO - Epoch 2/3, Train Loss: 0.4, Test Acc: 60%\n",
    b"learning_rate: 0.001\nbatch_size: 32\n",
])
def test_csv_readers_do_not_claim_other_formats(tmp_path: Path, content: bytes):
    p = tmp_path / "x.log"
    p.write_bytes(content)
    from collapse_nb.readers.base import read_head
    for n in ("lightning-csv", "keras-csv", "ultralytics-csv", "csv"):
        assert get_reader(n).sniff(read_head(p), p) == 0


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x00\x01\x02\x03binary\x00\x00" * 50, "binary"),
    (b"1,0.5\n2,0.25\n", "no header"),
    (b"# only a comment\n", "only comments"),
    (b"step,name\n1,abc\n2,def\n", "no numeric metric column"),
    (b'{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n', "JSON, not a CSV header"),
])
def test_clear_errors(tmp_path: Path, content: bytes, match: str):
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises(UnreadableFileError, match=match):
        raw(p, "csv")
    if content.strip():
        with pytest.raises(UnreadableFileError, match=match):
            collapse_nb.load(p, format="csv")


def test_header_only_file_is_empty_not_an_error(tmp_path: Path):
    p = tmp_path / "metrics.csv"
    p.write_text("epoch,step,train_loss\n")
    r = raw(p, "lightning-csv")
    assert len(r.scalars) == 0 and any("header only" in n for n in r.notes)


def test_big_file_is_fast_and_exact(tmp_path: Path):
    n = 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"step": np.arange(n), "epoch": np.arange(n) // 1000,
                       **{f"m{i}": rng.random(n) for i in range(8)}})
    df.loc[df.index % 2 == 0, "m0"] = np.nan                        # sparse, as Lightning writes
    p = tmp_path / "metrics.csv"
    df.to_csv(p, index=False)
    t = time.perf_counter()
    r = raw(p, "lightning-csv")
    elapsed = time.perf_counter() - t
    out = r.scalars
    assert len(out) == n * 8 - n // 2
    m3 = out[out["raw_name"] == "m3"]
    np.testing.assert_array_equal(m3["value"].to_numpy(), df["m3"].to_numpy())
    np.testing.assert_array_equal(m3["line"].to_numpy(), np.arange(n) + 2)
    assert elapsed < 20, f"reading {n} rows took {elapsed:.1f}s"


# --------------------------------------------------------------------------- the real files

def load_corpus(corpus, folder: str, name: str, fmt: str) -> collapse_nb.Run:
    """Load one corpus file, checking that it was read as ``fmt`` with no line skipped."""
    run = collapse_nb.load(corpus(folder, name))
    assert run.meta["formats"] == [fmt] and run.meta["files"][0]["skipped"]["count"] == 0
    return run


def test_corpus_lightning_opal(corpus):
    run = load_corpus(corpus, "pl-opal", "metrics.csv", "lightning-csv")
    s = run.scalars
    first = s.iloc[0]
    assert (first["raw_name"], first["name"], first["step"], first["value"]) == \
        ("lr-Adam", "lr", 49, 0.00328141592920354)
    assert pd.isna(first["epoch"]) and first["line"] == 2
    last = s.iloc[-1]
    assert (last["raw_name"], last["epoch"], last["step"], last["value"], last["line"]) == \
        ("val/rmse_loss", 7, 5431, 0.01806013539950508, 225)
    train = run.metric("loss", phase="train")
    assert train["value"].iloc[0] == 0.0575530878690101 and train["step"].iloc[0] == 49
    assert len(run.epochs) == 8 and "train_loss" in run.epochs.columns
    assert run.epochs["val_rmse_loss"].iloc[0] == 0.019856970821374123


def test_corpus_lightning_opal_epochs_by_hand(corpus):
    """train/nll_loss is logged every 50 steps: an epoch's value is the mean of its steps; the lr-Adam
    rows (no epoch) are placed by their step and averaged too."""
    p = corpus("pl-opal", "metrics.csv")
    ep = load_corpus(corpus, "pl-opal", "metrics.csv", "lightning-csv").epochs.set_index("epoch")
    df = pd.read_csv(p)
    np.testing.assert_allclose(ep["train_loss"], df.groupby("epoch")["train/nll_loss"].mean(), rtol=1e-12)
    assert ep["train_loss"].iloc[0] != df.loc[df["epoch"] == 0, "train/nll_loss"].dropna().iloc[-1]
    np.testing.assert_array_equal(ep["val_rmse_loss"], df.groupby("epoch")["val/rmse_loss"].last())
    epoch_of_step = df.dropna(subset=["epoch"]).groupby("step")["epoch"].min()
    lr = df.dropna(subset=["lr-Adam"])
    assert lr["step"].isin(epoch_of_step.index).all()      # every lr row's step is a step of some epoch
    np.testing.assert_allclose(ep["lr"], lr.groupby(lr["step"].map(epoch_of_step))["lr-Adam"].mean(), rtol=1e-12)
    assert ep["step"].tolist() == df.groupby("epoch")["step"].max().tolist()


def test_corpus_keras_brats(corpus):
    run = load_corpus(corpus, "keras-brats", "training.log", "keras-csv")
    ep = run.epochs
    assert len(ep) == 24 and ep["epoch"].iloc[0] == 0
    assert {"train_loss", "val_loss", "lr"} <= set(ep.columns)
    assert ep["val_loss"].iloc[0] == 0.05463637784123421
    assert ep["train_loss"].iloc[0] == 0.05603187158703804
    assert ep["lr"].iloc[0] == 0.001 and ep["lr"].iloc[-1] == 1e-06
    assert ep["lr"].iloc[4] == 0.00020000001                         # ReduceLROnPlateau at epoch 4
    assert ep["val_dice_coef"].iloc[-1] == 0.4435175359249115


def test_corpus_yolo_fire(corpus):
    run = load_corpus(corpus, "yolo-fire-csv", "results.csv", "ultralytics-csv")
    ep = run.epochs
    assert len(ep) == 25 and ep["epoch"].tolist()[:2] == [0, 1]
    assert {"train_box_loss", "val_box_loss", "lr"} <= set(ep.columns)
    assert ep["train_box_loss"].iloc[0] == 1.6878 and ep["val_box_loss"].iloc[-1] == 1.4933
    assert ep["lr"].iloc[0] == 0.070545
    s = run.scalars
    map50 = s[s["raw_name"] == "metrics/mAP50(B)"]
    assert map50["value"].iloc[-1] == 0.85651 and (map50["phase"] == "val").all()
    pg2 = s[s["raw_name"] == "lr/pg2"]
    assert set(pg2["param"]) == {"pg2"} and pg2["value"].iloc[1] == 0.0063445
    # lr is param group 0; the other groups are lr_pg1, lr_pg2, read by hand from the file
    df = pd.read_csv(corpus("yolo-fire-csv", "results.csv"), skipinitialspace=True)
    df.columns = [c.strip() for c in df.columns]
    for col, raw_name in (("lr", "lr/pg0"), ("lr_pg1", "lr/pg1"), ("lr_pg2", "lr/pg2")):
        assert ep[col].tolist() == df[raw_name].tolist()
