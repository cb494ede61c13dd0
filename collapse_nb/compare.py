"""``compare(run, reference)``: what differs between a failed run and one that worked.

>>> c = cnb.compare(cnb.load("runs/lr_sweep/lr_1e-6"), cnb.load("runs/lr_sweep/lr_3e-3"))   # doctest: +SKIP
>>> c.summary()           # sentences; c.config, c.curves, c.checks, c.params are DataFrames   # doctest: +SKIP
>>> runs.compare("lr_1e-6")                       # against the closest healthy sibling     # doctest: +SKIP

Four questions, one table each:

``config``
    The configuration keys whose values differ (``key, run, reference, kind``): the canonical keys
    (``learning_rate``...) first, then the raw keys that do not repeat one of them. Keys that name a run
    rather than configure it (``run_name``, ``output_dir``, ids, paths, timestamps, free text) are left out.
``curves``
    For each curve both runs have (the train and validation objectives, each eval set, each eval metric):
    the first point where they *part* (``parted_at``, ``where``), the gap there and at the end, and the
    noise it was judged against. Both curves are smoothed (a running median over ``SMOOTH_FRAC`` of the
    points); the noise is the run-to-run spread of the references when several are given, else the two
    curves' point-to-point scatter (1.4826 x the median absolute residual about the smoothed curve),
    combined in quadrature (a curve of fewer than ``MIN_NOISE_POINTS`` gives none). They part where the
    smoothed gap exceeds ``k_noise`` (3) noise, ``rel_floor`` (2%) of the reference's range and
    ``rel_level`` (5%) of the reference's value there, stays beyond it for ``persist`` (80%) of the
    remaining points and is still beyond it at the end (curves that come back together have not parted).
    Curves are aligned on the step when both have steps, else on the epoch.
``checks``
    The checks whose verdicts differ (``check, run, reference, run_title, reference_title``), worst first,
    when at least one side is a problem (critical or warning).
``params``
    Parameters whose gradient behaviour (median ``grad_norm``, ``update_ratio`` over the run) or final
    checkpoint norm differs by ``param_factor`` (3x) or more either way (``param, metric, run, reference, ratio``:
    ``ratio`` is run / reference), the most different first.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .config import canonical_key
from .findings import severity_rank
from .timeaxis import curve

if TYPE_CHECKING:
    from .run import Run

#: Running-median window as a fraction of a curve's points (at least 3 points, odd).
SMOOTH_FRAC = 0.05
#: Fewest points of a curve whose scatter is a noise estimate (a running median passes through most of fewer).
MIN_NOISE_POINTS = 10
#: Keys that name a run rather than configure it (matched on the last part of a dotted key).
IDENTITY = re.compile(r"^(_?wandb|run_?name|run_?id|id|name|experiment(_name|_id)?|scenario|description|notes?|"
                      r"output_dir|logging_dir|save_dir|log_dir|dir|path|.*_(dir|path|file)|hub_.*|"
                      r"timestamp|date|time|start_time|created|hostname|host|git.*|commit|torch|python|"
                      r"version|zoo_version|mlflow\..*|config|expected_findings|symptom|injected\..*)$", re.I)


@dataclass
class Comparison:
    """What differs between ``run`` and ``reference`` (see the module docstring for each table)."""

    run_name: str
    reference_name: str
    config: pd.DataFrame
    curves: pd.DataFrame
    checks: pd.DataFrame
    params: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def parted(self) -> pd.DataFrame:
        """The curves that part, earliest first."""
        c = self.curves
        return c[c["parted_at"].notna()].sort_values("parted_at", kind="stable") if len(c) else c

    def summary(self) -> list[str]:
        """One sentence per question, in reading order."""
        ref = self.reference_name
        out = []
        if len(self.config):
            shown = "; ".join(f"{r.key} {_v(r.run)} (vs {_v(r.reference)})" for r in self.config.head(4).itertuples())
            more = f"; and {len(self.config) - 4} more" if len(self.config) > 4 else ""
            out.append(f"Configuration: {len(self.config)} key(s) differ from {ref}'s: {shown}{more}.")
        else:
            out.append(f"Configuration: no key differs from {ref}'s (of those both runs record).")
        parted = self.parted()
        if len(parted):
            first = parted.iloc[0]
            noise = f"noise {_g(first.noise)}" if np.isfinite(first.noise) else "too few points for a noise estimate"
            out.append(f"Curves: the {first['series']} parts from {ref}'s at {first['where']}: {_g(first.run_at)} vs "
                       f"{_g(first.reference_at)} there ({noise}), {_g(first.run_end)} vs "
                       f"{_g(first.reference_end)} at the end ({first.verdict})."
                       + (f" {len(parted) - 1} other curve(s) part too." if len(parted) > 1 else ""))
        elif len(self.curves):
            out.append(f"Curves: none of the {len(self.curves)} curve(s) both runs log parts from {ref}'s beyond "
                       f"the noise.")
        else:
            out.append("Curves: the two runs log no curve in common (or too few points to compare).")
        if len(self.checks):
            shown = "; ".join(f"{r.check} {r.run} here, {r.reference} in {ref}"
                              for r in self.checks.head(4).itertuples())
            out.append(f"Checks: {len(self.checks)} verdict(s) differ: {shown}.")
        else:
            out.append("Checks: no verdict differs.")
        if len(self.params):
            shown = "; ".join(f"{r.param} {r.metric} {_g(r.run)} vs {_g(r.reference)}"
                              for r in self.params.head(3).itertuples())
            out.append(f"Parameters: {self.params['param'].nunique()} behave differently: {shown}.")
        return out + list(self.notes)

    def to_markdown(self) -> str:
        lines = [f"## {self.run_name} compared with {self.reference_name}", ""]
        lines += [f"- {s}" for s in self.summary()]
        for title, df in (("Configuration", self.config), ("Curves", self.curves), ("Checks", self.checks),
                          ("Parameters", self.params)):
            if len(df):
                lines += ["", f"### {title}", "", df.to_markdown(index=False) if _has_tabulate() else df.to_string()]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (f"<Comparison {self.run_name} vs {self.reference_name}: {len(self.config)} config key(s), "
                f"{len(self.parted())} of {len(self.curves)} curve(s) part, {len(self.checks)} check verdict(s), "
                f"{self.params['param'].nunique() if len(self.params) else 0} parameter(s) differ>")


def compare(run: Run, reference: Run, *, findings: list | None = None, reference_findings: list | None = None,
            others: list | None = None, k_noise: float = 3.0, rel_floor: float = 0.02, rel_level: float = 0.05,
            persist: float = 0.8, param_factor: float = 3.0) -> Comparison:
    """What differs between ``run`` and ``reference`` (two :class:`~collapse_nb.Run`): see the module docstring.

    ``findings`` / ``reference_findings``: their :func:`collapse_nb.diagnose` results when already computed.
    ``others``: more healthy runs like ``reference``; with them the curves' noise is the spread between the
    references (run-to-run noise), not each curve's own scatter.
    """
    from .diagnose import diagnose

    for what, r in (("run", run), ("reference", reference)):
        if not hasattr(r, "scalars"):
            raise TypeError(f"compare() needs two collapse_nb Runs; {what} is a {type(r).__name__}")
    if findings is None:
        findings = diagnose(run)
    if reference_findings is None:
        reference_findings = diagnose(reference)
    refs = [reference, *(others or [])]
    return Comparison(
        run_name=_name(run), reference_name=_name(reference),
        config=config_differences(run, reference),
        curves=curve_differences(run, refs, k_noise=k_noise, rel_floor=rel_floor, rel_level=rel_level,
                                 persist=persist),
        checks=check_differences(findings, reference_findings),
        params=param_differences(run, reference, param_factor),
    )


# ----------------------------------------------------------------------------- configuration

def _flat_config(run: Run) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, cfg in sorted((run.meta.get("config_raw") or {}).items()):
        for k, v in cfg.items():
            identity = IDENTITY.match(str(k).rsplit(".", 1)[-1]) or IDENTITY.match(str(k))
            if not identity and not (isinstance(v, str) and len(v) > 80):
                out.setdefault(str(k), v)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return a == b or (math.isnan(float(a)) and math.isnan(float(b))) or \
            math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return str(a) == str(b)


def config_differences(run: Run, reference: Run) -> pd.DataFrame:
    """Configuration keys whose values differ (``key, run, reference, kind``: ``canonical`` or ``as logged``)."""
    rows = []
    a, b = run.config or {}, reference.config or {}
    differing = set()
    for k in sorted(set(a) | set(b)):
        if k in a and k in b and not _same(a[k], b[k]):
            rows.append({"key": k, "run": a[k], "reference": b[k], "kind": "canonical"})
            differing.add(k)
    fa, fb = _flat_config(run), _flat_config(reference)
    for k in sorted(set(fa) & set(fb)):
        if not _same(fa[k], fb[k]) and canonical_key(k.rsplit(".", 1)[-1]) not in differing \
                and canonical_key(k) not in differing:
            rows.append({"key": k, "run": fa[k], "reference": fb[k], "kind": "as logged"})
    return pd.DataFrame(rows, columns=["key", "run", "reference", "kind"], dtype=object)


# ----------------------------------------------------------------------------- curves

def _smooth(v: np.ndarray) -> np.ndarray:
    w = max(3, int(len(v) * SMOOTH_FRAC) // 2 * 2 + 1)
    if len(v) < w:
        return v.copy()
    return pd.Series(v).rolling(w, center=True, min_periods=1).median().to_numpy()


def _scatter(v: np.ndarray) -> float:
    """Point-to-point noise of a curve: from its second differences, which a smooth trend hardly moves
    (``v[i-1] - 2 v[i] + v[i+1]`` of white noise has variance 6 sigma^2), robustly (1.4826 x MAD)."""
    v = v[np.isfinite(v)]
    if len(v) < MIN_NOISE_POINTS:
        return math.nan
    d2 = v[:-2] - 2 * v[1:-1] + v[2:]
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6))


def _curves_of(run: Run) -> list[tuple[str, str, str, str | None, str | None]]:
    """``(label, phase, name, eval_set, direction)`` of the curves worth comparing."""
    cat = getattr(run, "series", pd.DataFrame())
    out: list[tuple[str, str, str, str | None, str | None]] = []
    if cat is None or cat.empty:
        return out
    for r in cat.itertuples():
        if r.role not in ("objective", "eval_metric") or r.points < 3:
            continue
        network = getattr(r, "network", None)
        if network is not None and not (isinstance(network, float) and math.isnan(network)):
            continue                                          # several networks: compared per curve elsewhere
        eval_set = getattr(r, "eval_set", None)
        eval_set = None if eval_set is None or (isinstance(eval_set, float) and math.isnan(eval_set)) else eval_set
        phase = "train" if not isinstance(r.phase, str) else r.phase
        label = f"{phase} {r.name}" + (f" ({eval_set})" if eval_set else "")
        direction = r.direction if isinstance(r.direction, str) else "down"
        out.append((label, phase, str(r.name), eval_set, direction))
    return list(dict.fromkeys(out))


def _xy(run: Run, phase: str, name: str, eval_set: str | None, level: str = "auto") -> tuple[pd.DataFrame, str]:
    c = curve(run, phase, name, level=level, eval_set=eval_set)
    if level == "epoch":
        c = c[c["epoch"].notna()]
        return c.assign(t=c["epoch"].astype("float64")), "epoch" if len(c) else ""
    c = c[np.isfinite(pd.to_numeric(c["value"], errors="coerce").astype("float64"))]
    if len(c) and c["step"].notna().all():
        return c.assign(t=c["step"].astype("float64")), "step"
    if len(c) and c["epoch"].notna().all():
        return c.assign(t=c["epoch"].astype("float64")), "epoch"
    return c.iloc[0:0].assign(t=[]), ""


def curve_differences(run: Run, references: list[Run], k_noise: float = 3.0, rel_floor: float = 0.02,
                      rel_level: float = 0.05, persist: float = 0.8) -> pd.DataFrame:
    """Where each curve both runs have parts from the reference's (see the module docstring)."""
    cols = ["series", "axis", "parted_at", "where", "run_at", "reference_at", "noise", "noise_basis",
            "run_end", "reference_end", "verdict", "points"]
    reference = references[0]
    mine = {(p, n, e): (label, d) for label, p, n, e, d in _curves_of(run)}
    theirs = {(p, n, e) for _, p, n, e, _ in _curves_of(reference)}
    rows = []
    for key in [k for k in mine if k in theirs]:
        label, direction = mine[key]
        a, axis_a = _xy(run, *key)
        b, axis_b = _xy(reference, *key)
        level = "auto"
        if axis_a != axis_b:                                  # one logs steps, the other epochs: compare per epoch
            level = "epoch"
            (a, axis_a), (b, axis_b) = _xy(run, *key, level=level), _xy(reference, *key, level=level)
        if axis_a != axis_b or not axis_a or len(a) < 3 or len(b) < 3:
            continue
        a, b = a.sort_values("t").drop_duplicates("t"), b.sort_values("t").drop_duplicates("t")
        lo, hi = max(a["t"].min(), b["t"].min()), min(a["t"].max(), b["t"].max())
        grid = b[(b["t"] >= lo) & (b["t"] <= hi)]
        if len(grid) < 3:
            continue
        va, vb = a["value"].to_numpy("float64"), b["value"].to_numpy("float64")
        sa, sb = _smooth(va), _smooth(vb)
        t = grid["t"].to_numpy("float64")
        ya = np.interp(t, a["t"].to_numpy("float64"), sa)
        yb = np.interp(t, b["t"].to_numpy("float64"), sb)
        noise, basis = _noise(references, key, level, t, va, sa, vb, sb)
        floor = np.maximum(rel_floor * float(np.nanmax(yb) - np.nanmin(yb)), rel_level * np.abs(yb))
        beyond = np.abs(ya - yb) > np.maximum(k_noise * noise if np.isfinite(noise) else 0.0, floor + 1e-12)
        parted = None
        if beyond[-1]:                                        # apart at the end: else they came back together
            for i in np.flatnonzero(beyond):
                if beyond[i:].mean() >= persist:
                    parted = int(i)
                    break
        end_a, end_b = float(sa[-1]), float(sb[-1])
        worse = (end_a > end_b) == (direction != "up")
        verdict = "worse here" if worse else "better here"
        if parted is None:
            verdict = "together"
        rows.append({"series": label, "axis": axis_a, "parted_at": float(t[parted]) if parted is not None else math.nan,
                     "where": grid["where"].iloc[parted] if parted is not None else None,
                     "run_at": float(ya[parted]) if parted is not None else math.nan,
                     "reference_at": float(yb[parted]) if parted is not None else math.nan,
                     "noise": noise, "noise_basis": basis, "run_end": end_a, "reference_end": end_b,
                     "verdict": verdict, "points": int(len(t))})
    return pd.DataFrame(rows, columns=cols)


