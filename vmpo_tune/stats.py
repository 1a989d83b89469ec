"""Aggregates over seeds (pure functions)."""

from __future__ import annotations

import numpy as np


def aggregate(values: list[float], how: str) -> float:
    """Aggregate per-seed values: mean, median, min, or the interquartile mean."""
    x = np.sort(np.asarray(values, dtype=float))
    if how == "mean":
        return float(x.mean())
    if how == "median":
        return float(np.median(x))
    if how == "min":
        return float(x.min())
    if how == "iqm":
        return iqm(x)
    raise ValueError(f"unknown aggregate {how!r}; valid: mean, median, min, iqm")


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle half (``floor(n/4)`` dropped at each end)."""
    x = np.sort(np.asarray(values, dtype=float))
    cut = len(x) // 4
    return float(x[cut : len(x) - cut].mean())
