"""Execute a notebook headless with nbclient (the kernel of this Python), as the tests and scripts do."""
from __future__ import annotations

import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
CELL_TIMEOUT = 180


def notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def execute(path: Path, cell_timeout: int = CELL_TIMEOUT, **parameters):
    """``(executed notebook, seconds)``; raises ``nbclient.exceptions.CellExecutionError`` on a cell error.

    ``parameters`` (e.g. ``RUN_PATH="runs/x"``) are set at the end of the cell tagged ``parameters``,
    as a user editing it would.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if parameters:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "".join(f"\n{k} = {v!r}" for k, v in parameters.items())
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - t0
