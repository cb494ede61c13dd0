"""``report(run)``: the failure report of a run, as Markdown and as one self-contained HTML page.

>>> from collapse_nb.report import report
>>> rep = report(run)                                  # doctest: +SKIP
>>> print(rep.verdict); rep.findings; rep.root_causes  # doctest: +SKIP
>>> rep.save("out/")             # out/collapse_nb_report.html and .md   # doctest: +SKIP
>>> report("runs/failed/", "failed.html")              # load, diagnose, write   # doctest: +SKIP

The report follows the seed report's shape: what was analysed, a verdict naming the numbers,
the findings (critical / warning / ok, most severe first), the suspects ranked with their parts of the
failure (adding up to 100%), each
problem with its evidence and actions, the actions deduplicated, what's NOT wrong, healthy
bands next to this run's numbers, the plots, and an appendix of what was read. See
``docs/report.md``.

Layout: :mod:`.document` builds the format-neutral :class:`~.document.Document`;
:mod:`.figures` draws the plots off-screen; :mod:`.markdown` and :mod:`.html` render; the
``collapse-nb report`` and ``collapse-nb diagnose`` commands are in :mod:`collapse_nb.cli.report`.
"""
from __future__ import annotations

import base64
import html as _html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

import pandas as pd

from ..diagnose import diagnose, root_causes
from ..findings import Finding, is_problem
from .document import Document, build_document
from .figures import RenderedFigure, render_figures
from .html import render_html
from .markdown import render_markdown

if TYPE_CHECKING:
    from ..run import Run

#: File name (without suffix) used when a directory is given.
DEFAULT_STEM = "collapse_nb_report"
FORMATS = ("md", "html", "both")
_SUFFIX_KIND = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}


