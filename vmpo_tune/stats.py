"""Statistics over seeds (pure functions): aggregates, bootstrap confidence intervals, probability of improvement.

The confidence intervals follow rliable (Agarwal et al., NeurIPS 2021): percentile
bootstrap over runs, 95 % by default. With one task the stratified bootstrap is the plain
bootstrap over seeds; it is SciPy's (``scipy.stats.bootstrap``), not a hand-written one.
The probability of improvement ``P(X > Y)`` is the Mann-Whitney statistic over all pairs
of runs (ties count one half), with a bootstrap interval that resamples both groups.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, Sequence

import numpy as np

AGGREGATES = ("mean", "median", "min", "iqm")
OBJECTIVES = ("final", "best", "auc", "last_K")
"""Per-seed statistics of a learning curve (:func:`curve_value`); ``last_K`` is written with a number: ``last_3``."""
CONFIDENCE = 0.95
RESAMPLES = 5000


def aggregate(values: Sequence[float], how: str) -> float:
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
    raise ValueError(f"unknown aggregate {how!r}; valid: {', '.join(AGGREGATES)}")


def check_objective(name: str) -> str:
    """``name`` when it is one of :data:`OBJECTIVES` (``last_K`` as ``last_3``, K >= 1); else ``ValueError``."""
    if name in ("final", "best", "auc"):
        return name
    if isinstance(name, str) and name.startswith("last_") and name[5:].isdigit() and int(name[5:]) >= 1:
        return f"last_{int(name[5:])}"
    raise ValueError(f"unknown objective {name!r} (valid: final, best, auc, or last_K with a number, e.g. last_3)")


def curve_value(returns: Sequence[float], objective: str) -> float:
    """One seed's value of a learning curve (its evaluation returns in order) under ``objective``.

    ``final``: the last evaluation; ``best``: the highest; ``auc``: the mean of all evaluations
    (the area under the curve per evaluation: anytime performance); ``last_K``: the mean of the
    last K evaluations (all of them when there are fewer). The averaging objectives cost nothing
    extra and smooth the evaluation noise that makes a single final return a lottery.
    """
    x = np.asarray(returns, dtype=float)
    if x.size == 0:
        return float("nan")
    objective = check_objective(objective)
    if objective == "final":
        return float(x[-1])
    if objective == "best":
        return float(x.max())
    if objective == "auc":
        return float(x.mean())
    return float(x[-int(objective[5:]) :].mean())


def iqm(values, axis: int = -1) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle half (``floor(n/4)`` dropped at each end, as rliable)."""
    x = np.sort(np.asarray(values, dtype=float), axis=axis)
    n = x.shape[axis]
    cut = n // 4
    middle = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = middle.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _mean(x, axis: int = -1):
    return np.mean(x, axis=axis)


STATISTICS: dict[str, Callable] = {"iqm": iqm, "mean": _mean}


