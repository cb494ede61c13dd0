"""The verdict: the run's status word and one paragraph that names the numbers (:func:`make_verdict`).

The status words are :data:`collapse_nb.findings.STATUS_WORDS` (``broken``, ``suspicious``, ``healthy``,
``inconclusive``, ``not assessed``, ``not judged``). What a check knows about its own findings comes from
the check: the sentence a finding about the whole run opens the verdict with (:meth:`Check.verdict_opening`),
whether it means the run could not be assessed (:meth:`Check.not_assessed`), the sentence about a symptom that
explains itself (:meth:`Check.self_explanation`), and each symptom in words (``Check.symptom_words``). The
percentages are the additive parts of the observed failure (:func:`part_percents`), the same the suspects
table shows.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ..checks import CHECKS, DEFAULT_CHECKS
from ..diagnose import SYMPTOMS, explanations
from ..findings import CHECK_FAILED, NOT_CHECKED, Finding, is_problem
from .model import _first_lower, _first_upper, percents

#: Symptom codes in words (for the verdict and the suspects), from every check's ``symptom_words``.
SYMPTOM_WORDS = {code: words for c in DEFAULT_CHECKS for code, words in c.symptom_words.items()}


def _check(f: Finding) -> Any:
    cls = CHECKS.get(f.check)
    return cls() if cls is not None else None


def _opening(f: Finding) -> str:
    c = _check(f)
    return c.verdict_opening(f) if c is not None else ""


def _not_assessed(f: Finding) -> bool:
    c = _check(f)
    return bool(c is not None and c.not_assessed(f))


def _why(cause: Finding, symptom: str) -> str:
    """Why ``cause`` explains ``symptom``, in words (its check's rule, or a self-explaining symptom's top cause)."""
    rule = explanations(cause).get(symptom)
    return str(rule[1]).rstrip(".") if rule else ""


def part_percents(causes: pd.DataFrame) -> tuple[list[int], int]:
    """``(percent per row of causes, percent unexplained)``: the rows' ``part`` and ``attrs["unexplained"]`` as
    whole percentages that add up to exactly 100 (all 0 when no symptom was observed)."""
    if causes is None or causes.empty or "part" not in causes.columns:
        return [0] * (0 if causes is None else len(causes)), 0
    values = [float(x) for x in causes["part"]] + [float(causes.attrs.get("unexplained", 0.0))]
    if sum(values) <= 0:
        return [0] * len(causes), 0
    pct = percents(values)
    return pct[:-1], pct[-1]


def no_symptom_words() -> str:
    """The failure symptoms in words, for "no failure symptom (...) was seen"."""
    return ", ".join(dict.fromkeys(SYMPTOM_WORDS.values()))


def make_verdict(findings: list[Finding], causes: pd.DataFrame) -> tuple[str, str]:
    """``(status, paragraph)``: the run's status word and one paragraph naming the numbers."""
    probs = [f for f in findings if is_problem(f)]
    skipped = [f for f in findings if f.code == NOT_CHECKED and not f.details.get("not_applicable")]
    failed = [f for f in findings if f.code == CHECK_FAILED]
    notes = [f for f in findings if f.severity == "info" and f.code not in (NOT_CHECKED, CHECK_FAILED)]
    oks = [f for f in findings if f.severity == "ok"]
    tail = ""
    n_checks = len({f.check for f in findings if not f.details.get("not_applicable")})
    framing = [f for f in findings if _opening(f)]
    blind = next((f for f in framing if _not_assessed(f)), None)
    opening = "".join(_opening(f) + " " for f in sorted(framing, key=lambda f: f is not blind))
    if skipped:
        tail += (f" {len(skipped)} of {n_checks} checks could not run for lack of data "
                 f"({', '.join(f.check for f in skipped)}).")
    if failed:
        tail += f" {len(failed)} check(s) failed with an error ({', '.join(f.check for f in failed)})."
    notes = [f for f in notes if f not in framing]
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
        parts.append(f"No failure symptom ({no_symptom_words()}) was seen, but: "
                     + "; ".join(f"{_first_lower(f.title)} ({f.severity})" for f in probs[:3]) + ".")
    explained: set[str] = set()
    n_cause = 0
    also: list[str] = []
    pct, _ = part_percents(causes)
    for row, p in zip(causes.itertuples(index=False), pct):
        f = by_code.get(row.code)
        if f is None or row.share <= 0:
            continue
        covered = [c for c in str(row.explains).split(", ") if c]
        explained |= set(covered)
        if row.role == "both" and row.code in covered:
            c = _check(f)
            sentence = c.self_explanation(f) if c is not None else ""
            if sentence:
                parts.append(sentence)
                continue
        if row.role in ("symptom", "both"):
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
            lead = f"Most likely cause{what}" if p >= 50 else \
                f"Strongest suspect{' for ' + SYMPTOM_WORDS[symptom] if symptom in SYMPTOM_WORDS else ''}, " \
                f"explaining only part of it"
            parts.append(f"{lead}: {_first_lower(f.title)} ({p}% of the observed failure)"
                         + (f": {why}" if why else "") + ".")
        else:
            also.append(f"{_first_lower(f.title)} ({p}%)")
        n_cause += 1
    if also:
        parts.append("Also contributing: " + "; ".join(also) + ".")
    unexplained = [f for f in symptoms if f.code not in explained]
    if unexplained:
        parts.append("Nothing else in the logs explains " + ", ".join(SYMPTOM_WORDS.get(f.code, f.code)
                                                                     for f in unexplained) + ".")
    return status, opening + " ".join(parts) + tail
