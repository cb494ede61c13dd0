"""Strip outputs from notebooks so they are committed in a reviewable form.

    python scripts/strip_notebooks.py                 # every notebooks/*.ipynb, in place
    python scripts/strip_notebooks.py --check         # exit 1 and list the notebooks that hold outputs
    python scripts/strip_notebooks.py path.ipynb ...

Removes cell outputs, execution counts, per-cell execution metadata and the saved widget state
(``metadata.widgets``), and nothing else.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
CELL_KEYS = ("execution", "collapsed", "scrolled")


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with outputs, execution counts, execution timings and widget state removed (in place)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for key in CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def is_stripped(nb: nbformat.NotebookNode) -> bool:
    return "widgets" not in nb.metadata and all(
        cell.cell_type != "code" or (not cell.outputs and cell.execution_count is None) for cell in nb.cells)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if any notebook holds outputs")
    args = ap.parse_args(argv)
    paths = args.paths or sorted((REPO / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if is_stripped(nb):
            continue
        dirty.append(path)
        if not args.check:
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
    if args.check and dirty:
        print("notebooks with outputs: " + ", ".join(str(p) for p in dirty)
              + " (run python scripts/strip_notebooks.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
