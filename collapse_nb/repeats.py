"""Files of one run that repeat each other: one row for each logged value, not one per copy.

An HF output folder holds a ``trainer_state.json`` in every ``checkpoint-N/``, each repeating the whole
history up to step N; a Keras or Lightning run copied next to its resumed continuation repeats the
first part. Read as they are, every loss point would count 2-4 times. :func:`drop_repeats` compares
the files of the same format by the rows they hold (name, phase, epoch, batch, step and value): a file
whose rows all appear in a larger one is a snapshot of it and is read once (through the larger file);
a file whose first or last lines, and only those, repeat a larger one (where a resumed run overlaps the
old one) keeps the rest. Values that merely coincide elsewhere in a file are kept, and so are the files of
other ranks of a distributed run (``rank_0.log``, ``rank_1.log``: the rank is part of a row's identity). Each file
dropped or trimmed is
said in the notes, with how many of its rows were repeats and of which file.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

#: The columns that make two rows the same logged value (the rank too: the ranks of a distributed run log the same
#: all-reduced values at the same steps, each in its own file, and none of them is a copy of another).
KEY = ["raw_name", "phase", "epoch", "batch", "step", "value", "rank"]
#: Files with more rows than this are not compared (a text log of millions of rows is not a snapshot).
MAX_ROWS = 2_000_000


def _fingerprints(df: pd.DataFrame) -> np.ndarray:
    cols = [c for c in KEY if c in df.columns]
    key = df[cols].copy()
    for c in cols:
        if isinstance(key[c].dtype, pd.CategoricalDtype):
            key[c] = key[c].astype(object)
    return pd.util.hash_pandas_object(key, index=False).to_numpy()


def _end_block(df: pd.DataFrame, seen: np.ndarray) -> bool:
    """The repeated rows are the file's first lines or its last lines, all of them: where a run resumed into
    a new file overlaps the old one. Scattered coincidences (a constant lr in two runs) are not a repeat."""
    if "line" not in df or df["line"].isna().all():
        return False
    line = pd.to_numeric(df["line"], errors="coerce").to_numpy(dtype="float64")
    rep_lo, rep_hi = np.nanmin(line[seen]), np.nanmax(line[seen])
    new_lo, new_hi = np.nanmin(line[~seen]), np.nanmax(line[~seen])
    return bool(rep_hi < new_lo or rep_lo > new_hi)


def drop_repeats(frames: list[pd.DataFrame], formats: list[str]) -> tuple[list[pd.DataFrame], list[dict]]:
    """``frames`` with repeated rows removed, and one record per file changed.

    A record is ``{"index", "of", "repeated", "rows", "dropped"}``: the file at ``index`` repeats
    ``repeated`` of its ``rows`` rows from the file at ``of``; ``dropped`` is ``"all"`` when it is a
    snapshot (all its rows are there) or ``"repeats"`` when only the repeated rows were removed.
    """
    out = list(frames)
    changes: list[dict] = []
    order = sorted(range(len(frames)), key=lambda i: -len(frames[i]))
    same_format = Counter(formats[i] for i in order if 0 < len(frames[i]) <= MAX_ROWS)
    prints = {i: _fingerprints(frames[i]) for i in order             # only files another file could repeat
              if 0 < len(frames[i]) <= MAX_ROWS and same_format[formats[i]] > 1}
    for pos, i in enumerate(order):
        if i not in prints:
            continue
        for j in order[:pos]:                       # larger (or equal, earlier) files first
            if j not in prints or formats[j] != formats[i] or not len(out[j]):
                continue
            mine, theirs = prints[i], prints[j]
            seen = np.isin(mine, theirs)
            n = int(seen.sum())
            if n == 0:
                continue
            if n == len(mine):
                out[i] = out[i].iloc[:0]
                prints[i] = mine[:0]
                changes.append({"index": i, "of": j, "repeated": n, "rows": len(mine), "dropped": "all"})
                break
            if not _end_block(out[i], seen):
                continue            # values that merely coincide (a constant lr in two runs) are not a repeat
            out[i] = out[i][~seen].reset_index(drop=True)
            prints[i] = mine[~seen]
            changes.append({"index": i, "of": j, "repeated": n, "rows": len(mine), "dropped": "repeats"})
            mine = prints[i]
    return out, changes
