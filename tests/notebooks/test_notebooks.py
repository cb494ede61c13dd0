"""Every notebook runs top to bottom on the bundled example (its cells assert on what they compute),
and is committed with its outputs stripped."""
from __future__ import annotations

import sys

import pytest

from ._execute import REPO, execute, notebooks

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

sys.path.insert(0, str(REPO / "scripts"))
import strip_notebooks  # noqa: E402

EXPECTED = ["00_quickstart.ipynb", "01_variance_collapse.ipynb", "02_gradient_flow.ipynb",
            "03_train_val_gap.ipynb", "04_teaching_gradient_flow.ipynb"]


def test_the_notebooks_are_there():
    assert [p.name for p in notebooks()] == EXPECTED


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
def test_runs_top_to_bottom(path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)       # the notebooks choose the inline backend
    nb, seconds = execute(path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 2, f"{path.name} drew {images} figure(s)"
    print(f"{path.name}: {seconds:.1f} s")


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_runs_on_your_own_files(path, tmp_path, monkeypatch):
    """RUN_PATH pointed at a run with only epoch losses: every notebook still runs (what it cannot draw, it says)."""
    monkeypatch.delenv("MPLBACKEND", raising=False)
    (tmp_path / "metrics.csv").write_text("epoch,loss,val_loss\n1,1.0,1.1\n2,0.8,0.9\n3,0.7,0.85\n")
    nb, _ = execute(path, RUN_PATH=str(tmp_path))
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert str(tmp_path / "metrics.csv") in text or path.name.startswith("04"), "the notebook read the given run"


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
