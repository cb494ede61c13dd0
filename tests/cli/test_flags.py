"""The flags every command shares and the exit codes: --version, --input-format (and the deprecated --format),
--to, -q, --fail-on, errors that name CLI flags, a bad threshold value, the diagnose --json object."""
from __future__ import annotations

import json
import math
import sys
import tomllib
from pathlib import Path

import pytest

import collapse_nb
from collapse_nb.findings import by_severity
from collapse_nb.cli import build_parser, main
from collapse_nb.diagnose import root_causes
from collapse_nb.example import default_example_dir

EXAMPLE = str(default_example_dir())
REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("parse", "formats", "zoo", "triage", "report", "diagnose")


def _jsonl(path: Path, losses: list[float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n" for i, v in enumerate(losses)))
    return path


@pytest.fixture
def two_runs(tmp_path):
    """``good``: a loss that falls, nothing wrong; ``nan``: the same run whose loss becomes NaN (critical)."""
    root = tmp_path / "runs"
    _jsonl(root / "good" / "log.jsonl", [2.0 * 0.97 ** i for i in range(200)])
    _jsonl(root / "nan" / "log.jsonl", [2.0 * 0.97 ** i if i < 100 else math.nan for i in range(200)])
    return root


def test_version_is_the_one_version_string(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"collapse-nb {collapse_nb.__version__}\n"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "collapse_nb.__version__"}


def test_every_command_takes_quiet_and_documents_the_exit_codes():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)
    for name in COMMANDS:
        p = sub.choices[name]
        assert {"-q", "--quiet"} <= {s for a in p._actions for s in a.option_strings}, name
        assert "exit codes: 0" in p.format_help() and "1 with --fail-on" in p.format_help(), name
    assert "exit codes: 0" in build_parser().format_help()


@pytest.mark.parametrize("command", ["parse", "triage", "report", "diagnose"])
def test_input_format_everywhere(command, tmp_path, capsys):
    log = _jsonl(tmp_path / "run" / "log.jsonl", [1.0, 0.9, 0.8])
    target = str(log.parent if command == "triage" else log)
    extra = ["-o", str(tmp_path / "r.md"), "--no-plots"] if command == "report" else []
    assert main([command, target, "--input-format", "nope", *extra]) == 2
    assert "unknown format 'nope'" in capsys.readouterr().err
    assert main([command, target, "--input-format", "jsonl", *extra]) == 0
    captured = capsys.readouterr()
    assert "deprecated" not in captured.err
    assert "--input-format" in build_parser()._subparsers._group_actions[0].choices[command].format_help()


@pytest.mark.parametrize("command", ["parse", "triage"])
def test_the_old_format_flag_still_reads_the_input_with_a_note(command, tmp_path, capsys):
    log = _jsonl(tmp_path / "run" / "log.jsonl", [1.0, 0.9, 0.8])
    assert main([command, str(log.parent if command == "triage" else log), "--format", "jsonl"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--format is deprecated here, use --input-format" in err
    assert main([command, str(log), "--format", "nope"]) == 2           # it is the input format
    assert "unknown format 'nope'" in capsys.readouterr().err
    help_text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
    assert "--format" not in help_text.replace("--input-format", "")      # hidden


def test_report_to_and_the_old_format_flag(tmp_path, capsys):
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "a") + "/", "--to", "md", "--no-plots"]) == 0
    assert (tmp_path / "a" / "collapse_nb_report.md").exists()
    assert not (tmp_path / "a" / "collapse_nb_report.html").exists()
    assert "deprecated" not in capsys.readouterr().err
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "b") + "/", "--format", "html", "--no-plots"]) == 0
    assert "--format is deprecated here, use --to" in capsys.readouterr().err
    assert (tmp_path / "b" / "collapse_nb_report.html").exists()
    assert not (tmp_path / "b" / "collapse_nb_report.md").exists()
    report_help = build_parser()._subparsers._group_actions[0].choices["report"].format_help()
    assert "--to {md,html,both}" in report_help and "--format" not in report_help.replace("--input-format", "")
    with pytest.raises(SystemExit) as e:
        main(["report", EXAMPLE, "--to", "pdf"])
    assert e.value.code == 2


def test_errors_name_cli_flags_not_python_keywords(tmp_path, two_runs, capsys):
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "r.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot tell the report format" in err and "--to md, html or both" in err and "format=" not in err
    assert main(["report", EXAMPLE, "-o", str(tmp_path / "r.html"), "--to", "md"]) == 2
    err = capsys.readouterr().err
    assert "--to md contradicts the path's suffix '.html'" in err and "leave --to out" in err
    assert "format=" not in err and list(tmp_path.iterdir()) == [two_runs]
    binary = tmp_path / "x.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x01\x02\x03\x04\xff\xfe\xfd")
    assert main(["diagnose", str(binary)]) == 2
    err = capsys.readouterr().err
    assert "no reader recognises; give --input-format one of: " in err and "format=" not in err
    assert main(["diagnose", str(two_runs)]) == 2
    err = capsys.readouterr().err
    assert "holds 2 runs (good, nan)" in err and f"`collapse-nb triage {two_runs}`" in err
    assert "merge=True" not in err and "load_runs(" not in err


