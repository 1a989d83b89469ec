"""Search space sampling and the one converter from trial parameters to configs.

The objective, the default-trial enqueueing and the export all go through
:func:`params_to_configs`, so a stored trial always maps back to the same configs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import optuna

from ..config import TrainConfig, VMPOConfig, field_names
from .spec import ParamSpec, StudySpec


def _active(param: ParamSpec, values: Mapping[str, Any]) -> bool:
    return all(values.get(name) == expected for name, expected in param.when)


def sample_params(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Suggest every active parameter; returns Optuna-named parameters (as stored)."""
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for p in spec.space:
        if not _active(p, values):
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


def params_to_values(spec: StudySpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna-named parameters -> config field values (inverse transforms applied)."""
    out = {}
    for p in spec.space:
        if p.optuna_name in params:
            out[p.name] = p.to_config_value(params[p.optuna_name])
    return out


def params_to_configs(
    spec: StudySpec, params: Mapping[str, Any], seed: int | None = None, device: str = "cpu"
) -> tuple[VMPOConfig, TrainConfig]:
    """The complete agent and train configs of a trial: study fixed values + sampled values."""
    values = {**spec.agent, **spec.train, **params_to_values(spec, params)}
    agent_fields, train_fields = set(field_names(VMPOConfig)), set(field_names(TrainConfig))
    agent = VMPOConfig(**{k: v for k, v in values.items() if k in agent_fields})
    train = TrainConfig(
        **{k: v for k, v in values.items() if k in train_fields},
        env_id=spec.env_id,
        seed=spec.seed if seed is None else seed,
        device=device,
        eval_interval=spec.eval_interval,
        eval_episodes=spec.eval_episodes,
    )
    return agent, train


def default_params(spec: StudySpec) -> dict[str, Any]:
    """Optuna-named parameters of the documented default configuration.

    A parameter's ``default`` in the study file wins; otherwise the config's own default,
    if it lies in the searched range; conditional parameters only when their condition
    holds.
    """
    base = {**{f.name: f.default for f in dataclasses.fields(VMPOConfig)},
            **{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **spec.agent, **spec.train}  # fmt: skip
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for p in spec.space:
        if not _active(p, values):
            continue
        value = p.default if p.default is not None else base.get(p.name)
        if value is None or not _in_space(p, p.to_sampled_value(value)):
            continue
        sampled = p.to_sampled_value(value)
        params[p.optuna_name] = int(sampled) if p.kind == "int" else float(sampled) if p.kind == "float" else sampled
        values[p.name] = value
    return params


def _in_space(p: ParamSpec, value: Any) -> bool:
    if p.kind == "categorical":
        return value in p.choices
    try:
        return p.low <= float(value) <= p.high
    except (TypeError, ValueError):
        return False
