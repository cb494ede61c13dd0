"""MLflow's SQLite store (mlflow.db: experiments, runs, metrics, params, tags), written by mlflow itself."""
from __future__ import annotations

import math
import shutil
import sqlite3

import numpy as np
import pytest

import collapse_nb as cnb
from collapse_nb.errors import SeveralMlflowRunsError, SeveralRunsError
from collapse_nb.loading import sniff
from collapse_nb.readers.mlflow_sqlite import list_runs, read_run

pytestmark = pytest.mark.filterwarnings("ignore:.*noload.*:DeprecationWarning")     # mlflow's own SQLAlchemy use


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two experiments, three runs: birds/vit-small (finished), birds/vit-killed (KILLED), fish/resnet (finished)."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("alembic")
    folder = tmp_path_factory.mktemp("sqlite_store")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    try:
        mlflow.set_experiment("birds")
        with mlflow.start_run(run_name="vit-small"):
            mlflow.log_params({"num_classes": 11, "learning_rate": 0.001, "optim/name": "adamw"})
            for epoch in range(10):
                step = 13 * epoch + 12
                mlflow.log_metrics({"train/loss": 2.4 / (epoch + 1), "val/loss": 2.5 / (epoch + 1) + 0.05,
                                    "epoch": epoch}, step=step)
        mlflow.start_run(run_name="vit-killed")
        mlflow.log_params({"learning_rate": 0.1})
        for step in range(4):
            mlflow.log_metric("train/loss", 2.0 - 0.1 * step, step=step)
        mlflow.log_metric("val/loss", float("nan"), step=3)
        mlflow.log_metric("val/loss", float("inf"), step=4)
        mlflow.end_run(status="KILLED")
        mlflow.set_experiment("fish")
        with mlflow.start_run(run_name="resnet"):
            mlflow.log_param("depth", 18)
            for step in range(5):
                mlflow.log_metric("train/loss", 1.0 / (step + 1), step=step)
            for value in (0.5, 0.6, 0.7):                          # logged without a step: all at step 0
                mlflow.log_metric("val/acc", value)
    finally:
        mlflow.set_tracking_uri(None)
    return folder / "mlflow.db"


def _one_run_copy(store, tmp_path, keep: str):
    """A copy of the store with only the run named ``keep`` left in it."""
    db = tmp_path / "one.db"
    shutil.copy(store, db)
    conn = sqlite3.connect(db)
    (run_id,) = conn.execute("SELECT run_uuid FROM runs WHERE name = ?", (keep,)).fetchone()
    for table in ("metrics", "latest_metrics", "params", "tags"):
        conn.execute(f"DELETE FROM {table} WHERE run_uuid != ?", (run_id,))
    conn.execute("DELETE FROM runs WHERE run_uuid != ?", (run_id,))
    conn.commit()
    conn.close()
    return db


def test_every_mlflow_run_of_the_store_is_a_run(store):
    runs = cnb.load_runs(store.parent)
    assert sorted(runs.names) == ["birds/vit-killed", "birds/vit-small", "fish/resnet"] and not runs.failed
    assert {r.name for r in list_runs(store)} == set(runs.names)
    run = runs["birds/vit-small"]
    cat = run.series.set_index(["name", "phase"])
    assert cat.loc[("loss", "train"), "raw_names"] == ("train/loss",) and cat.loc[("loss", "val"), "points"] == 10
    train = run.objective("train").rows
    assert train["step"].tolist() == [13 * e + 12 for e in range(10)]
    assert train["epoch"].tolist()[:3] == [0.0, 1.0, 2.0]                       # from the run's epoch metric
    assert np.allclose(train["value"].to_numpy(dtype=float), [2.4 / (e + 1) for e in range(10)])
    assert run.scalars["wall_time"].notna().all() and "epoch" not in set(run.scalars["name"].astype(str))
    raw = next(iter(run.meta["config_raw"].values()))
    assert raw["num_classes"] == "11" and raw["optim.name"] == "adamw" and raw["mlflow.status"] == "FINISHED"
    assert raw["mlflow.run_name"] == "vit-small" and raw["mlflow.experiment"] == "birds"
    assert run.config["learning_rate"] == pytest.approx(0.001)
    assert run.meta["formats"] == ["mlflow-sqlite"] and run.meta["run_name"] == "birds/vit-small"


