"""Suspicious files: a checkpoint in the run's folder whose pickle names code-running globals.

The checkpoint reader never unpickles such a file (see :mod:`collapse_nb.checkpoints.safe_load`:
``os.system``, ``subprocess``, ``builtins.eval``, gadgets such as ``pydoc.pipepager`` or
``platform.popen``); it lists the file in ``run.meta["ignored"]`` with the global it names. That is
not a detail of loading: a training run never writes such a file, so someone or something put it
there, and loading it with ``torch.load(weights_only=False)`` would run its code. This check makes it
a ``warning`` finding, naming the file and the global, so that it reaches the verdict.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ..findings import Finding
from ._base import Check

if TYPE_CHECKING:
    from ..run import Run

_REFUSED = re.compile(r"refused: the pickle references (\S+?),? ")
_CHECKPOINT_FORMATS = {"torch-checkpoint", "safetensors"}


@dataclass
class SuspiciousFiles(Check):
    """Files refused because their pickle names globals that run code.

    Requires
    --------
    ``run.meta["ignored"]`` (what loading a directory did not read, and why).
    """

    name = "suspicious_files"
    reads = "the files loading refused (run.meta['ignored'])"

    def __call__(self, run: Run) -> list[Finding]:
        ignored = run.meta.get("ignored") or []
        refused = [(i["source"], m.group(1)) for i in ignored if (m := _REFUSED.search(str(i.get("reason", ""))))]
        if not refused:
            if not set(run.meta.get("formats") or []) & _CHECKPOINT_FORMATS:
                return self.skip("no checkpoint in the run", applies=False)
            return [self.finding("no_suspicious_files", "ok", "No checkpoint names code-running globals",
                                 summary="Every checkpoint's pickle names only tensors, containers and inert "
                                         "classes (unknown classes stand in as placeholders that never run).")]
        ev = pd.DataFrame(refused, columns=["file", "global"])
        first = refused[0]
        more = f" and {len(refused) - 1} more file(s)" if len(refused) > 1 else ""
        return [self.finding(
            "suspicious_checkpoint", "warning",
            f"Suspicious checkpoint: {first[0].rsplit('/', 1)[-1]} names {first[1]}{more} (not loaded)",
            summary=f"{first[0]} references {first[1]} in its pickle, which only code execution or system access "
                    f"needs; a training run never writes that. It was not unpickled, and nothing in it ran"
                    + (f"; {len(refused) - 1} other file(s) likewise ({', '.join(g for _, g in refused[1:4])})"
                       if len(refused) > 1 else "") + ".",
            evidence=ev, details={"files": [f for f, _ in refused], "globals": [g for _, g in refused]},
            actions=["Do not load this file with torch.load(weights_only=False) or pickle: it may be malicious.",
                     "Find out how it got into the run folder (a shared drive, a downloaded checkpoint)."],
            score=float(len(refused)))]
