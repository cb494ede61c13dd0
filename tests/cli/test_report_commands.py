"""collapse-nb report / diagnose: files written, verdict printed, JSON output, errors (collapse_nb/cli/report.py)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from collapse_nb.cli import main
from collapse_nb.example import default_example_dir
from collapse_nb.cli._common import parse_threshold

EXAMPLE = str(default_example_dir())


def test_report_without_arguments_writes_both_files_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "bundled example" in out and "Broken." in out and "gradient_accumulation_steps = 3" in out
    assert f"wrote {tmp_path / 'collapse_nb_report.html'}" in out
    assert f"wrote {tmp_path / 'collapse_nb_report.md'}" in out
    assert (tmp_path / "collapse_nb_report.html").read_text().startswith("<!DOCTYPE html>")
    assert "![Loss curves](collapse_nb_report_figures/loss_curves.png)" in \
        (tmp_path / "collapse_nb_report.md").read_text()


def test_report_output_and_format(tmp_path, capsys):
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "r.html"), "--no-plots"]) == 0
    assert (tmp_path / "r.html").exists() and not (tmp_path / "r.md").exists()
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "d") + "/", "--to", "md", "--no-plots"]) == 0
    assert (tmp_path / "d" / "collapse_nb_report.md").exists()
    assert not (tmp_path / "d" / "collapse_nb_report.html").exists()


def test_report_bad_output_is_an_error_before_the_work(tmp_path, capsys):
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "r.txt")]) == 2
    assert "cannot tell the report format" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_report_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.log"), "-o", str(tmp_path / "x.md")]) == 2
    assert "nope.log: no such file or directory" in capsys.readouterr().err


def test_diagnose_json(capsys):
    assert main(["diagnose", EXAMPLE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["findings"]
    assert isinstance(data, list) and data
    for d in data:
        assert {"code", "severity", "title", "summary", "actions", "evidence"} <= set(d)
        assert isinstance(d["evidence"], list) and d["severity"] != "ok"
    assert data[0]["code"] == "variance_collapse"         # most severe first (the causes' rank is in "causes")
    collapse = next(d for d in data if d["code"] == "variance_collapse")
    assert collapse["severity"] == "critical" and collapse["evidence"][0]["one_in"].startswith("1:")
    assert main(["diagnose", EXAMPLE, "--json", "--all"]) == 0
    assert any(d["severity"] == "ok" for d in json.loads(capsys.readouterr().out)["findings"])


def test_diagnose_text(capsys):
    assert main(["diagnose", EXAMPLE]) == 0
    out = capsys.readouterr().out
    assert "1. [critical] Prediction variance collapsed" in out             # most severe first
    assert "[warning] Output head projection.weight" in out
    assert "check(s) passed (severity ok); --all lists them" in out
    assert "Suspects" in out and "1. tiny_output_head" in out
    assert main(["diagnose", EXAMPLE, "--all"]) == 0
    assert "[ok] Learning rate follows" in capsys.readouterr().out


def test_thresholds_on_the_command_line(capsys):
    assert main(["diagnose", EXAMPLE, "--json", "-t", "variance_collapse__critical_ratio=0.05"]) == 0
    vc = next(d for d in json.loads(capsys.readouterr().out)["findings"] if d["code"] == "variance_collapse")
    assert vc["severity"] == "warning" and vc["details"]["thresholds"]["critical_ratio"] == 0.05
    assert main(["diagnose", EXAMPLE, "-t", "critical_ratio=0.05"]) == 2
    assert "CHECK__FIELD=VALUE" in capsys.readouterr().err
    assert main(["diagnose", EXAMPLE, "-t", "variance_collapse__nope=1"]) == 2
    assert "unknown threshold(s) for variance_collapse: nope" in capsys.readouterr().err


@pytest.mark.parametrize("text, value", [("a__b=1", 1), ("a__b=0.5", 0.5), ("a__b=true", True),
                                         ("a__b=train", "train")])
def test_parse_threshold(text, value):
    assert parse_threshold(text) == ("a__b", value)


def test_the_command_runs_as_a_program(tmp_path):
    res = subprocess.run([sys.executable, "-m", "collapse_nb.cli", "report", "--to", "html"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and (tmp_path / "collapse_nb_report.html").exists()
