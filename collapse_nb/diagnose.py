"""``diagnose(run)``: run every check, never crash, return the findings in reading order.

>>> findings = diagnose(run)                                            # doctest: +SKIP
>>> diagnose(run, variance_collapse__critical_ratio=0.05)               # doctest: +SKIP
>>> diagnose(run, variance_collapse={"critical_ratio": 0.05})           # doctest: +SKIP
>>> diagnose(run, thresholds={"loss_plateau": {"window_frac": 0.3}})    # doctest: +SKIP
>>> diagnose(run, checks=["dead_parameters", "variance_collapse"])      # doctest: +SKIP
>>> root_causes(findings)                                               # doctest: +SKIP

Thresholds are the checks' dataclass fields (``collapse_nb.checks``, ``docs/checks.md``).
They can be given as ``<check>__<field>=value`` keywords, as ``<check>={field: value}``
keywords, or as ``thresholds={check: {field: value}}``; an unknown check or field is an
error that lists what is allowed, and a value of the wrong type for its field (a string where the
field is a float) is a ``TypeError`` naming the check, the field and the type, before any check
runs. A check that raises becomes an ``info`` finding with
code ``check_failed`` naming the check and the error; the other checks still run.

A distributed run (several ranks in ``run.scalars``) is checked through :attr:`Run.one_rank`: each check
reads one rank's rows per series; a check with ``all_ranks = True`` (``rank_desync``) reads every rank's.

Order of the result: problems (``critical`` and ``warning``) first, in root-cause order
(the order :func:`root_causes` ranks them in, so that ``diagnose(run)[0]`` is the top-ranked
root cause whenever that is a problem), then ``info``, then ``ok`` (within those two, the
higher ``score`` first). A ``warning`` that explains a ``critical`` symptom therefore comes
before it: e.g. a too-small learning rate (``update_ratio``) before the collapsed outputs
it leaves.

Root causes
-----------
:func:`root_causes` ranks the non-``ok`` findings by how much of the observed failure
each explains. The observed failure is the set of *symptom* findings (non-ok) among
``SYMPTOMS``: collapsed outputs, a flat, chance-level, diverging or NaN loss,
overfitting, validation below training (each check's ``symptoms``). Each rule in
``EXPLAINS`` says how much (0-1) a finding accounts for a symptom, and why; the rules live
on the checks (``Check.explains``, and ``Check.rule_key`` for the narrower rules) and are
collected here. In short:

- a tiny-initialised output head (0.9) or a dead one (0.9) explains a variance collapse
  almost fully: nothing else is needed for near-constant outputs;
- dead parameters that are most of the model (more than the check's ``critical_fraction``,
  e.g. dying ReLUs: rule ``dead_majority``) explain a collapse (0.9), a plateau and a
  chance-level loss (0.8) as fully as a dead head: what still learns is too little to fit;
- a dead branch elsewhere explains part of it (0.3): the rest of the model still trains;
- vanishing gradients explain a flat loss (0.7) more than a collapse (0.5), and the tiny
  updates they cause (``update_ratio``, 0.8: an update is the learning rate times the gradient);
- updates tiny across the whole model (the median layer's update/weight ratio below
  ``update_ratio``'s ``too_small``, e.g. a learning rate far too low: rule
  ``updates_too_small``) explain a plateau (0.8), a chance-level loss (0.7) and a collapse
  (0.6: the outputs never leave the near-constant values a fresh initialisation gives);
  tiny updates in a few layers only (rule ``update_ratio``) explain a plateau partly (0.5);
- a learning-rate schedule mismatch or saturated clipping explains a plateau partly
  (0.5 / 0.4) and a collapse little (0.2): a low learning rate with healthy gradients
  slows learning but does not by itself make outputs constant;
- exploding gradients explain a NaN loss (0.9) and divergence (0.8);
- a collapse explains a chance-level loss (0.8) and a plateau (0.6);
- ``val_below_train`` explains itself by its top-ranked cause's score (0.95 when the gap
  is the gradient-accumulation factor, seen in the per-batch losses: a reporting bug
  that accounts for the gap fully); ``overfitting`` explains itself (0.7).

``share`` = sum over symptoms of ``weight * severity weight * symptom weight`` / the sum of
``severity weight * symptom weight`` over the symptoms (severity weights: critical 3,
warning 2, info 1; symptom weights 1, except ``val_below_train`` 0.5: a validation loss
below the training loss spoils no prediction, it misleads the reading of the curves and
is often bookkeeping, so it counts half as much as a failure of training itself).

Shares overlap: two findings that both explain the collapse each count it, so shares do not add up
(0.9 + 0.3 of the same symptom). ``part`` is the additive figure the report shows: each symptom's weight
is split among the findings that explain it, in proportion to their rule weights (scaled to add up to 1
when they add up to more; what they leave is ``attrs["unexplained"]``), so the parts and the unexplained
rest add up to 100% of the observed failure (:func:`failure_parts`).

Findings are ranked by ``share``, then severity, then score, with one precedence: a
finding that another present finding explains strongly (rule weight 0.5 or more,
``STRONG``) ranks below it. So a symptom ranks below the cause that explains it, and a
symptom that nothing present explains stays on top; rules can name non-symptom findings
(``vanishing_gradients`` explains ``update_ratio``) for this precedence alone, without
adding to ``share``.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from .checks import CHECKS, Check, default_checks
from .findings import Finding, check_failed, is_problem, sort_findings

if TYPE_CHECKING:
    from .run import Run

SEVERITY_WEIGHT = {"critical": 3.0, "warning": 2.0, "info": 1.0, "ok": 0.0}
#: a rule weight from which the explaining finding ranks above the finding it explains.
STRONG = 0.5

#: symptom code -> its weight in the observed failure, from every check's ``symptoms``.
SYMPTOM_WEIGHT: dict[str, float] = {code: w for c in CHECKS.values() for code, w in c.symptoms.items()}
SYMPTOMS = tuple(SYMPTOM_WEIGHT)
#: rule key -> {symptom code: (weight, reason)}, from every check's ``explains`` (the module docstring).
EXPLAINS: dict[str, dict[str, tuple[float, str]]] = {key: rules for c in CHECKS.values()
                                                     for key, rules in c.explains.items()}


#: code -> the check that owns its rules (for findings made without ``check``, e.g. by hand).
_OWNER = {key: c for c in CHECKS.values() for key in (*c.explains, *c.symptoms)}


def rule_key(f: Finding) -> str:
    """The ``EXPLAINS`` entry for ``f``: its check's :meth:`~collapse_nb.checks.Check.rule_key`, else its code."""
    cls = CHECKS.get(f.check) or _OWNER.get(f.code)
    if cls is None:
        return f.code
    try:
        return cls().rule_key(f)
    except Exception:       # noqa: BLE001 - odd details must not stop the ranking
        return f.code


