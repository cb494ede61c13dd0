"""The planned length a text log states in its progress counters: ``Epoch 3/10``, ``iteration 2130/ 1716613``.

A run killed at epoch 3 of a planned 10 prints ``Epoch 3/10`` on its lines; the total is the plan.
Only the first :data:`HEAD_BYTES` and the last :data:`TAIL_BYTES` of the file are looked at (the
counter is on every progress line, and a 300 MB log is not read twice for it). A total counts when
one value makes up at least :data:`AGREEMENT` of the counters of its kind (restarted runs and a
second counter with another meaning do not leave a plan nobody stated).

- epochs: ``Epoch e/N``, ``epoch: e/N``, ``[Epoch e/N]``, ``Ep e/N`` -> ``epochs = N``;
- steps: ``Step s/N``, ``iteration s/N``, ``iter s/N``, ``it s/N`` -> ``max_steps = N``, but only
  in a log with no epoch counter (there a step counter counts within each epoch, as
  ``Batch b/520`` does, which is never read as a plan).
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

HEAD_BYTES = 1 << 20
TAIL_BYTES = 1 << 18
AGREEMENT = 0.8

_EPOCH = re.compile(rb"(?<![A-Za-z_])(?:epoch|ep)s?\s*[:=#]?\s*\[?\s*(\d{1,7})\s*/\s*(\d{1,7})(?![\d.])", re.I)
_STEP = re.compile(rb"(?<![A-Za-z_])(?:step|iteration|iter|it)s?\s*[:=#]?\s*\[?\s*(\d{1,10})\s*/\s*(\d{1,10})(?![\d.])",
                   re.I)


def counter_totals(path: Path) -> dict[str, tuple[int, str]]:
    """``{"epochs": (N, where), "max_steps": (N, where)}`` for the totals the file's counters state."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        tail = b""
        if size > HEAD_BYTES + TAIL_BYTES:
            fh.seek(size - TAIL_BYTES)
            tail = fh.read(TAIL_BYTES)
    out: dict[str, tuple[int, str]] = {}
    epoch = _total(_EPOCH, head, tail)
    if epoch is not None:
        out["epochs"] = epoch
    else:
        step = _total(_STEP, head, tail)
        if step is not None:
            out["max_steps"] = step
    return out


def _total(pattern: re.Pattern[bytes], head: bytes, tail: bytes) -> tuple[int, str] | None:
    found = [(m, True) for m in pattern.finditer(head)] + [(m, False) for m in pattern.finditer(tail)]
    pairs = [(int(m.group(1)), int(m.group(2)), m, in_head) for m, in_head in found]
    pairs = [p for p in pairs if p[1] > 0 and p[0] <= p[1] + 1]     # a counter, not a date or a ratio
    if not pairs:
        return None
    counts = Counter(p[1] for p in pairs)
    total, n = counts.most_common(1)[0]
    if n < AGREEMENT * len(pairs):
        return None
    m, in_head = next((p[2], p[3]) for p in pairs if p[1] == total)
    text = m.group(0).decode("utf-8", "replace").strip()
    if in_head:
        line = head.count(b"\n", 0, m.start()) + 1
        return total, f"line {line} ('{text}')"
    return total, f"the progress counter near the end of the file ('{text}')"
