"""Study files: ``studies/<name>.yaml`` parsed into a validated, typed :class:`StudySpec`.

Everything is checked before anything runs; each problem is a one-line
:class:`~vmpo_tune.errors.UserError` naming the file and the key. YAML is read with
the safe loader and nothing in it is evaluated as code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import TrainConfig, VMPOConfig, field_names
from ..errors import UserError

AGGREGATES = ("mean", "median", "min", "iqm")
OBJECTIVES = ("final", "best")
SAMPLERS = ("tpe", "random", "cmaes", "gp", "qmc")
PRUNERS = ("median", "hyperband", "halving", "wilcoxon", "none")
TRANSFORMS = ("one_minus",)
# Fields a study may not set: they belong to the run (or the search needs them), not to the configuration.
RESERVED = ("env_id", "seed", "device", "eval_interval", "eval_episodes", "checkpoints")
TUNABLE = tuple(n for n in (*field_names(VMPOConfig), *field_names(TrainConfig)) if n not in RESERVED)

TOP_KEYS = {
    "description": "one line on what the study tunes",
    "env_id": "Gymnasium id",
    "total_steps": "env steps per trial and seed",
    "evaluation": "{interval, episodes}",
    "seeds_per_trial": "seeds trained per trial",
    "seed": "base seed of the study",
    "aggregate": f"over seeds: {', '.join(AGGREGATES)}",
    "objective": f"per seed: {', '.join(OBJECTIVES)} evaluation return",
    "agent": "fixed VMPOConfig fields",
    "train": "fixed TrainConfig fields",
    "search_space": "parameters to sample",
    "sampler": "{name, ...options}",
    "pruner": "{name, ...options}",
}
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices", "default", "when", "transform")


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter. ``low``/``high`` are in the sampled space (after ``transform``)."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    default: Any = None
    when: tuple[tuple[str, Any], ...] = ()
    transform: str | None = None

    @property
    def optuna_name(self) -> str:
        """Name stored in Optuna (``one_minus_gamma`` for a transformed ``gamma``)."""
        return f"{self.transform}_{self.name}" if self.transform else self.name

    def to_config_value(self, sampled: Any) -> Any:
        return round(1.0 - sampled, 12) if self.transform == "one_minus" else sampled

    def to_sampled_value(self, config_value: Any) -> Any:
        return round(1.0 - config_value, 12) if self.transform == "one_minus" else config_value

    def describe(self) -> dict:
        """JSON-friendly form of what defines the space (the default only seeds the first trial)."""
        items = self.__dict__.items()
        return {k: v for k, v in items if (v not in (None, (), False) or k == "name") and k != "default"}


@dataclass(frozen=True)
class StudySpec:
    name: str
    path: str
    env_id: str
    total_steps: int
    eval_interval: int
    eval_episodes: int
    description: str = ""
    seeds_per_trial: int = 1
    seed: int = 0
    aggregate: str = "mean"
    objective: str = "final"
    agent: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    space: tuple[ParamSpec, ...] = ()
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] = field(default_factory=lambda: {"name": "median"})

    def fingerprint(self) -> dict:
        """Everything that changes what a trial's value means; it must not change within one stored study."""
        keys = ("env_id", "total_steps", "eval_interval", "eval_episodes", "seeds_per_trial", "seed", "aggregate",
                "objective")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "agent": dict(self.agent), "train": dict(self.train),
                "space": [p.describe() for p in self.space]}  # fmt: skip


# ---------------------------------------------------------------------------- locating


def studies_dirs() -> list[Path]:
    """Where ``--study NAME`` looks: $VMPO_TUNE_STUDIES, ./studies, then the repo's studies/."""
    dirs = []
    if os.environ.get("VMPO_TUNE_STUDIES"):
        dirs.append(Path(os.environ["VMPO_TUNE_STUDIES"]))
    dirs += [Path.cwd() / "studies", Path(__file__).resolve().parents[2] / "studies"]
    seen, out = set(), []
    for d in dirs:
        if d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


