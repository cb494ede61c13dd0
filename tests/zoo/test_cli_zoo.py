"""``collapse-nb zoo`` (and ``python -m collapse_nb.zoo``): list, generate one or several, clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")

from collapse_nb.cli import main  # noqa: E402


def test_zoo_without_names_lists_the_scenarios(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "seed_replica" in out and "dead_branch" in out and len(out.splitlines()) >= 16


def test_zoo_generates_one_run_into_out(tmp_path, capsys):
    assert main(["zoo", "chance_level", "--out", str(tmp_path / "run"), "--seed", "3"]) == 0
    assert "chance_level: wrote" in capsys.readouterr().out
    assert (tmp_path / "run" / "capture.jsonl").exists() and (tmp_path / "run" / "config.yaml").exists()
    assert '"seed": 3' in (tmp_path / "run" / "scenario.json").read_text()


def test_zoo_generates_several_into_subdirectories(tmp_path):
    assert main(["zoo", "chance_level", "dying_relu", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "chance_level" / "metrics.csv").exists() and (tmp_path / "dying_relu" / "metrics.csv").exists()


def test_zoo_errors(tmp_path, capsys):
    assert main(["zoo", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown scenario(s) nope; scenarios are: healthy_mlp" in capsys.readouterr().err
    assert main(["zoo", "chance_level"]) == 2
    assert "--out DIR is needed" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_python_m_collapse_nb_zoo_lists():
    out = subprocess.run([sys.executable, "-m", "collapse_nb.zoo"], capture_output=True, text=True, check=True).stdout
    assert "seed_replica" in out