def _noise(references: list[Run], key: tuple[str, str, str | None], level: str, t: np.ndarray, va: np.ndarray,
           sa: np.ndarray,
           vb: np.ndarray, sb: np.ndarray) -> tuple[float, str]:
    """Run-to-run spread of the references on ``t`` when there are several, else the two curves' scatter."""
    if len(references) > 1:
        ys = []
        for r in references:
            c, axis = _xy(r, *key, level=level)
            if len(c) >= 3 and axis == ("epoch" if level == "epoch" else axis):
                c = c.sort_values("t").drop_duplicates("t")
                ys.append(np.interp(t, c["t"].to_numpy("float64"), _smooth(c["value"].to_numpy("float64"))))
        if len(ys) > 1:
            return float(np.median(np.std(np.vstack(ys), axis=0, ddof=1))), f"spread of {len(ys)} reference runs"
    s = [x for x in (_scatter(va), _scatter(vb)) if np.isfinite(x)]
    if not s:
        return math.nan, (f"none (fewer than {MIN_NOISE_POINTS} points): judged against 2% of the reference's "
                          f"range and 5% of its value")
    return float(math.sqrt(sum(x * x for x in s))), "scatter of the curves" if len(s) == 2 else "scatter of one curve"


# ----------------------------------------------------------------------------- checks