@dataclass(eq=False)
class Report:
    """A run's report. ``markdown`` and ``html`` are the rendered texts; ``save(path)`` writes them.

    Attributes: ``run``, ``findings`` (problems first), ``root_causes`` (ranked, with reasoning:
    :func:`collapse_nb.diagnose.root_causes`), ``document`` (the format-neutral sections),
    ``figures`` (drawn, or the reason why not), ``timings`` (seconds per stage).
    """

    run: Any
    findings: list[Finding]
    root_causes: pd.DataFrame
    document: Document
    figures: list[RenderedFigure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _html: str | None = field(default=None, repr=False)
    _markdown: str | None = field(default=None, repr=False)

    @property
    def verdict(self) -> str:
        """The verdict paragraph (status word first)."""
        return f"{self.document.status.capitalize()}. {self.document.verdict}"

    @property
    def status(self) -> str:
        """``broken`` (a critical finding), ``suspicious`` (warnings), ``healthy``, ``inconclusive`` (no problem,
        but most checks lacked data), ``not assessed`` (no training objective was recognised, whatever else ran)
        or ``not judged`` (no check could run)."""
        return self.document.status

    @property
    def html(self) -> str:
        """The self-contained HTML page (plots embedded as base64 PNG)."""
        if self._html is None:
            t = time.perf_counter()
            self._html = render_html(self.document)
            self.timings["render_html"] = time.perf_counter() - t
        return self._html

    @property
    def markdown(self) -> str:
        """The Markdown text, without images (they are in the HTML; ``save()`` writes them as PNG files
        next to a Markdown file and links them)."""
        if self._markdown is None:
            t = time.perf_counter()
            self._markdown = render_markdown(self.document)
            self.timings["render_markdown"] = time.perf_counter() - t
        return self._markdown

    def to_markdown(self, figure_dir: str | None = None) -> str:
        """Markdown with image links to ``<figure_dir>/<plot>.png`` (``None``: no images)."""
        return self.markdown if figure_dir is None else render_markdown(self.document, figure_dir=figure_dir)

    def save(self, path: str | os.PathLike, format: str | None = None) -> list[Path]:
        """Write the report; returns the files written (the documents, then any figure PNGs).

        ``path``: a file ending in ``.html`` or ``.md`` (that format), or a directory (writes
        ``collapse_nb_report.html`` and ``.md`` in it), or a name without a suffix (writes
        ``<name>.html`` and ``<name>.md``). ``format`` (``"md"``, ``"html"`` or ``"both"``) overrides
        what the path says. A Markdown file gets its plots as PNG files in ``<name>_figures/``.
        """
        t = time.perf_counter()
        written: list[Path] = []
        for target, kind in resolve_targets(path, format):
            target.parent.mkdir(parents=True, exist_ok=True)
            if kind == "html":
                target.write_text(self.html, encoding="utf-8")
                written.append(target)
                continue
            drawn = [f for f in self.figures if f.png_base64]
            fig_dir = target.with_name(f"{target.stem}_figures") if drawn else None
            text = self.to_markdown(fig_dir.name if fig_dir is not None else None)
            target.write_text(text, encoding="utf-8")
            written.append(target)
            if fig_dir is not None:
                fig_dir.mkdir(exist_ok=True)
                for f in drawn:
                    p = fig_dir / f"{f.key}.png"
                    p.write_bytes(base64.b64decode(f.png_base64 or ""))       # (drawn: all have one)
                    written.append(p)
        self.timings["write"] = time.perf_counter() - t
        return written

    def _repr_html_(self) -> str:
        """In a notebook: the page in a sandboxed iframe (its styles cannot leak into the notebook)."""
        return (f'<iframe sandbox="" style="width:100%;height:900px;border:1px solid #ccc" '
                f'srcdoc="{_html.escape(self.html, quote=True)}"></iframe>')

    def __repr__(self) -> str:
        probs = [f for f in self.findings if is_problem(f)]
        return (f"<Report {self.document.title!r}: {self.status}, {len(probs)} problem(s), "
                f"{len(self.findings)} finding(s), {sum(1 for f in self.figures if f.png_base64)} plot(s)>")


def _check_format(format: str | None) -> str | None:
    if format is None:
        return None
    f = {"markdown": "md", "htm": "html"}.get(str(format).lower(), str(format).lower())
    if f not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (or None: from the path's suffix); "
                         f"got {format!r}")
    return f


def resolve_targets(path: str | os.PathLike, format: str | None = None) -> list[tuple[Path, str]]:
    """``[(file, "md" | "html"), ...]`` that :meth:`Report.save` writes for ``path`` and ``format``."""
    fmt = _check_format(format)
    raw = os.fspath(path)
    p = Path(raw)
    if p.is_dir() or raw.endswith(("/", os.sep)):
        stem, kind = p / DEFAULT_STEM, fmt or "both"
    else:
        suffix_kind = _SUFFIX_KIND.get(p.suffix.lower())
        if suffix_kind is not None:
            if fmt is not None and fmt != "both" and fmt != suffix_kind:
                raise ValueError(f"format={format!r} contradicts the path's suffix {p.suffix!r} ({raw}); give a "
                                 f"path ending in .{fmt}, or leave format out")
            if fmt is None or fmt == suffix_kind:
                return [(p, suffix_kind)]
            stem, kind = p.with_suffix(""), "both"
        elif p.suffix and fmt is None:
            raise ValueError(f"cannot tell the report format from {raw!r}: give a path ending in .html or .md, a "
                             f"directory, or a name without a suffix (both formats), or pass format="
                             f"{'/'.join(map(repr, FORMATS))}")
        else:
            stem, kind = p, fmt or "both"
    kinds = ["html", "md"] if kind == "both" else [kind]
    return [(stem.with_name(f"{stem.name}.{k}"), k) for k in kinds]


def _version() -> str:
    import sys
    v = getattr(sys.modules.get("collapse_nb"), "__version__", "")
    return f"collapse_nb {v}".strip()


def _has_tables(obj: object) -> TypeGuard[Run]:
    """A Run (anything with its tables: the package reads runs by their attributes), not a path to load."""
    return hasattr(obj, "scalars")


def report(run: Run | str | os.PathLike | list | tuple, path: str | os.PathLike | None = None, *,
           findings: list[Finding] | None = None,
           format: str | None = None, plots: bool = True, comparison: Any = None, **thresholds: Any) -> Report:
    """The failure report of ``run`` (a :class:`~collapse_nb.Run`, or a path to load).

    ``path``: also write it there (see :meth:`Report.save`; ``format`` overrides the suffix).
    ``findings``: already computed findings (else :func:`collapse_nb.diagnose.diagnose` runs with
    ``thresholds``, e.g. ``variance_collapse__critical_ratio=0.05``). ``plots=False`` leaves the
    plots out (faster; no matplotlib needed). ``comparison``: a :class:`collapse_nb.compare.Comparison` of
    this run with a healthy one (:func:`collapse_nb.compare`, :meth:`collapse_nb.Runs.compare`): the report
    gets a section "Compared with <reference>".
    """
    _check_format(format)
    if format is not None and path is None:
        raise ValueError("format= needs a path to write to (report(run, path, format=...)); the Report's .markdown "
                         "and .html hold both formats")
    if findings is not None and thresholds:
        raise ValueError(f"give findings= or thresholds, not both: the findings were already computed "
                         f"(thresholds given: {', '.join(sorted(thresholds))})")
    if path is not None:
        resolve_targets(path, format)          # a bad path fails before the work, not after
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if not _has_tables(run):
        if not isinstance(run, (str, os.PathLike, list, tuple)):
            raise TypeError(f"report() needs a collapse_nb Run or a path to load; got {type(run).__name__}")
        from ..loading import load
        run = load(run)
        timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    if findings is None:
        findings = diagnose(run, **thresholds)
    else:
        findings = list(findings)
        bad = [type(f).__name__ for f in findings if not isinstance(f, Finding)]
        if bad:
            raise TypeError(f"findings must be Finding objects (from collapse_nb.diagnose); got {', '.join(bad[:3])}")
    causes = root_causes(findings)
    timings["diagnose"] = time.perf_counter() - t
    t = time.perf_counter()
    figures = render_figures(run, findings) if plots else []
    timings["plots"] = time.perf_counter() - t
    t = time.perf_counter()
    doc = build_document(run, findings, causes, figures, generator=_version(), comparison=comparison)
    timings["document"] = time.perf_counter() - t
    rep = Report(run=run, findings=findings, root_causes=causes, document=doc, figures=figures, timings=timings)
    if path is not None:
        rep.save(path, format)
    return rep


__all__ = ["report", "Report", "resolve_targets", "DEFAULT_STEM"]
