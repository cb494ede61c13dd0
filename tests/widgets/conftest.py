"""Widget test fixtures: a small run written as a real JSON-lines log, the bundled example, and a check
that no explorer leaves a pyplot figure open."""
from __future__ import annotations

import importlib.util

import pytest

import collapse_nb as cnb

from ._runs import write_small_run

if importlib.util.find_spec("ipywidgets") is None:      # the widgets are optional: pip install ipywidgets
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def small_run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "small"
    write_small_run(d)
    return d


@pytest.fixture(scope="session")
def healthy_run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs") / "healthy"
    write_small_run(d, collapse=1.0, dead=None)
    return d


@pytest.fixture
def small_run(small_run_dir):
    return cnb.load(small_run_dir)


@pytest.fixture(scope="session")
def example_run():
    from collapse_nb.example import default_example_dir

    return cnb.load(default_example_dir())


@pytest.fixture(autouse=True)
def _no_pyplot_figures_left():
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    yield
    left = set(plt.get_fignums()) - before
    plt.close("all")
    assert not left, f"the widgets left {len(left)} pyplot figure(s) open"
