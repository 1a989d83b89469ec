"""Step-size schedules over a run's budget (pure functions)."""

from __future__ import annotations

import math

from .config import LR_SCHEDULES


def lr_factor(schedule: str, progress: float, final_fraction: float) -> float:
    """The multiplier of the configured step sizes at ``progress`` (0 = start, 1 = end of the budget).

    ``constant``: 1. ``linear``: from 1 down to ``final_fraction``. ``cosine``: half a cosine
    from 1 down to ``final_fraction``. ``progress`` is clipped to [0, 1].
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - (1.0 - final_fraction) * p
    if schedule == "cosine":
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown lr_schedule {schedule!r} (valid: {', '.join(LR_SCHEDULES)})")
