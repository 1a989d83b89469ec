"""Sampling a trial's parameters from a study's search space (Optuna-named, as stored)."""

from __future__ import annotations

from typing import Any

import optuna

from .spec import StudySpec, is_active


def sample_params(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Suggest every active parameter; returns Optuna-named parameters (as stored).

    Unconditional parameters come first in ``spec.space``, so a condition always reads a
    value sampled already.
    """
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for p in spec.space:
        if not is_active(p, values):
            continue
        if p.kind == "categorical":
            sampled = trial.suggest_categorical(p.optuna_name, list(p.choices))
        elif p.kind == "int":
            sampled = trial.suggest_int(p.optuna_name, p.low, p.high, step=p.step or 1, log=p.log)
        else:
            sampled = trial.suggest_float(p.optuna_name, p.low, p.high, step=p.step, log=p.log)
        params[p.optuna_name] = sampled
        values[p.name] = p.to_config_value(sampled)
    return params
