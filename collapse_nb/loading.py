"""``load``: files or directories in, one :class:`~collapse_nb.run.Run` out."""
from __future__ import annotations

import codecs
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence, cast

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from . import progress
from .config import canonical_config, canonical_key, merge_configs
from .cache import ReadCache, resolve as resolve_cache
from .errors import (CollapseNBError, MissingPathError, NothingReadableError, SeveralRunsError,
                     UnknownFormatError, UnreadableFileError, printable_path)
from .ranks import describe as describe_ranks, one_rank, rank_from_path, ranks as ranks_of
from .repeats import drop_repeats
from .readers.base import ReadResult, Reader, get_reader, looks_binary, read_head, readers
from .run import Run
from .tables import SCALAR_DTYPES, bad_counters, detect_segments, normalise_raw

PathLike = str | os.PathLike


def formats() -> dict[str, str]:
    """The known format names, each with a one-line description."""
    return {name: r.description for name, r in sorted(readers().items())}


def sniff(path: PathLike) -> tuple[Reader | None, float]:
    """The reader most confident that it can read ``path`` (by content, then name), and its score."""
    path = Path(path)
    head = read_head(path)
    best, score = None, 0.0
    for reader in readers().values():
        try:
            s = float(reader.sniff(head, path))
        except Exception:  # a sniffer must never stop a load
            s = 0.0
        if s > score:
            best, score = reader, s
    return best, score


def _files_in(directory: Path, follow_symlinks: bool = False,
              ignored: list[dict[str, str]] | None = None) -> list[Path]:
    """The regular files under ``directory`` (hidden ones and ``__pycache__`` aside), sorted.

    Named pipes, sockets and devices are never opened (reading a FIFO blocks forever); a symbolic link
    whose target lies outside ``directory`` is not followed unless ``follow_symlinks``; a link that is
    broken or loops is skipped. Each of these is listed in ``ignored`` with the reason.
    """
    ignored = ignored if ignored is not None else []
    root = os.path.realpath(directory)
    out = []
    for here, dirs, files in os.walk(directory, followlinks=follow_symlinks):
        keep = []
        for d in sorted(dirs):
            if d.startswith(".") or d == "__pycache__":
                continue
            full = os.path.join(here, d)
            if os.path.islink(full) and not _inside(full, root):
                ignored.append({"source": _name(full), "reason": "a symbolic link to a folder outside the "
                                "directory given: not followed (pass follow_symlinks=True to follow it)"})
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if f.startswith("."):
                continue
            full = os.path.join(here, f)
            why = _not_a_file(full, root, follow_symlinks)
            if why:
                ignored.append({"source": _name(full), "reason": why})
            else:
                out.append(Path(full))
    return out


def _inside(path: str, root: str) -> bool:
    target = os.path.realpath(path)
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _not_a_file(path: str, root: str, follow_symlinks: bool) -> str:
    """Why ``path`` is not read as a file of the run, or ``""``."""
    try:
        if os.path.islink(path):
            if not os.path.exists(path):
                return "a broken symbolic link"
            if not follow_symlinks and not _inside(path, root):
                return ("a symbolic link to a file outside the directory given: not followed "
                        "(pass follow_symlinks=True to follow it)")
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be examined: {exc.strerror or exc}"
    if stat.S_ISREG(st.st_mode):
        return ""
    kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
    return f"{kind}: only regular files are read"


def _name(path: str) -> str:
    """A path as text that can always be printed and written (bytes that are not UTF-8 shown as escapes)."""
    return printable_path(path)


def _unrecognised(path: Path) -> str:
    """Why no reader recognises ``path``."""
    head = read_head(path)
    if not head.strip() and path.stat().st_size <= len(head):
        return "file is empty (only whitespace)" if head else "file is empty"
    if looks_binary(head):
        return "file holds binary data that no reader recognises"
    return "no reader recognises this content"


