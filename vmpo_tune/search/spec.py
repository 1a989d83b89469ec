"""Study files: ``studies/<name>.yaml`` parsed into a validated, typed :class:`StudySpec`, and a study's
parameters mapped to the complete configuration they stand for.

Everything is checked before anything runs; each problem is a one-line
:class:`~vmpo_tune.errors.UserError` naming the file and the key. YAML is read with
the safe loader and nothing in it is evaluated as code (:mod:`.yamlfile`); the
``search_space`` section is the search space's own (:mod:`.space`); finding a study by
name is :mod:`.studyfiles`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import validate
from ..config import RunConfig, TrainConfig, VMPOConfig, field_names
from ..envs import EnvError, check_env_id
from ..errors import UserError
from ..records import StudyInfo
from ..stats import AGGREGATES, OBJECTIVES, check_objective
from ..study_names import stored_study_name
from .catalog import PRUNERS as PRUNER_CLASSES
from .catalog import SAMPLERS as SAMPLER_CLASSES
from .racing import RACE_SEEDS
from .space import RESERVED, ParamSpec, params_to_values, parse_space
from .space import default_params as space_default_params
from .studyfiles import find_study
from .yamlfile import (
    Errors,
    check_choice,
    check_mapping,
    check_nonnegative_int,
    check_number,
    check_positive_int,
    read_yaml,
)

SAMPLERS = tuple(SAMPLER_CLASSES)
PRUNERS = tuple(PRUNER_CLASSES)
SEARCHES = ("standard", "racing")

TOP_KEYS = {
    "description": "one line on what the study tunes",
    "status": "whether the study's defaults were run and confirmed (shown in --help)",
    "timing": "{seconds_per_trial, measured_on}: a measured time per trial, shown before a search",
    "env_id": "Gymnasium id",
    "total_steps": "env steps per trial and seed",
    "evaluation": "{interval, episodes}",
    "seeds_per_trial": "seeds trained per trial",
    "seed": "base seed of the study",
    "aggregate": f"over seeds: {', '.join(AGGREGATES)}",
    "objective": f"per seed: {', '.join(OBJECTIVES)} (final / best evaluation, mean of all / of the last K)",
    "agent": "fixed VMPOConfig fields",
    "train": "fixed TrainConfig fields",
    "search_space": "parameters to sample",
    "search": "standard (every trial trains all its seeds) or racing / {name: racing, seeds: N} (seeds are earned)",
    "sampler": "{name, ...options}",
    "pruner": "{name, ...options}",
}


@dataclass(frozen=True)
class StudySpec:
    name: str
    path: str
    env_id: str
    total_steps: int
    eval_interval: int
    eval_episodes: int
    description: str = ""
    status: str = ""
    timing: Mapping[str, Any] = field(default_factory=dict)
    seeds_per_trial: int = 1
    seed: int = 0
    aggregate: str = "mean"
    objective: str = "final"
    search: str = "standard"
    """``standard``, or ``racing``: a trial is one seed run and seeds are earned (:mod:`.racing`)."""
    race_seeds: int = RACE_SEEDS
    """With racing: the seeds the incumbent accumulates (tuning seeds ``seed .. seed + race_seeds - 1``)."""
    agent: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    space: tuple[ParamSpec, ...] = ()
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] = field(default_factory=lambda: {"name": "median"})

    def fingerprint(self) -> dict:
        """Everything that changes what a trial's value means; it must not change within one stored study."""
        keys = (
            "env_id",
            "total_steps",
            "eval_interval",
            "eval_episodes",
            "seeds_per_trial",
            "seed",
            "aggregate",
            "objective",
        )
        out = {
            **{k: getattr(self, k) for k in keys},
            "agent": dict(self.agent),
            "train": dict(self.train),
            "space": [p.describe() for p in self.space],
        }
        if self.search != "standard":  # (absent for standard searches: studies stored before racing still open)
            out["search"] = {"name": self.search, "seeds": self.race_seeds}
        return out

    def info(self) -> StudyInfo:
        """What the stored study records about this spec (its default configuration included)."""
        space = [{**p.describe(), "optuna_name": p.optuna_name} for p in self.space]
        return StudyInfo(
            name=self.name,
            env_id=self.env_id,
            description=self.description,
            total_steps=self.total_steps,
            seeds_per_trial=self.seeds_per_trial,
            aggregate=self.aggregate,
            objective=self.objective,
            search=self.search,
            race_seeds=self.race_seeds if self.search == "racing" else 0,
            seed=self.seed,
            eval_interval=self.eval_interval,
            eval_episodes=self.eval_episodes,
            search_space=space,
            default_config=params_to_config(self, default_params(self)),
        )

    @property
    def tuning_seeds(self) -> list[int]:
        """Every trial trains the same seeds (paired comparisons); confirm on others.

        With racing, a new configuration trains the first of them; the others are earned.
        """
        return [self.seed + i for i in range(self.seeds_per_trial)]


