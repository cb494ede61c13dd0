"""The report as a format-neutral document: sections of paragraphs, lists, tables and figures.

:func:`build_document` turns a run, its findings, their ranked root causes and the rendered
figures into a :class:`Document`; :mod:`.markdown` and :mod:`.html` only lay it out. Every
text here is *plain text* (log text included, unescaped): escaping is the renderers' job.

Sections, in order (their ``id``): ``run`` (what was analysed), ``verdict``, ``findings`` (the
status table: broken / suspicious / working, notes apart), ``suspects`` (root causes ranked,
with the reasoning), ``problems`` (each problem finding with its summary, evidence and actions),
``actions`` (deduplicated, most useful first), ``not-wrong`` (what works), ``healthy``
(healthy bands from the checks' thresholds next to this run's numbers), ``plots`` and
``appendix`` (files, lines not understood, notes, configuration, thresholds).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np
import pandas as pd

from ..checks import DEFAULT_CHECKS
from ..checks._base import fmt
from ..diagnose import EXPLAINS, SYMPTOMS, rule_key
from ..findings import CHECK_FAILED, NOT_CHECKED, Finding, is_problem

#: Finding severity -> the status word a reader sees.
STATUS = {"critical": "broken", "warning": "suspicious", "ok": "working", "info": "info"}
#: Evidence tables show at most this many rows, then "... N more rows".
EVIDENCE_ROWS = 12
#: Lines-not-understood examples listed per file in the appendix.
SKIPPED_ROWS = 20
#: Longest cell text before it is cut with "…".
CELL_CHARS = 200

#: Symptom codes in words (for the verdict and the suspects).
SYMPTOM_WORDS = {code: words for c in DEFAULT_CHECKS for code, words in c.symptom_words.items()}


# ----------------------------------------------------------------------------- the model

@dataclass
class Badge:
    """A status word shown as a coloured badge (HTML) or a marked word (Markdown)."""

    status: str     # broken / suspicious / working / info / not checked / check failed / healthy / ...


Cell = Union[str, Badge]


@dataclass
class Paragraph:
    text: str
    lead: str = ""          # shown bold before the text


@dataclass
class BulletList:
    items: list[str]
    ordered: bool = False
    leads: list[str] = field(default_factory=list)     # optional bold lead per item


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    more_rows: int = 0          # rows left out ("... N more rows")
    caption: str = ""


@dataclass
class KeyValues:
    items: list[tuple[str, str]]


@dataclass
class FigureBlock:
    key: str
    title: str
    caption: str
    png_base64: str


@dataclass
class Note:
    """A muted one-line remark (a plot left out, a table trimmed)."""

    text: str


@dataclass
class Subsection:
    title: str
    blocks: list[Any]
    anchor: str = ""
    badge: str = ""


Block = Union[Paragraph, BulletList, Table, KeyValues, FigureBlock, Note, Subsection]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any]


@dataclass
class Document:
    title: str
    status: str                 # broken / suspicious / healthy / inconclusive / not assessed / not judged
    verdict: str
    sections: list[Section]
    generator: str = ""

    def section(self, id: str) -> Section:
        for s in self.sections:
            if s.id == id:
                return s
        raise KeyError(f"no section {id!r}; sections: {', '.join(s.id for s in self.sections)}")

    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]


# ----------------------------------------------------------------------------- small helpers

def status_of(f: Finding) -> str:
    if f.code == NOT_CHECKED:
        return "not checked"
    if f.code == CHECK_FAILED:
        return "check failed"
    return STATUS[f.severity]


def cell_text(v: Any, digits: int = 4) -> str:
    """One table cell as text: numbers with ``digits`` significant digits, missing values empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return fmt(int(v))
    if isinstance(v, (float, np.floating)):
        return fmt(float(v), digits) if not math.isnan(float(v)) else ""
    if isinstance(v, (list, tuple, set)):
        return ", ".join(cell_text(x) for x in v)
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return cut(str(v))


