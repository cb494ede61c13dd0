"""The threshold explorer: move one check's threshold and watch its findings change, live.

>>> te = threshold_explorer(run, "variance_collapse", "critical_ratio")     # doctest: +SKIP
>>> te.slider.value = 0.05                                                   # doctest: +SKIP
>>> [f.severity for f in te.findings]                                        # doctest: +SKIP

Each change re-runs exactly what a script would:
``diagnose(run, checks=[check], **{f"{check}__{field}": value})``; the findings panel shows
the result, and the chart that check's evidence comes from is drawn beside it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from .. import plots
from ..checks import CHECKS
from ..diagnose import diagnose
from ._common import as_run, draw, escape, require_ipywidgets, show
from .findings import FindingsPanel

#: check -> (plot, keyword arguments from the configured check): the chart beside the findings.
PLOTS: dict[str, tuple[Callable[..., Any], Callable[[Any, str, float], dict[str, Any]]]] = {
    "variance_collapse": (plots.output_std,
                          lambda c, field, v: {"threshold": v if field.endswith("_ratio") else c.critical_ratio}),
    "dead_parameters": (plots.gradient_flow, lambda c, field, v: {}),
    "vanishing_gradients": (plots.gradient_flow, lambda c, field, v: {}),
    "exploding_gradients": (plots.gradient_flow, lambda c, field, v: {}),
    "output_head": (plots.gradient_heatmap, lambda c, field, v: {"value": "weight_norm"}),
    "update_ratio": (plots.update_ratio_heatmap, lambda c, field, v: {}),
    "val_below_train": (plots.val_train_ratio, lambda c, field, v: {}),
    "lr_schedule_mismatch": (plots.lr_curve, lambda c, field, v: {}),
}
DEFAULT_PLOT: tuple[Callable[..., Any], Callable[[Any, str, float], dict[str, Any]]] = (
    plots.loss_curves, lambda c, field, v: {})


#: check -> (low, high) threshold pairs that must keep ``low <= high`` (read from each check's fields: a
#: ratio below ``critical_ratio`` is collapsed and below ``warning_ratio`` suspicious, so critical <= warning;
#: a rise or factor above ``rise``/``factor`` is a warning and above ``critical_*`` critical, so warning <= critical;
#: update ratios outside ``[too_small, too_big]`` are flagged).
ORDERED: dict[str, tuple[tuple[str, str], ...]] = {
    "variance_collapse": (("critical_ratio", "warning_ratio"),),
    "loss_divergence": (("factor", "critical_factor"),),
    "overfitting": (("rise", "critical_rise"),),
    "update_ratio": (("too_small", "too_big"),),
}


def partner(check: str, field: str) -> tuple[str, str] | None:
    """``(other field, "above" or "below")``: the threshold ``field`` is ordered with, and where it must stay
    relative to ``field`` (``None`` when ``field`` has no partner)."""
    for low, high in ORDERED.get(check, ()):
        if field == low:
            return high, "above"
        if field == high:
            return low, "below"
    return None


def numeric_fields(check: str) -> dict[str, float]:
    """A check's numeric thresholds and their defaults (what a slider can move)."""
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; known checks: {', '.join(sorted(CHECKS))}")
    inst = CHECKS[check]()
    return {f.name: getattr(inst, f.name) for f in dataclasses.fields(inst)
            if isinstance(getattr(inst, f.name), (int, float)) and not isinstance(getattr(inst, f.name), bool)}


