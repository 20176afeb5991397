"""Short text forms of the values a report shows: axis values, table numbers, counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def format_value(value) -> str:
    """An axis value as a short label: 3 significant digits for floats, `none` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)


def format_number(value, spec: str) -> str:
    """A table cell: `value` in the format `spec`, empty when it is missing."""
    return "" if value is None or pd.isna(value) else format(value, spec)


def count_noun(n: float, what: str) -> str:
    """E.g. `1 trial`, `3 trials`."""
    return f"{n:.0f} {what}" + ("" if n == 1 else "s")
