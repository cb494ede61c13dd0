"""The static checks of .ci/run, also under the README's test command: ruff (the rule set in pyproject.toml) on the
package, the tests, the benchmarks and the scripts, and mypy on the package. Skipped where the tools are not
installed (requirements.txt pins them)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed (pip install -r requirements.txt)")
    return subprocess.run([sys.executable, "-m", tool, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_passes():
    res = _run("ruff", "check", "collapse_nb", "tests", "benchmarks", "scripts")
    assert res.returncode == 0, res.stdout + res.stderr


def test_mypy_passes():
    res = _run("mypy", "collapse_nb")          # about 40 s without its cache (.mypy_cache), under 1 s with it
    assert res.returncode == 0, res.stdout + res.stderr