def make_slider(w: Any, field: str, default: float, lo: float | None = None, hi: float | None = None) -> Any:
    """An IntSlider for integer thresholds; a FloatLogSlider (base 10) for positive floats, spanning
    ``lo``..``hi`` (default: 3 decades below to 2 above ``default``); a FloatSlider otherwise."""
    common = dict(description=field, continuous_update=False, style={"description_width": "initial"},
                  layout=w.Layout(width="520px"))
    if isinstance(default, int):
        return w.IntSlider(value=default, min=int(lo if lo is not None else 0),
                           max=int(hi if hi is not None else max(10, 4 * default)), **common)
    if default > 0:
        e = math.floor(math.log10(default))
        lo_e = math.log10(lo) if lo is not None else e - 3
        hi_e = math.log10(hi) if hi is not None else e + 2
        return w.FloatLogSlider(value=default, base=10, min=lo_e, max=hi_e, step=0.05, readout_format=".3g", **common)
    return w.FloatSlider(value=default, min=lo if lo is not None else -1.0, max=hi if hi is not None else 1.0,
                         step=0.01, readout_format=".3g", **common)


class ThresholdExplorer:
    """A check, one of its thresholds, a slider for it; the findings and chart follow the slider.

    Attributes: ``check_select`` and ``field_select`` (Dropdowns), ``slider`` (replaced when the
    field changes), ``partner_slider`` (the threshold ordered with ``slider``'s, e.g. ``warning_ratio``
    beside ``critical_ratio``; ``None`` when it has none), ``values`` (what the check runs with),
    ``findings`` (the latest result), ``panel`` (a :class:`FindingsPanel`), ``status`` (HTML: what ran),
    ``figure`` (the chart), ``runs`` (how many times the check ran).

    Ordered thresholds are linked (:data:`ORDERED`): moving ``critical_ratio`` above ``warning_ratio``
    moves ``warning_ratio`` up with it (and the other way round), so the check never runs with a critical
    limit the warning limit does not contain.
    """

    def __init__(self, run_or_path: Any = None, check: str = "variance_collapse", field: str | None = None,
                 value: float | None = None, min: float | None = None, max: float | None = None) -> None:
        w = require_ipywidgets()
        self._w = w
        self.run = as_run(run_or_path)
        fields = numeric_fields(check)
        if not fields:
            raise ValueError(f"check {check!r} has no numeric threshold to explore")
        field = field or next(iter(fields))
        if field not in fields:
            raise ValueError(f"{check} has no numeric threshold {field!r}; it has: {', '.join(fields)}")
        self.check_select = w.Dropdown(options=sorted(c for c in CHECKS if numeric_fields(c)), value=check,
                                       description="check")
        self.field_select = w.Dropdown(options=list(fields), value=field, description="threshold")
        self.status, self.plot_out = w.HTML(), w.Output()
        self.panel = FindingsPanel(causes=False)
        self.findings: list = []
        self.figure: Any = None
        self.runs = 0
        self._plot_key: Any = None
        self._switching = False
        self._linking = False
        self.partner_slider: Any = None
        self.slider = self._new_slider(value, min, max)
        self._keep_order("slider")
        self.check_select.observe(lambda c: self._check_changed(c["new"]), names="value")
        self.field_select.observe(lambda c: self._field_changed(), names="value")
        self._slider_box = w.VBox(self._sliders())
        self.widget = w.VBox([w.HBox([self.check_select, self.field_select]), self._slider_box, self.status,
                              w.HBox([w.Box([self.panel.widget], layout=w.Layout(width="50%")),
                                      w.Box([self.plot_out], layout=w.Layout(width="50%"))])])
        self.rerun()

    @property
    def check(self) -> str:
        return self.check_select.value

    @property
    def field(self) -> str:
        return self.field_select.value

    @property
    def values(self) -> dict[str, float]:
        """The thresholds the check runs with: the slider's field, and its partner's when it has one."""
        out = {self.field: self.slider.value}
        if self.partner_slider is not None:
            out[self.partner_slider.description] = self.partner_slider.value
        return out

    def _sliders(self) -> list[Any]:
        return [self.slider] + ([self.partner_slider] if self.partner_slider is not None else [])

    def _new_slider(self, value: float | None = None, lo: float | None = None, hi: float | None = None) -> Any:
        fields = numeric_fields(self.check)
        default = fields[self.field]
        pair = partner(self.check, self.field)
        if pair and lo is None and hi is None and isinstance(default, float) and default > 0 < fields[pair[0]]:
            both = sorted((default, fields[pair[0]]))      # one range for both, so a pushed value fits
            lo, hi = 10.0 ** (math.floor(math.log10(both[0])) - 3), 10.0 ** (math.floor(math.log10(both[1])) + 2)
        s = make_slider(self._w, self.field, default, lo, hi)
        if value is not None:
            s.value = value
        self.partner_slider = None
        if pair:
            other, _where = pair
            self.partner_slider = make_slider(self._w, other, fields[other], lo, hi)
            self.partner_slider.observe(lambda c: self._moved("partner"), names="value")
        s.observe(lambda c: self._moved("slider"), names="value")
        return s

    def _low_high(self) -> tuple[Any, Any]:
        """The (low, high) sliders of the linked pair."""
        pair = partner(self.check, self.field)
        assert pair is not None                               # (only a field of a linked pair has these sliders)
        _other, where = pair
        return (self.slider, self.partner_slider) if where == "above" else (self.partner_slider, self.slider)

    def _keep_order(self, moved: str) -> None:
        """Push the other slider of the pair so that low <= high holds after ``moved`` ("slider" or "partner")."""
        if self.partner_slider is None:
            return
        low, high = self._low_high()
        if low.value > high.value:
            pushed_by = self.slider if moved == "slider" else self.partner_slider
            self._linking = True
            try:
                if pushed_by is low:
                    high.value = low.value
                else:
                    low.value = high.value
            finally:
                self._linking = False

    def _moved(self, which: str) -> None:
        if self._linking:
            return
        self._keep_order(which)
        self.rerun()

    def _check_changed(self, check: str) -> None:
        self._switching = True              # new options select their first field: one rerun, below
        try:
            self.field_select.options = list(numeric_fields(check))
        finally:
            self._switching = False
        self._field_changed()

    def _field_changed(self) -> None:
        if self._switching:
            return
        self.slider = self._new_slider()
        self._slider_box.children = tuple(self._sliders())
        self.rerun()

    def rerun(self) -> list:
        """Run the check with the slider's value and show its findings (what the slider calls)."""
        value = self.slider.value
        values = self.values
        self.findings = diagnose(self.run, checks=[self.check], thresholds={self.check: dict(values)})
        self.runs += 1
        self.panel.update(self.findings)
        verdicts = ", ".join(f"{f.severity} {f.code}" for f in self.findings)
        args = ", ".join(f"{escape(self.check)}__{escape(k)}={escape(f'{v:.4g}')}" for k, v in values.items())
        order = ""
        if self.partner_slider is not None:
            low, high = self._low_high()
            order = (f"<br><small>{escape(low.description)} &le; {escape(high.description)}: the two sliders are "
                     "linked (moving one past the other moves it too)</small>")
        self.status.value = (f"<code>diagnose(run, checks=[{escape(repr(self.check))}], {args})</code> → "
                             f"{escape(verdicts)}{order}")
        plot, kwargs_of = PLOTS.get(self.check, DEFAULT_PLOT)
        configured = dataclasses.replace(CHECKS[self.check](), **values)
        kwargs = kwargs_of(configured, self.field, value)
        key = (plot, tuple(sorted(kwargs.items())))
        if key != self._plot_key:           # the chart only changes when its arguments do
            self.figure = draw(plot, self.run, figsize=(8, 4.5), **kwargs)
            show(self.plot_out, self.figure)
            self._plot_key = key
        return self.findings

    def _ipython_display_(self) -> None:           # pragma: no cover - needs a front end
        from IPython.display import display

        display(self.widget)


def threshold_explorer(run_or_path: Any = None, check: str = "variance_collapse", field: str | None = None,
                       **kwargs: Any) -> ThresholdExplorer:
    """A :class:`ThresholdExplorer` (``value``, ``min``, ``max`` may be given); show ``.widget``."""
    return ThresholdExplorer(run_or_path, check, field, **kwargs)