def bootstrap_ci(
    values: Sequence[float], statistic: str = "iqm", confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` (``iqm`` or ``mean``) over the values.

    One value (or identical values) gives a zero-width interval at that value.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1 or np.all(x == x[0]):
        return (float(x[0]), float(x[0]))
    from scipy import stats

    result = stats.bootstrap(
        (x,),
        STATISTICS[statistic],
        confidence_level=confidence,
        n_resamples=RESAMPLES,
        method="percentile",
        vectorized=True,
        axis=-1,
        rng=np.random.default_rng(seed),
    )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """``P(X > Y)`` for a run drawn from ``x`` and one from ``y`` (ties count 1/2); 0.5 when they match."""
    return float(_poi(np.asarray(x, dtype=float), np.asarray(y, dtype=float)))


def _poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.moveaxis(x, axis, -1)[..., :, None]
    y = np.moveaxis(y, axis, -1)[..., None, :]
    return (x > y).mean(axis=(-2, -1)) + 0.5 * (x == y).mean(axis=(-2, -1))


def poi_ci(
    x: Sequence[float], y: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of :func:`probability_of_improvement`, resampling both groups independently."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    point = probability_of_improvement(a, b)
    if a.size < 2 and b.size < 2:
        return (point, point)
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a group of one or identical values: a degenerate resample
        result = stats.bootstrap(
            (a, b),
            _poi,
            confidence_level=confidence,
            n_resamples=RESAMPLES,
            method="percentile",
            vectorized=True,
            paired=False,
            axis=-1,
            rng=np.random.default_rng(seed),
        )
    return (float(result.confidence_interval.low), float(result.confidence_interval.high))


# ---------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class CandidateStats:
    """A confirmed configuration: its final returns on the test seeds and their statistics."""

    label: str
    source_trial: int | None
    search_score: float | None
    seeds: list[int]
    returns: list[float]
    best_returns: list[float] = field(default_factory=list)
    is_baseline: bool = False
    iqm: float = float("nan")
    iqm_ci: tuple[float, float] = (float("nan"), float("nan"))
    mean: float = float("nan")
    mean_ci: tuple[float, float] = (float("nan"), float("nan"))
    median: float = float("nan")
    min: float = float("nan")
    max: float = float("nan")
    poi: float = float("nan")
    """P(this candidate beats the baseline on a fresh seed)."""
    poi_ci: tuple[float, float] = (float("nan"), float("nan"))
    objective: str = "final"
    """What ``returns`` are: each seed's value under the objective the search optimised (:func:`curve_value`)."""
    final_returns: list[float] = field(default_factory=list)
    """Each seed's final evaluation return (the same as ``returns`` when the objective is ``final``)."""

    @property
    def final_iqm(self) -> float:
        return iqm(np.asarray(self.final_returns, dtype=float)) if self.final_returns else float("nan")

    @property
    def n(self) -> int:
        return len(self.returns)

    @property
    def vs_baseline(self) -> str:
        """``better`` / ``worse`` when the interval of the probability of improvement excludes 1/2."""
        if self.is_baseline:
            return "baseline"
        low, high = self.poi_ci
        return "better" if low > 0.5 else "worse" if high < 0.5 else "unresolved"

    @property
    def optimism(self) -> float | None:
        """How much the search score overstated the confirmed IQM (search score minus IQM)."""
        return None if self.search_score is None else self.search_score - self.iqm

    def as_dict(self) -> dict:
        keys = (
            "label",
            "source_trial",
            "search_score",
            "seeds",
            "returns",
            "best_returns",
            "is_baseline",
            "iqm",
            "mean",
            "median",
            "min",
            "max",
            "poi",
            "objective",
            "final_returns",
            "final_iqm",
        )
        out = {k: getattr(self, k) for k in keys}
        out.update(iqm_ci=list(self.iqm_ci), mean_ci=list(self.mean_ci), poi_ci=list(self.poi_ci), n=self.n)
        out["vs_baseline"] = self.vs_baseline
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CandidateStats:
        """Back from :meth:`as_dict` (the derived entries ``n``, ``vs_baseline`` and ``final_iqm`` are recomputed).
        Statistics stored before a field existed get its default; before ``final_returns`` was stored, every
        confirmation measured the final return, so it is ``returns``."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("iqm_ci", "mean_ci", "poi_ci"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        if not values.get("final_returns") and values.get("objective", "final") == "final":
            values["final_returns"] = list(values.get("returns", []))
        return cls(**values)


def describe(
    label: str,
    seeds: Sequence[int],
    returns: Sequence[float],
    baseline: Sequence[float],
    *,
    source_trial: int | None = None,
    search_score: float | None = None,
    best_returns: Sequence[float] = (),
    is_baseline: bool = False,
    seed: int = 0,
    objective: str = "final",
    final_returns: Sequence[float] = (),
) -> CandidateStats:
    """All statistics of one candidate; the probability of improvement is against the baseline's returns
    (the test seeds both completed; a unit that failed or is still open is left out of either side)."""
    x = np.asarray(returns, dtype=float)
    return CandidateStats(
        label=label,
        source_trial=source_trial,
        search_score=search_score,
        seeds=[int(s) for s in seeds],
        returns=[float(v) for v in x],
        best_returns=[float(v) for v in best_returns],
        is_baseline=is_baseline,
        iqm=iqm(x),
        iqm_ci=bootstrap_ci(x, "iqm", seed=seed),
        mean=float(x.mean()),
        mean_ci=bootstrap_ci(x, "mean", seed=seed),
        median=float(np.median(x)),
        min=float(x.min()),
        max=float(x.max()),
        poi=probability_of_improvement(x, baseline),
        poi_ci=poi_ci(x, baseline, seed=seed),
        objective=objective,
        final_returns=[float(v) for v in (final_returns if len(final_returns) else x)],
    )


def rank(candidates: Sequence[CandidateStats]) -> list[CandidateStats]:
    """By confirmed IQM, best first (ties: higher mean, then the earlier trial)."""
    return sorted(candidates, key=lambda c: (-c.iqm, -c.mean, c.source_trial if c.source_trial is not None else -1))


def separated_from(candidate: CandidateStats, leader: CandidateStats) -> bool:
    """True when the IQM intervals do not overlap (the difference is resolved by the CIs)."""
    return candidate.iqm_ci[1] < leader.iqm_ci[0] or candidate.iqm_ci[0] > leader.iqm_ci[1]
