"""Every notebook runs on runs of the shared corpus (../shared/corpus) that have the data it is about.

Which runs are relevant is decided from their data (prediction statistics for the variance notebook,
per-parameter gradients for the gradient notebooks, a train and a validation loss at the same epochs for
the gap notebook, a loss for the quickstart), not from their names; a few of them per notebook are executed
(the seed report's log first), to keep the suite fast. Skipped where the corpus is absent.
"""
from __future__ import annotations

import pytest

import collapse_nb as cnb
from collapse_nb.checks import CHECKS

from ..conftest import CORPUS
from ._execute import cell_text, errors, execute_and_probe, notebooks
from .test_notebooks import LACKING

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

NB = {p.name[:2]: p for p in notebooks()}
#: tried first (the seed report's log, the log with val ~7x below train, a textbook overfit), then the rest by name
PREFERRED = ["tsl-diag-f7a0244", "tsl-run-1644469", "keras-glove-lstm-overfit", "mlflow-vit-val-at-chance"]
#: how many relevant runs each notebook is executed on
RUNS_PER_NOTEBOOK = {"00": 2, "01": 2, "02": 2, "03": 3, "04": 1}


def _has_loss(run) -> bool:
    return bool((run.scalars["name"] == "loss").any()) or any("loss" in str(c) for c in run.epochs.columns)


def _has_gap(run) -> bool:
    e = run.epochs
    both = ["train_loss", "val_loss"]
    return set(both) <= set(e.columns) and bool(e[both].notna().all(axis=1).any())


def _has_outputs(run) -> bool:
    """Prediction and target std in enough batches of one phase and segment for the check to judge them."""
    o = run.outputs
    if o.empty:
        return False
    both = o[o["pred_std"].notna() & o["target_std"].notna()]
    need = CHECKS["variance_collapse"]().min_rows
    return bool(len(both)) and int(both.groupby(["segment", "phase"], observed=True).size().max()) >= need


RELEVANT = {
    "00": _has_loss,
    "01": _has_outputs,
    "02": lambda run: not run.grads.empty,
    "03": _has_gap,
    "04": lambda run: not run.grads.empty,
}


@pytest.fixture(scope="session")
def corpus_runs():
    """name -> Run for every corpus folder that loads (a few seconds in all)."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus ({CORPUS}) is absent")
    names = sorted(d.name for d in CORPUS.iterdir() if d.is_dir())
    names = [n for n in PREFERRED if n in names] + [n for n in names if n not in PREFERRED]
    runs = {}
    for name in names:
        try:
            runs[name] = cnb.load(CORPUS / name)
        except cnb.CollapseNBError:
            continue
    return runs


def _relevant(corpus_runs, key):
    return [name for name, run in corpus_runs.items() if RELEVANT[key](run)]


def test_relevance_is_read_from_the_data(corpus_runs):
    """The seed report's log has everything; a checkpoint alone has no loss; the gap needs both losses."""
    for key in RELEVANT:
        assert "tsl-diag-f7a0244" in _relevant(corpus_runs, key) or key == "03"
    assert "ckpt-opal" not in _relevant(corpus_runs, "00")
    assert "tsl-run-1644469" not in _relevant(corpus_runs, "01")        # one batch of prediction statistics
    assert {"tsl-run-1644469", "keras-glove-lstm-overfit"} <= set(_relevant(corpus_runs, "03"))
    assert "cifar-logging" not in _relevant(corpus_runs, "03")          # a train loss only


PROBES = {
    "00": 'PROBE = {"n": len(findings), "written": sorted(p.name for p in out_dir.iterdir())}',
    "01": 'PROBE = {"code": vc.code, "ratio": vc.details.get("ratio_last"), "rows": len(outputs)}',
    "02": """ge.step_slider.value = ge.steps[-1]
PROBE = {"flow": len(flow), "dead": sorted(dead_modules), "columns": list(ge.flow_table.columns),
         "n_logged": int(ge.flow_table["n_logged"].max()) if len(ge.flow_table) else None,
         "options": len(ge.layer_select.options)}""",
    "03": 'PROBE = {"code": vb.code, "severity": vb.severity, "epochs": len(gap)}',
    "04": 'PROBE = {"drawn": not run.grads.empty}',
}


