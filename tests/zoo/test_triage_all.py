"""The issue's bar: triage of a folder holding every zoo scenario names each one's expected top cause, and every
healthy scenario comes out clean; each failed scenario differs from the healthy run it derives from."""
from __future__ import annotations

import warnings

import pytest

import collapse_nb as cnb
from collapse_nb import zoo


@pytest.fixture(scope="module")
def all_runs(zoo_run):
    dirs = [zoo_run(name)[0] for name in zoo.scenarios()]
    (root,) = {d.parent for d in dirs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cnb.load_runs(root)


def test_triage_of_every_scenario(all_runs):
    table = all_runs.triage().set_index("run")
    assert sorted(table.index) == sorted(zoo.scenarios()) and not all_runs.failed
    for name in zoo.scenarios():
        row = table.loc[name]
        if name.startswith("healthy"):
            assert row["status"] == "healthy" and row["critical"] == 0 and row["warnings"] == 0, row.to_dict()
        else:
            assert row["top_cause"] == zoo.expected_findings(name)[0], (name, row.to_dict())
    assert set(table.index[-4:]) == {n for n in zoo.scenarios() if n.startswith("healthy")}   # worst first


@pytest.mark.parametrize("name, base, check", [("lr_too_low", "healthy_mlp", "update_ratio"),
                                               ("variance_collapse", "healthy_mlp", "variance_collapse"),
                                               ("chance_level", "healthy_classifier", "chance_level_loss")])
def test_a_failed_scenario_against_its_healthy_base(all_runs, name, base, check):
    c = all_runs.compare(name, with_=base)
    assert check in set(c.checks["check"])
    assert (c.parted()["verdict"] == "worse here").any()
    assert len(c.config)                                          # what was changed to break it
