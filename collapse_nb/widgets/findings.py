"""The findings panel: an HTML list of findings, coloured by severity, with a toggle per severity.

>>> panel = findings_panel(collapse_nb.diagnose(run))     # doctest: +SKIP
>>> panel.severity_buttons["ok"].value = False              # doctest: +SKIP
>>> panel.shown                                             # codes now listed  # doctest: +SKIP

All text (titles, summaries, actions, evidence cells) is HTML-escaped: log files name
parameters and metrics, and nothing in them is trusted as markup.
"""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from ..diagnose import root_causes
from ..diagnose import order_findings
from ..findings import SEVERITIES, TONE, Finding, by_severity, finding_label
from ._common import CARD_BG, FG, MUTED, ON_COLOR, TONE_COLORS, escape, require_ipywidgets

#: Card background, accent colour per severity: JupyterLab theme variables (light and dark), with fallbacks.
SEVERITY_COLORS = {s: (CARD_BG, TONE_COLORS[TONE[s]]) for s in SEVERITIES}
EVIDENCE_ROWS = 15


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def evidence_html(df: pd.DataFrame, rows: int = EVIDENCE_ROWS) -> str:
    """The first ``rows`` rows of an evidence table as an escaped HTML table."""
    if df is None or df.empty:
        return ""
    shown = df.head(rows).astype(object).map(_cell)
    more = f"<div style='color:{MUTED}'>… {len(df) - rows} more rows</div>" if len(df) > rows else ""
    return shown.to_html(index=False, escape=True, border=0, classes="cnb-evidence") + more


def finding_html(f: Finding, evidence: bool = True) -> str:
    """One finding as an escaped HTML block: severity badge, title, summary, actions, evidence."""
    bg, accent = SEVERITY_COLORS.get(f.severity, (CARD_BG, TONE_COLORS["off"]))
    parts = [f"<div class='cnb-finding cnb-{escape(f.severity)}' data-code='{escape(f.code)}' "
             f"style='border-left:5px solid {accent};background:{bg};color:{FG};padding:6px 10px;margin:6px 0'>",
             f"<span style='background:{accent};color:{ON_COLOR};border-radius:3px;padding:1px 6px;font-size:85%'>"
             f"{escape(finding_label(f).upper())}</span> <b>{escape(f.title)}</b> "
             f"<code style='color:{MUTED}'>{escape(f.code)}</code>"]
    if f.summary:
        parts.append(f"<div style='margin-top:4px'>{escape(f.summary)}</div>")
    if f.actions:
        parts.append(f"<details><summary>what to do ({len(f.actions)})</summary><ul style='margin:4px 0'>"
                     + "".join(f"<li>{escape(a)}</li>" for a in f.actions) + "</ul></details>")
    if evidence and f.evidence is not None and not f.evidence.empty:
        parts.append(f"<details><summary>evidence ({len(f.evidence)} rows)</summary>{evidence_html(f.evidence)}"
                     "</details>")
    parts.append("</div>")
    return "".join(parts)


def root_causes_html(findings: Iterable[Finding]) -> str:
    """The ranked root causes (:func:`collapse_nb.root_causes`) as an escaped HTML table ("" when none)."""
    from ..report.verdict import part_percents

    rc = root_causes(findings)
    pct, rest = part_percents(rc)
    rc = rc.assign(part=[f"{p}%" for p in pct])[[s > 0 for s in rc["share"]]]
    if rc.empty:
        return ""
    t = rc[["rank", "code", "severity", "part", "explains"]].rename(columns={"part": "part of the failure"})
    note = (f"<div style='color:{MUTED}'>Parts of the observed failure: with what no finding explains ({rest}%) they "
            f"add up to 100%.</div>")
    return ("<h4 style='margin:6px 0'>Root causes, ranked</h4>" + t.to_html(index=False, escape=True, border=0)
            + note)


def findings_html(findings: Iterable[Finding], severities: Iterable[str] = SEVERITIES, evidence: bool = True,
                  causes: bool = True) -> str:
    """The findings of the given ``severities`` as HTML (problems first), with the root-cause ranking on top."""
    findings = by_severity(order_findings(findings))
    keep = set(severities)
    shown = [f for f in findings if f.severity in keep]
    counts = ", ".join(f"{sum(f.severity == s for f in findings)} {s}" for s in SEVERITIES)
    head = f"<div style='color:{MUTED}'>{len(findings)} finding(s): {escape(counts)}; showing {len(shown)}.</div>"
    body = "".join(finding_html(f, evidence) for f in shown) or "<div><i>No finding to show.</i></div>"
    return "<div class='cnb-findings'>" + head + (root_causes_html(findings) if causes else "") + body + "</div>"


class FindingsPanel:
    """An HTML list of findings with one toggle button per severity.

    Attributes: ``findings`` (sorted), ``severity_buttons`` (severity -> ToggleButton), ``evidence``
    (Checkbox: show the evidence tables), ``html`` (the HTML widget), ``widget`` (the container).
    """

    def __init__(self, findings: Iterable[Finding] = (), causes: bool = True) -> None:
        w = require_ipywidgets()
        self.causes = causes
        self.severity_buttons = {s: w.ToggleButton(value=True, description=s, layout=w.Layout(width="90px"),
                                                   tooltip=f"show {s} findings") for s in SEVERITIES}
        self.evidence = w.Checkbox(value=True, description="evidence tables", indent=False)
        self.html = w.HTML()
        for b in (*self.severity_buttons.values(), self.evidence):
            b.observe(lambda _change: self.render(), names="value")
        self.widget = w.VBox([w.HBox([*self.severity_buttons.values(), self.evidence]), self.html])
        self.findings: list[Finding] = []
        self.update(findings)

    @property
    def severities(self) -> list[str]:
        return [s for s, b in self.severity_buttons.items() if b.value]

    @property
    def shown(self) -> list[str]:
        """The codes of the findings listed now, in order."""
        keep = set(self.severities)
        return [f.code for f in self.findings if f.severity in keep]

    def update(self, findings: Iterable[Finding]) -> None:
        """Show other findings (what a threshold change or a new run calls)."""
        findings = list(findings)
        bad = [type(f).__name__ for f in findings if not isinstance(f, Finding)]
        if bad:
            raise TypeError(f"findings_panel() needs Finding objects (from collapse_nb.diagnose); got {bad[0]}")
        self.findings = by_severity(order_findings(findings))
        self.render()

    def render(self) -> None:
        self.html.value = findings_html(self.findings, self.severities, self.evidence.value, self.causes)

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def findings_panel(findings: Iterable[Finding], causes: bool = True) -> FindingsPanel:
    """A :class:`FindingsPanel` over ``findings`` (e.g. ``collapse_nb.diagnose(run)``); show ``.widget``."""
    return FindingsPanel(findings, causes=causes)
