"""Tests of collapse_nb.zoo: every scenario is generated once per test session and shared.

``zoo_run(name)`` (a session fixture, made visible to the test modules by conftest.py) returns
``(run_dir, run)`` for the scenario trained with seed 0, ``run`` being
``collapse_nb.load(run_dir)``. The cache is module-level so that every module
importing the fixture shares the same runs.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")

import collapse_nb  # noqa: E402
from collapse_nb import zoo  # noqa: E402

_CACHE: dict[str, tuple[Path, object]] = {}


@pytest.fixture(scope="session")
def zoo_run(tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "zoo_runs"

    def get(name: str):
        if name not in _CACHE:
            d = zoo.generate(name, base / name, seed=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _CACHE[name] = (d, collapse_nb.load(d))
        return _CACHE[name]

    return get