def cut(text: str, n: int = CELL_CHARS) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def frame_table(df: pd.DataFrame, max_rows: int = EVIDENCE_ROWS, caption: str = "",
                fold_constant: bool = False) -> Table:
    """A DataFrame as a :class:`Table` of at most ``max_rows`` rows (the rest counted in ``more_rows``).

    ``fold_constant``: in a wide table (5+ columns, 3+ rows), a column with the same value in every row
    of text (not numbers) is left out and named in the caption instead (``all rows: source = grads``).
    """
    if df is None or df.empty:
        return Table(columns=[], rows=[], caption=caption)
    if fold_constant and df.shape[1] >= 5 and len(df) >= 3:
        same = [c for c in df.columns if df[c].astype(object).nunique(dropna=False) == 1
                and all(isinstance(v, str) for v in df[c].head(1))]
        same = same[: df.shape[1] - 2]
        if same:
            text = ", ".join(f"{c} = {cell_text(df[c].iloc[0]) or 'empty'}" for c in same)
            caption = f"{caption}; all rows: {text}" if caption else f"All rows: {text}"
            df = df.drop(columns=same)
    shown = df.head(max_rows)
    rows = [[cell_text(v) for v in r] for r in shown.astype(object).itertuples(index=False, name=None)]
    return Table(columns=[str(c) for c in df.columns], rows=rows, more_rows=max(0, len(df) - len(shown)),
                 caption=caption)


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _first_upper(text: str) -> str:
    """Upper-case the first character only (``str.capitalize`` would lower-case the rest: names, units)."""
    return text[:1].upper() + text[1:]


def _first_lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _why(cause: Finding, symptom: str) -> str:
    """Why ``cause`` explains ``symptom``, in words (diagnose.EXPLAINS, or the check's own top cause)."""
    if cause.code == "val_below_train" and symptom == "val_below_train":
        top = (cause.details.get("causes") or [{}])[0]
        return str(top.get("text", "")).rstrip(".")
    rule = EXPLAINS.get(rule_key(cause), {}).get(symptom)
    return rule[1] if rule else ""


# ----------------------------------------------------------------------------- the builder

def build_document(run: Any, findings: list[Finding], causes: pd.DataFrame, figures: Iterable[Any] = (),
                   generator: str = "", comparison: Any = None) -> Document:
    """The report of ``run`` as a :class:`Document` (see the module docstring for its sections).

    ``causes`` is :func:`collapse_nb.diagnose.root_causes` of ``findings``; ``figures`` are
    :class:`collapse_nb.report.figures.RenderedFigure` (drawn, or with the reason they are not);
    ``comparison`` (a :class:`collapse_nb.compare.Comparison` with a healthy run) adds the section
    "Compared with <reference>" after the problems.
    """
    status, verdict = make_verdict(findings, causes)
    sections = [
        Section("run", "What was analysed", run_identification(run, findings)),
        Section("verdict", "Verdict", [Paragraph(verdict, lead=status.capitalize() + ".")]),
        Section("findings", "Findings", findings_overview(findings)),
        Section("suspects", "Suspects (root causes, ranked)", suspects(findings, causes)),
        Section("problems", "Problems in detail", problem_details(findings)),
        *([_comparison_section(comparison)] if comparison is not None else []),
        Section("actions", "What to do", actions_section(findings, causes)),
        Section("not-wrong", "What's NOT wrong", not_wrong(findings)),
        Section("healthy", "Healthy training vs this run", healthy_comparison(findings)),
        Section("plots", "Plots", plot_blocks(figures)),
        Section("appendix", "Appendix: what was read", appendix(run, findings)),
    ]
    return Document(title=f"Training run report: {run_name(run)}", status=status, verdict=verdict,
                    sections=sections, generator=generator)


def _comparison_section(comparison: Any) -> Section:
    from .comparison import comparison_section
    return comparison_section(comparison)


# ----------------------------------------------------------------------------- run identification

def _sources(run: Any) -> list[str]:
    return [str(f["source"]) for f in run.meta.get("files", [])]


def _common_dir(paths: list[str]) -> Path | None:
    if not paths:
        return None
    parents = [Path(p).parent for p in paths]
    common = parents[0]
    while any(common not in (p, *p.parents) for p in parents):
        if common == common.parent:
            return None
        common = common.parent
    return common