@pytest.mark.parametrize("slot", range(3))
@pytest.mark.parametrize("key", sorted(RELEVANT), ids=lambda k: NB[k].stem)
def test_runs_on_corpus_runs_with_its_data(key, slot, corpus_runs):
    relevant = _relevant(corpus_runs, key)[:RUNS_PER_NOTEBOOK[key]]
    if slot >= len(relevant):
        pytest.skip(f"{NB[key].stem}: {len(relevant)} corpus run(s) picked")
    name = relevant[slot]
    params = {"RUN_PATH": str(CORPUS / name)} | ({"STEPS": 15} if key == "04" else {})
    nb, seconds, got = execute_and_probe(NB[key], PROBES[key], **params)
    assert not errors(nb)
    text = cell_text(nb)
    assert key == "04" or str(CORPUS / name) in text, "the notebook read the given run"
    assert not LACKING[key] or LACKING[key] not in text
    assert "Traceback" not in text
    if key == "00":
        assert got["n"] > 0 and "collapse_nb_report.html" in got["written"]
    elif key == "01":
        assert got["code"] in ("variance_collapse", "outputs_spread_ok") and got["ratio"] > 0
    elif key == "02":
        assert got["flow"] > 0 and got["options"] > 0 and "n_logged" in got["columns"]
        assert got["n_logged"] in (None, 1)                  # the explorer at one step, with or without a filter
    elif key == "03":
        assert got["code"] != "not_checked" and got["epochs"] > 0
    else:
        assert got["drawn"]
    print(f"{NB[key].name} on {name}: {seconds:.1f} s")


def test_seed_log_gradient_notebook_filters_by_its_own_names(corpus_runs):
    """The log the seed report came from names its modules ``*attention*``: the notebook's explorer starts on
    a module taken from the run (a dead one), never on a hard-coded name that matches nothing."""
    if "tsl-diag-f7a0244" not in corpus_runs:
        pytest.skip("tsl-diag-f7a0244 is absent")
    probe = """PROBE = {"filter": ge.layer_filter.value, "options": list(ge.layer_select.options),
         "dead": list(dead_modules), "message": ge.message.value}"""
    nb, _, got = execute_and_probe(NB["02"], probe, RUN_PATH=str(CORPUS / "tsl-diag-f7a0244"))
    assert not errors(nb)
    if got["dead"]:
        assert got["options"] and all(got["dead"][0] in p for p in got["options"])
    else:
        assert got["filter"] == "" and got["options"]
    assert "No parameter selected" not in got["message"]


#: notebook -> what it prints on a corpus run without its data
SAYS = {"00": ["These files hold no logged numbers", "Not drawn: loss_curves needs a loss"],
        "01": ["variance_collapse: not checked"]}


@pytest.mark.parametrize("key", sorted(SAYS), ids=lambda k: NB[k].stem)
def test_says_so_on_a_corpus_run_lacking_the_data(key, corpus_runs):
    """The first corpus run without the notebook's data (for the quickstart: a folder holding only a checkpoint;
    for the variance notebook: a log with prediction statistics in too few batches): it runs and says so."""
    lacking = [n for n, run in corpus_runs.items() if not RELEVANT[key](run)]
    if not lacking:
        pytest.skip("every corpus run has the data")
    nb, _, _ = execute_and_probe(NB[key], None, RUN_PATH=str(CORPUS / lacking[0]))
    assert not errors(nb)
    text = cell_text(nb)
    assert all(s in text for s in SAYS[key]), lacking[0]
