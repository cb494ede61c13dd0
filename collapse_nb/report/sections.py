"""The report's sections between the verdict and the appendix, each a list of blocks (:mod:`.model`).

``run`` (what was analysed), ``findings`` (most severe first: critical, warning, ok; the notes apart),
``suspects`` (the root causes ranked, with each one's part of the observed failure: the parts add up to
100%), ``problems`` (each problem finding with its summary, evidence and actions, most severe first),
``actions`` (deduplicated, most useful first), ``not-wrong`` (what is ok), ``healthy`` (healthy bands from
the checks' thresholds next to this run's numbers) and the plots.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pandas as pd

from ..checks import DEFAULT_CHECKS
from ..checks._base import fmt
from ..diagnose import observed_symptoms
from ..findings import CHECK_FAILED, NOT_CHECKED, Finding, by_severity, is_problem
from .model import (Badge, BulletList, Cell, FigureBlock, KeyValues, Note, Paragraph, Subsection, Table, _sentence,
                    anchor, cell_text, evidence_table, status_of)
from .verdict import SYMPTOM_WORDS, no_symptom_words, part_percents

if TYPE_CHECKING:
    from ..run import Run

#: Figures whose key starts with this go to the section "All metrics", the others to "Plots".
METRICS_PREFIX = "metrics_"


# ----------------------------------------------------------------------------- run identification

def _sources(run: Run) -> list[str]:
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


def run_name(run: Run) -> str:
    """The run's name: its folder when several files were read, else the file's name."""
    src = _sources(run)
    if len(src) == 1:
        return Path(src[0]).name
    d = _common_dir(src)
    return d.name if d is not None and d.name else (Path(src[0]).name if src else "run")


def short_source(run: Run, source: str) -> str:
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


def run_identification(run: Run, findings: list[Finding]) -> list[Any]:
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



# ----------------------------------------------------------------------------- findings, suspects, details

def findings_overview(findings: list[Finding]) -> list[Any]:
    """The findings, most severe first (critical, warning, ok; then the notes and checks that could not run)."""
    findings = by_severity(findings)
    main = [f for f in findings if f.severity != "info"]
    info = [f for f in findings if f.severity == "info"]
    blocks: list[Any] = []
    if main:
        blocks.append(Table(["Status", "Finding", "Check"],
                            [[Badge(status_of(f)), f.title, f.check] for f in main]))
    else:
        blocks.append(Paragraph("No check reached a conclusion (see the notes below)."))
    counts = {s: sum(f.severity == s for f in findings) for s in ("critical", "warning", "ok")}
    blocks.append(Note(", ".join(f"{n} {s}" for s, n in counts.items())
                       + f", {len(info)} info (notes and checks that could not run)."))
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


def _role_words(role: str, part: float, explains: str, counted: bool = True) -> str:
    if role == "cause" and not explains:
        return "explains no symptom"
    if role == "symptom" and not counted:
        return "symptom (a note: not counted in the failure)"
    return {"cause": "likely cause", "symptom": "symptom", "both": "symptom with its own cause"}.get(role, role)


def _reasoning_words(text: str) -> str:
    """``explains variance_collapse (90%)`` -> ``explains the collapsed predictions (rule weight 0.9)``: the rule's
    weight is no percentage of the failure (the parts are), so it is not written as one."""
    def repl(m: re.Match) -> str:
        return (f"explains {SYMPTOM_WORDS.get(m.group(1), m.group(1))} "
                f"(rule weight {int(m.group(2)) / 100:g})")
    return re.sub(r"explains (\w+) \((\d+)%\)", repl, str(text))


#: What the suspects table's last column is, next to the table ({observed}: this run's symptoms and weights).
PARTS_TEXT = (
    "The observed failure is this run's symptom findings, each weighted by its severity (critical 3, warning 2, "
    "info 1; a validation/training gap counts half): {observed}. Each symptom is split among the findings that "
    "explain it, in proportion to how strongly each explains it (the rule weights below; when they add up to "
    "more than 1 the suspects overlap and are scaled to add up to 1, when they add up to less the rest stays "
    "unexplained). So the column adds up to 100%, the unexplained rest included. A symptom's own row counts only "
    "what it explains of the other symptoms (its own part goes to what explains it). The rank (#) puts a cause "
    "before the symptoms it explains, then the findings that explain most of the failure on their own.")


def _observed(findings: list[Finding]) -> str:
    obs = observed_symptoms(findings)
    total = sum(w for _, w in obs) or 1.0
    return "; ".join(f"{SYMPTOM_WORDS.get(f.code, f.code)} ({f.severity}, weight {w:g}, {w / total:.0%} of the "
                     f"failure)" for f, w in sorted(obs, key=lambda t: -t[1]))


def suspects(findings: list[Finding], causes: pd.DataFrame) -> list[Any]:
    if causes is None or causes.empty:
        return [Paragraph("No suspects: no check reported a problem.")]
    pct, rest = part_percents(causes)
    observed = sum(pct) + rest > 0
    counted_codes = {f.code for f, _ in observed_symptoms(findings)}
    rows: list[list[Cell]] = []
    reasons: list[tuple[str, str]] = []
    for r, p in zip(causes.itertuples(index=False), pct):
        linked = bool(r.explains) or r.role != "cause"
        if r.severity == "info" and not linked:
            continue                    # a note that explains no symptom is no suspect (it is under Findings)
        shown = f"{p}%" if observed and (p or r.role == "cause") else "—"
        counted = r.code in counted_codes
        rows.append([str(r.rank), r.title, Badge(r.severity), _role_words(r.role, r.part, r.explains, counted),
                     ", ".join(SYMPTOM_WORDS.get(c, c) for c in str(r.explains).split(", ") if c) or "-", shown])
        reasons.append((f"{r.rank}. {r.title}:", _sentence(_reasoning_words(r.reasoning))))
    if not rows:
        return [Paragraph("No suspects: no check reported a problem.")]
    if not observed:
        return [Paragraph("No failure symptom was observed (" + no_symptom_words() + "): the problems below are "
                          "ranked by severity, and no part of a failure is attributed to them."),
                Table(["#", "Suspect", "Severity", "Role", "Explains"], [r[:5] for r in rows]),
                BulletList([x[1] for x in reasons], leads=[x[0] for x in reasons])]
    rows.append(["", "Not explained by any finding", "", "", "", f"{rest}%"])
    rows.append(["", "Total", "", "", "", f"{sum(pct) + rest}%"])
    return [Paragraph(PARTS_TEXT.format(observed=_observed(findings)), lead="Part of the failure:"),
            Table(["#", "Suspect", "Severity", "Role", "Explains", "Part of the failure"], rows),
            BulletList([x[1] for x in reasons], leads=[x[0] for x in reasons])]


def _finding_block(f: Finding, i: int) -> Subsection:
    blocks: list[Any] = [Paragraph(f.summary)] if f.summary else []
    if f.evidence is not None and not f.evidence.empty:
        blocks.append(evidence_table(f.evidence, caption=f"Evidence ({len(f.evidence):,} row(s))"))
    if f.actions:
        blocks.append(Paragraph("", lead="Actions:"))
        blocks.append(BulletList(list(f.actions), ordered=True))
    return Subsection(f.title, blocks, anchor=f"finding-{i}-{anchor(f.code)}", badge=status_of(f))


def problem_details(findings: list[Finding]) -> list[Any]:
    """Every problem, most severe first (critical, then warning, each in the diagnosis' order), then the notes."""
    probs = by_severity(f for f in findings if is_problem(f))
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
    first: list[tuple[str, Finding]] = []
    rest: list[tuple[str, Finding]] = []
    for f in order:
        for a in f.actions:
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
    return [Paragraph("These were checked and found ok:"),
            BulletList([f.summary or f.title for f in oks], leads=[_sentence(f.title) for f in oks])]


# ----------------------------------------------------------------------------- healthy vs this run

def healthy_rows(findings: list[Finding]) -> list[dict[str, str]]:
    """One dict per measured quantity (every check with a ``quantity``, in the order they run):
    ``quantity, healthy, this_run, status, check``. The band and the figure come from the check itself."""
    by_check: dict[str, list[Finding]] = {}
    for one in findings:
        by_check.setdefault(one.check, []).append(one)
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


def healthy_comparison(findings: list[Finding]) -> list[Any]:
    rows = healthy_rows(findings)
    return [Paragraph("The healthy band of each quantity is the threshold of the check that measures it "
                      "(docs/checks.md gives their sources); this run's value is what the check measured."),
            Table(["Quantity", "Healthy", "This run", "Status", "Check"],
                  [[r["quantity"], r["healthy"], r["this_run"], Badge(r["status"]), r["check"]] for r in rows])]


# ----------------------------------------------------------------------------- plots

def plot_blocks(figures: Iterable[Any], empty: str = "No plots were drawn.") -> list[Any]:
    blocks: list[Any] = []
    for fig in figures:
        if fig.png_base64:
            blocks.append(FigureBlock(fig.key, fig.title, fig.caption, fig.png_base64))
        else:
            blocks.append(Note(f"{fig.title}: not drawn ({fig.missing})."))
    return blocks or [Note(empty)]


def split_figures(figures: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """``(plots, all_metrics)``: the figures whose key starts with :data:`METRICS_PREFIX` apart."""
    figures = list(figures)
    metrics = [f for f in figures if str(f.key).startswith(METRICS_PREFIX)]
    return [f for f in figures if f not in metrics], metrics

