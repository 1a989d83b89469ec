"""Whether a study file only widens the numeric ranges of a stored study's space.

A search whose best trials crowd one end of a parameter's range (walker-walk's ``init_log_std`` at its upper
bound 0) needs that range widened. Every value stored before lies inside the wider range and means what it
meant, and Optuna accepts a float or integer parameter whose range changes between trials (not a change of kind,
of ``log`` or of a categorical's choices), so the stored study goes on in the wider space instead of starting over.
Anything else that differs (a narrower range, another parameter, budget, seeds, fixed values) still changes
what the stored values mean, and the study is refused as before (:func:`vmpo_tune.search.study.create_or_load`).
"""

from __future__ import annotations

from typing import Any, Mapping

RANGE = ("low", "high")
NUMERIC = ("float", "int")


def _param_widening(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """``"name: low .. high -> low .. high"`` if ``new`` is ``old`` with a wider numeric range, ``""`` if the two
    are the same, None otherwise."""
    if old == new:
        return ""
    rest_old = {k: v for k, v in old.items() if k not in RANGE}
    rest_new = {k: v for k, v in new.items() if k not in RANGE}
    if rest_old != rest_new or old.get("kind") not in NUMERIC:
        return None
    (old_low, old_high), (new_low, new_high) = (bounds(old), bounds(new))
    if not (new_low <= old_low and new_high >= old_high):
        return None
    return f"{old['name']}: {old_low} .. {old_high} -> {new_low} .. {new_high}"


def bounds(described: Mapping[str, Any]) -> tuple[float, float]:
    """A numeric parameter's ``(low, high)`` from ``ParamSpec.describe()``, which leaves out a bound of 0 (it drops
    every value equal to None, () or False, and ``0.0 == False``; stored fingerprints keep that form)."""
    return described.get("low", 0), described.get("high", 0)


def widened_ranges(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str] | None:
    """The parameters whose range ``current`` widens (descriptions, in the space's order), if widening numeric
    ranges is the only difference between two study fingerprints (``StudySpec.fingerprint``, JSON round-tripped);
    None if anything else differs, or nothing does."""
    if {k: v for k, v in stored.items() if k != "space"} != {k: v for k, v in current.items() if k != "space"}:
        return None
    old, new = stored.get("space") or [], current.get("space") or []
    if len(old) != len(new) or [p.get("name") for p in old] != [p.get("name") for p in new]:
        return None
    changes = [_param_widening(a, b) for a, b in zip(old, new)]
    if any(c is None for c in changes):
        return None
    return [c for c in changes if c] or None
