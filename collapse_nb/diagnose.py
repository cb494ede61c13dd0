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
error that lists what is allowed. A check that raises becomes an ``info`` finding with
code ``check_failed`` naming the check and the error; the other checks still run.

Order of the result: problems first (``critical``, then ``warning``; within a
severity the higher ``score`` first), then ``info``, then ``ok``.

Root causes
-----------
:func:`root_causes` ranks the non-``ok`` findings by how much of the observed failure
each explains. The observed failure is the set of *symptom* findings (non-ok) among
``SYMPTOMS``: collapsed outputs, a flat, chance-level, diverging or NaN loss,
overfitting, validation below training. Each rule in ``EXPLAINS`` says how much
(0-1) a finding accounts for a symptom, and why:

- a tiny-initialised output head (0.9) or a dead one (0.9) explains a variance collapse
  almost fully: nothing else is needed for near-constant outputs;
- a dead branch elsewhere explains part of it (0.3): the rest of the model still trains;
- vanishing gradients explain a flat loss (0.7) more than a collapse (0.5);
- a learning-rate schedule mismatch or saturated clipping explains a plateau partly
  (0.5 / 0.4) and a collapse little (0.2): a low learning rate with healthy gradients
  slows learning but does not by itself make outputs constant;
- exploding gradients explain a NaN loss (0.9) and divergence (0.8);
- a collapse explains a chance-level loss (0.8) and a plateau (0.6);
- ``val_below_train`` explains itself by its top-ranked cause's score (0.95 when the gap
  is the gradient-accumulation factor, seen in the per-batch losses: a reporting bug
  that accounts for the gap fully); ``overfitting`` explains itself (0.7).

``share`` = sum over symptoms of ``weight * severity weight`` / the sum of symptom
severity weights (critical 3, warning 2, info 1). Findings are ranked by ``share``,
then severity, then score.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import pandas as pd

from .checks import CHECKS, Check, default_checks
from .findings import Finding, check_failed, is_problem, sort_findings

SYMPTOMS = ("variance_collapse", "loss_plateau", "chance_level_loss", "loss_divergence", "nonfinite_loss",
            "overfitting", "val_below_train")
SEVERITY_WEIGHT = {"critical": 3.0, "warning": 2.0, "info": 1.0, "ok": 0.0}

#: cause code -> {symptom code: (weight, reason)}; see the module docstring.
EXPLAINS: dict[str, dict[str, tuple[float, str]]] = {
    "tiny_output_head": {
        "variance_collapse": (0.9, "an output head orders of magnitude smaller than the other layers maps every input "
                                   "to nearly the same output"),
        "chance_level_loss": (0.6, "near-constant outputs score the loss of predicting the mean"),
        "loss_plateau": (0.5, "the head's tiny weights make every other layer's gradient tiny too"),
    },
    "dead_output_head": {
        "variance_collapse": (0.9, "the output head gets no gradient, so the predictions cannot learn to vary"),
        "chance_level_loss": (0.8, "no gradient reaches the outputs"),
        "loss_plateau": (0.8, "no gradient reaches the outputs"),
    },
    "dead_parameters": {
        "variance_collapse": (0.3, "a dead branch removes capacity, but the rest of the model still trains: it "
                                   "explains part of a collapse at most"),
        "loss_plateau": (0.3, "the dead parameters cannot contribute to lowering the loss"),
        "chance_level_loss": (0.3, "part of the model is cut off from the loss"),
    },
    "vanishing_gradients": {
        "loss_plateau": (0.7, "gradients too small to move the weights keep the loss flat"),
        "variance_collapse": (0.5, "layers that do not learn leave the outputs near their initial, constant values"),
        "chance_level_loss": (0.6, "nothing is learned"),
    },
    "exploding_gradients": {
        "nonfinite_loss": (0.9, "NaN/inf or huge gradients corrupt the weights, then the loss"),
        "loss_divergence": (0.8, "oversized updates throw the weights out of the basin"),
    },
    "update_ratio": {
        "loss_plateau": (0.5, "layers whose updates are tiny relative to their weights barely learn"),
        "variance_collapse": (0.3, "the layers that barely move cannot spread the outputs"),
        "loss_divergence": (0.5, "updates large relative to the weights destabilise training"),
    },
    "clipping_saturated": {
        "loss_plateau": (0.4, "clipping every step shrinks every update below what the learning rate intends"),
        "variance_collapse": (0.2, "smaller steps slow learning, but do not by themselves make outputs constant"),
    },
    "lr_schedule_mismatch": {
        "loss_plateau": (0.5, "the learning rate is not what was configured"),
        "loss_divergence": (0.5, "a learning rate above the intended one can diverge"),
        "variance_collapse": (0.2, "a wrong (low) learning rate with healthy gradients slows learning but explains "
                                   "a collapse only weakly"),
    },
    "variance_collapse": {
        "chance_level_loss": (0.8, "predicting a near-constant scores the loss of predicting the mean"),
        "loss_plateau": (0.6, "a model stuck at a constant output keeps the loss flat"),
    },
    "nonfinite_loss": {"loss_divergence": (0.5, "the loss blew up")},
    "overfitting": {"overfitting": (0.7, "the model memorises the training set (too little data or regularisation "
                                         "for its size)")},
}


