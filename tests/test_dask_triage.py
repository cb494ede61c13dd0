"""Triage on a Dask cluster (collapse_nb.cluster, `collapse-nb triage DIR --dask ADDRESS`): the local table."""
from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

import collapse_nb as cnb
from collapse_nb.cli import main
from collapse_nb.cluster import triage_folder

distributed = pytest.importorskip("distributed")


def _folder(root):
    for name, steps, loss in (("sweep/lr_0.1", 40, "1.0"), ("sweep/lr_0.01", 40, "2.0 / (s + 1)"),
                              ("mlruns/1/abc", 20, "3.0 - s * 0.01")):
        d = root / name
        d.mkdir(parents=True)
        (d / "log.jsonl").write_text("".join(
            f'{{"step": {s}, "epoch": {s // 10}, "loss": {eval(loss, {"s": s})}, "lr": 0.1}}\n' for s in range(steps)))
    (root / "broken").mkdir()
    (root / "broken" / "metrics.csv").write_text("epoch,step,train_loss_step,val_loss\n")
    return root


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_the_cluster_gives_the_local_table_and_writes_the_dataset(tmp_path, cluster):
    root, out = _folder(tmp_path / "runs"), tmp_path / "out"
    with distributed.Client(cluster) as client:
        table = triage_folder(root, client=client, out=out, cache=tmp_path / "cache")
        runs = cnb.load_runs(root)
        on_cluster = runs.triage(client=client)                             # Runs.triage(client=...)
    local = runs.triage()
    pd.testing.assert_frame_equal(table, local)
    pd.testing.assert_frame_equal(on_cluster, local)
    assert table.set_index("run").loc["broken", "status"] == "unreadable"
    scalars = pd.read_parquet(out / "scalars")
    assert sorted(scalars["run"].astype(str).unique()) == ["mlruns/1/abc", "sweep/lr_0.01", "sweep/lr_0.1"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "triage.parquet")[["run", "status"]], local[["run", "status"]])
    assert len(list((tmp_path / "cache").rglob("entry.json"))) == 4          # each file, by the workers


def test_the_command_line(tmp_path, cluster, capsys):
    root, out = _folder(tmp_path / "runs"), tmp_path / "out"
    assert main(["triage", str(root), "--dask", cluster.scheduler_address, "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["runs"]
    assert [r["run"] for r in rows] == cnb.load_runs(root).triage()["run"].tolist()
    assert (out / "findings" / "run=sweep%2Flr_0.1" / "part-0.parquet").is_file()
    assert main(["triage", str(root), "--dask", cluster.scheduler_address]) == 0
    assert "3 run(s)" in capsys.readouterr().out


def test_without_a_client_the_tasks_run_here(tmp_path):
    root = _folder(tmp_path / "runs")
    pd.testing.assert_frame_equal(triage_folder(root), cnb.load_runs(root).triage())


def test_without_dask_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)          # what an import of a missing module meets
    with pytest.raises(ImportError, match=r"pip install \"dask\[distributed\]\""):
        triage_folder(_folder(tmp_path / "runs"), client=object())