def available_studies() -> list[str]:
    names = set()
    for d in studies_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def find_study(name_or_path: str) -> Path:
    """``hopper`` -> ``studies/hopper.yaml``; a path to a YAML file is used as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not candidate.is_file():
            raise UserError(f"study file {name_or_path} does not exist; pass an existing YAML file or a study name")
        return candidate
    for d in studies_dirs():
        path = d / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    names = available_studies()
    listing = ", ".join(names) if names else "none found"
    raise UserError(
        f"unknown study {name_or_path!r}; available: {listing} (looked in "
        f"{', '.join(str(d) for d in studies_dirs())}); pass --study NAME or --study path/to/file.yaml"
    )


# ---------------------------------------------------------------------------- parsing


def load_study(name_or_path: str, check_env: bool = True) -> StudySpec:
    """Find, parse and validate a study file."""
    path = find_study(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: malformed YAML: {exc.problem or exc}; fix the syntax at that line") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML: {exc}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the study file: {exc.strerror}") from None
    return parse_study(data, path, check_env=check_env)


def parse_study(data: Any, path: Path | str, check_env: bool = True) -> StudySpec:
    path = Path(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a study file must be a YAML mapping of keys such as env_id, search_space")
    err = _Errors(path)
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        err(unknown[0], f"unknown key (valid: {', '.join(TOP_KEYS)})")
    for key in ("env_id", "total_steps", "search_space"):
        if key not in data:
            err(key, f"missing required key ({TOP_KEYS[key]})")
    env_id = data["env_id"]
    if not isinstance(env_id, str):
        err("env_id", "must be a string such as Hopper-v5")
    if check_env:
        _check_env(env_id, err)
    evaluation = _mapping(data.get("evaluation", {}), "evaluation", err)
    bad = sorted(set(evaluation) - {"interval", "episodes"})
    if bad:
        err(f"evaluation.{bad[0]}", "unknown key (valid: interval, episodes)")
    defaults = TrainConfig()
    spec_kwargs = dict(
        name=path.stem,
        path=str(path),
        env_id=env_id,
        description=str(data.get("description", "")).strip(),
        total_steps=_positive_int(data["total_steps"], "total_steps", err),
        eval_interval=_positive_int(evaluation.get("interval", defaults.eval_interval), "evaluation.interval", err),
        eval_episodes=_positive_int(evaluation.get("episodes", defaults.eval_episodes), "evaluation.episodes", err),
        seeds_per_trial=_positive_int(data.get("seeds_per_trial", 1), "seeds_per_trial", err),
        seed=_nonnegative_int(data.get("seed", 0), "seed", err),
        aggregate=_choice(data.get("aggregate", "mean"), AGGREGATES, "aggregate", err),
        objective=_choice(data.get("objective", "final"), OBJECTIVES, "objective", err),
        agent=_fixed(data.get("agent", {}), VMPOConfig, "agent", err),
        train=_fixed(data.get("train", {}), TrainConfig, "train", err),
        sampler=_named(data.get("sampler", {"name": "tpe"}), SAMPLERS, "sampler", err),
        pruner=_named(data.get("pruner", {"name": "median"}), PRUNERS, "pruner", err),
    )
    space = _space(data["search_space"], err)
    for p in space:
        if p.name in spec_kwargs["agent"] or p.name in spec_kwargs["train"]:
            section = "agent" if p.name in spec_kwargs["agent"] else "train"
            err(f"search_space.{p.name}", f"is also fixed under {section}: keep one of the two")
    spec = StudySpec(space=space, **spec_kwargs)
    _check_defaults(spec, err)
    return spec


class _Errors:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, key: str, problem: str):
        raise UserError(f"{self.path}: {key}: {problem}")


def _check_env(env_id: str, err: _Errors) -> None:
    from ..envs import EnvError, check_continuous, check_env_id

    try:
        import gymnasium as gym

        resolved = check_env_id(env_id)
        env = gym.make(resolved)
        try:
            check_continuous(env, env_id)
        finally:
            env.close()
    except EnvError as exc:
        err("env_id", str(exc))


def _mapping(value: Any, key: str, err: _Errors) -> dict:
    if not isinstance(value, dict):
        err(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _number(value: Any, key: str, err: _Errors) -> float:
    """YAML 1.1 reads ``1e-3`` as a string; accept any string that is a float literal."""
    if isinstance(value, bool):
        err(key, f"must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    err(key, f"must be a finite number, got {value!r}")
    raise AssertionError  # unreachable: err raises


def _positive_int(value: Any, key: str, err: _Errors) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        err(key, f"must be a positive integer, got {value!r}")
    return value


def _nonnegative_int(value: Any, key: str, err: _Errors) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        err(key, f"must be a non-negative integer, got {value!r}")
    return value


def _choice(value: Any, valid: tuple[str, ...], key: str, err: _Errors) -> str:
    if value not in valid:
        err(key, f"unknown value {value!r} (valid: {', '.join(valid)})")
    return value


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


def _fixed(value: Any, cls: type, key: str, err: _Errors) -> dict:
    values = _mapping(value, key, err)
    for name in values:
        if name in RESERVED:
            where = "evaluation:" if name.startswith("eval_") else "the top level / the command line"
            err(f"{key}.{name}", f"is set by the study itself ({where}), not under {key}")
        if name not in field_names(cls):
            err(f"{key}.{name}", f"unknown {cls.__name__} field (valid: {', '.join(field_names(cls))})")
    values = _coerce_numbers(values, cls)
    try:
        cls(**values)
    except (ValueError, TypeError) as exc:
        err(key, str(exc))
    return values


def _named(value: Any, valid: tuple[str, ...], key: str, err: _Errors) -> dict:
    if isinstance(value, str):
        value = {"name": value}
    values = dict(_mapping(value, key, err))
    _choice(values.get("name"), valid, f"{key}.name", err)
    return values


def _space(value: Any, err: _Errors) -> tuple[ParamSpec, ...]:
    entries = _mapping(value, "search_space", err)
    if not entries:
        err("search_space", "is empty: name at least one parameter to search")
    params = [_param(name, entry, err) for name, entry in entries.items()]
    unconditional = {p.name for p in params if not p.when}
    for p in params:
        for cond_name, _ in p.when:
            if cond_name not in unconditional:
                err(f"search_space.{p.name}.when", f"refers to {cond_name!r}, which is not an unconditional "
                    "parameter of the search space")  # fmt: skip
    # unconditional parameters are sampled first, so every condition can be read
    return tuple(sorted(params, key=lambda p: bool(p.when)))


def _param(name: str, entry: Any, err: _Errors) -> ParamSpec:
    key = f"search_space.{name}"
    if name not in TUNABLE:
        err(key, f"unknown parameter (valid: {', '.join(TUNABLE)})")
    entry = _mapping(entry, key, err)
    unknown = sorted(set(entry) - set(PARAM_KEYS))
    if unknown:
        err(f"{key}.{unknown[0]}", f"unknown key (valid: {', '.join(PARAM_KEYS)})")
    when = _mapping(entry.get("when", {}), f"{key}.when", err)
    transform = entry.get("transform")
    if transform is not None:
        _choice(transform, TRANSFORMS, f"{key}.transform", err)
    common = dict(name=name, default=entry.get("default"), when=tuple(sorted(when.items())), transform=transform)
    if "choices" in entry:
        return ParamSpec(kind="categorical", choices=_choices(entry, key, err), **common)
    if common["default"] is not None:  # YAML 1.1 reads 1e-3 as a string
        common["default"] = _number(common["default"], f"{key}.default", err)
    return ParamSpec(**_numeric(entry, key, err), **common)


def _choices(entry: dict, key: str, err: _Errors) -> tuple:
    choices = entry["choices"]
    if not isinstance(choices, list) or not choices:
        err(f"{key}.choices", "must be a non-empty list")
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        err(f"{key}.choices", "must be numbers, strings, booleans or null")
    if len(set(map(repr, choices))) != len(choices):
        err(f"{key}.choices", "has duplicates")
    extra = sorted(set(entry) & {"low", "high", "log", "step"})
    if extra:
        err(f"{key}.{extra[0]}", "does not go with choices")
    return tuple(choices)


def _numeric(entry: dict, key: str, err: _Errors) -> dict:
    for bound in ("low", "high"):
        if bound not in entry:
            err(key, f"needs low and high (or choices); {bound} is missing")
    low, high = _number(entry["low"], f"{key}.low", err), _number(entry["high"], f"{key}.high", err)
    kind = entry.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    _choice(kind, ("float", "int"), f"{key}.type", err)
    log = entry.get("log", False)
    if not isinstance(log, bool):
        err(f"{key}.log", f"must be true or false, got {log!r}")
    if low >= high:
        err(key, f"low ({low}) must be < high ({high})")
    if log and low <= 0:
        err(key, f"log scale needs low > 0, got low={low}")
    step = entry.get("step")
    if step is not None:
        step = _number(step, f"{key}.step", err)
        if step <= 0 or log:
            err(f"{key}.step", "must be > 0 and cannot be combined with log")
    if kind == "float":
        return dict(kind=kind, low=float(low), high=float(high), log=log, step=step)
    if not (float(low).is_integer() and float(high).is_integer()):
        err(key, f"an int parameter needs integer bounds, got {low}..{high}")
    return dict(kind=kind, low=int(low), high=int(high), log=log, step=None if step is None else int(step))


def _check_defaults(spec: StudySpec, err: _Errors) -> None:
    """Each default must lie in its range, and the default configuration must be valid."""
    from .space import default_params, params_to_configs

    for p in spec.space:
        if p.default is None:
            continue
        if p.kind == "categorical":
            if p.default not in p.choices:
                err(f"search_space.{p.name}.default", f"{p.default!r} is not one of the choices")
            continue
        value = _number(p.default, f"search_space.{p.name}.default", err)
        sampled = p.to_sampled_value(value)
        if not (p.low <= sampled <= p.high):
            err(f"search_space.{p.name}.default", f"{p.default!r} lies outside the range [{p.low}, {p.high}]")
    try:
        params_to_configs(spec, default_params(spec))
    except (ValueError, TypeError) as exc:
        err("search_space", f"the default configuration is invalid: {exc}")
