"""Progress on stderr: shown when stderr is a terminal (a fake one here), never otherwise or with -q."""
from __future__ import annotations

import json
import sys

import pytest

from collapse_nb import cluster, discovery, loading, runs
from collapse_nb.cli import main
from collapse_nb.example import default_example_dir

EXAMPLE = str(default_example_dir())


@pytest.fixture
def tty(capsys, monkeypatch):
    """stderr says it is a terminal (the class of capsys's stream: it puts a new one in place for the test call)."""
    monkeypatch.setattr(type(sys.stderr), "isatty", lambda self: True)


@pytest.fixture
def folder(tmp_path):
    for name, n in (("a", 50), ("b", 60)):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "log.jsonl").write_text(
            "".join(json.dumps({"step": i + 1, "loss": 2.0 * 0.97 ** i}) + "\n" for i in range(n)))
    return tmp_path / "runs"


def _watched():
    return (loading._read_one, loading._files_in, discovery.find_runs, runs.find_runs, runs._load_one,
            cluster.run_task)


def test_report_shows_its_stages_on_a_terminal(tty, tmp_path, capsys):
    before = _watched()
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "r.html")]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "collapse-nb: reading file 1/12: " in err and "collapse-nb: reading file 12/12: " in err
    assert "training_diagnostic.log (175.3 KB)" in err
    positions = [err.index(s) for s in ("reading file", "diagnosing", "drawing plots", "writing r.html")]
    assert positions == sorted(positions)
    assert err.endswith("\r\x1b[K")                     # the line is cleared before the results are printed
    assert "\x1b" not in captured.out and "wrote" in captured.out
    assert _watched() == before                          # the library's functions are put back


def test_diagnose_and_parse_show_the_files_read(tty, tmp_path, capsys):
    log = str(default_example_dir() / "training_diagnostic.log")
    assert main(["diagnose", log]) == 0
    err = capsys.readouterr().err
    assert "reading file 1/1: training_diagnostic.log" in err and "diagnosing" in err
    assert main(["parse", EXAMPLE, "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert "reading file 3/12: " in err and "writing the tables to" in err


def test_triage_shows_run_i_of_n(tty, folder, tmp_path, capsys):
    assert main(["triage", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "collapse-nb: triaging run 1/2: a" in err and "collapse-nb: triaging run 2/2: b" in err
    assert main(["triage", str(folder), "-o", str(tmp_path / "t.html"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "reading run 2/2: b" in err and "diagnosing 2 run(s)" in err and "and 2 report(s)" in err


@pytest.mark.parametrize("argv", [["report", EXAMPLE, "--no-plots"], ["diagnose", EXAMPLE], ["parse", EXAMPLE],
                                  ["triage", "FOLDER"], ["formats"]])
def test_quiet_on_a_terminal_and_nothing_off_a_terminal(argv, folder, tmp_path, monkeypatch, capsys):
    argv = [str(folder) if a == "FOLDER" else a for a in argv]
    if argv[0] == "report":
        argv += ["-o", str(tmp_path / "r.md")]
    assert not sys.stderr.isatty()
    assert main(argv) == 0
    assert capsys.readouterr().err == ""                 # not a terminal: nothing on stderr
    monkeypatch.setattr(type(sys.stderr), "isatty", lambda self: True)
    assert sys.stderr.isatty()
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""                 # a terminal, but --quiet
