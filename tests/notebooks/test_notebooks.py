"""Every notebook runs top to bottom on the bundled example and on a run lacking its data, and is committed
with its outputs stripped. The cells hold no assertions: what they compute is checked here, from the objects
each notebook leaves in its kernel (a probe run after the last cell) and from its outputs."""
from __future__ import annotations

import re
import sys

import pytest

from ._execute import REPO, cell_text, errors, execute_and_probe, images, notebooks

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

sys.path.insert(0, str(REPO / "scripts"))
import make_notebooks  # noqa: E402
import strip_notebooks  # noqa: E402

EXPECTED = ["00_quickstart.ipynb", "01_variance_collapse.ipynb", "02_gradient_flow.ipynb",
            "03_train_val_gap.ipynb", "04_teaching_gradient_flow.ipynb"]
NB = {p.name[:2]: p for p in notebooks()}


@pytest.fixture(autouse=True)
def _inline_backend(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)        # the notebooks choose the inline backend


def test_the_notebooks_are_there():
    assert [p.name for p in notebooks()] == EXPECTED


def test_generated_from_the_script():
    assert make_notebooks.main(["--check"]) == 0, "run python scripts/make_notebooks.py"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_committed_with_outputs_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert strip_notebooks.is_stripped(nb), f"{path.name} holds outputs: run python scripts/strip_notebooks.py"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_parameter_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first.metadata.get("tags", [])
    assert "RUN_PATH = None" in first.source
    assert sum("key-figure" in c.metadata.get("tags", []) for c in nb.cells) == 1


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_written_for_a_person(path):
    """No assert and no test scaffolding in the cells; Markdown between the code; one idea a cell."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not [s for s in code if re.search(r"^\s*assert\b", s, re.M)]
    assert not [s for s in code if "USING_EXAMPLE" in s or "# key-figure" in s]
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 5
    assert max(len(s.splitlines()) for s in code) <= 25


# ---------------------------------------------------------------- on the bundled example

def _example(key: str, probe: str):
    nb, seconds, probed = execute_and_probe(NB[key], probe)
    assert not errors(nb)
    print(f"{NB[key].name}: {seconds:.1f} s")
    return nb, probed


def test_quickstart_finds_the_injected_faults():
    nb, got = _example("00", """
problem = [f.severity in ("critical", "warning") for f in findings]
written = sorted(p.name for p in out_dir.iterdir())
PROBE = {"codes": [f.code for f in findings], "problem": problem, "shown": panel.shown,
         "not_ok": [f.code for f in findings if f.severity != "ok"], "written": written,
         "html": (out_dir / "collapse_nb_report.html").stat().st_size, "verdict": rep.verdict}
""")
    assert {"variance_collapse", "dead_parameters", "val_below_train"} <= set(got["codes"])
    assert got["problem"] == sorted(got["problem"], reverse=True), "problems come first"
    assert sorted(got["shown"]) == sorted(got["not_ok"])    # the panel hides the checks that passed
    assert {"collapse_nb_report.html", "collapse_nb_report.md"} <= set(got["written"]) and got["html"] > 1000
    text = cell_text(nb)
    assert got["verdict"] in text and "checks ran;" in text
    assert images(nb) >= 2


def test_variance_collapse_notebook_on_the_example():
    nb, got = _example("01", """
weights = norms[norms.index.str.endswith("weight")]
head = oh.details["head"]
head_changes = changes.loc[changes["param"] == head, "rel_change"]
before = te.findings[0].severity
te.slider.value = vc.details["ratio_last"] / 2
PROBE = {"code": vc.code, "ratio": vc.details["ratio_last"], "onset": onset, "trend": trend,
         "rising": bool(per_epoch.is_monotonic_increasing), "head_code": oh.code, "head": head,
         "smallest": weights["first"].idxmin(),
         "head_vs_median": float(weights.loc[head, "first"] / weights["first"].median()),
         "grows": bool(len(head_changes) and (head_changes > 0).all()), "before": before,
         "after": te.findings[0].severity, "order": te.values}
""")
    assert got["code"] == "variance_collapse" and got["ratio"] < 0.1
    assert got["onset"]["from_start"] and got["trend"] == "rising" and got["rising"]   # tiny head: low from the start
    assert got["head_code"] == "tiny_output_head" and got["smallest"] == got["head"]
    assert got["head_vs_median"] < 1e-3
    assert got["grows"], "the head grows from its tiny init at every checkpoint: small, not dead"
    assert (got["before"], got["after"]) == ("critical", "warning")     # a stricter definition of "collapsed"
    assert got["order"]["critical_ratio"] <= got["order"]["warning_ratio"]
    assert "from the very first logged batch" in cell_text(nb)


def test_gradient_flow_notebook_on_the_example():
    nb, got = _example("02", """
from_grads = set(dp.evidence.loc[dp.evidence["source"] == "grads", "param"]) & set(dp.details.get("dead", []))
PROBE = {"modules": list(dead_modules), "flow_dead": sorted(flow.loc[flow["dead"], "param"].astype(str)),
         "check_dead": sorted(from_grads), "filter": ge.layer_filter.value, "options": list(ge.layer_select.options),
         "shown_dead": bool(ge.flow_table["dead"].all()), "tags": tags, "live": live[0]}
