"""What a worker runs as a trial: the search objective (sample a configuration from the study's space and run it on
the tuning seeds) and a confirmation unit (its stored configuration on its test seed)."""

from __future__ import annotations

import dataclasses

import optuna

from .. import records
from ..errors import UserError
from .runner import RunPlan, TrialRunner
from .space import sample_params
from .spec import StudySpec, params_to_config


class Objective:
    def __init__(self, spec: StudySpec, runner: TrialRunner, device: str = "cpu") -> None:
        self.spec, self.runner, self.device = spec, runner, device

    def __call__(self, trial: optuna.Trial) -> float:
        spec = self.spec
        config = params_to_config(spec, sample_params(trial, spec.space), device=self.device)
        seeds = records.read_seeds(trial) or spec.tuning_seeds  # a retry (or an earned racing seed) keeps its seeds
        # racing: only a configuration's first run is pruned; the seeds it earned were granted by the race
        prune = spec.search != "racing" or list(seeds) == spec.tuning_seeds
        plan = RunPlan(config, tuple(seeds), spec.aggregate, spec.objective, prune=prune)
        return self.runner.run(trial, plan)


class UnitObjective:
    """Trains one confirmation unit: its stored configuration on its test seed, no pruning."""

    def __init__(self, runner: TrialRunner, device: str = "cpu") -> None:
        self.runner, self.device = runner, device

    def __call__(self, trial: optuna.Trial) -> float:
        config = records.read_config(trial)
        seeds = records.read_seeds(trial)
        if not config or len(seeds) != 1:
            raise UserError(f"confirmation unit {trial.number} has no configuration or seed (not made by confirm?)")
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, device=self.device))
        objective = records.read_confirm_plan(trial.study).objective
        plan = RunPlan(config, (seeds[0],), objective=objective, prune=False)
        return self.runner.run(trial, plan)
