"""A pruner that knows a trial trains several seeds: it prunes on a bound of the seed mean.

Optuna's ``MedianPruner`` sees one number per evaluation, the mean over seeds, and
prunes a trial whose mean falls below the median of the complete trials at that step.
With noisy returns and a few seeds, one unlucky seed drags the mean down and good
configurations are cut. :class:`SeedMedianPruner` prunes only when the mean *plus*
``margin`` standard errors of the per-seed values is still below that median, i.e. when
the seeds agree that the trial is behind. With one seed it is the median rule.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import records


class SeedMedianPruner(optuna.pruners.BasePruner):
    """Median pruning on ``mean + margin * sd / sqrt(n)`` of the per-seed evaluation returns."""

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0, margin: float = 1.0) -> None:
        if n_startup_trials < 0 or n_warmup_steps < 0 or not math.isfinite(margin) or margin < 0:
            raise ValueError("n_startup_trials and n_warmup_steps must be >= 0 and margin a finite number >= 0")
        self.n_startup_trials, self.n_warmup_steps, self.margin = n_startup_trials, n_warmup_steps, margin

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.n_startup_trials:
            return False
        others = [t.intermediate_values[step] for t in complete if step in t.intermediate_values]
        others = [v for v in others if math.isfinite(v)]
        if not others:
            return False
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            return True
        return upper_bound(records.read_seed_values(trial, step), value, self.margin) < float(np.median(others))


def upper_bound(seed_values: list[float], mean: float, margin: float) -> float:
    """``mean + margin * sd / sqrt(n)`` of the seeds (``mean`` itself with fewer than two seeds)."""
    if len(seed_values) < 2:
        return mean
    x = np.asarray(seed_values, dtype=float)
    return float(x.mean() + margin * x.std(ddof=1) / math.sqrt(len(x)))
