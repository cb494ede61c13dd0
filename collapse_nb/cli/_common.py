"""What the ``collapse-nb`` commands share: the common flags, the exit codes, thresholds, errors in CLI words."""
from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from ..errors import SeveralRunsError

#: The exit codes (``collapse-nb --help`` and the README list them).
EXIT_OK = 0                 # the command ran (whatever the run's findings, unless --fail-on says otherwise)
EXIT_FAIL_ON = 1            # --fail-on SEVERITY: a finding (a run, for triage) reached that severity
EXIT_BAD_INPUT = 2          # unreadable input or bad arguments

EXIT_CODES = ("exit codes: 0 the command ran (whatever it found); 1 with --fail-on SEVERITY, a finding reached "
              "that severity (triage: a run had one); 2 bad input (a missing or unreadable path, an unknown format) "
              "or bad arguments (an unknown flag, a bad -t value)")

#: ``--fail-on`` choices -> the severities that reach them.
FAIL_ON = {"critical": ("critical",), "warning": ("critical", "warning")}


def error(message: str) -> int:
    """Print ``collapse-nb: error: MESSAGE`` on stderr; returns :data:`EXIT_BAD_INPUT`."""
    print(f"collapse-nb: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of a flag: stores into the new flag's ``dest`` and prints a one-line note on stderr."""

    def __init__(self, option_strings: list[str], dest: str, use: str = "", **kwargs: Any) -> None:
        self.use = use
        kwargs["help"] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"collapse-nb: note: {option_string} is deprecated here, use {self.use} (same values)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress lines on stderr (they are only shown when stderr is a terminal)")


def add_input_format(p: argparse.ArgumentParser, old_alias: bool = False, what: str = "the input") -> None:
    """``--input-format FORMAT``; ``old_alias``: also the deprecated, hidden ``--format``."""
    p.add_argument("--input-format", metavar="FORMAT", dest="input_format",
                   help=f"skip sniffing and read {what} as this format (see `collapse-nb formats`)")
    if old_alias:
        p.add_argument("--format", dest="input_format", action=DeprecatedAlias, use="--input-format")


def add_fail_on(p: argparse.ArgumentParser, what: str = "a finding") -> None:
    p.add_argument("--fail-on", choices=tuple(FAIL_ON), metavar="{critical,warning}",
                   help=f"exit 1 when {what} reaches this severity (warning: a warning or a critical one), for CI "
                        f"jobs; without it the exit code is 0 whatever was found")


def add_thresholds(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--threshold", action="append", metavar="CHECK__FIELD=VALUE",
                   help="override a check's threshold, e.g. variance_collapse__critical_ratio=0.05 (repeatable; "
                        "the checks and their thresholds are in docs/checks.md); a value of the wrong type is "
                        "an error (exit 2)")


def parse_threshold(text: str) -> tuple[str, Any]:
    """``"variance_collapse__critical_ratio=0.05"`` -> ``("variance_collapse__critical_ratio", 0.05)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or "__" not in key or not raw.strip():
        raise ValueError(f"-t/--threshold must look like CHECK__FIELD=VALUE (e.g. variance_collapse__critical_ratio="
                         f"0.05); got {text!r}")
    raw = raw.strip()
    low = raw.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, raw


def thresholds(args: argparse.Namespace) -> dict[str, Any]:
    """The ``-t`` values as ``diagnose`` keywords; raises ValueError for one that is not ``CHECK__FIELD=VALUE``."""
    return dict(parse_threshold(t) for t in (getattr(args, "threshold", None) or []))


def threshold_error(exc: Exception) -> int:
    """A threshold ``diagnose`` refused (unknown check or field, a value of the wrong type), naming the flag."""
    return error(f"-t/--threshold: {cli_words(str(exc))}")


def reached(severities: Any, fail_on: str | None) -> bool:
    """Whether any of ``severities`` reaches ``--fail-on`` (None: never)."""
    return fail_on is not None and any(s in FAIL_ON[fail_on] for s in severities)


# ----------------------------------------------------------------------------- errors in the words of the CLI

#: The library's advice in Python keywords -> the same advice in CLI flags (input side: every command).
_INPUT_WORDS = ((re.compile(r"\bpass format= one of:"), "give --input-format one of:"),)
#: The report writer's (``collapse_nb.report.resolve_targets``): the output format is ``--to`` on the command line.
_OUTPUT_WORDS = (
    (re.compile(r"\bor pass format='md'/'html'/'both'"), "or pass --to md, html or both"),
    (re.compile(r"\bformat='(md|html|both)' contradicts"), r"--to \1 contradicts"),
    (re.compile(r"\bor leave format out\b"), "or leave --to out"),
)


def cli_words(message: str, output: bool = False) -> str:
    """``message`` with the Python keywords it advises replaced by the CLI flags that do the same."""
    for pattern, repl in _INPUT_WORDS + (_OUTPUT_WORDS if output else ()):
        message = pattern.sub(repl, message)
    return message


def error_text(exc: Exception) -> str:
    """The message of a library error as the command line says it."""
    if isinstance(exc, SeveralRunsError):
        shown = ", ".join(exc.names[:8]) + (", ..." if len(exc.names) > 8 else "")
        return (f"{exc.path}: holds {len(exc.names)} runs ({shown}), not one: `collapse-nb triage {exc.path}` "
                f"reads them apart (-o triage.html also writes a report per run); give one run's folder to read one")
    return cli_words(str(exc))
