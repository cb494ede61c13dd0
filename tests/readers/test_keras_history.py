"""Keras History.history saved as JSON, written by a real ``model.fit``-shaped dict and json.dump."""
from __future__ import annotations

import json
import math

import pytest

import collapse_nb
from collapse_nb.errors import UnreadableFileError


def test_history_json_is_per_epoch_with_phases(tmp_path):
    hist = {"loss": [0.9, 0.7, float("nan")], "accuracy": [0.5, 0.6, 0.62], "val_loss": [1.0, 0.8, 0.85],
            "val_accuracy": [0.45, 0.55, 0.5], "learning_rate": [1e-3, 1e-3, 5e-4]}
    p = tmp_path / "training_history.json"
    p.write_text(json.dumps(hist))              # json.dump writes NaN bare, as Keras users' files have it
    run = collapse_nb.load(p)
    assert run.meta["formats"] == ["keras-history"]
    s = run.scalars
    val = s[(s["name"] == "loss") & (s["phase"] == "val")].sort_values("epoch")
    assert val["epoch"].tolist() == [1.0, 2.0, 3.0] and val["value"].tolist() == [1.0, 0.8, 0.85]
    train = s[(s["name"] == "loss") & (s["phase"] == "train")].sort_values("epoch")
    assert math.isnan(train["value"].iloc[-1])   # a NaN loss is kept: it is a finding
    assert s.loc[s["name"] == "lr", "phase"].isna().all()
    assert run.epochs["val_loss"].tolist() == [1.0, 0.8, 0.85]


def test_odd_entries_are_counted_and_short_lists_noted(tmp_path):
    p = tmp_path / "history.json"
    p.write_text(json.dumps({"loss": [1.0, "oops", 0.5, 0.4], "val_loss": [1.1, 0.9]}))
    run = collapse_nb.load(p)
    f = run.meta["files"][0]
    assert f["skipped_text"] == "1 not understood (not a number in 'loss': 1) at line 1"
    assert any("fewer than the 4 epochs" in n for n in run.meta["notes"])


def test_not_a_history(tmp_path):
    p = tmp_path / "history.json"
    p.write_text('{"loss": [1.0, oops, 0.5]}')            # no complete list to keep
    with pytest.raises(UnreadableFileError, match="does not parse"):
        collapse_nb.load(p, format="keras-history")


def test_a_history_cut_off_while_written_keeps_its_complete_lists(tmp_path):
    p = tmp_path / "history.json"
    p.write_text(json.dumps({"loss": [0.5, 0.4, 0.3], "val_loss": [0.6, 0.5, 0.45]})[:-8])
    run = collapse_nb.load(p)
    assert run.scalars["raw_name"].astype(str).tolist() == ["loss"] * 3
    assert "cut off while being written" in run.meta["files"][0]["skipped_text"]
    assert any("the 1 complete list(s) before it were read" in n for n in run.meta["notes"])
