"""The search objective: sample a configuration from the study's space and run it on the tuning seeds."""

from __future__ import annotations

import optuna

from .. import records
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
