"""`collapse-nb parse DIR --out OUT` of a folder of runs: one Parquet dataset partitioned by run."""
from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

import collapse_nb as cnb
from collapse_nb.cli import main
from collapse_nb.dataset import partition_value

ODD = "odd run=1%, b"          # a name with what a partition value must not hold raw


def _folder(root):
    (root / "a").mkdir(parents=True)
    (root / "a" / "log.jsonl").write_text("".join(f'{{"step": {s}, "epoch": {s // 10}, "loss": {1 / (s + 1)}, '
                                                  f'"lr": 0.1}}\n' for s in range(30)))
    (root / "b").mkdir()
    (root / "b" / "metrics.csv").write_text("epoch,step,train_loss_step,val_loss\n" + "".join(
        f"{s // 10},{s},{1.0 / (s + 1):.4f},{2.0 / (s + 1):.4f}\n" for s in range(0, 50, 5)))
    ml = root / "mlruns" / "1" / "abc"
    (ml / "metrics").mkdir(parents=True)
    (root / "mlruns" / "1" / "meta.yaml").write_text("artifact_location: x\nexperiment_id: '1'\nname: e\n")
    (ml / "meta.yaml").write_text("experiment_id: '1'\nrun_id: abc\nrun_name: r\nstatus: 3\n")
    (ml / "metrics" / "loss").write_text("".join(f"{1700000000000 + s} {1.0 / (s + 1)} {s}\n" for s in range(10)))
    (root / ODD).mkdir()
    (root / ODD / "log.jsonl").write_text("".join(f'{{"step": {s}, "loss": {s}}}\n' for s in range(5)))
    (root / "broken").mkdir()
    (root / "broken" / "metrics.csv").write_text("epoch,step,train_loss_step,val_loss\n")
    return root


def test_a_folder_of_runs_is_one_dataset_partitioned_by_run(tmp_path, capsys):
    root, out = _folder(tmp_path / "runs"), tmp_path / "out"
    assert main(["parse", str(root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 run(s)" in printed and "unreadable: broken" in printed
    runs = cnb.load_runs(root)
    assert sorted(runs.names) == sorted(["a", "b", "mlruns/1/abc", ODD])
    assert (out / "scalars" / "run=mlruns%2F1%2Fabc" / "part-0.parquet").is_file()
    assert (out / "scalars" / f"run={partition_value(ODD)}" / "part-0.parquet").is_file()
    scalars = pd.read_parquet(out / "scalars")
    got = scalars.groupby("run", observed=True).size().to_dict()
    assert got == {name: len(run.scalars) for name, run in runs.items()}
    duck = pytest.importorskip("duckdb")
    counted = duck.sql(f"select run, count(*) as n from read_parquet('{out}/scalars/*/*.parquet', "
                       f"hive_partitioning=true) group by run").df()
    assert dict(zip(counted["run"], counted["n"])) == got
    epochs = pd.read_parquet(out / "epochs")              # runs with different columns: one schema
    assert {"loss", "train_loss", "val_loss", "run"} <= set(epochs.columns)
    b = epochs[epochs["run"] == "b"].sort_values("epoch")
    assert b["val_loss"].notna().all() and epochs.loc[epochs["run"] == "a", "val_loss"].isna().all()
    assert b["val_loss"].tolist() == runs["b"].epochs["val_loss"].tolist()
    findings = pd.read_parquet(out / "findings")
    assert findings.groupby("run", observed=True).size().to_dict() == {n: len(runs.findings(n)) for n in runs.names}
    triage = pd.read_parquet(out / "triage.parquet")
    want = runs.triage()
    assert triage["run"].tolist() == want["run"].tolist() and triage["status"].tolist() == want["status"].tolist()
    schemas = {str(pq.read_schema(p)) for p in (out / "epochs").glob("*/*.parquet")}
    assert len(schemas) == 1
    assert not list(out.rglob(".tmp-*"))


def test_writing_again_replaces_the_partitions(tmp_path):
    root, out = _folder(tmp_path / "runs"), tmp_path / "out"
    assert main(["parse", str(root), "--out", str(out)]) == 0
    first = pd.read_parquet(out / "scalars").sort_values(["run", "source", "line", "name"]).reset_index(drop=True)
    (root / "a" / "log.jsonl").write_text('{"step": 0, "loss": 5.0}\n{"step": 1, "loss": 4.0}\n')
    assert main(["parse", str(root), "--out", str(out)]) == 0
    again = pd.read_parquet(out / "scalars")
    assert (again["run"] == "a").sum() == 2
    assert len(again) == len(first) - (first["run"] == "a").sum() + 2


def test_one_run_keeps_the_flat_tables_unless_asked(tmp_path):
    root = _folder(tmp_path / "runs")
    assert main(["parse", str(root / "b"), "--out", str(tmp_path / "flat")]) == 0
    assert (tmp_path / "flat" / "epochs.parquet").is_file() and not (tmp_path / "flat" / "epochs").exists()
    assert main(["parse", str(root / "b"), "--out", str(tmp_path / "ds"), "--dataset"]) == 0
    epochs = pd.read_parquet(tmp_path / "ds" / "epochs")
    assert epochs["run"].astype(str).unique().tolist() == ["."]


def test_partition_values_decode_back():
    for name in ("mlruns/123/abc", ODD, "ünï/çødé", "a%2Fb"):
        value = partition_value(name)
        assert "/" not in value and "=" not in value
        from urllib.parse import unquote
        assert unquote(value) == name