""")
    assert "attn.key_projection" in got["modules"]
    assert got["flow_dead"] == got["check_dead"]           # the table and the check agree
    assert got["filter"] == re.escape(got["modules"][0]) and got["options"]
    assert all(got["modules"][0] in p for p in got["options"]) and got["shown_dead"]   # a dead module
    assert got["live"].startswith("gradients/") and got["live"].split("/", 1)[1] not in got["flow_dead"]
    hist_cells = [c for c in nb.cells if c.cell_type == "code" and "plot_histograms(run" in c.source]
    drawn = [sum("image/png" in o.get("data", {}) for o in c.outputs) for c in hist_cells]
    assert drawn == [1, 2]                                  # ridge; heatmap and the dead gradient's ridge
    assert images(nb) >= 6


def test_train_val_gap_notebook_on_the_example():
    nb, got = _example("03", """
from collapse_nb import timeaxis
tl = timeaxis.metric_timeline(run, "loss")
val = [list(map(float, ln.get_xdata())) for ln in curves.get_lines()
       if ln.get_label().startswith("val loss (per epoch")]
by = {c["cause"]: c for c in vb.details["causes"]}
PROBE = {"top": vb.details["top_cause"], "code": vb.code, "k": k, "factor": float(factor.median()),
         "acc": by["gradient_accumulation"]["epoch_over_batch_mean"], "ratio": ratio,
         "dropout_ratio": vb.details["thresholds"]["dropout_ratio"],
         "dropout": by["train_only_regularisation"]["score"],
         "reduction": by["reduction_sum"]["score"], "explained": explained, "val_x": val,
         "ends": [tl.epoch_end(0, e) for e in run.epochs["epoch"]],
         "ratio_x": [list(map(float, ln.get_xdata())) for ln in ax.get_lines() if ln.get_label().startswith("train")],
         "explorer_x": sorted({float(x) for ln in explorer.curves_figure.axes[0].get_lines()
                               if ln.get_label().startswith("val loss (per epoch") for x in ln.get_xdata()})}
""")
    assert got["code"] == "val_below_train" and got["top"] == "gradient_accumulation"
    assert abs(got["factor"] / got["k"] - 1) < 0.25 and abs(got["acc"] - got["factor"]) < 0.05
    assert got["ratio"] > got["dropout_ratio"] and got["dropout"] < 0.3 and got["reduction"] < 0.1
    assert got["explained"] < 1.3                          # the target spreads do not explain it
    assert got["val_x"] == [got["ends"]]                   # per-epoch values where the Timeline puts them
    assert got["ratio_x"] == [got["ends"]]                 # the ratio too, and the explorer's curves
    assert got["explorer_x"] == got["ends"]


def test_teaching_notebook_trains_the_four_networks():
    nb, got = _example("04", """
checks = ["vanishing_gradients", "exploding_gradients"]
codes = {name: sorted({f.code for f in cnb.diagnose(r.to_run(), checks=checks)}) for name, r in results.items()}
PROBE = {"first": first.verdict, "verdicts": {n: r.verdict for n, r in results.items()}, "codes": codes}
""")
    assert got["first"] == "vanishing"
    v = got["verdicts"]
    assert (v["deep sigmoid"], v["relu, large init"], v["residual relu + layer norm"]) == (
        "vanishing", "exploding", "healthy")
    assert "vanishing_gradients" in got["codes"]["deep sigmoid"]
    assert "exploding_gradients" in got["codes"]["relu, large init"]
    assert got["codes"]["residual relu + layer norm"] == ["gradients_finite", "gradients_not_vanishing"]
    assert images(nb) >= 3


# ---------------------------------------------------------------- on a run lacking the data

LACKING = {
    "00": None,
    "01": "This run logged no prediction or target statistics (run.outputs is empty)",
    "02": "This run logged no per-parameter gradient norms (run.grads is empty)",
    "03": "This run has no training and validation loss at the same epochs",
    "04": "logged no per-parameter gradient norms (run.grads is empty): there is no gradient flow to compare",
}


@pytest.mark.parametrize("key", sorted(LACKING), ids=lambda k: NB[k].stem)
def test_a_run_with_only_a_train_loss_says_what_is_missing(key, tmp_path):
    """RUN_PATH at a run with one train loss per epoch: every notebook runs, reads that run, and says plainly
    what it lacks (no prediction statistics, no gradients, no validation loss) instead of failing."""
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,1.0\n2,0.8\n3,0.7\n")
    params = {"RUN_PATH": str(tmp_path)} | ({"STEPS": 15} if key == "04" else {})
    nb, _, _ = execute_and_probe(NB[key], None, **params)
    assert not errors(nb)
    text = cell_text(nb)
    assert key == "04" or str(tmp_path / "metrics.csv") in text, "the notebook read the given run"
    if LACKING[key]:
        assert LACKING[key] in text


def test_strip_removes_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    cell.execution_count = 1
    cell.metadata["execution"] = {"iopub.status.idle": "2024"}
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    assert strip_notebooks.main(["--check", str(path)]) == 1
    assert strip_notebooks.main([str(path)]) == 0
    back = nbformat.read(path, as_version=4)
    assert strip_notebooks.is_stripped(back) and back.cells[0].source == "1 + 1"
    assert strip_notebooks.main(["--check", str(path)]) == 0
