"""Samplers and pruners by name, with their options checked against Optuna's signatures."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import optuna

from ..errors import UserError
from .catalog import NEEDS, PRUNERS, SAMPLERS
from .spec import StudySpec


def _sampler_defaults(name: str, spec: StudySpec) -> dict[str, Any]:
    if name == "tpe":
        # constant_liar keeps parallel workers from proposing the same point
        return {"n_startup_trials": 10, "multivariate": True, "constant_liar": True}
    if name == "cmaes":
        return {"warn_independent_sampling": False}
    return {}


def _pruner_defaults(name: str, spec: StudySpec) -> dict[str, Any]:
    interval = spec.eval_interval
    if name in ("median", "seedmedian"):  # rl-zoo's rule: no pruning in the first third of training
        return {"n_startup_trials": 5, "n_warmup_steps": spec.total_steps // 3}
    if name in ("hyperband", "halving"):
        base = {"min_resource": interval, "reduction_factor": 3}
        return {**base, "max_resource": spec.total_steps} if name == "hyperband" else base
    if name == "wilcoxon":
        return {"p_threshold": 0.1, "n_startup_steps": 2}
    return {}


def _build(kind: str, table: Mapping[str, type], options: Mapping[str, Any], defaults: dict, source: str) -> Any:
    name = options["name"]
    cls = table[name]
    if name in NEEDS:
        try:
            __import__(NEEDS[name])
        except ImportError:
            raise UserError(f"the {name} {kind} needs {NEEDS[name]}: pip install 'vmpo-tune[samplers]'") from None
    kwargs = {**defaults, **{k: v for k, v in options.items() if k != "name"}}
    valid = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise UserError(f"{source}: {kind}.{unknown[0]}: not an option of {cls.__name__} (valid: {', '.join(valid)})")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: {kind}: {exc}") from None


def make_sampler(spec: StudySpec, name: str | None = None, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler (or ``name`` with its default options), seeded per worker."""
    options = dict(spec.sampler) if name is None or name == spec.sampler.get("name") else {"name": name}
    if options["name"] not in SAMPLERS:
        raise UserError(f"unknown sampler {options['name']!r}; valid: {', '.join(SAMPLERS)}")
    if seed is not None and "seed" in inspect.signature(SAMPLERS[options["name"]]).parameters:
        options["seed"] = seed
    return _build("sampler", SAMPLERS, options, _sampler_defaults(options["name"], spec), spec.path)


def make_pruner(spec: StudySpec, name: str | None = None) -> optuna.pruners.BasePruner:
    options = dict(spec.pruner) if name is None or name == spec.pruner.get("name") else {"name": name}
    if options["name"] not in PRUNERS:
        raise UserError(f"unknown pruner {options['name']!r}; valid: {', '.join(PRUNERS)}")
    return _build("pruner", PRUNERS, options, _pruner_defaults(options["name"], spec), spec.path)