def run_name(run: Any) -> str:
    """The run's name: its folder when several files were read, else the file's name."""
    src = _sources(run)
    if len(src) == 1:
        return Path(src[0]).name
    d = _common_dir(src)
    return d.name if d is not None and d.name else (Path(src[0]).name if src else "run")


def short_source(run: Any, source: str) -> str:
    """A file name relative to the run's common folder (the full path when there is one file)."""
    src = _sources(run)
    d = _common_dir(src)
    if len(src) > 1 and d is not None:
        try:
            return str(Path(source).relative_to(d))
        except ValueError:
            pass
    return str(source)


def _span(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return ""
    lo, hi = float(v.min()), float(v.max())
    return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"


def run_identification(run: Any, findings: list[Finding]) -> list[Any]:
    s = run.scalars
    items: list[tuple[str, str]] = []
    files = run.meta.get("files", [])
    if len(files) <= 5:
        items.append(("Files", "; ".join(f"{short_source(run, f['source'])} ({f['format']}, {f['rows']:,} values)"
                                        for f in files) or "none"))
    else:
        per: dict[str, list[dict]] = {}
        for f in files:
            per.setdefault(f["format"], []).append(f)
        items.append(("Files", f"{len(files)} files (listed in the appendix): " + "; ".join(
            (f"{short_source(run, fs[0]['source'])}" if len(fs) == 1 else f"{len(fs)} files")
            + f" ({fmt_name}, {sum(x['rows'] for x in fs):,} values)" for fmt_name, fs in per.items())))
    if len(files) > 1:
        d = _common_dir(_sources(run))
        if d is not None:
            items.append(("Folder", str(d)))
    items.append(("Formats", ", ".join(run.meta.get("formats", [])) or "none"))
    names = sorted(s["name"].dropna().astype(str).unique()) if len(s) else []
    shown = ", ".join(names[:15]) + (f" and {len(names) - 15} more" if len(names) > 15 else "")
    items.append(("Logged values", f"{len(s):,} ({len(names)} metric(s): {shown})" if len(s) else "none"))
    extent = []
    if len(s) and s["epoch"].notna().any():
        extent.append(f"epochs {_span(s['epoch'])}")
    if len(s) and s["step"].notna().any():
        extent.append(f"steps {_span(s['step'])}")
    if len(s) and s["batch"].notna().any():
        extent.append(f"{s.dropna(subset=['batch'])[['segment', 'epoch', 'batch']].drop_duplicates().shape[0]:,} "
                      f"logged batches")
    if extent:
        items.append(("Extent", ", ".join(extent)))
    tables = [f"epochs {len(run.epochs):,} rows", f"outputs {len(run.outputs):,} rows"]
    g = run.grads
    tables.append(f"grads {len(g):,} rows" + (f" ({g['param'].nunique():,} parameters)" if len(g) else ""))
    tables += [f"{k} {len(v):,} rows" for k, v in run.extra.items()]
    items.append(("Tables", ", ".join(tables)))
    restarts = run.meta.get("restarts", [])
    segments = int(s["segment"].nunique()) if len(s) and s["segment"].notna().any() else 1
    if restarts:
        where = "; ".join(f"segment {r['segment']} at line {r['line']} of {short_source(run, r['source'])}"
                          for r in restarts[:5]) + (f" and {len(restarts) - 5} more" if len(restarts) > 5 else "")
        items.append(("Segments", f"{segments} (restarted {len(restarts)} time(s): {where}); the checks judge the "
                                  f"segment with the most data"))
    else:
        items.append(("Segments", f"{segments} (no restart found)"))
    cfg = run.config
    items.append(("Configuration", ", ".join(f"{k}={cell_text(v)}" for k, v in sorted(cfg.items()))
                  if cfg else "none found (no config file, and no settings in the logs)"))
    n_checks = len({f.check for f in findings if f.check})
    items.append(("Checks", f"{len(findings)} finding(s) from {n_checks} check(s)"))
    return [KeyValues(items)]


# ----------------------------------------------------------------------------- verdict

def make_verdict(findings: list[Finding], causes: pd.DataFrame) -> tuple[str, str]:
    """``(status, paragraph)``: the run's status word and one paragraph naming the numbers."""
    probs = [f for f in findings if is_problem(f)]
    skipped = [f for f in findings if f.code == NOT_CHECKED and not f.details.get("not_applicable")]
    failed = [f for f in findings if f.code == CHECK_FAILED]
    notes = [f for f in findings if f.severity == "info" and f.code not in (NOT_CHECKED, CHECK_FAILED)]
    oks = [f for f in findings if f.severity == "ok"]
    tail = ""
    opening = ""
    n_checks = len({f.check for f in findings if not f.details.get("not_applicable")})
    blind = next((f for f in findings if f.code == "objective_not_found"), None)
    stopped = next((f for f in findings if f.code == "run_incomplete"), None)
    if blind is not None:
        opening = (f"Not assessed: no training objective recognised ({blind.details.get('missing', '')}); series seen: "
                f"{blind.details.get('series_seen', 'none')}. ")
    if stopped is not None:
        opening += _sentence(stopped.title.replace("Stopped early", "The run stopped early")) + " "
    if skipped:
        tail += (f" {len(skipped)} of {n_checks} checks could not run for lack of data "
                 f"({', '.join(f.check for f in skipped)}).")
    if failed:
        tail += f" {len(failed)} check(s) failed with an error ({', '.join(f.check for f in failed)})."
    notes = [f for f in notes if f is not blind and f is not stopped]
    if not probs and blind is not None:
        passed = [_first_lower(f.title) for f in oks][:4]
        return "not assessed", (opening + "What could be checked found no problem"
                                + (f" ({'; '.join(passed)})" if passed else "")
                                + ", which says little about the training without its loss." + tail).strip()
    if not probs:
        if not oks and not notes:
            return "not judged", (opening + "Nothing could be judged: no check found the data it needs." + tail).strip()
        text = f"No problem found: {len(oks)} check(s) passed."
        if notes:
            text += " Worth knowing: " + "; ".join(_first_lower(f.title) for f in notes[:3]) + "."
        if len(skipped) + len(failed) > len(oks):
            return "inconclusive", (opening + text + tail + " Too little was logged to call the run healthy: log "
                                    "what the checks that did not run need (the notes under Findings say what).")
        return "healthy", opening + text + tail
    status = "broken" if any(f.severity == "critical" for f in probs) else "suspicious"
    by_code = {f.code: f for f in findings}
    # the symptoms, most severe first (diagnose's order is by cause, not by how bad each symptom is)
    symptoms = sorted((f for f in probs if f.code in SYMPTOMS), key=lambda f: (f.rank, -f.score))
    if not symptoms and "val_below_train" in by_code and by_code["val_below_train"].severity == "info":
        symptoms = [by_code["val_below_train"]]
    parts: list[str] = []
    if symptoms:
        parts.append(_first_upper("; ".join(f"{_first_lower(f.title)} ({f.severity})" for f in symptoms)) + ".")
    else:
        parts.append("No failure symptom (collapsed outputs, a flat, diverging or NaN loss, overfitting, a "
                     "validation/training gap) was seen, but: "
                     + "; ".join(f"{_first_lower(f.title)} ({f.severity})" for f in probs[:3]) + ".")
    explained: set[str] = set()
    n_cause = 0
    also: list[str] = []
    for row in causes.itertuples(index=False):
        f = by_code.get(row.code)
        if f is None or row.share <= 0:
            continue
        covered = [c for c in str(row.explains).split(", ") if c]
        explained |= set(covered)
        if row.role == "both" and row.code == "val_below_train":
            top = (f.details.get("causes") or [{}])[0]
            label, text = top.get("label", ""), str(top.get("text", "")).rstrip(".")
            if top.get("cause") in ("gradient_accumulation", "reduction_sum"):
                parts.append(f"The validation/training gap is a bookkeeping error in the reported training loss, "
                             f"not a modelling problem: {text}.")
            else:
                parts.append(f"The validation/training gap is most likely {label}: {text}.")
            continue
        if row.role == "symptom":
            follows = [SYMPTOM_WORDS.get(c, c) for c in covered if c != row.code]
            if follows:
                verb = "follows" if len(follows) == 1 else "follow"
                parts.append(f"{_first_upper(' and '.join(follows))} {verb} from "
                             f"{SYMPTOM_WORDS.get(row.code, row.code)}.")
            continue
        if row.role != "cause" or n_cause >= 3:
            continue
        symptom = covered[0] if covered else ""
        why = _why(f, symptom)
        if n_cause == 0:
            what = f" of {SYMPTOM_WORDS[symptom]}" if symptom in SYMPTOM_WORDS else ""
            lead = f"Most likely cause{what}" if row.share >= 0.5 else \
                f"Strongest suspect{' for ' + SYMPTOM_WORDS[symptom] if symptom in SYMPTOM_WORDS else ''}, " \
                f"explaining only part of it"
            parts.append(f"{lead}: {_first_lower(f.title)} ({_pct(row.share)} of the observed failure)"
                         + (f": {why}" if why else "") + ".")
        else:
            also.append(f"{_first_lower(f.title)} ({_pct(row.share)})")
        n_cause += 1
    if also:
        parts.append("Also contributing: " + "; ".join(also) + ".")
    unexplained = [f for f in symptoms if f.code not in explained]
    if unexplained:
        parts.append("Nothing else in the logs explains " + ", ".join(SYMPTOM_WORDS.get(f.code, f.code)
                                                                     for f in unexplained) + ".")
    return status, opening + " ".join(parts) + tail


# ----------------------------------------------------------------------------- findings, suspects, details

def findings_overview(findings: list[Finding]) -> list[Any]:
    main = [f for f in findings if f.severity != "info"]
    info = [f for f in findings if f.severity == "info"]
    blocks: list[Any] = []
    if main:
        blocks.append(Table(["Status", "Finding", "Check"],
                            [[Badge(status_of(f)), f.title, f.check] for f in main]))
    else:
        blocks.append(Paragraph("No check reached a conclusion (see the notes below)."))
    counts = {s: sum(status_of(f) == s for f in findings) for s in ("broken", "suspicious", "working")}
    blocks.append(Note(", ".join(f"{n} {s}" for s, n in counts.items())
                       + f", {len(info)} note(s) and checks that could not run."))
    if info:
        rows: list[list[Cell]] = []
        for f in info:
            if f.code == NOT_CHECKED:
                what = f"Not run: {f.details.get('missing') or 'the run lacks the data it needs'}."
            elif f.code == CHECK_FAILED:
                what = f"The check raised {f.details.get('error', '')}; the other checks ran."
            else:
                what = f"{_sentence(f.title)} {f.summary}".strip()
            rows.append([Badge(status_of(f)), f.check, what])
        blocks.append(Subsection("Notes and checks that could not run",
                                 [Table(["Status", "Check", "Details"], rows)], anchor="notes"))
    return blocks


def _role_words(role: str) -> str:
    return {"cause": "likely cause", "symptom": "symptom", "both": "symptom with its own cause"}.get(role, role)


def _reasoning_words(text: str) -> str:
    def repl(m: re.Match) -> str:
        return f"explains {SYMPTOM_WORDS.get(m.group(1), m.group(1))} (weight {m.group(2)})"
    return re.sub(r"explains (\w+) \((\d+%)\)", repl, str(text))


def suspects(findings: list[Finding], causes: pd.DataFrame) -> list[Any]:
    if causes is None or causes.empty:
        return [Paragraph("No suspects: no check reported a problem.")]
    blocks: list[Any] = [Paragraph(
        "Each finding is scored by how much of the observed failure (the symptom findings: collapsed outputs, a "
        "flat, chance-level, diverging or NaN loss, overfitting, a validation/training gap) it explains, weighted "
        "by the symptoms' severity (critical 3, warning 2, info 1).")]
    blocks.append(Table(["#", "Suspect", "Status", "Role", "Explains", "Share of the failure"],
                        [[str(r.rank), r.title, Badge(STATUS.get(r.severity, r.severity)), _role_words(r.role),
                          ", ".join(SYMPTOM_WORDS.get(c, c) for c in str(r.explains).split(", ") if c) or "-",
                          _pct(r.share)] for r in causes.itertuples(index=False)]))
    items, leads = [], []
    for r in causes.itertuples(index=False):
        leads.append(f"{r.rank}. {r.title}:")
        items.append(_sentence(_reasoning_words(r.reasoning)))
    blocks.append(BulletList(items, leads=leads))
    return blocks


def _finding_block(f: Finding, i: int) -> Subsection:
    blocks: list[Any] = [Paragraph(f.summary)] if f.summary else []
    if f.evidence is not None and not f.evidence.empty:
        blocks.append(frame_table(f.evidence, caption=f"Evidence ({len(f.evidence):,} row(s))", fold_constant=True))
    if f.actions:
        blocks.append(Paragraph("", lead="Actions:"))
        blocks.append(BulletList(list(f.actions), ordered=True))
    return Subsection(f.title, blocks, anchor=f"finding-{i}-{anchor(f.code)}", badge=status_of(f))


def problem_details(findings: list[Finding]) -> list[Any]:
    probs = [f for f in findings if is_problem(f)]
    notes = [f for f in findings if f.severity == "info" and f.code not in (NOT_CHECKED, CHECK_FAILED)
             and (f.actions or (f.evidence is not None and not f.evidence.empty))]
    if not probs and not notes:
        return [Paragraph("No problem was found.")]
    return [_finding_block(f, i) for i, f in enumerate(probs + notes, start=1)]


def _norm_action(a: str) -> str:
    return re.sub(r"\W+", " ", a.lower()).strip()


def actions_section(findings: list[Finding], causes: pd.DataFrame) -> list[Any]:
    """Every finding's actions once, most useful first.

    Findings are taken in the order: suspects by rank, the other problems, then notes. "Start
    here" holds the first (most useful) action of each; "Then" the rest, in the same order.
    """
    order: list[Finding] = []
    by_code: dict[str, list[Finding]] = {}
    for f in findings:
        by_code.setdefault(f.code, []).append(f)
    if causes is not None and not causes.empty:
        for code in causes["code"]:
            order += [f for f in by_code.get(code, []) if f not in order]
    order += [f for f in findings if is_problem(f) and f not in order]
    order += [f for f in findings if f.severity == "info" and f not in order]
    seen: set[str] = set()
    first, rest = [], []
    for f in order:
        for i, a in enumerate(f.actions):
            key = _norm_action(a)
            if key in seen:
                continue
            seen.add(key)
            (first if not any(x[1] is f for x in first) else rest).append((f"{_sentence(a)} ({f.code})", f))
    skipped = [f.check for f in findings if f.code == NOT_CHECKED and not f.details.get("not_applicable")]
    more_data = Paragraph(f"To let the {len(skipped)} check(s) that could not run judge the run, log what they "
                          f"lack (listed under Findings, Notes): {', '.join(skipped)}.") if skipped else None
    if not first:
        return [Paragraph("Nothing to fix: no finding suggests an action.")] + ([more_data] if more_data else [])
    blocks: list[Any] = [Paragraph("Most useful first: the first action of each finding, top suspects first; then "
                                   "the others (the finding each comes from in brackets)."),
                         Paragraph("", lead="Start here:"), BulletList([x[0] for x in first], ordered=True)]
    if rest:
        blocks += [Paragraph("", lead="Then:"), BulletList([x[0] for x in rest], ordered=True)]
    return blocks + ([more_data] if more_data else [])


def not_wrong(findings: list[Finding]) -> list[Any]:
    oks = [f for f in findings if f.severity == "ok"]
    if not oks:
        return [Paragraph("No check could confirm that anything works (see the findings and notes).")]
    return [Paragraph("These were checked and are working:"),
            BulletList([f.summary or f.title for f in oks], leads=[_sentence(f.title) for f in oks])]


# ----------------------------------------------------------------------------- healthy vs this run

def healthy_rows(findings: list[Finding]) -> list[dict[str, str]]:
    """One dict per measured quantity (every check with a ``quantity``, in the order they run):
    ``quantity, healthy, this_run, status, check``. The band and the figure come from the check itself."""
    by_check: dict[str, list[Finding]] = {}
    for f in findings:
        by_check.setdefault(f.check, []).append(f)
    rows = []
    for cls in DEFAULT_CHECKS:
        if not cls.quantity:
            continue
        check, c = cls.name, cls()
        fs = by_check.get(check, [])
        f = next((x for x in fs if x.code not in (NOT_CHECKED, CHECK_FAILED)), None)
        skipped = next((x for x in fs if x.code in (NOT_CHECKED, CHECK_FAILED)), None)
        try:
            healthy = c.healthy_band(f) or "see docs/checks.md"
        except (KeyError, TypeError, ValueError):
            healthy = "see docs/checks.md"
        if f is not None:
            try:
                this = c.measure(f.details) or f.title
            except (KeyError, TypeError, ValueError):
                this = f.title
            status = status_of(f)
        elif skipped is not None:
            this = "not measured: " + str(skipped.details.get("missing") or skipped.details.get("error") or "")
            status = status_of(skipped)
        else:
            this, status = "not flagged (the check reported nothing)", "no finding"
        rows.append({"quantity": cls.quantity, "healthy": healthy, "this_run": this, "status": status,
                     "check": check})
    return rows


def checks_read(findings: list[Finding]) -> list[list[Cell]]:
    """One row per check that reported: ``check, ran, read, resolution, points`` (from its findings' details)."""
    rows = []
    for cls in DEFAULT_CHECKS:
        fs = [f for f in findings if f.check == cls.name]
        if not fs:
            continue
        ran = [f for f in fs if f.code not in (NOT_CHECKED, CHECK_FAILED)]
        f = ran[0] if ran else fs[0]
        d = f.details
        if not ran:
            what = ("does not apply: " if d.get("not_applicable") else "not run: ") + \
                str(d.get("missing") or d.get("error") or "")
        else:
            what = d.get("series") or d.get("val_series") or d.get("generator_series") or d.get("reads") \
                or cls.reads or ""
            what = ", ".join(map(str, what)) if isinstance(what, (list, tuple)) else str(what)
        points = d.get("points", d.get("evaluations"))
        rows.append([cls.name, "yes" if ran else "no", cut(what, 160), str(d.get("resolution") or ""),
                     cell_text(points) if points is not None else ""])
    return rows


def healthy_comparison(findings: list[Finding]) -> list[Any]:
    rows = healthy_rows(findings)
    return [Paragraph("The healthy band of each quantity is the threshold of the check that measures it "
                      "(docs/checks.md gives their sources); this run's value is what the check measured."),
            Table(["Quantity", "Healthy", "This run", "Status", "Check"],
                  [[r["quantity"], r["healthy"], r["this_run"], Badge(r["status"]), r["check"]] for r in rows])]


# ----------------------------------------------------------------------------- plots

def plot_blocks(figures: Iterable[Any]) -> list[Any]:
    blocks: list[Any] = []
    for fig in figures:
        if fig.png_base64:
            blocks.append(FigureBlock(fig.key, fig.title, fig.caption, fig.png_base64))
        else:
            blocks.append(Note(f"{fig.title}: not drawn ({fig.missing})."))
    return blocks or [Note("No plots were drawn.")]


# ----------------------------------------------------------------------------- appendix

def _shorten_note(run: Any, note: str) -> str:
    """``/full/path/file.log: note`` -> ``file.log: note`` (the path relative to the run's folder)."""
    for src in sorted(_sources(run), key=len, reverse=True):
        if note.startswith(src + ":"):
            return short_source(run, src) + note[len(src):]
    return note


def appendix(run: Any, findings: list[Finding]) -> list[Any]:
    blocks: list[Any] = []
    files = run.meta.get("files", [])
    blocks.append(Subsection("Files", [Table(
        ["File", "Format", "Values", "Lines not understood"],
        [[short_source(run, f["source"]), f["format"], fmt(f["rows"]), f.get("skipped_text", "")] for f in files])],
        anchor="appendix-files"))
    rows: list[list[Cell]] = []
    unlisted = 0
    for f in files:
        sk = f.get("skipped", {})
        ex = sk.get("examples", [])[:SKIPPED_ROWS]
        groups: dict[tuple[str, str], list[Any]] = {}
        for e in ex:        # the same line text under the same reason: one row listing its line numbers
            groups.setdefault((str(e.get("reason", "")), cut(str(e.get("text", "")), 120)), []).append(e.get("line"))
        rows += [[short_source(run, f["source"]), ", ".join(fmt(n) for n in lines), reason, text]
                 for (reason, text), lines in groups.items()]
        unlisted += max(0, int(sk.get("count", 0)) - len(ex))
    if rows:
        sblocks: list[Any] = [Table(["File", "Line(s)", "Reason", "Text"], rows)]
        if unlisted:
            sblocks.append(Note(f"... {unlisted:,} more lines not understood are counted but not listed (the first "
                                f"{SKIPPED_ROWS} per file are; see the files table for the count by reason)."))
        blocks.append(Subsection("Lines not understood", sblocks, anchor="appendix-skipped"))
    else:
        blocks.append(Subsection("Lines not understood", [Paragraph("None: every line was understood.")],
                                 anchor="appendix-skipped"))
    replaced = [(f, f["skipped"].get("replaced", 0)) for f in files if f.get("skipped", {}).get("replaced")]
    notes = [_shorten_note(run, n) for n in run.meta.get("notes", [])]
    notes += [f"{short_source(run, f['source'])}: {n} line(s) had non-UTF-8 bytes (replaced)" for f, n in replaced
              if not any("UTF-8" in x for x in notes)]
    restarts = run.meta.get("restarts", [])
    notes += [f"restart: segment {r['segment']} begins at line {r['line']} of {short_source(run, r['source'])}"
              for r in restarts]
    notes += [f"ignored: {short_source(run, i['source'])}: {i['reason']}" for i in run.meta.get("ignored", [])]
    blocks.append(Subsection("Notes (restarts, tracebacks, layout decisions, ignored files)",
                             [BulletList(notes) if notes else Paragraph("No notes.")], anchor="appendix-notes"))
    cfg, where = run.config, run.meta.get("config_sources", {})
    if cfg:
        crow: list[list[Cell]] = [[k, cell_text(v), short_source(run, where.get(k, ""))]
                                  for k, v in sorted(cfg.items())]
        cblocks: list[Any] = [Table(["Setting", "Value", "From"], crow)]
        conflicts = run.meta.get("config_conflicts", [])
        if conflicts:
            cblocks.append(Table(["Setting", "Kept", "From", "Other value", "From"],
                                 [[c["key"], cell_text(c["kept"]), short_source(run, c["kept_from"]),
                                   cell_text(c["other"]), short_source(run, c["other_from"])] for c in conflicts],
                                 caption="Conflicting values (a config file wins over values read from logs)"))
        blocks.append(Subsection("Configuration", cblocks, anchor="appendix-config"))
    else:
        blocks.append(Subsection("Configuration", [Paragraph("No configuration was found.")],
                                 anchor="appendix-config"))
    read_rows = checks_read(findings)
    if read_rows:
        blocks.append(Subsection("What each check read", [
            Paragraph("Whether each check ran, on which series, at which resolution; a check that did not run "
                      "says what it lacked."),
            Table(["Check", "Ran", "Read", "Resolution", "Points"], read_rows)], anchor="appendix-read"))
    th_rows: list[list[Cell]] = []
    seen = set()
    for f in findings:
        if f.check in seen or not f.check:
            continue
        seen.add(f.check)
        owner = next((c for c in DEFAULT_CHECKS if c.name == f.check), None)
        t = dict(f.details.get("thresholds") or {}) or (owner().thresholds() if owner is not None else {})
        th_rows.append([f.check, ", ".join(f"{k}={cell_text(v)}" for k, v in t.items())])
    if th_rows:
        blocks.append(Subsection("Checks and thresholds used", [Table(["Check", "Thresholds"], th_rows)],
                                 anchor="appendix-thresholds"))
    return blocks