# ----------------------------------------------------------------------------- diagnose

def diagnose(run, checks: Iterable[Any] | None = None, thresholds: dict[str, dict[str, Any]] | None = None,
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
        configured.append(dataclasses.replace(c, **values) if values else c)
    findings: list[Finding] = []
    for c in configured:
        try:
            out = c(run)
            if not isinstance(out, list) or not all(isinstance(f, Finding) for f in out):
                raise TypeError(f"a check must return a list of Finding, got {type(out).__name__}")
        except Exception as e:      # noqa: BLE001 - a broken check must not stop the diagnosis
            out = [check_failed(c.name, e)]
        findings.extend(out)
    return sort_findings(findings)


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
    ``explains`` (the symptom codes), ``reasoning`` (in words), ``title``.
    """
    problems = [f for f in findings if f.severity != "ok" and f.code not in ("not_checked", "check_failed")]
    symptoms = [f for f in problems if f.code in SYMPTOMS and (is_problem(f) or f.code == "val_below_train")]
    total = sum(SEVERITY_WEIGHT[s.severity] for s in symptoms) or 1.0
    rows = []
    for f in problems:
        rules = dict(EXPLAINS.get(_rule_key(f), {}))
        if f.code == "val_below_train":
            top = (f.details.get("causes") or [{}])[0]
            rules["val_below_train"] = (float(top.get("score", 0.25)), top.get("text", "its top-ranked cause"))
        share, parts = 0.0, []
        for s in symptoms:
            if s.code in rules:
                w, why = rules[s.code]
                share += w * SEVERITY_WEIGHT[s.severity] / total
                parts.append((s.code, w, why))
        is_symptom = f.code in SYMPTOMS
        role = "both" if is_symptom and f.code in {p[0] for p in parts} else "symptom" if is_symptom else "cause"
        if parts:
            reasoning = "; ".join(f"explains {code} ({w:.0%}): {why}" for code, w, why in parts)
        elif is_symptom:
            by = [g.code for g in problems if f.code in EXPLAINS.get(_rule_key(g), {}) and g is not f]
            reasoning = (f"a symptom, explained by {', '.join(by)}" if by else
                         "a symptom that none of the other findings explains")
        else:
            reasoning = "explains none of the observed symptoms" if symptoms else "no failure symptom was observed"
        rows.append({"code": f.code, "severity": f.severity, "role": role, "share": round(min(share, 1.0), 3),
                     "explains": ", ".join(p[0] for p in parts), "reasoning": reasoning, "title": f.title,
                     "_rank": f.rank, "_score": f.score})
    cols = ["rank", "code", "severity", "role", "share", "explains", "reasoning", "title"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows).sort_values(["share", "_rank", "_score"], ascending=[False, True, False], kind="stable")
    df["rank"] = range(1, len(df) + 1)
    return df[cols].reset_index(drop=True)


def _rule_key(f: Finding) -> str:
    if f.code == "dead_parameters" and f.details.get("head_dead"):
        return "dead_output_head"
    return f.code
