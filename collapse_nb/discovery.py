"""Which folders under a path are runs: the discovery rules of :func:`collapse_nb.load_runs`.

1. A folder whose own files (not those of its subfolders) include a log or metrics file any reader
   recognises is a **run**; its files are read together. So is a folder whose part-named subfolders
   (rule 2) hold the logs (MLflow's ``<run>/metrics/``). READMEs, licences, Markdown and environment
   files are not logs.
2. Inside a run, subfolders that hold a part of it stay part of it: checkpoints (``checkpoint-*``,
   ``checkpoints``, ``ckpt*``, ``weights``), TensorBoard folders (``tb``, ``tensorboard``, ``events``,
   ``logs``; and the folders a TensorBoard writer adds beside its event file, which hold event files only:
   ``add_scalars``' per-key folders ``loss_train/`` or ``loss/train/``, ``add_hparams``' timestamp folder), W&B's
   ``files``/``logs``/``tmp``, MLflow's
   ``metrics``/``params``/``tags``/``artifacts`` (everything below a part is part too: ``metrics/train/``),
   and any subfolder that holds no log of its own (only checkpoints or configuration).
3. A subfolder of a run that holds logs of its own and is not such a part is a run of its own
   (``lightning_logs/version_1`` beside ``version_0``).
4. A folder with no log of its own is a container: its subfolders are looked at the same way. Its
   configuration files (a sweep's ``config.yaml``, MLflow's experiment ``meta.yaml``) are not a run; a
   folder with no subfolder that holds only checkpoints is one (its weights are judged).
5. Only regular files count; hidden files and folders, ``__pycache__`` and symbolic links to folders
   are skipped (``wandb/latest-run`` points at a run listed already).
6. An MLflow SQLite store (``mlflow.db``, in any folder looked at, or the root itself) holds runs of its own:
   each MLflow run in it is a run, named ``<experiment>/<run name>`` (``<experiment>/<run id>`` where two share
   a name) after the database's folder relative to the root, and after the database's file name where a folder
   holds several databases. The database is never a log of the folder around it. An SQLite file that is not an
   MLflow store is not a run; one that cannot be read is a run that fails (its reason in ``Runs.failed``).

A run is named by its path relative to the root (``version_1``, ``mlruns/4595.../d4bf...``); the root
itself, when it is a run, is named ``.``.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

#: Subfolder names that hold a part of the run around them (rule 2).
PART_NAMES = ("checkpoint-*", "checkpoints", "ckpt*", "weights", "tb", "tensorboard", "events", "logs",
              "files", "tmp", "metrics", "params", "tags", "artifacts", "plots", "samples", "images", "web")


@dataclass
class RunFolder:
    """One run found under a root: its folder and name (relative to the root); for a run of an MLflow SQLite
    store, ``db`` is the database and ``db_run`` the MLflow run id (None: the database's only run)."""

    name: str
    path: Path
    #: Folders merged into it: its parts (checkpoints, tb/, ...).
    parts: list[Path] = field(default_factory=list)
    db: Path | None = None
    db_run: str | None = None

    @property
    def files(self) -> list[Path]:
        """The run's files: its folder's own and those of its parts (never those of a run inside it, nor a
        database of runs: rule 6)."""
        if self.db is not None:
            return [self.db]
        return [f for folder in [self.path, *self.parts] for f in _own_files(folder) if not _is_database(f)] \
            if self.path.is_dir() else [self.path]


def _own_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_file(follow_symlinks=False)]


def _subfolders(folder: Path) -> list[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            and e.name != "__pycache__"]


def _kind(path: Path) -> str | None:
    """``log`` (a metrics or log file), ``other`` (a checkpoint or configuration a reader knows) or None."""
    from .loading import sniff

    try:
        reader, _ = sniff(path)
    except OSError:
        return None
    if reader is None or reader.name == "wandb-debug-log":      # wandb's own logs are not a run's
        return None
    if reader.name == "mlflow-sqlite":                          # runs of its own (rule 6), never a folder's log
        return "database"
    if reader.name in ("torch-checkpoint", "safetensors"):
        return "checkpoint"
    if reader.is_config:
        return "other"
    return "log"


#: Files that are documentation or environment records, never a run's log (they read as prose with numbers).
_NOT_LOGS = ("readme*", "license*", "changelog*", "*.md", "*.rst", "requirements*.txt", "conda-environment.yaml",
             "environment.yml", "environment.yaml")


def _has_log(folder: Path) -> bool:
    return any(not any(fnmatch.fnmatch(f.name.lower(), pat) for pat in _NOT_LOGS) and _kind(f) == "log"
               for f in _own_files(folder))


