"""``pip install .`` as a wheel (not editable) runs ``collapse-nb report`` on the bundled example, from an empty folder.

The wheel is built from a copy of the sources (so the checkout gets no ``build/``), installed with ``--no-deps`` into
a fresh virtual environment that sees this environment's packages (the dependencies) through a ``.pth`` line, and
run with ``PYTHONPATH`` unset from an empty temporary folder: nothing outside the wheel can provide collapse_nb.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import collapse_nb

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 0, f"{cmd}: {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res


def test_the_installed_wheel_reports_on_the_bundled_example(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "collapse_nb", src / "collapse_nb", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp_path / "dist")])
    wheel, = (tmp_path / "dist").glob("collapse_nb-*.whl")
    assert wheel.name.startswith(f"collapse_nb-{collapse_nb.__version__}-")     # pyproject's version is __version__

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)])
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")   # the dependencies, not collapse_nb

    here = tmp_path / "empty"
    here.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLLAPSE_NB_CACHE_DIR"] = str(tmp_path / "cache")
    where = _run([str(py), "-c", "import collapse_nb, importlib.metadata as m; "
                  "print(collapse_nb.__file__); print(m.version('collapse_nb'))"], cwd=here, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and where[1] == collapse_nb.__version__
    script = venv / "bin" / "collapse-nb"
    version = _run([str(script), "--version"], cwd=here, env=env).stdout.strip()
    assert version == f"collapse-nb {collapse_nb.__version__}"
    res = _run([str(script), "report"], cwd=here, env=env)
    assert "bundled example" in res.stdout and "Broken." in res.stdout
    assert str(venv) in res.stdout                                  # the example read is the installed copy
    assert (here / "collapse_nb_report.html").read_text().startswith("<!DOCTYPE html>")
    assert (here / "collapse_nb_report.md").exists()
    assert sorted(p.name for p in here.iterdir()) == ["collapse_nb_report.html", "collapse_nb_report.md",
                                                      "collapse_nb_report_figures"]
