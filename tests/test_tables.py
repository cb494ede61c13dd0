"""tables.build_epochs (and the names it relies on), for every format alike.

Inputs are raw scalars as a reader hands them back (``normalise_raw`` makes
them the scalars contract), or CSV files written with pandas in tmp_path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import collapse_nb
from collapse_nb.names import canonicalize, canonicalize_names, logged_every
from collapse_nb.tables import build_epochs, normalise_raw


def scalars(rows: list[dict], source: str = "run.log") -> pd.DataFrame:
    """Raw scalars (one dict a row, ``raw_name``/``value`` plus any context) -> the scalars contract."""
    raw = pd.DataFrame(rows)
    raw["line"] = np.arange(1, len(raw) + 1)
    out = normalise_raw(raw, source)
    out["segment"] = out["segment"].fillna(0)
    return out


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("raw, expected", [
    ("train_loss_step", ("loss", "train", None)),
    ("train_loss_epoch", ("loss", "train", None)),
    ("val/loss_epoch", ("loss", "val", None)),
    ("train_acc_step", ("accuracy", "train", None)),
    ("lr_step", ("lr", None, None)),
    ("global_step", ("global_step", None, None)),              # not a metric's on_step value
    ("optimizer_step_executed", ("optimizer_step_executed", None, None)),
    ("effective_step_norm", ("effective_step_norm", None, None)),
    ("update_step", ("update_step", None, None)),              # "update" alone is too vague to strip for
    ("train_f1_step", ("f1_step", "train", None)),             # unknown metric, no pair: kept
    ("x/lr0", ("lr", None, "pg0")),                            # YOLOv5 param groups
    ("x/lr2", ("lr", None, "pg2")),
    ("x/loss", ("x_loss", None, None)),
])
def test_canonicalize_suffixes_and_yolov5_lr(raw: str, expected: tuple):
    assert canonicalize(raw) == expected


def test_canonicalize_names_knows_the_pair():
    got = canonicalize_names(["train_f1_step", "train_f1_epoch", "custom_step", "global_step"])
    assert got == [("f1", "train", None), ("f1", "train", None), ("custom_step", None, None),
                   ("global_step", None, None)]
    assert logged_every("train_f1_epoch", "f1") == "epoch" and logged_every("train_loss_step", "loss") == "step"
    assert logged_every("global_step", "global_step") is None and logged_every("loss", "loss") is None


# --------------------------------------------------------------------------- choosing an epoch's value

def test_per_step_rows_are_averaged_and_fractional_epochs_keep_the_last():
    s = scalars([
        # the integer epoch repeated on every step row (Lightning's on_step rows): the mean
        {"raw_name": "train/loss", "value": 1.0, "epoch": 0, "step": 10},
        {"raw_name": "train/loss", "value": 3.0, "epoch": 0, "step": 20},
        {"raw_name": "train/loss", "value": 5.0, "epoch": 1, "step": 30},
        # one value per epoch: that value
        {"raw_name": "val/loss", "value": 0.5, "epoch": 0, "step": 20},
        {"raw_name": "val/loss", "value": 0.25, "epoch": 1, "step": 30},
        # a fractional epoch on every row (Hugging Face): the last entry stands for the epoch
        {"raw_name": "grad_norm", "value": 7.0, "epoch": 0.5, "step": 10},
        {"raw_name": "grad_norm", "value": 9.0, "epoch": 0.99, "step": 20},
    ])
    ep = build_epochs(s)
    assert ep["epoch"].tolist() == [0.0, 1.0]
    assert ep["train_loss"].tolist() == [2.0, 5.0]
    assert ep["val_loss"].tolist() == [0.5, 0.25]
    assert ep.loc[ep["epoch"] == 1, "grad_norm"].tolist() == [9.0]


def test_epoch_column_beats_step_column():
    s = scalars([
        {"raw_name": "train_loss_step", "value": 1.0, "epoch": 0, "step": 10},
        {"raw_name": "train_loss_step", "value": 2.0, "epoch": 0, "step": 20},
        {"raw_name": "train_loss_epoch", "value": 1.75, "epoch": 0, "step": 20},
        {"raw_name": "train_loss_step", "value": 3.0, "epoch": 1, "step": 30},    # no epoch value: the mean
    ])
    ep = build_epochs(s)
    assert ep["train_loss"].tolist() == [1.75, 3.0]
    assert list(ep.columns) == ["segment", "epoch", "step", "train_loss"]


# --------------------------------------------------------------------------- rows with a step but no epoch

def test_step_only_rows_get_their_epoch_from_the_steps(tmp_path: Path):
    """Any format (here a generic CSV): lr rows without an epoch are placed by their step."""
    p = tmp_path / "log.csv"
    pd.DataFrame([
        {"step": 10, "epoch": 0, "loss": 1.0}, {"step": 10, "lr": 0.1},      # same step as an epoch-0 row
        {"step": 15, "lr": 0.2},                                              # inside epoch 0's steps
        {"step": 20, "epoch": 0, "loss": 0.5},
        {"step": 25, "lr": 0.4},                                              # between epochs: the next one
        {"step": 30, "epoch": 1, "loss": 0.25}, {"step": 40, "epoch": 1, "loss": 0.125},
        {"step": 50, "lr": 0.8},                                              # after the last epoch: none
    ]).to_csv(p, index=False)
    run = collapse_nb.load(p, format="csv")
    assert run.scalars.loc[run.scalars["name"] == "lr", "epoch"].isna().all()   # scalars stay as logged
    ep = run.epochs
    assert ep["epoch"].tolist() == [0.0, 1.0]
    assert ep["lr"].tolist() == [pytest.approx(0.15), 0.4]
    assert ep["loss"].tolist() == [0.75, 0.1875]
    assert ep["step"].tolist() == [20, 40]


def test_step_only_rows_borrow_only_from_their_own_source_and_segment():
    rows = [{"raw_name": "loss", "value": 1.0, "epoch": 0, "step": 10, "segment": 0},
            {"raw_name": "loss", "value": 0.5, "epoch": 1, "step": 20, "segment": 0},
            {"raw_name": "lr", "value": 0.1, "step": 15, "segment": 0},
            {"raw_name": "loss", "value": 2.0, "epoch": 0, "step": 5, "segment": 1},
            {"raw_name": "lr", "value": 0.2, "step": 17, "segment": 1}]   # segment 1 has no step >= 17
    a = scalars(rows, "a.log")
    b = scalars([{"raw_name": "lr", "value": 0.3, "step": 12}], "b.log")    # b has no epochs at all
    ep = build_epochs(pd.concat([a, b], ignore_index=True))
    assert ep[["segment", "epoch"]].values.tolist() == [[0, 0.0], [0, 1.0], [1, 0.0]]
    assert ep["lr"].isna().tolist() == [True, False, True] and ep["lr"].iloc[1] == 0.1


def test_a_step_only_summary_does_not_replace_the_epoch_value():
    """A run summary row (a step, no epoch) is a step value: an epoch-level value beats it."""
    s = scalars([{"raw_name": "train_loss", "value": 0.5, "epoch": 1.0, "step": 100},
                 {"raw_name": "train_loss", "value": 0.9, "step": 100}])
    assert build_epochs(s)["train_loss"].tolist() == [0.5]


# --------------------------------------------------------------------------- learning rates per param group

def test_lr_param_groups_become_lr_and_lr_group_columns():
    rows = [{"raw_name": f"lr-Adam/pg{g}", "value": g / 100, "epoch": 0, "step": 9} for g in (10, 2, 1)]
    ep = build_epochs(scalars(rows))   # Lightning numbers groups from 1; pg10 sorts after pg2
    assert list(ep.columns) == ["segment", "epoch", "step", "lr", "lr_pg2", "lr_pg10"]
    assert ep[["lr", "lr_pg2", "lr_pg10"]].values.tolist() == [[0.01, 0.02, 0.1]]


def test_an_ungrouped_lr_is_lr_and_every_group_is_lr_group():
    rows = [{"raw_name": "lr", "value": 0.5, "epoch": 0}, {"raw_name": "lr/pg0", "value": 0.25, "epoch": 0}]
    ep = build_epochs(scalars(rows))
    assert ep["lr"].tolist() == [0.5] and ep["lr_pg0"].tolist() == [0.25]
