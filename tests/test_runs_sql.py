"""Runs.sql: SQL (DuckDB) over every run's tables, each with a run column."""
from __future__ import annotations

import builtins
import json

import pandas as pd
import pytest

import collapse_nb as cnb
from collapse_nb import runs_tables

pytest.importorskip("duckdb")


def _log(steps, loss, lr=0.1):
    return "".join(f'{{"step": {s}, "epoch": {s // 10}, "loss": {loss(s)}, "lr": {lr}}}\n' for s in range(steps))


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "sweep"
    for name, steps, loss in (("good", 60, lambda s: 2.0 / (s + 1)), ("flat", 40, lambda s: 1.0),
                              ("mlruns/1/abc", 30, lambda s: 3.0 - s * 0.01)):
        d = root / name
        d.mkdir(parents=True)
        (d / "log.jsonl").write_text(_log(steps, loss))
    (root / "broken").mkdir()
    (root / "broken" / "metrics.csv").write_text("epoch,step,train_loss_step,val_loss\n")     # a header, no values
    runs = cnb.load_runs(root)
    assert "broken" in runs.failed
    return runs


def test_scalars_and_epochs_have_a_run_column(runs):
    counts = runs.sql("select run, count(*) as n, max(step) as last from scalars where name = 'loss' "
                      "group by run order by run")
    want = pd.DataFrame({"run": sorted(runs.names)})
    assert counts["run"].tolist() == want["run"].tolist()
    by = counts.set_index("run")
    assert by.loc["good", "n"] == 60 and by.loc["flat", "last"] == 39 and by.loc["mlruns/1/abc", "n"] == 30
    epochs = runs.sql("select run, epoch, loss from epochs where run = 'good' order by epoch")
    assert len(epochs) == 6
    pd.testing.assert_series_equal(epochs["loss"], runs["good"].epochs["loss"].reset_index(drop=True),
                                   check_names=False, check_dtype=False)


def test_findings_and_triage_tables(runs):
    f = runs.sql("select * from findings")
    assert list(f.columns) == runs_tables.FINDING_COLUMNS
    for name in runs.names:
        mine = f[f["run"] == name].sort_values("rank")
        assert mine["code"].tolist() == [x.code for x in cnb.findings.sort_findings(runs.findings(name))]
    plateau = runs.sql("select run, details from findings where code = 'loss_plateau' and run = 'flat'")
    assert len(plateau) == 1 and isinstance(json.loads(plateau["details"].iloc[0]), dict)
    t = runs.sql("select run, status from triage order by run")
    assert t.set_index("run").loc["broken", "status"] == "unreadable"
    assert sorted(t["run"]) == sorted([*runs.names, *runs.failed])
    joined = runs.sql("select t.run, count(f.code) as problems from triage t left join findings f on t.run = f.run "
                      "and f.severity in ('critical', 'warning') group by t.run order by t.run")
    assert joined.set_index("run").loc["flat", "problems"] >= 1


def test_only_the_tables_a_query_names_are_built(runs, monkeypatch):
    built = []
    real = runs_tables.build_table
    monkeypatch.setattr(runs_tables, "build_table", lambda r, t: built.append(t) or real(r, t))
    runs.sql("select count(*) from epochs")
    assert built == ["epochs"]


def test_without_duckdb_the_error_says_how_to_install_it(runs, monkeypatch):
    real_import = builtins.__import__

    def no_duckdb(name, *args, **kwargs):
        if name == "duckdb":
            raise ImportError("No module named 'duckdb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_duckdb)
    with pytest.raises(ImportError, match="pip install duckdb"):
        runs.sql("select 1")
