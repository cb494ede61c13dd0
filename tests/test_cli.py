"""The collapse-nb command line: the main job on the bundled example, and clear errors."""
from __future__ import annotations

import pandas as pd

from collapse_nb.cli import main


def test_parse_bundled_example_writes_tables(tmp_path, capsys):
    assert main(["parse", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "bundled example" in out and "text-log" in out
    grads = pd.read_parquet(tmp_path / "grads.parquet")
    dead = grads[grads["param"].astype(str).str.startswith("attn.key_projection")]
    assert len(dead) > 0 and (dead["grad_norm"] == 0).all()
    epochs = pd.read_parquet(tmp_path / "epochs.parquet")
    assert {"train_loss", "val_loss", "lr"} <= set(epochs.columns)


def test_parse_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "nope.log")]) == 2
    assert "nope.log: no such file or directory" in capsys.readouterr().err


def test_formats_lists_text_log(capsys):
    assert main(["formats"]) == 0
    assert "text-log" in capsys.readouterr().out
