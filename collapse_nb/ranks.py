"""The ranks of a distributed run: which process wrote a row, and the one-rank view the checks read.

A data-parallel run writes one log per process (``rank_0.log`` ... ``rank_7.log``), or one log where
the launcher prefixes each process's lines (``[rank3]:``, torchrun's ``[default3]:``, srun's ``3: ``:
see :mod:`collapse_nb.readers._text_ranks`). Such files are one run; ``run.scalars`` keeps every rank's
rows with their ``rank`` (nullable ``Int64``; NA when the file does not say).

**The rank of a file from its name** (:func:`rank_from_path`): a ``rank`` word followed by a number,
optionally after ``_``, ``-`` or ``.``, in the file name or, failing that, in the names of the two
folders above it: ``rank_3.log``, ``rank3.log``, ``log_rank3.txt``, ``train-rank-03.out``,
``rank_3/model.pt``. Not a data-parallel rank, so never taken: ``local_rank`` and ``node_rank`` (several
nodes repeat them), and the model-parallel ranks of Megatron and DeepSpeed checkpoints (``mp_rank_00``,
``pp_rank_0``, ``tp_rank``, ``zero_pp_rank_0``), whose shards differ by design, and a LoRA rank
(``lora_rank_8``). ``worker_3.log`` is not read as a rank either (data-loader workers, parameter servers
and Ray workers share the word). Folders of ranks each holding their own logs (``rank_0/train.log``)
are runs of their own to :mod:`collapse_nb.discovery`; ``collapse_nb.load(folder, merge=True)`` reads
them as one.

**What the checks read** (:func:`one_rank`): for each series (name, phase, param), the rows of the
lowest rank that logs it, plus the rows whose rank is not known. Eight ranks logging the same step are
then one curve of N points, not 8N, and no restart; the tables built from the scalars (``epochs``,
``outputs``, ``grads``, ``series``, the objective) and the checks (``diagnose`` gives each check
:attr:`Run.one_rank <collapse_nb.run.Run.one_rank>`) see that view. The ``rank_desync`` check, which
compares the ranks, reads every rank's rows.
"""
from __future__ import annotations

import re
from pathlib import PurePath

import numpy as np
import pandas as pd

#: Words before ``rank`` that make it no data-parallel rank (a rank within a node, or a model-parallel shard).
NOT_DATA_PARALLEL = frozenset({"local", "node", "mp", "pp", "tp", "ep", "cp", "sp", "pipeline", "tensor",
                               "expert", "zero", "lora"})
_RANK_WORD = re.compile(r"(?i)(?:^|(?<=[^a-z0-9]))(?:([a-z]+)[_\-.])?rank[_\-.]?(\d{1,5})(?=$|[^a-z0-9])")
#: How many folders above a file may name its rank (``rank_3/model.pt``, ``rank_3/checkpoints/model.pt``).
FOLDER_LEVELS = 2


def rank_from_name(name: str) -> int | None:
    """The data-parallel rank a file or folder name states (``log_rank3.txt`` -> 3), else ``None``."""
    for m in _RANK_WORD.finditer(name):
        if (m.group(1) or "").lower() in NOT_DATA_PARALLEL:
            continue
        return int(m.group(2))
    return None


def rank_from_path(path: str | PurePath) -> int | None:
    """The rank of a file from its name, else from the names of the :data:`FOLDER_LEVELS` folders above it."""
    p = PurePath(str(path))
    parts = [p.name] + [a.name for a in list(p.parents)[:FOLDER_LEVELS]]
    for part in parts:
        r = rank_from_name(part)
        if r is not None:
            return r
    return None


def without_rank(path: str | PurePath) -> str:
    """``path`` with the rank number of its name (and of the folders :func:`rank_from_path` looks at) as ``*``:
    the name the ranks' copies of one file share (``ck/rank_0/model.pt`` and ``ck/rank_1/model.pt``)."""
    p = PurePath(str(path))

    def hide(m: re.Match) -> str:
        if (m.group(1) or "").lower() in NOT_DATA_PARALLEL:
            return m.group(0)
        return m.group(0)[:m.start(2) - m.start(0)] + "*"

    parts = list(p.parts)
    for i in range(max(len(parts) - 1 - FOLDER_LEVELS, 0), len(parts)):
        parts[i] = _RANK_WORD.sub(hide, parts[i])
    return str(PurePath(*parts)) if parts else str(p)


def rank_column(df: pd.DataFrame) -> pd.Series | None:
    """``df["rank"]`` when it has one with at least one known rank, else ``None``."""
    if "rank" not in df.columns or df.empty:
        return None
    r = df["rank"]
    return r if r.notna().any() else None


def ranks(df: pd.DataFrame) -> list[int]:
    """The ranks present in ``df``, ascending (``[]`` when no row says)."""
    r = rank_column(df)
    return [] if r is None else sorted(int(x) for x in pd.unique(r.dropna()))


def primary_rows(df: pd.DataFrame) -> np.ndarray | None:
    """Boolean mask of the rows :func:`one_rank` keeps, or ``None`` when it keeps them all (no rank, or one)."""
    r = rank_column(df)
    if r is None:
        return None
    known = r.notna().to_numpy()
    vals = r.to_numpy(dtype="float64", na_value=np.nan)
    if np.nanmin(vals) == np.nanmax(vals):
        return None
    cols = [c for c in ("name", "phase", "param") if c in df.columns] or ["raw_name"]
    keys = [df[c].astype(object).where(df[c].notna(), "\x00") if not isinstance(df[c].dtype, pd.CategoricalDtype)
            else df[c].cat.codes for c in cols]
    lowest = pd.Series(vals).groupby([pd.Series(np.asarray(k)) for k in keys], sort=False).transform("min")
    keep = ~known | (vals == lowest.to_numpy(dtype="float64", na_value=np.nan))
    return None if keep.all() else keep


def one_rank(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as the checks read it: per series the lowest rank's rows, and the rows of no known rank.

    The frame itself when there is nothing to drop (no rank column, no rank known, or one rank).
    """
    keep = primary_rows(df)
    if keep is None:
        return df
    return df[keep].reset_index(drop=True)


def describe(df: pd.DataFrame) -> str:
    """``"ranks 0-7 (8)"`` / ``"rank 3"`` / ``""``: the ranks of a table, for notes and findings."""
    rs = ranks(df)
    if not rs:
        return ""
    if len(rs) == 1:
        return f"rank {rs[0]}"
    span = f"{rs[0]}-{rs[-1]}" if rs == list(range(rs[0], rs[-1] + 1)) else ", ".join(map(str, rs))
    return f"ranks {span} ({len(rs)})"