def _worst(findings: list) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in findings:
        name = f.check or f.code
        if name not in out or severity_rank(f.severity) < severity_rank(out[name].severity):
            out[name] = f
    return out


def check_differences(findings: list, reference_findings: list) -> pd.DataFrame:
    """The checks whose worst severity differs, when one side is a problem, worst first."""
    a, b = _worst(findings), _worst(reference_findings)
    rows = []
    for name in sorted(set(a) | set(b)):
        fa, fb = a.get(name), b.get(name)
        sa, sb = (fa.severity if fa else "absent"), (fb.severity if fb else "absent")
        if sa == sb or not ({sa, sb} & {"critical", "warning"}):
            continue
        rows.append({"check": name, "run": sa, "reference": sb, "run_title": fa.title if fa else "",
                     "reference_title": fb.title if fb else "",
                     "_o": min(severity_rank(s) if s != "absent" else 9 for s in (sa, sb))})
    df = pd.DataFrame(rows, columns=["check", "run", "reference", "run_title", "reference_title", "_o"])
    return df.sort_values(["_o", "check"], kind="stable").drop(columns="_o").reset_index(drop=True)


# ----------------------------------------------------------------------------- parameters

def _param_medians(run: Run) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    g = run.grads
    if g is not None and len(g) and "param" in g:
        if ("update_ratio" not in g or g["update_ratio"].isna().all()) and {"update_norm", "weight_norm"} <= set(g):
            before = g["weight_norm_before"].fillna(g["weight_norm"]) if "weight_norm_before" in g else g["weight_norm"]
            g = g.assign(update_ratio=g["update_norm"] / before.where(before > 0))
        for metric in ("grad_norm", "update_ratio"):
            if metric in g:
                m = g.groupby(g["param"].astype(str), observed=True)[metric].median()
                out.update({(p, metric): float(v) for p, v in m.items() if np.isfinite(v)})
    p = run.params
    if p is not None and len(p) and {"param", "norm"} <= set(p.columns):
        last = p[p["checkpoint"] == p["checkpoint"].iloc[-1]] if "checkpoint" in p else p
        out.update({(str(k), "final weight norm"): float(v) for k, v in
                    last.groupby(last["param"].astype(str), observed=True)["norm"].last().items() if np.isfinite(v)})
    return out


