"""Racing: seeds go to the configurations that may still win (SMAC's intensification, irace's races).

In a racing study every trial is *one seed run* of one configuration. A configuration the
sampler proposes trains on the first tuning seed (``seed``); afterwards it earns further
seeds (``seed + 1``, ``seed + 2``, ...) only while a paired comparison with the incumbent
on the same seeds says it could still win, and the incumbent keeps earning seeds up to
``race_seeds``. So the search ends with a winner that already stands on several seeds,
and a configuration that loses on its first seed costs one run, not ``k``.

The rules, recomputed from the stored trials each time (nothing else is kept, so a
killed worker, another machine or a rerun all see the same race):

* a configuration's *record* is its completed seeds ``0 .. n-1`` (a seed run that was
  pruned, or failed for good, ends its race);
* the **incumbent** has the most seeds, then the best mean over them (then came first);
* a **challenger** with fewer seeds is still in the race while its mean is at least the
  incumbent's mean *on the same seeds* (a paired comparison: the seeds are shared, so
  the luck of a seed cancels out); it then earns seeds up to twice as many as it has, at
  most the incumbent's count (SMAC's doubling: the cost of a race grows with its promise);
* once a challenger has raced the incumbent on all of the incumbent's seeds (it lost,
  tied, or took over), the incumbent earns one more seed, up to ``race_seeds``;
* when the budget left is no more than the seeds the incumbent lacks, it gets them all,
  so the search ends with its winner on ``race_seeds`` seeds (unless a run fails, or, with
  several workers finishing the budget together, the incumbent changes in the last runs).

With at most a handful of seeds, no rank test can reject anything at a useful level
(Optuna's ``WilcoxonPruner``, which treats instances as steps, returns p >= 0.03 below six
pairs and says so): so the comparison is SMAC's mean over the shared seeds. Pruning by env
steps acts on a configuration's first seed run (against the study's other runs at the same
step, the earned ones included, which makes it stricter than in a standard search); runs that
a configuration earned are not pruned, since they were granted by the paired comparison.

Follow-up runs are queued under the study's budget lock, count against ``--trials`` like
every trial, and are never queued twice for one (configuration, seed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import records

log = logging.getLogger(__name__)

RACE_SEEDS = 5
"""Default number of seeds the incumbent accumulates (``race_seeds`` in a study file)."""


@dataclass
class Contender:
    """One configuration in the race: its seed runs by seed index."""

    key: str
    params: dict
    first: int
    """Number of the first trial of this configuration (ties go to the earlier one)."""
    values: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)
    closed: set[int] = field(default_factory=set)
    complete: list[int] = field(default_factory=list)
    """Numbers of its completed trials (any of them carries the configuration)."""

    @property
    def n(self) -> int:
        """Completed seeds, counted from the first (seed index 0, 1, ... without a gap)."""
        k = 0
        while k in self.values:
            k += 1
        return k

    def mean_on(self, k: int) -> float:
        """Mean value over the first ``k`` seeds."""
        return sum(self.values[i] for i in range(k)) / k

    @property
    def mean(self) -> float:
        return self.mean_on(self.n) if self.n else float("-inf")

    def seed_values(self) -> list[float]:
        return [self.values[i] for i in range(self.n)]


def config_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def contenders(trials: Sequence[FrozenTrial], base_seed: int) -> list[Contender]:
    """The race as the stored trials tell it, in the order the configurations first appeared."""
    retried = records.retried_numbers(trials)
    out: dict[str, Contender] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.number in retried:
            continue  # its retry stands in for it
        seeds = records.read_seeds(t)
        index = (seeds[0] - base_seed) if seeds else 0
        key = config_key(t.params if t.params else _fixed_params(t))
        c = out.setdefault(key, Contender(key, dict(t.params or _fixed_params(t)), t.number))
        if t.state == TrialState.COMPLETE and t.value is not None:
            c.values.setdefault(index, float(t.value))
            c.complete.append(t.number)
        elif t.state in (TrialState.WAITING, TrialState.RUNNING):
            c.pending.add(index)
        else:  # PRUNED, or FAIL for good
            c.closed.add(index)
    return list(out.values())


def _fixed_params(trial: FrozenTrial) -> dict:
    """The parameters of a queued trial (Optuna keeps them in a system attribute until it runs)."""
    return dict(trial.system_attrs.get("fixed_params", {}))


def incumbent(race: Sequence[Contender]) -> Contender | None:
    """The configuration the others race: most seeds, then best mean, then the earlier; one with a lost run
    (pruned, or failed for good) cannot hold the title."""
    ranked = [c for c in race if c.n >= 1 and not c.closed]
    if not ranked:
        return None
    return max(ranked, key=lambda c: (c.n, c.mean, -c.first))


def in_race(c: Contender, inc: Contender) -> bool:
    """Whether challenger ``c`` may still win: no lost run, and at least as good on the shared seeds."""
    if c is inc or c.n < 1 or c.closed or c.n > inc.n:
        return False
    return c.mean_on(c.n) >= inc.mean_on(c.n)


def next_runs(race: Sequence[Contender], max_seeds: int, room: int | None = None) -> list[tuple[Contender, int]]:
    """The (configuration, seed index) runs the race asks for now, challengers first.

    ``room``: the runs the budget has left. When it is no more than the seeds the incumbent
    still lacks, they all go to the incumbent, so that the search ends with a winner on
    ``max_seeds`` seeds.
    """
    inc = incumbent(race)
    if inc is None:
        return []
    missing = [k for k in range(inc.n, max_seeds) if k not in inc.pending and k not in inc.values]
    if room is not None and 0 < room <= len(missing):
        return [(inc, k) for k in missing[:room]]
    runs = []
    for c in race:
        if not c.pending and c.n < inc.n and in_race(c, inc):
            runs += [(c, k) for k in range(c.n, min(2 * c.n, inc.n))]
    caught_up = any(c is not inc and not c.pending and c.n >= inc.n for c in race)
    if inc.n < max_seeds and not inc.pending and caught_up:
        runs.append((inc, inc.n))
    return runs


def queue_next(study: optuna.Study, room: int, base_seed: int, max_seeds: int) -> int:
    """Queue up to ``room`` runs the race asks for (call it under the budget lock); returns how many."""
    race = contenders(study.get_trials(deepcopy=False), base_seed)
    queued = 0
    for c, k in next_runs(race, max_seeds, room)[: max(room, 0)]:
        study.enqueue_trial(c.params, user_attrs={records.SEEDS: [base_seed + k]})
        log.info("racing: the configuration of trial %d earns seed %d (%d so far)", c.first, base_seed + k, c.n)
        queued += 1
    return queued


def standings(trials: Sequence[FrozenTrial], base_seed: int) -> list[Contender]:
    """Configurations with at least one completed seed, best first (most seeds, then mean); those with a lost
    run (pruned, or failed for good) after all the others."""
    race = [c for c in contenders(trials, base_seed) if c.n >= 1]
    return sorted(race, key=lambda c: (bool(c.closed), -c.n, -c.mean, c.first))
