"""compare(): a failed zoo run against the healthy run it derives from, and two healthy repeats against each other."""
from __future__ import annotations

import warnings

import pytest

import collapse_nb as cnb
from collapse_nb.compare import compare

zoo = pytest.importorskip("collapse_nb.zoo")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for name, seed in (("healthy_mlp", 0), ("lr_too_low", 0), ("variance_collapse", 0), ("overfitting", 0)):
        zoo.generate(name, root / name, seed=seed)
    zoo.generate("healthy_mlp", root / "healthy_mlp_seed1", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cnb.load_runs(root)


def test_the_reference_is_the_closest_healthy_run_and_its_repeat_measures_the_noise(runs):
    assert set(runs.healthy()) == {"healthy_mlp", "healthy_mlp_seed1"}
    c = runs.compare("lr_too_low")
    assert c.reference_name in ("healthy_mlp", "healthy_mlp_seed1")
    assert set(c.curves["noise_basis"]) == {"spread of 2 reference runs"}     # the healthy repeat's spread


def test_a_too_low_learning_rate_against_the_healthy_run(runs):
    c = runs.compare("lr_too_low", with_="healthy_mlp")
    config = c.config.set_index("key")
    assert config.loc["learning_rate", "run"] == pytest.approx(1e-6)
    assert config.loc["learning_rate", "reference"] == pytest.approx(3e-3)
    assert "seed" not in config.index and "scenario" not in config.index
    train = c.curves.set_index("series").loc["train loss"]
    assert train["verdict"] == "worse here" and train["parted_at"] < 50       # parts early: it never learns
    assert train["run_end"] > 10 * train["reference_end"]
    checks = c.checks.set_index("check")
    assert checks.loc["update_ratio", "run"] == "warning" and checks.loc["update_ratio", "reference"] == "ok"
    ratios = c.params[c.params["metric"] == "update_ratio"]
    assert len(ratios) >= 4 and (ratios["ratio"] < 0.01).all()             # every layer moves 100x+ less
    text = " ".join(c.summary())
    assert "learning_rate 1e-06 (vs 0.003)" in text and "train loss parts from healthy_mlp's" in text


def test_a_collapsed_head_shows_in_the_parameters(runs):
    c = runs.compare("variance_collapse", with_="healthy_mlp")
    assert c.config.set_index("key").loc["weight_decay", "run"] == 30
    final = c.params[c.params["metric"] == "final weight norm"].set_index("param")
    assert final.loc["net.4.bias", "ratio"] < 0.1                          # the head shrunk towards zero
    assert c.checks.set_index("check").loc["variance_collapse", "run"] == "critical"


def test_overfitting_parts_on_validation_not_on_training(runs):
    c = runs.compare("overfitting", with_="healthy_mlp")
    curves = c.curves.set_index("series")
    assert curves.loc["val loss", "verdict"] == "worse here"
    assert curves.loc["train loss", "verdict"] != "worse here"             # it fits its training set better


def test_two_healthy_repeats_do_not_part(runs):
    c = runs.compare("healthy_mlp_seed1", with_="healthy_mlp")
    assert list(c.config["key"]) == ["seed"]
    assert c.parted().empty and len(c.curves) == 2
    assert c.checks.empty
    assert "none of the 2 curve(s)" in c.summary()[1]


def test_the_report_gets_a_compared_with_section(runs):
    from collapse_nb.report import report
    c = runs.compare("lr_too_low", with_="healthy_mlp")
    rep = report(runs["lr_too_low"], findings=runs.findings("lr_too_low"), comparison=c, plots=False)
    section = rep.document.section("compared")
    assert section.title == "Compared with healthy_mlp"
    assert "## Compared with healthy_mlp" in rep.markdown and "Where the curves part" in rep.markdown
    assert "Compared with" not in report(runs["lr_too_low"], plots=False).markdown


def test_the_cli_report_compares_with_a_healthy_sibling(runs, tmp_path, capsys):
    from collapse_nb.cli import main
    out = tmp_path / "r.md"
    assert main(["report", str(runs.root / "lr_too_low"), "-o", str(out), "--no-plots"]) == 0
    assert "compared with healthy_mlp" in capsys.readouterr().out
    assert "## Compared with healthy_mlp" in out.read_text()
    assert main(["report", str(runs.root / "lr_too_low"), "-o", str(out), "--no-plots", "--no-compare"]) == 0
    assert "Compared with" not in out.read_text()


def test_bad_arguments(runs):
    with pytest.raises(TypeError, match="two collapse_nb Runs"):
        compare(runs["lr_too_low"], "healthy_mlp")
    with pytest.raises(KeyError, match="no run named"):
        runs.compare("lr_too_low", with_="nope")
    failed_only = runs[2:]                                               # lr_too_low, overfitting, variance_collapse
    with pytest.raises(ValueError, match="no healthy run beside 'lr_too_low'"):
        failed_only.compare("lr_too_low")
