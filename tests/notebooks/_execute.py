"""Execute a notebook headless with nbclient (the kernel of this Python), as the tests and scripts do."""
from __future__ import annotations

import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
CELL_TIMEOUT = 180


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _parametrised(path: Path, parameters: dict):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if parameters:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "".join(f"\n{k} = {v!r}" for k, v in parameters.items())
    return nb


def execute(path: Path, cell_timeout: int = CELL_TIMEOUT, **parameters):
    """``(executed notebook, seconds)``; raises ``nbclient.exceptions.CellExecutionError`` on a cell error.

    ``parameters`` (e.g. ``RUN_PATH="runs/x"``) are set at the end of the cell tagged ``parameters``,
    as a user editing it would.
    """
    nb, seconds, _ = execute_and_probe(path, None, cell_timeout, **parameters)
    return nb, seconds


def execute_and_probe(path: Path, probe: str | None, cell_timeout: int = CELL_TIMEOUT, **parameters):
    """``(executed notebook, seconds, probed)``: the notebook run top to bottom, then ``probe`` (Python code
    that sets ``PROBE``) run in the same kernel, so a test reads the objects the notebook left; ``probed`` is
    ``PROBE`` sent back as JSON (``None`` without a probe)."""
    import nbformat
    from nbclient import NotebookClient

    nb = _parametrised(path, parameters)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    probed = None
    t0 = time.perf_counter()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        seconds = time.perf_counter() - t0
        if probe:
            code = probe + "\nimport json as _json\nprint('@@PROBE@@' + _json.dumps(PROBE, default=str))"
            cell = nbformat.v4.new_code_cell(code)
            nb.cells.append(cell)
            try:
                client.execute_cell(cell, len(nb.cells) - 1)
            finally:
                nb.cells.pop()
            text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
            probed = json.loads(text.split("@@PROBE@@", 1)[1])
    return nb, seconds, probed


def cell_text(nb) -> str:
    """Everything the code cells printed or showed as text, in order."""
    parts = []
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        for o in c.outputs:
            parts.append(o.get("text", ""))
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
