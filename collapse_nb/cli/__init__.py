"""The ``collapse-nb`` command line (also ``python -m collapse_nb.cli``).

One module per group of commands, each adding its sub-commands with ``add_parsers``:

- :mod:`.parse`: ``parse`` (logs to tables, or a folder of runs to one Parquet dataset) and ``formats``;
- :mod:`.report`: ``report`` (the failure report) and ``diagnose`` (the findings, ranked; ``--json``);
- :mod:`.triage`: ``triage`` (every run of a folder, worst first; the triage page; on a Dask cluster);
- :mod:`.zoo`: ``zoo`` (the failure-zoo runs; also ``python -m collapse_nb.zoo``).

:mod:`._common` holds the shared flags (``--input-format``, ``-t``, ``--fail-on``, ``-q``), the exit codes and the
library's errors in CLI words; :mod:`.progress` the progress line on a terminal.

Exit codes: 0 the command ran, whatever it found; 1 ``--fail-on SEVERITY`` was given and a finding (for
``triage``: a run) reached it; 2 bad input (a missing or unreadable path, an unknown format) or bad arguments.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import CollapseNBError
from . import parse, report, triage, zoo
from ._common import EXIT_CODES, error, error_text

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="collapse-nb", description="Find out why a training run failed.",
                                 epilog=EXIT_CODES)
    ap.add_argument("--version", action="version", version=f"collapse-nb {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    parse.add_parsers(sub)          # parse, formats
    zoo.add_parsers(sub)            # zoo
    triage.add_parsers(sub)         # triage
    report.add_parsers(sub)         # report, diagnose
    for p in sub.choices.values():
        p.epilog = EXIT_CODES
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "input_format", None) is not None:     # an unknown format fails before any work (triage
            from ..readers.base import get_reader                # would list every run as unreadable)
            get_reader(args.input_format)
        return args.func(args)
    except CollapseNBError as exc:
        return error(error_text(exc))


if __name__ == "__main__":      # pragma: no cover - ``python -m collapse_nb.cli`` runs __main__.py
    sys.exit(main())
