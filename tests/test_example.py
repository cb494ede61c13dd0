"""The bundled example (data/example_run) is exactly what ``python -m collapse_nb.zoo seed_replica`` writes."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorboard")

import collapse_nb  # noqa: E402
from collapse_nb.example import default_example_dir, make_example_run  # noqa: E402


def _records(path):
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        for k in ("wall_time", "python", "torch"):
            r.pop(k, None)
        out.append(r)
    return out


def test_bundled_example_is_regenerated_identically(tmp_path):
    bundled = default_example_dir()
    fresh = make_example_run(tmp_path / "example_run")
    for name in ("training_diagnostic.log", "metrics.csv", "config.yaml", "scenario.json"):
        assert (fresh / name).read_text() == (bundled / name).read_text(), name
    assert _records(fresh / "capture.jsonl") == _records(bundled / "capture.jsonl")
    assert sorted(p.name for p in (bundled / "checkpoints").iterdir()) == \
        sorted(p.name for p in (fresh / "checkpoints").iterdir())
    assert len(list((bundled / "tb").iterdir())) == 1


def test_bundled_example_is_small_and_fully_readable():
    d = default_example_dir()
    assert sum(p.stat().st_size for p in d.rglob("*") if p.is_file()) < 5e6
    run = collapse_nb.load(d)
    assert run.meta["ignored"] == [] and set(run.meta["formats"]) == {
        "collapse-capture", "config", "keras-csv", "tensorboard", "text-log", "torch-checkpoint"}