def param_differences(run: Run, reference: Run, factor: float = 3.0) -> pd.DataFrame:
    """Parameters whose median gradient norm, update ratio or final weight norm differ by ``factor`` or more."""
    a, b = _param_medians(run), _param_medians(reference)
    rows = []
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if x == y:
            continue
        f = math.inf if min(abs(x), abs(y)) == 0 else max(abs(x), abs(y)) / min(abs(x), abs(y))
        if f >= factor:
            rows.append({"param": k[0], "metric": k[1], "run": x, "reference": y,
                         "ratio": x / y if y != 0 else math.inf, "_f": f})
    df = pd.DataFrame(rows, columns=["param", "metric", "run", "reference", "ratio", "_f"])
    return df.sort_values("_f", ascending=False, kind="stable").drop(columns="_f").reset_index(drop=True)


# ----------------------------------------------------------------------------- choosing a reference

#: Configuration keys in which repeats of one run may differ (their spread is run-to-run noise).
REPEAT_KEYS = re.compile(r"(^|\.)(seed|random_seed|data_seed|rng_seed|manual_seed)$", re.I)


def repeats_of(reference: Run, candidates: list[tuple[str, Run]]) -> list[tuple[str, Run]]:
    """Those of ``candidates`` whose configuration differs from ``reference``'s in the seed at most: repeats of it,
    whose spread is the run-to-run noise."""
    return [(n, r) for n, r in candidates
            if all(REPEAT_KEYS.search(str(k)) for k in config_differences(r, reference)["key"])]


def closest(run: Run, candidates: list[tuple[str, Run]]) -> tuple[str, Run] | None:
    """Of ``(name, run)`` candidates (healthy runs), the one whose configuration differs least from ``run``'s
    (fewest differing keys, then the most keys in common), or None when there is none."""
    if not candidates:
        return None
    def cost(item):
        other = item[1]
        d = config_differences(run, other)
        common = len(set(_flat_config(run)) & set(_flat_config(other)))
        return (len(d), -common, item[0])
    return min(candidates, key=cost)


def _name(run: Run) -> str:
    meta = getattr(run, "meta", {}) or {}
    if meta.get("run_name") and meta["run_name"] != ".":
        return str(meta["run_name"])
    src = [str(f["source"]) for f in meta.get("files", [])]
    if len(src) == 1:
        return os.path.basename(src[0])
    common = os.path.commonpath(src) if src else ""
    return os.path.basename(common) or "run"


def _g(x: Any) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if 1e4 <= abs(x) < 1e7 else f"{x:.3g}"


def _v(x: Any) -> str:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return _g(x)
    return repr(x) if isinstance(x, str) else str(x)


def _has_tabulate() -> bool:
    try:
        import tabulate
        return bool(tabulate)
    except ImportError:
        return False
