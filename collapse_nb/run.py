"""``Run``: one training run as tidy pandas tables.

``scalars`` is built when the run is loaded; ``epochs``, ``outputs`` and
``grads`` are derived from it on first use and cached, so loading a huge log
does not pay for tables nobody looks at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from . import ranks as _ranks
from . import series as _series
from . import tables


@dataclass(eq=False)
class Run:
    """A training run read from one or more files.

    Attributes
    ----------
    scalars : DataFrame
        Long format, one row per logged number. Columns ``source, segment, phase,
        epoch, batch, step, name, raw_name, param, value, line, wall_time, rank``
        (dtypes in :data:`collapse_nb.tables.SCALAR_DTYPES`). NaN and inf are kept. A distributed
        run keeps every rank's rows here; the derived tables read one rank (:attr:`one_rank`).
    meta : dict
        ``files`` (one entry per file: format, rows, lines not understood and
        where), ``formats``, ``config`` (canonical settings), ``config_sources`` (file), ``config_lines`` (where in it),
        ``config_raw`` (everything each file said), ``config_conflicts``,
        ``restarts`` and ``notes``.
    """

    scalars: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    @cached_property
    def one_rank(self) -> "Run":
        """This run as the checks read it: per series the rows of the lowest rank that logs it, and those of
        no known rank (:mod:`collapse_nb.ranks`); the run itself when it has one rank or none. It shares
        ``meta`` and ``extra`` with this run."""
        keep = _ranks.primary_rows(self.scalars)
        if keep is None:
            return self
        view = Run(scalars=self.scalars[keep].reset_index(drop=True), meta=self.meta, extra=self.extra)
        view.__dict__["one_rank"] = view
        return view

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """Wide, one row per (segment, epoch): ``train_loss``, ``val_loss``, ``lr``, ... where known."""
        return tables.build_epochs(self.scalars)

    @cached_property
    def outputs(self) -> pd.DataFrame:
        """One row per logged batch of prediction/target statistics, with ``std_ratio`` = pred/target std.

        When several files log them (a text log and a capture log of the same run), the one with
        the most logged steps is used; ``meta["table_sources"]["outputs"]`` says which and what was
        left out, and :meth:`outputs_from` gives any source's rows.
        """
        return self._one_source(tables.build_outputs(self.scalars), "outputs")

    @cached_property
    def grads(self) -> pd.DataFrame:
        """One row per parameter per logged step: ``grad_norm, weight_norm, update_norm`` (nullable).

        One source, chosen as for :attr:`outputs` (the same norms logged by a text log, a capture log
        and TensorBoard histograms would otherwise be counted three times).
        """
        return self._one_source(tables.build_grads(self.scalars), "grads")

    @cached_property
    def series(self) -> pd.DataFrame:
        """One row per logged series: its ``role`` (objective, component, eval_metric, lr, ...), ``network``,
        ``eval_set``, ``direction``, points and resolution (:func:`collapse_nb.series.catalogue`)."""
        return _series.catalogue(self.scalars)

    def objective(self, phase: str = "train", network: str | None = None,
                  eval_set: str | None = None) -> "_series.Objective":
        """The loss series the checks read for ``phase`` (:func:`collapse_nb.series.objective`), cached."""
        cache = self.__dict__.setdefault("_objectives", {})
        key = (phase, network, eval_set)
        if key not in cache:
            obj = _series.objective(self.scalars, self.series, phase, network, eval_set)
            n_ranks = len(self.meta.get("ranks") or [])
            if n_ranks > 1 and obj.found:           # a distributed run: say whose loss it is
                rows = _ranks.one_rank(self.scalars)
                mine = _ranks.ranks(rows[rows["name"].isin(obj.names)])
                if mine:
                    obj.description += f" of rank {mine[0]} (of {n_ranks} ranks)"
            cache[key] = obj
        return cache[key]

    def grads_from(self, source: str | None = None) -> pd.DataFrame:
        """``grads`` rows of every source (``source=None``) or of one."""
        df = tables.build_grads(self.scalars)
        return df if source is None else df[df["source"] == source].reset_index(drop=True)

    def outputs_from(self, source: str | None = None) -> pd.DataFrame:
        """``outputs`` rows of every source (``source=None``) or of one."""
        df = tables.build_outputs(self.scalars)
        return df if source is None else df[df["source"] == source].reset_index(drop=True)

    def _one_source(self, df: pd.DataFrame, table: str) -> pd.DataFrame:
        if df.empty or "source" not in df.columns:
            return df
        when = [c for c in ("segment", "epoch", "batch", "step") if c in df.columns]
        points = df[["source", *when]].drop_duplicates()["source"].astype(str).value_counts()
        if len(points) <= 1:
            return df
        rows = df["source"].astype(str).value_counts()
        # most logged time points first; ties go to the file with more rows, then to the name
        best = sorted(points.index, key=lambda s: (-points[s], -rows[s], s))[0]
        self.meta.setdefault("table_sources", {})[table] = {
            "used": best, "time_points": int(points[best]),
            "left_out": {s: {"rows": int(rows[s]), "time_points": int(points[s])} for s in points.index if s != best},
        }
        keep = df["source"].astype(str) == best
        out = df[keep].reset_index(drop=True)
        if isinstance(out["source"].dtype, pd.CategoricalDtype):
            out["source"] = out["source"].cat.remove_unused_categories()
        return out

    @property
    def params(self) -> pd.DataFrame:
        """One row per tensor per checkpoint (``checkpoint, step, param, shape, numel, dtype, norm, ...``)."""
        return self._extra_table("params")

    @property
    def optimizer(self) -> pd.DataFrame:
        """Optimizer state per parameter per checkpoint (Adam moments, effective step size)."""
        return self._extra_table("optimizer")

    @property
    def histograms(self) -> pd.DataFrame:
        """Histogram summaries (TensorBoard ``add_histogram``): one row per bucket per tag and step."""
        return self._extra_table("histograms")

    @property
    def histogram_stats(self) -> pd.DataFrame:
        """One row per histogram tag and step: ``min, max, num, mean, std, norm``."""
        return self._extra_table("histogram_stats")

    def _extra_table(self, name: str) -> pd.DataFrame:
        table = self.extra.get(name)
        return table if table is not None else pd.DataFrame()

    @property
    def config(self) -> dict[str, Any]:
        """Canonical configuration values (``learning_rate``, ``weight_decay``, ...) found for the run."""
        return self.meta.get("config", {})

    @property
    def sources(self) -> list[str]:
        return [f["source"] for f in self.meta.get("files", [])]

    def metric(self, name: str, phase: str | None = None) -> pd.DataFrame:
        """Rows of ``scalars`` for one canonical ``name`` (and ``phase``, if given)."""
        s = self.scalars
        mask = s["name"] == name
        if phase is not None:
            mask &= s["phase"] == phase
        return s[mask].reset_index(drop=True)

    def summary(self) -> str:
        """A few lines saying what was read: files, formats, rows per table, what was skipped."""
        lines = []
        for f in self.meta.get("files", []):
            lines.append(f"{f['source']}: {f['format']}, {f['rows']:,} values; {f['skipped_text']}")
        lines.append(f"scalars: {len(self.scalars):,} rows, {self.scalars['name'].nunique()} distinct names")
        for t in ("epochs", "outputs", "grads"):
            lines.append(f"{t}: {len(getattr(self, t)):,} rows")
        for name, df in self.extra.items():
            lines.append(f"{name}: {len(df):,} rows")
        if self.meta.get("restarts"):
            lines.append(f"restarts: {len(self.meta['restarts'])} (segments "
                         f"{', '.join(str(r['segment']) for r in self.meta['restarts'])})")
        if self.config:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(self.config.items()))
            lines.append(f"config: {shown}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        files = len(self.meta.get("files", []))
        return (f"<Run: {files} file(s), {len(self.scalars):,} scalars, "
                f"formats={self.meta.get('formats', [])}>")