# ----------------------------------------------------------------------------- diagnose

def diagnose(run: Run, checks: Iterable[Any] | None = None, thresholds: dict[str, dict[str, Any]] | None = None,
             **overrides: Any) -> list[Finding]:
    """Run the checks on ``run`` and return their findings, problems first (see the module docstring).

    ``checks``: ``None`` for :func:`collapse_nb.checks.default_checks`, or check names, classes or instances.
    """
    selected = _select(checks)
    per_check = _thresholds(thresholds, overrides)
    running = {c.name for c in selected}
    for name in sorted(set(per_check) - running - set(CHECKS)):
        raise ValueError(f"unknown check {name!r} in thresholds; known checks: "
                         f"{', '.join(sorted(set(CHECKS) | running))}")
    unknown = set(per_check) - running
    if unknown:
        raise ValueError(f"thresholds given for check(s) not being run: {', '.join(sorted(unknown))}; "
                         f"running: {', '.join(c.name for c in selected)}")
    configured = []
    for c in selected:
        values = per_check.get(c.name, {})
        allowed = {f.name for f in dataclasses.fields(c)}
        bad = set(values) - allowed
        if bad:
            raise ValueError(f"unknown threshold(s) for {c.name}: {', '.join(sorted(bad))}; "
                             f"allowed: {', '.join(sorted(allowed))}")
        types = {f.name: f.type for f in dataclasses.fields(c)}
        values = {k: threshold_value(c.name, k, types[k], v) for k, v in values.items()}
        configured.append(dataclasses.replace(c, **values) if values else c)
    findings: list[Finding] = []
    # a distributed run: the checks read one rank's rows (collapse_nb.ranks), those that compare ranks every rank's
    view = getattr(run, "one_rank", run)
    for c in configured:
        try:
            c.reset_basis()                    # what this call reads, set by the check itself
            out = c(run if getattr(c, "all_ranks", False) else view)
            if not isinstance(out, list) or not all(isinstance(f, Finding) for f in out):
                raise TypeError(f"a check must return a list of Finding, got {type(out).__name__}")
        except Exception as e:      # noqa: BLE001 - a broken check must not stop the diagnosis
            out = [check_failed(c.name, e)]
        findings.extend(out)
    return order_findings(findings)


