"""The real-browser check (scripts/check_jupyterlab.py): JupyterLab + headless Chromium run the quickstart.

Slow (about a minute) and needs a browser, so it only runs when asked:

    COLLAPSE_NB_BROWSER_TESTS=1 python -m pytest tests/notebooks/test_jupyterlab.py
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys

import pytest

from ._execute import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get("COLLAPSE_NB_BROWSER_TESTS") != "1"
    or not (shutil.which("chromium") or shutil.which("chromium-browser"))
    or any(importlib.util.find_spec(m) is None for m in ("playwright", "jupyterlab", "ipywidgets")),
    reason="browser check: set COLLAPSE_NB_BROWSER_TESTS=1 with jupyterlab, playwright and a chromium on the PATH")


def test_quickstart_runs_in_jupyterlab(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "scripts"))
    import check_jupyterlab

    shot = tmp_path / "quickstart.png"
    status = check_jupyterlab.main(["--out", str(shot), "--timeout", "300"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "0 error(s)" in out
    assert shot.read_bytes()[:4] == b"\x89PNG"
