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


def points(accuracy_difference: float) -> str:
    """An accuracy difference in percentage points, e.g. 0.0052 -> `0.52`."""
    return f"{abs(accuracy_difference) * 100:.2f}"


def join_words(words: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