def order_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Problems first in root-cause order (:func:`root_causes`), then ``info``, then ``ok`` (module docstring)."""
    ordered = sort_findings(findings)
    problems = [f for f in ordered if is_problem(f)]
    position = {id(f): i for i, (f, _, _) in enumerate(_ranked(ordered))}
    problems.sort(key=lambda f: position.get(id(f), len(position)))
    return problems + [f for f in ordered if not is_problem(f)]


def _select(checks: Iterable[Any] | None) -> list[Check]:
    if checks is None:
        return default_checks()
    if isinstance(checks, (str, Check)) or isinstance(checks, type):
        checks = [checks]
    out = []
    for c in checks:
        if isinstance(c, str):
            if c not in CHECKS:
                raise ValueError(f"unknown check {c!r}; known checks: {', '.join(sorted(CHECKS))}")
            out.append(CHECKS[c]())
        elif isinstance(c, type) and issubclass(c, Check):
            out.append(c())
        elif isinstance(c, Check):
            out.append(c)
        else:
            raise TypeError(f"checks must be check names, Check classes or Check instances; got {c!r}")
    return out


#: a threshold field's type -> what it takes, in words
_TYPE_WORDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "text"}


def threshold_value(check: str, field: str, kind: Any, value: Any) -> Any:
    """``value`` for the threshold ``field`` of ``check``, whose dataclass field type is ``kind``: a float field
    takes any real number (not a bool), an int field a whole number (``3.0`` too), a bool field a bool, a str
    field a string. Anything else is a ``TypeError`` naming the check, the field and the type. Fields of other
    types are passed through."""
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    is_bool = isinstance(value, (bool, np.bool_))
    if name == "float" and isinstance(value, numbers.Real) and not is_bool:
        return float(value)
    if name == "int" and not is_bool and (isinstance(value, numbers.Integral) or
                                          (isinstance(value, float) and value.is_integer())):
        return int(value)
    if name == "bool" and is_bool:
        return bool(value)
    if name == "str" and isinstance(value, str):
        return value
    if name not in _TYPE_WORDS:
        return value
    raise TypeError(f"threshold {check}__{field}={value!r}: the {check} check's field {field} is "
                    f"{'an' if name == 'int' else 'a'} {name} "
                    f"({_TYPE_WORDS[name]}); got {type(value).__name__}")


def _thresholds(thresholds: dict | None, overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, values in (thresholds or {}).items():
        if not isinstance(values, dict):
            raise TypeError(f"thresholds[{name!r}] must be a dict of field -> value; got {values!r}")
        out.setdefault(name, {}).update(values)
    for key, value in overrides.items():
        if "__" in key:
            name, field = key.split("__", 1)
            out.setdefault(name, {})[field] = value
        elif isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            raise TypeError(f"unexpected keyword {key}={value!r}: use <check>__<threshold>=value or "
                            f"<check>={{threshold: value}}; checks: {', '.join(sorted(CHECKS))}")
    return out


# ----------------------------------------------------------------------------- root causes

def root_causes(findings: Iterable[Finding]) -> pd.DataFrame:
    """Rank the non-ok findings by how much of the observed failure each explains (module docstring).

    Columns: ``rank, code, severity, role`` (``cause`` / ``symptom`` / ``both``), ``share`` (0-1),
    ``part`` (0-1), ``explains`` (the symptom codes), ``reasoning`` (in words), ``title``.

    ``share`` is how much of the observed failure a finding explains *on its own* (the ranking reads it);
    findings that explain the same symptom overlap, so shares do not add up. ``part`` splits each symptom
    among the findings that explain it, in proportion to their rule weights (scaled down to add up to 1 when
    they add up to more), so the parts of all rows plus ``attrs["unexplained"]`` (what no finding explains)
    add up to 1 whenever a symptom was observed (all 0 when none was).
    """
    findings = list(findings)
    ranked = _ranked(findings)
    parts_of, unexplained = failure_parts(findings)
    problems = [f for f, _, _ in ranked]
    has_symptoms = any(_is_symptom(f) for f in problems)
    rows = []
    for f, share, parts in ranked:
        is_symptom = f.code in SYMPTOMS
        role = "both" if is_symptom and f.code in {p[0] for p in parts} else "symptom" if is_symptom else "cause"
        by = [g.code for g in problems if g is not f and f.code in _rules(g)]
        if parts:
            reasoning = "; ".join(f"explains {code} ({w:.0%}): {why}" for code, w, why in parts)
        elif is_symptom:
            reasoning = (f"a symptom, explained by {', '.join(by)}" if by else
                         "a symptom that none of the other findings explains")
        else:
            reasoning = "explains none of the observed symptoms" if has_symptoms else "no failure symptom was observed"
        if by and not is_symptom:
            reasoning += f"; itself explained by {', '.join(by)}"
        rows.append({"code": f.code, "severity": f.severity, "role": role, "share": round(min(share, 1.0), 3),
                     "part": parts_of.get(id(f), 0.0),
                     "explains": ", ".join(p[0] for p in parts), "reasoning": reasoning, "title": f.title})
    cols = ["rank", "code", "severity", "role", "share", "part", "explains", "reasoning", "title"]
    if not rows:
        df = pd.DataFrame(columns=cols)
        df.attrs["unexplained"] = 0.0
        return df
    df = pd.DataFrame(rows)
    df["rank"] = range(1, len(df) + 1)
    df = df[cols].reset_index(drop=True)
    df.attrs["unexplained"] = unexplained
    return df


def observed_symptoms(findings: Iterable[Finding]) -> list[tuple[Finding, float]]:
    """The observed failure: ``(symptom finding, its weight)``, the weight being ``severity weight * symptom
    weight`` (critical 3, warning 2, info 1; ``val_below_train`` counts half)."""
    problems = [f for f in findings if f.severity != "ok" and f.code not in ("not_checked", "check_failed")]
    return [(f, SEVERITY_WEIGHT[f.severity] * SYMPTOM_WEIGHT.get(f.code, 1.0)) for f in problems if _is_symptom(f)]


def failure_parts(findings: Iterable[Finding]) -> tuple[dict[int, float], float]:
    """``({id(finding): part}, unexplained)``: the observed failure split among the findings that explain it.

    Each symptom weighs ``severity weight * symptom weight`` of the failure (the ``share`` weights). Its weight
    goes to the findings whose rules explain it, in proportion to their rule weights; when those add up to more
    than 1 (two suspects for one symptom overlap) they are scaled to add up to 1, and when they add up to less,
    the rest is unexplained. The parts and the unexplained rest add up to 1 (0 and 0 without a symptom).
    """
    findings = list(findings)
    problems = [f for f in findings if f.severity != "ok" and f.code not in ("not_checked", "check_failed")]
    observed = observed_symptoms(findings)
    symptoms = [f for f, _ in observed]
    weight = {id(f): w for f, w in observed}
    total = sum(weight.values())
    if not total:
        return {}, 0.0
    rules = {id(f): _rules(f) for f in problems}
    parts: dict[int, float] = {}
    unexplained = 0.0
    for s in symptoms:
        w = {id(f): rules[id(f)][s.code][0] for f in problems if s.code in rules[id(f)]}
        w = {k: max(0.0, v) for k, v in w.items()}
        covered = sum(w.values())
        scale = 1.0 / covered if covered > 1.0 else 1.0
        for k, v in w.items():
            parts[k] = parts.get(k, 0.0) + v * scale * weight[id(s)] / total
        unexplained += max(0.0, 1.0 - covered * scale) * weight[id(s)] / total
    return parts, unexplained


def _is_symptom(f: Finding) -> bool:
    return f.code in SYMPTOMS and (is_problem(f) or f.code == "val_below_train")


def explanations(f: Finding) -> dict[str, tuple[float, str]]:
    """What ``f`` explains: ``{symptom code: (weight, reason)}`` (its check's rules; ``val_below_train``
    explains itself by its top-ranked cause)."""
    return _rules(f)


def _rules(f: Finding) -> dict[str, tuple[float, str]]:
    """The finding's rules (``EXPLAINS``), with ``val_below_train`` explaining itself by its top cause's score."""
    rules = dict(EXPLAINS.get(rule_key(f), {}))
    if f.code == "val_below_train":
        top = (f.details.get("causes") or [{}])[0]
        rules["val_below_train"] = (float(top.get("score", 0.25)), top.get("text", "its top-ranked cause"))
    return rules


def _ranked(findings: Iterable[Finding]) -> list[tuple[Finding, float, list[tuple[str, float, str]]]]:
    """``(finding, share, [(symptom, weight, why), ...])`` for the non-ok findings, best root cause first.

    Sorted by share, then severity, then score; then a finding that another present finding
    explains with a weight of ``STRONG`` or more is moved below that finding (the order is
    otherwise kept; a cycle, which the rules do not have, would fall back to the share order).
    """
    problems = [f for f in findings if f.severity != "ok" and f.code not in ("not_checked", "check_failed")]
    symptoms = [f for f in problems if _is_symptom(f)]
    weight = {id(s): SEVERITY_WEIGHT[s.severity] * SYMPTOM_WEIGHT.get(s.code, 1.0) for s in symptoms}
    total = sum(weight.values()) or 1.0
    scored = []
    for f in problems:
        rules = _rules(f)
        share, parts = 0.0, []
        for s in symptoms:
            if s.code in rules:
                w, why = rules[s.code]
                share += w * weight[id(s)] / total
                parts.append((s.code, w, why))
        scored.append((f, share, parts))
    scored.sort(key=lambda t: (-round(t[1], 9), t[0].rank, -t[0].score))
    explainers = {id(f): [g for g, _, _ in scored if g is not f and _rules(g).get(f.code, (0.0,))[0] >= STRONG]
                  for f, _, _ in scored}
    out: list[tuple[Finding, float, list]] = []
    placed: set[int] = set()
    pending = list(scored)
    while pending:
        pick = next((t for t in pending if all(id(g) in placed for g in explainers[id(t[0])])), pending[0])
        pending.remove(pick)
        out.append(pick)
        placed.add(id(pick[0]))
    return out
