"""Numbers for sentences: how a finding, a report or a plot writes a value, a factor or a ratio."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a sentence: ``0.0805``, ``3.1``, ``1.2e-07``, ``1e-05``, ``12,345``; ``NaN``/``inf`` as such."""
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e7:
        return f"{int(x):,}"
    return f"{x:.{digits}g}"


def times(x: float) -> str:
    """A factor for a sentence: ``3.1x``, ``120x``, ``7.6e+23x``."""
    return f"{x:.2g}x" if abs(x) < 10 or abs(x) >= 1e7 else f"{x:,.0f}x"


def factor(x: float) -> str:
    """A factor with one decimal for a title: ``12.3x``; from a million on in powers of ten (``7.6e+23x``), never a
    run of thirty digits."""
    if not math.isfinite(x):
        return fmt(x) + "x"
    return f"{x:.1f}x" if abs(x) < 1e6 else f"{x:.2g}x"


def percent(x: float) -> str:
    """A relative change for a sentence: ``24.9%``; beyond 10,000% as the factor it is (``1.2e+30x``)."""
    if not math.isfinite(x):
        return fmt(x)
    return f"{x:.1%}" if abs(x) < 100 else factor(1 + x)


def one_in(ratio: float) -> str:
    """``0.033`` -> ``1:30`` (the seed report's way of writing a std ratio)."""
    if not ratio or not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    return f"1:{1 / ratio:.0f}" if ratio < 1 else f"{ratio:.2g}:1"