# ---------------------------------------------------------------------------- parsing


def load_spec(name_or_path: str, check_env: bool = True) -> StudySpec:
    """Find, parse and validate a study file."""
    path = find_study(name_or_path)
    return parse_spec(read_yaml(path), path, check_env=check_env)


def parse_spec(data: Any, path: Path | str, check_env: bool = True) -> StudySpec:
    path = Path(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a study file must be a YAML mapping of keys such as env_id, search_space")
    err = Errors(path)
    env_id = _check_top(data, err, check_env)
    evaluation = check_mapping(data.get("evaluation", {}), "evaluation", err)
    bad = sorted(set(evaluation) - {"interval", "episodes"})
    if bad:
        err(f"evaluation.{bad[0]}", "unknown key (valid: interval, episodes)")
    defaults = TrainConfig()
    interval, episodes = (
        evaluation.get("interval", defaults.eval_interval),
        evaluation.get("episodes", defaults.eval_episodes),
    )
    spec_kwargs = dict(
        name=stored_study_name(path),
        path=str(path),
        env_id=env_id,
        description=str(data.get("description", "")).strip(),
        status=str(data.get("status", "")).strip(),
        timing=_timing(data.get("timing"), err),
        total_steps=check_positive_int(data["total_steps"], "total_steps", err),
        eval_interval=check_positive_int(interval, "evaluation.interval", err),
        eval_episodes=check_positive_int(episodes, "evaluation.episodes", err),
        seeds_per_trial=check_positive_int(data.get("seeds_per_trial", 1), "seeds_per_trial", err),
        seed=check_nonnegative_int(data.get("seed", 0), "seed", err),
        aggregate=check_choice(data.get("aggregate", "mean"), AGGREGATES, "aggregate", err),
        objective=_objective(data.get("objective", "final"), err),
        **_search(data.get("search", "standard"), err),
        agent=_fixed(data.get("agent", {}), VMPOConfig, "agent", err),
        train=_fixed(data.get("train", {}), TrainConfig, "train", err),
        sampler=_named(data.get("sampler", {"name": "tpe"}), SAMPLERS, "sampler", err),
        pruner=_named(data.get("pruner", {"name": "median"}), PRUNERS, "pruner", err),
    )
    space = parse_space(data["search_space"], err)
    for p in space:
        if p.name in spec_kwargs["agent"] or p.name in spec_kwargs["train"]:
            section = "agent" if p.name in spec_kwargs["agent"] else "train"
            err(f"search_space.{p.name}", f"is also fixed under {section}: keep one of the two")
    if spec_kwargs["search"] == "racing" and spec_kwargs["seeds_per_trial"] != 1:
        err("seeds_per_trial", "a racing search trains one seed per trial (seeds are earned): remove seeds_per_trial")
    spec = StudySpec(space=space, **spec_kwargs)
    _check_defaults(spec, err)
    return spec


def _check_top(data: dict, err: Errors, check_env: bool) -> str:
    """Known top-level keys, the required ones present, and an env id the registry knows; returns the id."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        err(unknown[0], f"unknown key (valid: {', '.join(TOP_KEYS)}){validate.did_you_mean(unknown[0], TOP_KEYS)}")
    for key in ("env_id", "total_steps", "search_space"):
        if key not in data:
            err(key, f"missing required key ({TOP_KEYS[key]})")
    env_id = data["env_id"]
    if not isinstance(env_id, str):
        err("env_id", "must be a string such as Hopper-v5")
    if check_env:  # the registry only: the first trial builds the env (and checks its spaces)
        try:
            check_env_id(env_id)
        except EnvError as exc:
            err("env_id", str(exc))
    return env_id


def _timing(value: Any, err: Errors) -> dict:
    """``timing: {seconds_per_trial: S, measured_on: "..."}``: a measured time per trial, shown before a search."""
    if value is None:
        return {}
    values = check_mapping(value, "timing", err)
    bad = sorted(set(values) - {"seconds_per_trial", "measured_on"})
    if bad:
        err(f"timing.{bad[0]}", "unknown key (valid: seconds_per_trial, measured_on)")
    if "seconds_per_trial" in values:
        seconds = check_number(values["seconds_per_trial"], "timing.seconds_per_trial", err)
        if seconds <= 0:
            err("timing.seconds_per_trial", f"must be > 0, got {seconds}")
    return dict(values)


def _search(value: Any, err: Errors) -> dict:
    """``search: standard``, ``search: racing`` or ``search: {name: racing, seeds: N}``."""
    options = {"name": value} if isinstance(value, str) else check_mapping(value, "search", err)
    bad = sorted(set(options) - {"name", "seeds"})
    if bad:
        err(f"search.{bad[0]}", "unknown key (valid: name, seeds)")
    name = check_choice(options.get("name", "standard"), SEARCHES, "search", err)
    seeds = options.get("seeds", RACE_SEEDS)
    if name == "standard" and "seeds" in options:
        err("search.seeds", "only racing earns seeds: use seeds_per_trial for a standard search")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        err("search.seeds", f"must be an integer >= 2 (the seeds the incumbent accumulates), got {seeds!r}")
    return {"search": name, "race_seeds": seeds}


def _objective(value: Any, err: Errors) -> str:
    try:
        return check_objective(value)
    except ValueError as exc:
        err("objective", str(exc).replace("unknown objective", "unknown value"))
        raise


def _coerce_numbers(values: dict, cls: type) -> dict:
    """Turn YAML-1.1 number strings ('1e-3') into floats for float fields of ``cls``."""
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    out = {}
    for k, v in values.items():
        if isinstance(v, str) and kinds.get(k) in ("float", float):
            with contextlib.suppress(ValueError):
                v = float(v)
        out[k] = v
    return out


def _fixed(value: Any, cls: type, key: str, err: Errors) -> dict:
    values = check_mapping(value, key, err)
    for name in values:
        if name in RESERVED:
            where = "evaluation:" if name.startswith("eval_") else "the top level / the command line"
            err(f"{key}.{name}", f"is set by the study itself ({where}), not under {key}")
        if name not in field_names(cls):
            hint = validate.did_you_mean(name, field_names(cls))
            err(f"{key}.{name}", f"unknown {cls.__name__} field (valid: {', '.join(field_names(cls))}){hint}")
    values = _coerce_numbers(values, cls)
    try:
        cls(**values)
    except (ValueError, TypeError) as exc:
        err(key, str(exc))
    return values


def _named(value: Any, valid: tuple[str, ...], key: str, err: Errors) -> dict:
    if isinstance(value, str):
        value = {"name": value}
    values = dict(check_mapping(value, key, err))
    check_choice(values.get("name"), valid, f"{key}.name", err)
    return values


def _check_defaults(spec: StudySpec, err: Errors) -> None:
    """Each default must lie in its range, and the default configuration must be valid."""
    for p in spec.space:
        if p.default is None:
            continue
        if p.kind == "categorical":
            if p.default not in p.choices:
                err(f"search_space.{p.name}.default", f"{p.default!r} is not one of the choices")
            continue
        value = check_number(p.default, f"search_space.{p.name}.default", err)
        sampled = p.to_sampled_value(value)
        if not (p.low <= sampled <= p.high):
            err(f"search_space.{p.name}.default", f"{p.default!r} lies outside the range [{p.low}, {p.high}]")
    try:
        params_to_config(spec, default_params(spec))
    except (ValueError, TypeError) as exc:
        err("search_space", f"the default configuration is invalid: {exc}")


# ---------------------------------------------------------------------------- parameters -> configs
# The objective, the default-trial enqueueing, the confirmation and the export all go through
# params_to_config, so a stored trial always maps back to the same configs.


def params_to_config(
    spec: StudySpec, params: Mapping[str, Any], seed: int | None = None, device: str = "cpu"
) -> RunConfig:
    """The complete configuration of a trial: study fixed values + sampled values, the study's budget."""
    values = {**spec.agent, **spec.train, **params_to_values(spec.space, params)}
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
    return RunConfig(agent, train, spec.total_steps)


def default_params(spec: StudySpec) -> dict[str, Any]:
    """Optuna-named parameters of the study's documented default configuration (:func:`.space.default_params`
    over the configs' own defaults under the study's fixed values)."""
    base = {**VMPOConfig().to_dict(), **TrainConfig().to_dict(), **spec.agent, **spec.train}
    return space_default_params(spec.space, base)


def default_values(spec: StudySpec) -> dict[str, Any]:
    """The searched parameters' config values in the study's default configuration (transforms undone): what a
    trial's values are compared with to tell whether the study file ships them as its default."""
    return params_to_values(spec.space, default_params(spec))