def _parts_hold_logs(folder: Path) -> bool:
    """Whether the part-named subfolders of ``folder`` hold a log anywhere (MLflow's ``metrics/``, a folder
    with only ``tb/``): such a folder is a run though it holds no log of its own."""
    for sub in _subfolders(folder):
        if _is_part(sub):
            for here, dirs, _ in os.walk(sub):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                if _has_log(Path(here)):
                    return True
    return False


def _is_part(sub: Path) -> bool:
    return any(fnmatch.fnmatch(sub.name, pat) for pat in PART_NAMES)


def _is_database(path: Path) -> bool:
    from .readers.mlflow_sqlite import SQLITE_MAGIC, is_sqlite

    try:
        with open(path, "rb") as f:
            return is_sqlite(f.read(len(SQLITE_MAGIC)))
    except OSError:
        return False


_TB_EVENTS = "events.out.tfevents.*"


def _tb_writer_folder(folder: Path, owner: RunFolder) -> bool:
    """Whether ``folder`` is one a TensorBoard writer of ``owner`` made beside its own event file: its logs are all
    event files and ``owner``'s folder holds event files too (``add_scalars`` writes ``loss_train/`` (torch) or
    ``loss/train/`` (tensorboardX), ``add_hparams`` a folder named by the time)."""
    logs = [f for f in _own_files(folder) if _kind(f) == "log"]
    if not logs or not all(fnmatch.fnmatch(f.name, _TB_EVENTS) for f in logs):
        return False
    return any(fnmatch.fnmatch(f.name, _TB_EVENTS) for d in [owner.path, *owner.parts] for f in _own_files(d))


def _db_runs(db: Path, prefix: str) -> list[RunFolder]:
    """The runs of the MLflow SQLite store ``db`` (rule 6), each named ``prefix`` + ``<experiment>/<run>``."""
    from .errors import CollapseNBError
    from .readers.mlflow_sqlite import NotAnMlflowStoreError, list_runs

    try:
        found = list_runs(db)
    except NotAnMlflowStoreError:
        return []
    except CollapseNBError:                  # corrupt or cut short: a run that fails, with the reason
        name = prefix.rstrip("/") if prefix.endswith(db.name + "/") else prefix + db.name
        return [RunFolder(name, db, db=db)]
    counts: dict[str, int] = {}
    for r in found:
        counts[r.name] = counts.get(r.name, 0) + 1
    return [RunFolder(prefix + (r.name if counts[r.name] == 1 else f"{r.experiment}/{r.run_id}"), db, db=db,
                      db_run=r.run_id) for r in found]


def find_runs(root: str | os.PathLike) -> list[RunFolder]:
    """The runs under ``root`` by the rules of the module docstring, in path order."""
    root = Path(root)
    if root.is_file():
        found = _db_runs(root, "") if _is_database(root) else []
        return sorted(found, key=lambda r: r.name) or [RunFolder(".", root)]
    runs: list[RunFolder] = []

    def visit(folder: Path, owner: RunFolder | None, in_part: bool = False) -> None:
        dbs = [f for f in _own_files(folder) if _is_database(f)]
        for db in dbs:                                   # a database's runs (rule 6), wherever it lies
            rel = folder.relative_to(root).as_posix() + "/" if folder != root else ""
            runs.extend(_db_runs(db, rel + (db.name + "/" if len(dbs) > 1 else "")))
        own_log = _has_log(folder)
        if owner is not None and (in_part or _is_part(folder) or not own_log or _tb_writer_folder(folder, owner)):
            owner.parts.append(folder)                   # part of the run above it (rule 2), all the way down
            for sub in _subfolders(folder):
                visit(sub, owner, in_part=in_part or _is_part(folder))
            return
        if own_log or _parts_hold_logs(folder):          # a run (rules 1 and 3)
            rel = folder.relative_to(root).as_posix() if folder != root else "."
            run = RunFolder(rel, folder)
            runs.append(run)
            for sub in _subfolders(folder):
                visit(sub, run)
            return
        if not _subfolders(folder) and any(_kind(f) == "checkpoint" for f in _own_files(folder)):
            runs.append(RunFolder(folder.relative_to(root).as_posix() if folder != root else ".", folder))
            return                                       # a checkpoint alone is a run too (its weights judged)
        for sub in _subfolders(folder):                  # a container (rule 4)
            visit(sub, None)

    visit(root, None)
    return sorted(runs, key=lambda r: r.name)


__all__ = ["RunFolder", "find_runs", "PART_NAMES"]