def _wide_encoding(head: bytes) -> str | None:
    """``utf-32``/``utf-16`` (with a byte-order mark), ``utf-16-le``/``-be`` (text whose every other byte is
    NUL: PowerShell's ``Tee-Object``, Windows services), else ``None``."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[:4096]
    if len(sample) >= 16:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.05 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.05 * len(odd):
            return "utf-16-be"
    return None


def _cr_only(head: bytes) -> bool:
    """Lines ended by a carriage return alone (classic Mac OS, some serial consoles): ``\r`` and no ``\n``."""
    return b"\r" in head and b"\n" not in head and not looks_binary(head)


def _read_converted(path: Path, fmt: str | None, encoding: str) -> ReadResult:
    """Read a UTF-16/32 text file, or one whose lines end in ``\r`` alone (``encoding="cr"``): converted to
    UTF-8 with ``\n`` line ends in a temporary file (streamed), read, and named as itself."""
    with tempfile.TemporaryDirectory(prefix="collapse_nb-") as tmp:
        utf8 = Path(tmp) / path.name
        with open(path, "rb") as src, open(utf8, "wb") as dst:
            if encoding == "cr":
                while block := src.read(1 << 20):
                    dst.write(block.replace(b"\r", b"\n"))
            else:
                decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
                while block := src.read(1 << 20):
                    dst.write(decoder.decode(block).encode("utf-8"))
                dst.write(decoder.decode(b"", final=True).encode("utf-8"))
        try:
            r = _read_one(utf8, fmt)
        except UnreadableFileError as exc:
            raise UnreadableFileError(path, exc.reason.replace(str(utf8), str(path))) from exc
        except UnknownFormatError as exc:
            raise UnknownFormatError(str(exc).replace(str(utf8), str(path))) from exc
    r.source = _name(str(path))
    _rank_from_name(r)
    r.notes = [n.replace(str(utf8), r.source) for n in r.notes]
    r.notes.append("lines end in a carriage return alone: read as lines" if encoding == "cr" else
                   f"text in {encoding.upper()}: converted to UTF-8 to be read")
    return r


DCP_HOWTO = ("a torch.distributed.checkpoint (DCP) shard: its tensors are described by the folder's pickled "
             ".metadata, which is never unpickled here; convert the folder to one file first, in an environment you "
             "trust: python -m torch.distributed.checkpoint.format_utils dcp_to_torch <folder> model.pt "
             "(then load model.pt)")


def _is_dcp_shard(path: Path) -> bool:
    return path.suffix == ".distcp"


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _read_file(path: Path, fmt: str | None, cache: ReadCache | None) -> ReadResult:
    """:func:`_read_one` through the ``cache``: a file unchanged since it was read is not read again."""
    progress.report("file", path=path, size=_size(path))
    key = cache.key(path, fmt) if cache is not None else None
    hit = cache.get(key) if cache is not None and key is not None else None
    if hit is not None and hit[0] == "read":
        return hit[1]
    r = _read_one(path, fmt)
    if cache is not None and key is not None:
        cache.put(key, ("read", r))
    return r


def _read_one(path: Path, fmt: str | None) -> ReadResult:
    if path.stat().st_size == 0:
        raise UnreadableFileError(path, "file is empty")
    if _is_dcp_shard(path):
        raise UnreadableFileError(path, DCP_HOWTO)
    head = read_head(path)
    encoding = _wide_encoding(head) or ("cr" if _cr_only(head) else None)
    if encoding is not None:
        return _read_converted(path, fmt, encoding)
    reader: Reader | None
    if fmt is not None:
        reader = get_reader(fmt)
    else:
        reader, score = sniff(path)
        if reader is None:
            why = _unrecognised(path)
            if why.startswith("file is empty"):
                raise UnreadableFileError(path, why)
            raise UnknownFormatError(f"{path}: {why}; pass format= one of: {', '.join(sorted(readers()))}")
    try:                    # every stage of reading the file: parsing, then the counters, then normalising
        r = reader.read(path)
        r.source = _name(r.source)          # a name that is not UTF-8 stays printable (and writable in a report)
        return _normalised(r)
    except CollapseNBError:
        raise
    except RecursionError as exc:
        raise UnreadableFileError(path, f"not readable as {reader.name}: nested too deeply") from exc
    except MemoryError as exc:
        raise UnreadableFileError(path, f"not readable as {reader.name}: it needs more memory than there is "
                                        f"(a record inflates beyond what can be held)") from exc
    except (UnicodeError, ValueError, KeyError, TypeError, IndexError, ArithmeticError, AttributeError,
            pd.errors.ParserError, OSError) as exc:
        raise UnreadableFileError(path, f"not readable as {reader.name}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - a reader's bug must still name the file, never escape raw
        raise UnreadableFileError(path, f"not readable as {reader.name} (a reader error, please report it): "
                                        f"{type(exc).__name__}: {exc}") from exc


def _normalised(r: ReadResult) -> ReadResult:
    """``r`` with its scalars in the contract's columns and dtypes (:func:`normalise_raw`), rows whose time
    counters are not usable (a step of ``inf`` or ``1.5``) dropped and counted in ``r.skipped``, and its
    segments found."""
    raw = r.scalars
    drop, why = bad_counters(raw)
    if drop.any():
        for reason, lines in why.items():
            lines = list(dict.fromkeys(lines))          # a line's values share its counter: count the line once
            for ln in lines[:r.skipped.max_examples]:
                r.skipped.add(ln, reason)
            if len(lines) > r.skipped.max_examples:
                r.skipped.add(lines[0], reason, n=len(lines) - r.skipped.max_examples)
        raw = raw[~drop].reset_index(drop=True)
    df = normalise_raw(raw, r.source)
    r.scalars = df
    _rank_from_name(r)
    df = r.scalars
    if df["segment"].isna().all():
        seg, found = detect_segments(df)
        df["segment"] = seg.to_numpy()
    else:
        df["segment"] = df["segment"].fillna(0)
        first_line = df.groupby("segment", observed=True)["line"].min()     # one pass, not one per segment
        found = [{"line": int(ln), "segment": int(s)} for s, ln in first_line.sort_index().items() if s > 0]
    r.scalars = df
    r.segments_found = found
    return r


def _rank_from_name(r: ReadResult) -> None:
    """Give every row of a file that says no rank the rank its name states (``rank_3.log``: see
    :func:`collapse_nb.ranks.rank_from_path`)."""
    df = r.scalars
    if not len(df) or "rank" not in df.columns or df["rank"].notna().any():
        return
    rank = rank_from_path(r.source)
    if rank is not None:
        df["rank"] = pd.arrays.IntegerArray(np.full(len(df), rank, dtype=np.int64), np.zeros(len(df), dtype=bool))


def _concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series([], dtype=d if d != "category" else "object").astype(d)
                             for c, d in SCALAR_DTYPES.items()})
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    cat_cols = [c for c, d in SCALAR_DTYPES.items() if d == "category"]
    out = pd.concat([f.drop(columns=cat_cols) for f in frames], ignore_index=True)
    for c in cat_cols:
        # categories as plain object-dtype strings everywhere, so that the union never trips on dtypes
        parts = [pd.Categorical.from_codes(f[c].cat.codes, categories=pd.Index(
            [str(x) for x in f[c].cat.categories], dtype=object)) for f in frames]
        out[c] = union_categoricals(parts, ignore_order=True)
    out["phase"] = out["phase"].cat.set_categories(["train", "val", "test"])
    return out[list(SCALAR_DTYPES)]


def load(path_or_paths: PathLike | Iterable[PathLike], format: str | None = None,
         follow_symlinks: bool = False, merge: bool = False, cache: bool | str | os.PathLike | None = None) -> Run:
    """Read training logs into a :class:`Run`.

    Parameters
    ----------
    path_or_paths
        A file, a directory (every recognisable file in it, recursively, merged;
        each row keeps its ``source``), or a list of them.
    format
        A format name from :func:`formats`, to skip sniffing. For a directory,
        only files that format's reader recognises are read.
    follow_symlinks
        In a directory, follow symbolic links whose target lies outside it (default: not followed,
        listed in ``meta["ignored"]``). Only regular files are ever read: named pipes, sockets and
        devices are listed in ``meta["ignored"]`` with the reason.
    merge
        A directory that holds several runs (the rules of :mod:`collapse_nb.discovery`: sibling
        folders each with their own logs) is refused with :class:`SeveralRunsError`, unless its runs
        are one resumed timeline (Lightning ``version_N`` folders whose steps continue each other),
        which is read as one run with the resume points noted. ``merge=True`` reads everything as one
        run anyway (``meta["runs_found"]`` names the runs).
    cache
        Reuse what each file gave when it was last read, if it has not changed since (:mod:`collapse_nb.cache`):
        ``None`` (default: on, unless ``COLLAPSE_NB_CACHE=0``), ``True``, ``False``, or a cache folder.
        ``meta["cache"]`` counts the hits and misses.

    Raises
    ------
    MissingPathError
        A path does not exist.
    UnknownFormatError
        ``format`` is not a known format, or a single file's content matches none.
    UnreadableFileError
        A file is empty, binary, or broken beyond reading; the message names it.
    NothingReadableError
        A directory holds no file any reader recognises.
    SeveralRunsError
        A directory holds several runs that are not one resumed timeline (and ``merge`` is false).
    """
    if format is not None:
        get_reader(format)  # validate before doing any work
    paths = [Path(path_or_paths)] if isinstance(path_or_paths, (str, os.PathLike)) \
        else [Path(p) for p in path_or_paths]
    if not paths:
        raise NothingReadableError("no path given")
    results: list[ReadResult] = []
    ignored: list[dict[str, str]] = []
    store = resolve_cache(cache)
    for p in paths:
        if not p.exists():
            raise MissingPathError(p)
        if not p.is_dir():
            why = _not_a_file(str(p), os.path.realpath(p), True)
            if why:
                raise UnreadableFileError(p, why)
            results.append(_read_file(p, format, store))
            continue
        found = [] if merge else _runs_in(p)
        if len(found) > 1 and not all(_VERSION_DIR.match(r.path.name) for r in found):
            raise SeveralRunsError(p, [r.name for r in found])         # before reading them all
        results.extend(read_folder_files(p, _files_in(p, follow_symlinks, ignored), format, ignored, store))
    run = assemble(results, ignored)
    if store is not None:
        run.meta["cache"] = store.stats()
    for p in paths:
        if p.is_dir():
            _note_several_runs(run, p, merge)
    return run


def _runs_in(folder: Path) -> list:
    from .discovery import find_runs
    try:
        return find_runs(folder)
    except OSError:
        return []


_VERSION_DIR = re.compile(r"^version_\d+$")


def _note_several_runs(run: Run, folder: Path, merge: bool) -> None:
    """Refuse ``folder`` when it holds several runs (the rules of :mod:`collapse_nb.discovery`) that are not one
    resumed timeline, unless ``merge``; say so in a note when they were read as one."""
    from .runs import resumed_chain

    found = _runs_in(folder)
    if len(found) <= 1:
        return
    names = [r.name for r in found]
    chain = resumed_chain(run, found)
    if chain is None and not merge:
        raise SeveralRunsError(folder, names)
    run.meta["runs_found"] = names
    if chain is not None:
        run.meta["notes"].append(f"{_name(str(folder))} holds {len(names)} Lightning versions whose steps continue "
                                 f"each other ({', '.join(chain)}): read as one resumed run")
    else:
        run.meta["notes"].append(f"{_name(str(folder))} holds {len(names)} runs ({', '.join(names[:6])}"
                                 f"{', ...' if len(names) > 6 else ''}): they were read as one here (merge=True); "
                                 f"collapse_nb.load_runs (or collapse-nb triage) reads them apart")


def read_folder_files(folder: Path, files: Iterable[Path], format: str | None,
                      ignored: list[dict[str, str]], cache: ReadCache | None = None) -> list[ReadResult]:
    """Read the files of one folder (or one run): what no reader recognises, or what cannot be read, goes to
    ``ignored`` with the reason; raises :class:`NothingReadableError` when no training log remains. With a
    ``cache`` (:mod:`collapse_nb.cache`), a file read before and unchanged is neither sniffed nor read."""
    found: list[ReadResult] = []
    files = list(files)
    progress.report("files", n=len(files))
    for f in files:
        progress.report("file", path=f, size=_size(f))
        key = cache.key(f, format) if cache is not None else None
        outcome = cache.get(key) if cache is not None and key is not None else None
        if outcome is None:
            outcome, keep = _examine(f, format)
            if keep and cache is not None and key is not None:
                cache.put(key, outcome)
        kind, value = outcome
        if kind == "read":
            found.append(cast(ReadResult, value))       # _examine's ("read", ReadResult)
        elif kind == "ignored":
            ignored.append({"source": _name(str(f)), "reason": str(value)})
    if not any(not get_reader(r.format).is_config for r in found):
        detail = "; ".join([f"only configuration: {', '.join(r.source for r in found)}"] * bool(found) +
                           [f"{i['source']}: {i['reason']}" for i in ignored[:10]]) or "it is empty"
        raise NothingReadableError(f"{folder}: no readable training log in this directory ({detail})")
    return found


def _examine(f: Path, format: str | None) -> tuple[tuple[str, object], bool]:
    """What one file of a folder gives: ``("read", ReadResult)``, ``("ignored", reason)`` or ``("skip", None)`` (not
    of the ``format`` asked for); and whether that is worth caching (not a passing failure: a file that could not
    be opened, memory that ran out)."""
    try:
        head = read_head(f)
        wide = _wide_encoding(head) is not None or _cr_only(head)   # sniffed once converted, in _read_one
        if wide:
            pass
        elif format is not None:
            if get_reader(format).sniff(head, f) <= 0:
                return ("skip", None), True
        elif sniff(f)[0] is None:
            return ("ignored", _unrecognised(f)), True
        return ("read", _read_one(f, format)), True
    except CollapseNBError as exc:
        passing = isinstance(exc.__cause__, (MemoryError, OSError))
        return ("ignored", _name(str(getattr(exc, "reason", None) or exc))), not passing
    except OSError as exc:
        return ("ignored", f"cannot read: {exc.strerror or exc}"), False


def read_database_run(db: Path, run_id: str | None) -> ReadResult:
    """One MLflow run of an SQLite store (:mod:`collapse_nb.readers.mlflow_sqlite`; ``run_id`` None: its only run),
    read and normalised as :func:`_read_one` reads a file."""
    from .readers.mlflow_sqlite import read_run

    r = read_run(db, run_id)
    r.source = _name(r.source)
    return _normalised(r)


def assemble(results: list[ReadResult], ignored: list[dict[str, str]]) -> Run:
    """The :class:`Run` of files already read (by :func:`_read_one` or :func:`read_folder_files`)."""
    frames: list[pd.DataFrame] = []
    files: list[dict[str, Any]] = []
    restarts: list[dict[str, Any]] = []
    notes: list[str] = []
    config_parts, config_raw = [], {}
    extra: dict[str, list[pd.DataFrame]] = {}
    for r in results:
        df, found = r.scalars, r.segments_found          # normalised by _read_one, inside its error handling
        r.scalars = r.scalars.iloc[:0]
        if r.segment_starts:     # the reader knows where each restarted run begins (its banner, not its first value)
            found = [{"line": int(ln), "segment": i + 1} for i, ln in enumerate(r.segment_starts)]
        restarts.extend({"source": r.source, **x} for x in found)
        replaced = r.skipped.replaced_note()
        if replaced and not any("UTF-8" in n for n in r.notes):
            r.notes.append(replaced)
        frames.append(df)
        files.append({"source": r.source, "format": r.format, "rows": len(df), "skipped": r.skipped.as_dict(),
                      "skipped_text": r.skipped.describe(), "notes": list(r.notes)})
        notes.extend(f"{r.source}: {n}" for n in r.notes)
        if r.config:
            config_raw[r.source] = dict(r.config)
            config_parts.append((r.source, canonical_config(r.config)))
        for name, t in r.extra.items():
            extra.setdefault(name, []).append(t.assign(source=r.source))
    frames, repeats = drop_repeats(frames, [r.format for r in results])
    for ch in repeats:
        f, of = files[ch["index"]], files[ch["of"]]["source"]
        text = (f"repeats the history in {of}: all {ch['rows']} of its values are there, so it is read once"
                if ch["dropped"] == "all" else
                f"{ch['repeated']} of its {ch['rows']} values repeat {of} and are read once; the other "
                f"{ch['rows'] - ch['repeated']} are kept")
        f["notes"].append(text)
        f["repeats"] = {"of": of, "values": ch["repeated"], "kept": len(frames[ch["index"]])}
        notes.append(f"{f['source']}: {text}")
    resumes = _resumes(frames, [r.format for r in results], [f["source"] for f in files])
    notes.extend(f"{r['source']}: continues {r['after']} from step {r['step']:,} (a resumed run: one timeline)"
                 for r in resumes)
    # config files (hparams.yaml, config.yaml) state intent: they win over values parsed from log text
    config_parts.sort(key=lambda sc: 0 if get_reader(_format_of(results, sc[0])).is_config else 1)
    config, where, conflicts = merge_configs(config_parts)
    at = {r.source: r.config_where for r in results if r.config_where}
    config_lines = {}                               # where in its file, when the reader knows: "line 12 ('Epoch 1/10')"
    for key, src in where.items():
        raw_keys = [k for k in at.get(src, {}) if canonical_key(k) == key]
        if raw_keys:
            config_lines[key] = at[src][raw_keys[0]]
    scalars = _concat(frames)
    notes.extend(_disagreeing_files(one_rank(scalars)))      # ranks' local values differ by design: one rank each
    found_ranks = ranks_of(scalars)
    if len(found_ranks) > 1:
        notes.append(f"a distributed run: {describe_ranks(scalars)} write the logs; run.scalars keeps every rank's "
                     f"rows (column 'rank'), the tables and checks read one rank per series (the lowest that logs "
                     f"it), the rank_desync check compares them")
    meta = {
        "files": files,
        "formats": sorted({r.format for r in results}),
        "config": config,
        "config_sources": where,
        "config_lines": config_lines,
        "config_conflicts": conflicts,
        "config_raw": config_raw,
        "restarts": restarts,
        "resumes": resumes,
        "ranks": found_ranks,
        "ignored": ignored,
        "notes": notes,
    }
    return Run(scalars=scalars, meta=meta, extra={k: pd.concat(v, ignore_index=True) for k, v in extra.items()})


def _disagreeing_files(scalars: pd.DataFrame, limit: int = 20) -> list[str]:
    """Notes for series that two files log at the same steps with different values: they are never merged
    (a curve is read from one file at a time), and the user is told that the files disagree."""
    if scalars.empty or len(scalars["source"].cat.categories) < 2:
        return []
    s = scalars[scalars["param"].isna() & scalars["step"].notna()]
    if s.empty:
        return []
    per = s.groupby(["name", "phase"], observed=True, dropna=False)["source"].nunique()
    out = []
    for name, phase in per[per > 1].head(limit).index:
        rows = s[(s["name"] == name) & ((s["phase"] == phase) if phase == phase and phase is not None
                                        else s["phase"].isna())]
        wide = rows.groupby(["step", "source"], observed=True)["value"].mean().unstack("source")
        both = wide.dropna()
        if both.shape[1] < 2 or both.empty:
            continue
        ref = both.iloc[:, 0].to_numpy(dtype="float64")
        for col in both.columns[1:]:
            other = both[col].to_numpy(dtype="float64")
            differ = ~np.isclose(ref, other, rtol=1e-5, atol=1e-12, equal_nan=True)
            if differ.any():
                out.append(f"{col}: its '{name}'{f' ({phase})' if isinstance(phase, str) else ''} differs from "
                           f"{both.columns[0]}'s at {int(differ.sum())} of {len(differ)} shared steps: two series "
                           f"of one name, never merged (each curve is read from one file)")
    return out


def _resumes(frames: list[pd.DataFrame], fmts: list[str], sources: list[str]) -> list[dict]:
    """Files of one format whose steps continue each other: ``{"source", "after", "step"}`` per resumed file."""
    spans: dict[str, list[tuple[float, float, str]]] = {}
    for df, fmt, src in zip(frames, fmts, sources):
        if len(df) and "step" in df and df["step"].notna().any():
            st = pd.to_numeric(df["step"], errors="coerce").dropna()
            spans.setdefault(fmt, []).append((float(st.min()), float(st.max()), src))
    out = []
    for sp in spans.values():
        sp.sort()
        for (lo0, hi0, s0), (lo1, _hi1, s1) in zip(sp, sp[1:]):
            if lo1 >= hi0 and lo1 > lo0:
                out.append({"source": s1, "after": s0, "step": int(lo1)})
    return out


def _format_of(results: list[ReadResult], source: str) -> str:
    return next(r.format for r in results if r.source == source)
