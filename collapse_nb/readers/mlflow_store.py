"""MLflow's file store: ``mlruns/<experiment>/<run>/`` with one file per metric, parameter and tag.

::

    mlruns/459562201803247328/meta.yaml              the experiment (name, ...)
    mlruns/459562201803247328/d4bf8d.../meta.yaml     the run (run_name, status, start/end time)
    .../metrics/train/loss                            "<timestamp ms> <value> <step>" per line
    .../params/learning_rate                          the value as text
    .../tags/mlflow.runName                           the value as text

A metric's name is its path under ``metrics/``: MLflow stores a slash name (``train/loss``,
``val/acc``) as nested folders. Each line gives one value at its step, with its wall time. When the
run also logged ``epoch`` as a metric (Lightning's MLFlowLogger does), each value gets the epoch
logged at its step (the last one at or before it); the ``epoch`` series itself is not read as a
metric. Parameters and tags are configuration (``params/num_classes`` is ``num_classes``; tags as
``mlflow.tags.<name>``); the run's ``meta.yaml`` gives its name and status (``FINISHED``,
``FAILED``, ``KILLED``) as ``mlflow.run_name`` / ``mlflow.status``.

Lines that are not ``timestamp value step`` are counted as skipped; values are read as Python
floats (``nan``, ``inf`` included).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UnreadableFileError
from .base import ReadResult, Reader, SkipLog, empty_scalars, register

_LINE = re.compile(rb"^\s*(\d{9,14})\s+(\S+)\s+(-?\d+)\s*$")
_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def run_folder(path: Path, part: str) -> tuple[Path, str] | None:
    """``(the run folder, the name under part/)`` for a file under ``<run>/<part>/``, where the run folder holds
    MLflow's ``meta.yaml``; None for any other file."""
    parts = path.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == part:
            run = Path(*parts[:i])
            if (run / "meta.yaml").is_file():
                return run, "/".join(parts[i + 1:])
    return None


def _epochs_of(run: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps, epochs)`` from the run's ``metrics/epoch``, sorted by step; None without one."""
    p = run / "metrics" / "epoch"
    if not p.is_file():
        return None
    steps, epochs = [], []
    for line in p.read_bytes().splitlines():
        m = _LINE.match(line)
        if m:
            try:
                epochs.append(float(m[2]))
                steps.append(int(m[3]))
            except ValueError:
                continue
    if not steps:
        return None
    order = np.argsort(np.array(steps), kind="stable")
    return np.array(steps, dtype="float64")[order], np.array(epochs, dtype="float64")[order]


@register
class MlflowMetricReader(Reader):
    name = "mlflow-metric"
    description = "MLflow file store metric: mlruns/<exp>/<run>/metrics/<name> ('timestamp value step' lines)"

    def sniff(self, head: bytes, path: Path) -> float:
        if run_folder(Path(path), "metrics") is None:
            return 0.0
        lines = [ln for ln in head.splitlines()[:20] if ln.strip()]
        if not lines:
            return 0.0
        return 0.95 if sum(bool(_LINE.match(ln)) for ln in lines) >= max(1, len(lines) - 1) else 0.0

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        found = run_folder(path, "metrics")
        if found is None:
            raise UnreadableFileError(path, "not under an MLflow run's metrics/ folder")
        run, name = found
        skipped = SkipLog()
        if name == "epoch":
            return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(), skipped=skipped,
                              notes=["the run's epoch series: it gives the epoch of every other metric's steps"])
        ts, vals, steps, lines = [], [], [], []
        for i, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            m = _LINE.match(line)
            try:
                if m is None:
                    raise ValueError
                v = float(m[2])
            except ValueError:
                skipped.add(i, "not 'timestamp value step'", line.decode("utf-8", "replace"))
                continue
            ts.append(int(m[1]) / 1000.0)
            vals.append(v)
            steps.append(int(m[3]))
            lines.append(i)
        if not vals:
            raise UnreadableFileError(path, f"no 'timestamp value step' line ({skipped.describe()})")
        df = pd.DataFrame({"raw_name": name, "value": np.array(vals, dtype="float64"),
                           "step": np.array(steps, dtype="int64"), "wall_time": np.array(ts, dtype="float64"),
                           "line": np.array(lines, dtype="int64")})
        ep = _epochs_of(run)
        notes = []
        if ep is not None:
            idx = np.searchsorted(ep[0], df["step"].to_numpy(dtype="float64"), side="right") - 1
            df["epoch"] = np.where(idx >= 0, ep[1][np.maximum(idx, 0)], np.nan)
            notes.append("epochs from the run's metrics/epoch (the epoch logged at or before each step)")
        return ReadResult(source=str(path), format=self.name, scalars=df, skipped=skipped, notes=notes)


@register
class MlflowParamReader(Reader):
    name = "mlflow-param"
    description = "MLflow file store parameter or tag: mlruns/<exp>/<run>/params/<name>, tags/<name>"
    is_config = True

    def sniff(self, head: bytes, path: Path) -> float:
        path = Path(path)
        if run_folder(path, "params") is None and run_folder(path, "tags") is None:
            return 0.0
        return 0.95 if len(head) < 64 * 1024 else 0.0

    def read(self, path: Path) -> ReadResult:
        path = Path(path)
        found = run_folder(path, "params")
        prefix = ""
        if found is None:
            found, prefix = run_folder(path, "tags"), "mlflow.tags."
        if found is None:
            raise UnreadableFileError(path, "not under an MLflow run's params/ or tags/ folder")
        text = path.read_bytes().decode("utf-8", "replace").strip()
        return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(),
                          config={prefix + found[1].replace("/", "."): text})


@register
class MlflowMetaReader(Reader):
    name = "mlflow-meta"
    description = "MLflow file store meta.yaml of an experiment or a run (name, status)"
    is_config = True

    def sniff(self, head: bytes, path: Path) -> float:
        path = Path(path)
        if path.name != "meta.yaml":
            return 0.0
        return 0.95 if (b"experiment_id:" in head and (b"run_id:" in head or b"artifact_location:" in head)) else 0.0

    def read(self, path: Path) -> ReadResult:
        from .config_file import load_yaml

        path = Path(path)
        doc, _, _ = load_yaml(path.read_bytes().decode("utf-8", "replace"))
        if not isinstance(doc, dict):
            raise UnreadableFileError(path, "an MLflow meta.yaml that is not a mapping")
        config = {}
        if "run_id" in doc:
            config["mlflow.run_name"] = doc.get("run_name")
            status = doc.get("status")
            config["mlflow.status"] = _STATUS.get(status, status) if isinstance(status, int) else status
            for k in ("start_time", "end_time"):
                if isinstance(doc.get(k), (int, float)):
                    config[f"mlflow.{k}"] = doc[k] / 1000.0
        else:
            config["mlflow.experiment"] = doc.get("name")
        return ReadResult(source=str(path), format=self.name, scalars=empty_scalars(),
                          config={k: v for k, v in config.items() if v is not None})