def test_nan_inf_and_metrics_without_a_step(store):
    killed = read_run(store, next(r.run_id for r in list_runs(store) if r.run_name == "vit-killed")).scalars
    val = killed[killed["raw_name"] == "val/loss"]
    assert math.isnan(val["value"].iloc[0]) and val["value"].iloc[1] == math.inf
    resnet = cnb.load_runs(store)["fish/resnet"]
    acc = resnet.scalars[resnet.scalars["raw_name"] == "val/acc"]
    assert acc["step"].tolist() == [0, 1, 2] and acc["value"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert (resnet.scalars["segment"] == 0).all()                               # numbered, not restarts
    assert any("without a step" in n for n in resnet.meta["notes"])


def test_a_killed_run_is_incomplete_and_the_finished_one_is_not(store):
    runs = cnb.load_runs(store)
    (f,) = [f for f in cnb.diagnose(runs["birds/vit-killed"]) if f.code == "run_incomplete"]
    assert "KILLED" in f.summary
    assert not [f for f in cnb.diagnose(runs["fish/resnet"]) if f.code == "run_incomplete"]


def test_load_reads_a_store_of_one_run_and_refuses_several(store, tmp_path):
    run = cnb.load(_one_run_copy(store, tmp_path, "resnet"))
    assert run.series.set_index(["name", "phase"]).loc[("loss", "train"), "points"] == 5
    assert next(iter(run.meta["config_raw"].values()))["depth"] == "18"
    with pytest.raises(SeveralMlflowRunsError) as exc:
        cnb.load(store)
    msg = str(exc.value)
    assert str(store) in msg and "load_runs" in msg and "birds/vit-killed" in msg and "fish/resnet" in msg
    assert isinstance(exc.value, SeveralRunsError) and len(exc.value.names) == 3


def test_an_sqlite_file_that_is_not_an_mlflow_store(tmp_path):
    db = tmp_path / "cache.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE items (id INTEGER, body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(cnb.UnreadableFileError, match="not an MLflow tracking store") as exc:
        cnb.load(db)
    assert str(db) in str(exc.value) and "items" in str(exc.value)
    (tmp_path / "train.log").write_text("".join(f"step {i} loss={1 / (i + 1):.3f}\n" for i in range(20)))
    runs = cnb.load_runs(tmp_path)                           # not a run, and never a log of the folder's run
    assert runs.names == ["."] and not runs.failed
    assert [f["format"] for f in runs["."].meta["files"]] == ["text-log"]


def test_a_corrupt_store_is_a_clear_error(store, tmp_path):
    cut = tmp_path / "cut.db"
    cut.write_bytes(store.read_bytes()[:3000])                     # cut short
    with pytest.raises(cnb.UnreadableFileError, match="cannot be read") as exc:
        cnb.load(cut)
    assert str(cut) in str(exc.value)
    header = tmp_path / "header.db"
    data = bytearray(store.read_bytes())
    data[16:24] = b"\xff" * 8                                       # page size and format bytes damaged
    header.write_bytes(bytes(data))
    with pytest.raises(cnb.UnreadableFileError) as exc:
        cnb.load(header)
    assert str(header) in str(exc.value)
    magic = tmp_path / "magic.db"
    data[:16] = b"\x00" * 16                                        # the header's magic itself overwritten
    magic.write_bytes(bytes(data))
    with pytest.raises(cnb.UnreadableFileError, match="not an SQLite database") as exc:
        cnb.load(magic)
    assert str(magic) in str(exc.value)
    runs = cnb.load_runs(cut)
    assert not len(runs) and "cannot be read" in runs.failed["cut.db"]


def test_a_store_beside_other_logs_is_never_read_as_a_log(store, tmp_path):
    folder = tmp_path / "exp"
    folder.mkdir()
    shutil.copy(store, folder / "mlflow.db")
    (folder / "train.log").write_text("".join(f"step {i} loss={1 / (i + 1):.3f}\n" for i in range(20)))
    reader, _ = sniff(folder / "mlflow.db")
    assert reader.name == "mlflow-sqlite"
    runs = cnb.load_runs(tmp_path)
    assert sorted(runs.names) == ["exp", "exp/birds/vit-killed", "exp/birds/vit-small", "exp/fish/resnet"]
    assert [f["format"] for f in runs["exp"].meta["files"]] == ["text-log"] and not runs["exp"].meta["ignored"]


def test_a_large_store_is_read_in_one_query(store, tmp_path):
    db = _one_run_copy(store, tmp_path, "resnet")
    conn = sqlite3.connect(db)
    (run_id,) = conn.execute("SELECT run_uuid FROM runs").fetchone()
    n = 200_000
    steps = np.arange(5, n + 5)
    conn.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)",
                     zip(["grad_norm"] * n, (1.0 / steps).tolist(), (1_700_000_000_000 + steps).tolist(),
                         [run_id] * n, steps.tolist()))
    conn.commit()
    conn.close()
    r = read_run(db)
    g = r.scalars[r.scalars["raw_name"] == "grad_norm"]
    assert len(g) == n and g["step"].iloc[-1] == n + 4 and g["wall_time"].iloc[0] == pytest.approx(1_700_000_000.005)
