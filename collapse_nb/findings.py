"""``Finding``: what a check concluded about a run, with the rows that show it.

A finding has a stable ``code`` (``variance_collapse``, ``dead_parameters``,
``lr_schedule_ok``...), a ``severity`` (``critical`` > ``warning`` > ``info`` >
``ok``), a one-line ``title``, a one-paragraph ``summary`` with the key numbers,
the ``evidence`` rows (a DataFrame), suggested ``actions`` (most useful first),
a ``score`` that ranks findings of the same severity (higher = more severe or
more certain), the ``check`` that produced it, and ``details``: the numbers in
machine-readable form.

Two codes are shared by every check: ``not_checked`` (``info``: the run lacks
the data the check needs; ``details["missing"]`` says what) and
``check_failed`` (``info``: the check raised; ``details["error"]``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import pandas as pd

#: Severities, most severe first.
SEVERITIES = ("critical", "warning", "info", "ok")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

#: Codes every check may emit.
NOT_CHECKED = "not_checked"
CHECK_FAILED = "check_failed"


#: The one vocabulary every surface uses (the report, the widgets, the CLI's text and JSON, the triage page).
#: A *finding* is labelled with its severity, as is: ``critical``, ``warning``, ``info``, ``ok``; a finding whose
#: check did not run is ``not checked`` or ``check failed`` (severity ``info``). A *run* as a whole has a status
#: word, from its findings (:func:`collapse_nb.report.verdict.make_verdict`): the keys of :data:`STATUS_WORDS`.
#: The two never mix: no finding is "broken" and no run is "critical".
SEVERITY_WORDS = {"critical": "critical", "warning": "warning", "info": "info", "ok": "ok"}
#: The label of a finding whose check did not run, by its code.
NOT_RUN_WORDS = {"not_checked": "not checked", "check_failed": "check failed"}
#: A run's status word -> what it means, worst first (the order triage sorts runs in).
STATUS_WORDS = {
    "broken": "at least one critical finding",
    "suspicious": "warnings, no critical finding",
    "not assessed": "no training objective was recognised, whatever else ran",
    "inconclusive": "no problem found, but most checks lacked the data they need",
    "healthy": "no problem found, and most checks ran",
    "not judged": "no check could run",
    "unreadable": "the run's files could not be read (triage only)",
}
#: The colour family of every label (finding or run): ``bad``, ``warn``, ``good``, ``note``, ``off``.
TONE = {"critical": "bad", "broken": "bad", "unreadable": "bad", "warning": "warn", "suspicious": "warn",
        "ok": "good", "healthy": "good", "info": "note", "not checked": "off", "check failed": "off",
        "not assessed": "off", "inconclusive": "off", "not judged": "off", "no finding": "off"}


def finding_label(finding: "Finding") -> str:
    """The word a finding is shown with: its severity, or ``not checked`` / ``check failed``."""
    return NOT_RUN_WORDS.get(finding.code) or SEVERITY_WORDS[finding.severity]


def by_severity(findings: Iterable["Finding"]) -> list["Finding"]:
    """Most severe first (critical, warning, info, ok), keeping the given order within a severity.

    The order to *list* findings in (the report's tables, the widgets, the CLI): :func:`collapse_nb.diagnose`'s
    own order puts a warning that explains a critical symptom before it (root-cause order), which is the order
    of the suspects, not of a list of findings.
    """
    return sorted(findings, key=lambda f: f.rank)


def severity_rank(severity: str) -> int:
    """0 for ``critical`` ... 3 for ``ok``; raises ``ValueError`` for anything else."""
    try:
        return _RANK[severity]
    except KeyError:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}; got {severity!r}") from None


def is_problem(finding: "Finding") -> bool:
    """``critical`` or ``warning``."""
    return finding.severity in ("critical", "warning")


@dataclass
class Finding:
    """One conclusion about a run. See the module docstring for the fields."""

    code: str
    severity: str
    title: str
    summary: str = ""
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)
    actions: list[str] = field(default_factory=list)
    score: float = 0.0
    check: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if not isinstance(self.code, str) or not self.code:
            raise ValueError(f"code must be a non-empty string; got {self.code!r}")
        if self.evidence is None:
            self.evidence = pd.DataFrame()
        self.score = float(self.score) if self.score is not None and np.isfinite(self.score) else 0.0

    @property
    def rank(self) -> int:
        return severity_rank(self.severity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: evidence as a list of records; NaN, inf and pandas NA become ``None``."""
        return {
            "code": self.code, "severity": self.severity, "title": self.title, "summary": self.summary,
            "evidence": _records(self.evidence), "actions": list(self.actions), "score": _json(self.score),
            "check": self.check, "details": _json(self.details),
        }

    def __repr__(self) -> str:
        return f"<Finding {self.severity}: {self.code} ({self.check}) {self.title!r}>"


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    return [_json(r) for r in df.astype(object).to_dict(orient="records")]


def _json(v: Any) -> Any:
    """Make ``v`` JSON-safe: NaN/inf/NA -> None, numpy scalars -> Python, containers recursively."""
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_json(x) for x in v]
    if isinstance(v, pd.DataFrame):
        return _records(v)
    if isinstance(v, pd.Series):
        return _json(v.tolist())
    if isinstance(v, np.ndarray):
        return _json(v.tolist())
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v if isinstance(v, str) else str(v)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Problems first (critical, then warning; higher score first), then ``info``, then ``ok``.

    The sort is stable: findings that tie keep the order they were produced in.
    """
    return sorted(findings, key=lambda f: (f.rank, -f.score))


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """One row per finding: ``severity, code, check, title, score, summary`` (for a notebook)."""
    rows = [{"severity": f.severity, "code": f.code, "check": f.check, "title": f.title, "score": f.score,
             "summary": f.summary} for f in findings]
    return pd.DataFrame(rows, columns=["severity", "code", "check", "title", "score", "summary"])


def not_checked(check: str, missing: str, title: str | None = None, applies: bool = True) -> Finding:
    """The ``info`` finding a check returns when the run lacks the data it needs.

    ``applies=False``: the check does not apply to this kind of run (``gan_balance`` on a run with one
    network): nothing is missing, and the verdict does not count it among the checks that lacked data.
    """
    return Finding(code=NOT_CHECKED, severity="info", check=check,
                   title=title or f"{check}: {'not checked' if applies else 'does not apply'} ({missing})",
                   summary=f"The {check} check did not run: {missing}.",
                   details={"missing": missing, "not_applicable": not applies})


def check_failed(check: str, error: BaseException) -> Finding:
    """The ``info`` finding :func:`collapse_nb.diagnose.diagnose` makes of a check that raised."""
    text = f"{type(error).__name__}: {error}"
    return Finding(code=CHECK_FAILED, severity="info", check=check, title=f"{check}: the check failed ({text})",
                   summary=f"The {check} check raised {text}; the other checks ran. This is a bug in the check, "
                           f"or input it does not understand.",
                   details={"error": text, "error_type": type(error).__name__})
