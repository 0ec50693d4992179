"""Numbers as a person reads them in tables and messages."""

from __future__ import annotations

import numpy as np


def fmt_number(v: float, digits: int = 10, sign: bool = False) -> str:
    """A number with thousands separators, never in e-notation, up to ``digits`` significant digits
    (more when the whole part is longer: it is never rounded away) and no trailing zeros:
    ``0.00001234``, ``108,888.12``, ``NaN``. ``sign``: a leading ``+`` on positive values."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "∞" if v > 0 else "-∞"
    whole_digits = len(str(int(abs(v))))
    text = np.format_float_positional(v, precision=max(digits, whole_digits), unique=True, fractional=False,
                                      trim="-")
    whole, dot, frac = text.partition(".")
    minus = whole.startswith("-")
    lead = "-" if minus else ("+" if sign and v > 0 else "")
    return f"{lead}{int(whole.lstrip('-')):,}{dot}{frac}"
