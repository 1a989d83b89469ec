"""Value checks shared by the configs, the study files and the command lines.

Each check returns the (normalised) value or raises ``ValueError`` with a message that
names the field and what would be valid; callers add where the value came from (a file
and key, a flag).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence


def positive_int(name: str, value: Any) -> int:
    """An ``int`` >= 1 (a float such as ``3.0`` is accepted; booleans are not)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def nonnegative_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def choice(name: str, value: Any, valid: Sequence[Any]) -> Any:
    """``value`` if it is one of ``valid``; the error lists the valid ones (and a close match)."""
    if value not in valid:
        hint = did_you_mean(str(value), [str(v) for v in valid])
        raise ValueError(f"unknown {name} {value!r} (valid: {', '.join(map(str, valid))}){hint}")
    return value


def finite_number(name: str, value: Any) -> float:
    """A finite int or float; YAML 1.1 strings such as ``'1e-3'`` are read as floats."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def in_range(name: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a finite number in {bracket}{low}, {high}], got {value!r}")
    return value


def strict_bool(name: str, value: Any) -> bool:
    """``True`` / ``False`` only (a string such as ``"false"`` is an error, not a truthy value)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false (unquoted), got {value!r}")
    return value


def did_you_mean(word: str, valid: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(word, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