def test_fail_on_diagnose(two_runs, capsys):
    good, nan = str(two_runs / "good"), str(two_runs / "nan")
    assert main(["diagnose", nan]) == 0                       # without --fail-on: 0 whatever was found
    assert main(["diagnose", nan, "--fail-on", "critical"]) == 1
    assert "1 finding(s) at critical or above (--fail-on critical): exit 1" in capsys.readouterr().err
    assert main(["diagnose", nan, "--fail-on", "warning", "--json"]) == 1
    assert main(["diagnose", good, "--fail-on", "warning"]) == 0
    assert main(["diagnose", EXAMPLE, "--fail-on", "warning"]) == 1        # warnings and a critical one
    with pytest.raises(SystemExit) as e:
        main(["diagnose", good, "--fail-on", "info"])
    assert e.value.code == 2


def test_fail_on_report_still_writes_the_report(two_runs, tmp_path, capsys):
    out = tmp_path / "nan.md"
    assert main(["report", str(two_runs / "nan"), "-o", str(out), "--no-plots", "--fail-on", "critical"]) == 1
    assert out.exists() and "Broken." in capsys.readouterr().out
    assert main(["report", str(two_runs / "good"), "-o", str(out), "--no-plots", "--fail-on", "warning"]) == 0


def test_fail_on_triage_any_run(two_runs, tmp_path, capsys):
    assert main(["triage", str(two_runs)]) == 0
    assert main(["triage", str(two_runs), "--fail-on", "critical"]) == 1
    assert "1 run(s) with a finding at critical or above" in capsys.readouterr().err
    assert main(["triage", str(two_runs), "--fail-on", "critical", "--json"]) == 1
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 2
    assert main(["triage", str(two_runs / "good"), "--fail-on", "warning"]) == 0


def test_a_bad_threshold_value_is_an_error_not_a_failed_check(tmp_path, capsys):
    assert main(["diagnose", EXAMPLE, "-t", "variance_collapse__critical_ratio=abc"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "-t/--threshold" in captured.err and "variance_collapse" in captured.err
    assert "critical_ratio" in captured.err and "float" in captured.err and "'abc'" in captured.err
    assert main(["report", EXAMPLE, "-t", "update_ratio__include_biases=2", "-o", str(tmp_path / "x.md")]) == 2
    assert "include_biases is a bool" in capsys.readouterr().err and not any(tmp_path.iterdir())
    assert main(["diagnose", EXAMPLE, "--json", "-t", "loss_plateau__min_points=3.0"]) == 0   # a whole number
    assert not [f for f in json.loads(capsys.readouterr().out)["findings"] if f["code"] == "check_failed"]


def test_diagnose_json_is_an_object_with_a_schema_version(capsys):
    assert main(["diagnose", EXAMPLE, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data)[:5] == ["schema_version", "path", "verdict", "causes", "findings"]
    assert data["schema_version"] == 1 and data["path"] == EXAMPLE
    assert data["verdict"]["status"] == "broken" and "Prediction variance collapsed" in data["verdict"]["text"]
    causes = data["causes"]
    assert [c["rank"] for c in causes] == list(range(1, len(causes) + 1))
    assert causes[0]["code"] == "tiny_output_head" and causes[0]["role"] == "cause"
    assert causes[0]["explains"] == ["variance_collapse"] and 0 < causes[0]["share"] <= 1
    assert {"rank", "code", "severity", "share", "role", "title", "explains", "reasoning"} <= set(causes[0])
    findings = collapse_nb.diagnose(collapse_nb.load(EXAMPLE))
    assert [c["code"] for c in causes] == list(root_causes(findings)["code"])
    assert [f["code"] for f in data["findings"]] == [f.code for f in by_severity(findings) if f.severity != "ok"]
    assert all(isinstance(f["score"], float) for f in data["findings"])


def test_python_m_collapse_nb_cli_and_zoo_main_do_not_cycle():
    import subprocess
    for mod in ("collapse_nb.cli", "collapse_nb.zoo"):
        res = subprocess.run([sys.executable, "-c", f"import runpy, sys; sys.argv = ['x', '--help']; "
                              f"runpy.run_module('{mod}', run_name='__main__')"], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "usage:" in res.stdout
