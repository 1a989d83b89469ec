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

from .. import validate
from ..config import TrainConfig, VMPOConfig, field_names
from ..envs import EnvError, check_env_id
from ..errors import UserError
from ..records import StudyInfo
from ..stats import AGGREGATES, OBJECTIVES, check_objective
from .catalog import PRUNERS as PRUNER_CLASSES
from .catalog import SAMPLERS as SAMPLER_CLASSES
from .racing import RACE_SEEDS

SAMPLERS = tuple(SAMPLER_CLASSES)
PRUNERS = tuple(PRUNER_CLASSES)
SEARCHES = ("standard", "racing")
TRANSFORMS = ("one_minus",)
# Fields a study may not set: they belong to the run (or the search needs them), not to the configuration.
RESERVED = ("env_id", "seed", "device", "eval_interval", "eval_episodes", "checkpoints")
TUNABLE = tuple(n for n in (*field_names(VMPOConfig), *field_names(TrainConfig)) if n not in RESERVED)

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
        agent, train = params_to_configs(self, default_params(self))
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
            default_config=run_config(agent, train, self.total_steps),
        )

    @property
    def tuning_seeds(self) -> list[int]:
        """Every trial trains the same seeds (paired comparisons); confirm on others.

        With racing, a new configuration trains the first of them; the others are earned.
        """
        return [self.seed + i for i in range(self.seeds_per_trial)]


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


def study_listing() -> str:
    """One line per available study: its name, env and status (for --help)."""
    lines = []
    for name in available_studies():
        try:
            data = read_yaml(find_study(name))
        except UserError:
            lines.append(f"  {name}: (unreadable study file)")
            continue
        data = data if isinstance(data, dict) else {}
        status = str(data.get("status") or "status not stated")
        steps = data.get("total_steps")
        steps = f"{steps:,}" if isinstance(steps, int) else "?"
        lines.append(f"  {name} ({data.get('env_id', '?')}, {steps} steps): {status}")
    return "\n".join(lines) or "  none found"


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


def load_spec(name_or_path: str, check_env: bool = True) -> StudySpec:
    """Find, parse and validate a study file."""
    path = find_study(name_or_path)
    return parse_spec(read_yaml(path), path, check_env=check_env)


MAX_YAML_BYTES = 1 << 20
"""Study and enqueue files are hand-written and small: a larger one is refused before it is parsed."""
MAX_YAML_DEPTH, MAX_YAML_ALIASES = 32, 64
"""Nesting and alias limits: a deeply nested file or an alias-expansion bomb is one line, not a hang."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting depth and on the number of aliases."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth, self._aliases = 0, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (an alias-expansion bomb?)")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(path: Path) -> Any:
    """A YAML file read with the safe loader and limits (size, depth, aliases, UTF-8 text); every problem is
    one line naming the file (and the line of a syntax error)."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise UserError(
                f"{path}: {size:,} bytes is too large for a study or config file (limit {MAX_YAML_BYTES:,})"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; pass a YAML file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_LimitedLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        # the problem mark is where the parser gave up, often the line after; the context mark is where
        # the construct it could not finish began
        mark = exc.context_mark or exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = " ".join(" ".join(filter(None, [exc.context, exc.problem])).split()) or " ".join(str(exc).split())
        raise UserError(f"{where}: malformed YAML: {what}; fix the syntax at that line") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to read") from None


def parse_spec(data: Any, path: Path | str, check_env: bool = True) -> StudySpec:
    path = Path(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a study file must be a YAML mapping of keys such as env_id, search_space")
    err = _Errors(path)
    env_id = _check_top(data, err, check_env)
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
        status=str(data.get("status", "")).strip(),
        timing=_timing(data.get("timing"), err),
        total_steps=_positive_int(data["total_steps"], "total_steps", err),
        eval_interval=_positive_int(evaluation.get("interval", defaults.eval_interval), "evaluation.interval", err),
        eval_episodes=_positive_int(evaluation.get("episodes", defaults.eval_episodes), "evaluation.episodes", err),
        seeds_per_trial=_positive_int(data.get("seeds_per_trial", 1), "seeds_per_trial", err),
        seed=_nonnegative_int(data.get("seed", 0), "seed", err),
        aggregate=_choice(data.get("aggregate", "mean"), AGGREGATES, "aggregate", err),
        objective=_objective(data.get("objective", "final"), err),
        **_search(data.get("search", "standard"), err),
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
    if spec_kwargs["search"] == "racing" and spec_kwargs["seeds_per_trial"] != 1:
        err("seeds_per_trial", "a racing search trains one seed per trial (seeds are earned): remove seeds_per_trial")
    spec = StudySpec(space=space, **spec_kwargs)
    _check_defaults(spec, err)
    return spec


def _check_top(data: dict, err: _Errors, check_env: bool) -> str:
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


def _timing(value: Any, err: _Errors) -> dict:
    """``timing: {seconds_per_trial: S, measured_on: "..."}``: a measured time per trial, shown before a search."""
    if value is None:
        return {}
    values = _mapping(value, "timing", err)
    bad = sorted(set(values) - {"seconds_per_trial", "measured_on"})
    if bad:
        err(f"timing.{bad[0]}", "unknown key (valid: seconds_per_trial, measured_on)")
    if "seconds_per_trial" in values:
        seconds = _number(values["seconds_per_trial"], "timing.seconds_per_trial", err)
        if seconds <= 0:
            err("timing.seconds_per_trial", f"must be > 0, got {seconds}")
    return dict(values)


class _Errors:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, key: str, problem: str):
        raise UserError(f"{self.path}: {key}: {problem}")


def _mapping(value: Any, key: str, err: _Errors) -> dict:
    if not isinstance(value, dict):
        err(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _number(value: Any, key: str, err: _Errors) -> float:
    """A finite number; YAML 1.1 reads ``1e-3`` as a string, so float literals in strings are accepted."""
    try:
        return validate.finite_number(key, value)
    except ValueError:
        err(key, f"must be a finite number, got {value!r}")
        raise


def _positive_int(value: Any, key: str, err: _Errors) -> int:
    try:
        return validate.positive_int(key, value)
    except ValueError:
        err(key, f"must be a positive integer, got {value!r}")
        raise


def _nonnegative_int(value: Any, key: str, err: _Errors) -> int:
    try:
        return validate.nonnegative_int(key, value)
    except ValueError:
        err(key, f"must be a non-negative integer, got {value!r}")
        raise


def _search(value: Any, err: _Errors) -> dict:
    """``search: standard``, ``search: racing`` or ``search: {name: racing, seeds: N}``."""
    options = {"name": value} if isinstance(value, str) else _mapping(value, "search", err)
    bad = sorted(set(options) - {"name", "seeds"})
    if bad:
        err(f"search.{bad[0]}", "unknown key (valid: name, seeds)")
    name = _choice(options.get("name", "standard"), SEARCHES, "search", err)
    seeds = options.get("seeds", RACE_SEEDS)
    if name == "standard" and "seeds" in options:
        err("search.seeds", "only racing earns seeds: use seeds_per_trial for a standard search")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 2:
        err("search.seeds", f"must be an integer >= 2 (the seeds the incumbent accumulates), got {seeds!r}")
    return {"search": name, "race_seeds": seeds}


def _objective(value: Any, err: _Errors) -> str:
    try:
        return check_objective(value)
    except ValueError as exc:
        err("objective", str(exc).replace("unknown objective", "unknown value"))
        raise


def _choice(value: Any, valid: tuple[str, ...], key: str, err: _Errors) -> str:
    try:
        return validate.choice(key, value, valid)
    except ValueError:
        err(key, f"unknown value {value!r} (valid: {', '.join(valid)}){validate.did_you_mean(str(value), valid)}")
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


def _fixed(value: Any, cls: type, key: str, err: _Errors) -> dict:
    values = _mapping(value, key, err)
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
                err(
                    f"search_space.{p.name}.when",
                    f"refers to {cond_name!r}, which is not an unconditional parameter of the search space",
                )
    # unconditional parameters are sampled first, so every condition can be read
    return tuple(sorted(params, key=lambda p: bool(p.when)))


def _param(name: str, entry: Any, err: _Errors) -> ParamSpec:
    key = f"search_space.{name}"
    if name not in TUNABLE:
        err(key, f"unknown parameter (valid: {', '.join(TUNABLE)}){validate.did_you_mean(name, TUNABLE)}")
    entry = _mapping(entry, key, err)
    unknown = sorted(set(entry) - set(PARAM_KEYS))
    if unknown:
        hint = validate.did_you_mean(unknown[0], PARAM_KEYS)
        err(f"{key}.{unknown[0]}", f"unknown key (valid: {', '.join(PARAM_KEYS)}){hint}")
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


# ---------------------------------------------------------------------------- parameters -> configs
# The objective, the default-trial enqueueing, the confirmation and the export all go through
# params_to_configs, so a stored trial always maps back to the same configs.


def is_active(param: ParamSpec, values: Mapping[str, Any]) -> bool:
    """Whether a parameter's ``when`` conditions hold for the config values chosen so far."""
    return all(values.get(name) == expected for name, expected in param.when)


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


def run_config(agent: VMPOConfig, train: TrainConfig, total_steps: int) -> dict[str, Any]:
    """The stored form of a complete configuration (what a trial records and export writes)."""
    return {"agent": agent.to_dict(), "train": train.to_dict(), "total_steps": int(total_steps)}


def default_params(spec: StudySpec) -> dict[str, Any]:
    """Optuna-named parameters of the documented default configuration.

    A parameter's ``default`` in the study file wins; otherwise the config's own default,
    if it lies in the searched range; conditional parameters only when their condition
    holds.
    """
    base = {**VMPOConfig().to_dict(), **TrainConfig().to_dict(), **spec.agent, **spec.train}
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for p in spec.space:
        if not is_active(p, values):
            continue
        value = p.default if p.default is not None else base.get(p.name)
        if value is None or not in_space(p, p.to_sampled_value(value)):
            continue
        sampled = p.to_sampled_value(value)
        params[p.optuna_name] = int(sampled) if p.kind == "int" else float(sampled) if p.kind == "float" else sampled
        values[p.name] = value
    return params


def in_space(p: ParamSpec, value: Any) -> bool:
    """Whether a sampled-space value lies in the parameter's range or choices."""
    if p.kind == "categorical":
        return value in p.choices
    try:
        return p.low <= float(value) <= p.high
    except (TypeError, ValueError):
        return False


def params_from_config(
    spec: StudySpec, values: Mapping[str, Any], source: str, inactive_is_error: bool = False
) -> dict[str, Any]:
    """Optuna-named parameters for config field values (a hand-written or exported config), checked
    against the space: a value outside its range or a key the space does not search is a UserError;
    with ``inactive_is_error`` (a hand-written file), so is a key the file's own values switch off
    (``gae_lambda`` beside ``advantage_estimator: returns``). Searched parameters it leaves out are
    sampled as usual."""
    searched = {p.name for p in spec.space}
    extra = sorted(k for k in values if k not in searched)
    if extra:
        known = extra[0] in set(field_names(VMPOConfig)) | set(field_names(TrainConfig))
        why = "is not searched by this study (it fixes it)" if known else "is not a VMPOConfig / TrainConfig field"
        raise UserError(f"{source}: {extra[0]}: {why}{validate.did_you_mean(extra[0], sorted(searched))}")
    params: dict[str, Any] = {}
    chosen: dict[str, Any] = {}
    for p in spec.space:
        if not is_active(p, chosen) or p.name not in values:
            continue
        value = _typed(p, values[p.name], source)
        sampled = p.to_sampled_value(value)
        if not in_space(p, sampled):
            where = f"one of {list(p.choices)}" if p.kind == "categorical" else f"in [{p.low}, {p.high}]"
            raise UserError(
                f"{source}: {p.name}: {value!r} is outside the study's search space ({where} after "
                f"{p.transform or 'no'} transform); widen search_space.{p.name} or pick another value"
            )
        params[p.optuna_name] = int(sampled) if p.kind == "int" else float(sampled) if p.kind == "float" else sampled
        chosen[p.name] = value
    unused = [p for p in spec.space if p.name in values and p.name not in chosen]
    if inactive_is_error and unused:
        conditions = ", ".join(f"{k}: {v}" for k, v in unused[0].when)
        raise UserError(
            f"{source}: {unused[0].name}: not used with these values (the study searches it only when {conditions}); "
            f"remove it, or set {conditions}"
        )
    return params


def _typed(p: ParamSpec, value: Any, source: str) -> Any:
    """A config value of the right type for ``p``: a number for a range (never a boolean), a choice's own
    type for a categorical (``true`` is not the choice ``1``); YAML 1.1's ``1e-3`` strings are numbers."""
    if p.kind == "categorical":
        if any(c == value and isinstance(c, bool) == isinstance(value, bool) for c in p.choices):
            return value
        raise UserError(
            f"{source}: {p.name}: {value!r} is not one of the study's choices {list(p.choices)}; pick one of them"
        )
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
        raise UserError(f"{source}: {p.name}: {value!r} is not a finite number; write a number in [{p.low}, {p.high}]")
    if p.kind == "int" and number != int(number):
        raise UserError(f"{source}: {p.name}: {value!r} is not an integer; write a whole number")
    return int(number) if p.kind == "int" else float(number)


def _mapping_of_fields(value: Any, where: str) -> dict:
    """A mapping whose keys are field names (strings), or a one-line error saying what was found."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping of config fields to values, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise UserError(f"{where}: {bad[0]!r} is not a config field name (field names are words such as policy_lr)")
    return value


def configs_to_enqueue(spec: StudySpec, path: Path) -> list[dict[str, Any]]:
    """The parameter sets a file asks to queue: every run of an exported run file, or one mapping of
    config fields (``{policy_lr: 0.001, gamma: 0.99, ...}``, optionally under ``agent:`` / ``train:``).
    The whole file is checked (shapes, key and value types, the space) before anything is stored."""
    data = read_yaml(path)
    if isinstance(data, dict) and "runs" in data:
        if not isinstance(data["runs"], list) or not data["runs"]:
            raise UserError(f"{path}: runs: expected a list of exported runs, got {data['runs']!r}")
        runs = []
        for i, run in enumerate(data["runs"]):
            where = f"{path}: runs[{i}]"
            run = _mapping_of_fields(run, where)
            agent = _mapping_of_fields(run.get("agent", {}), f"{where}.agent")
            train = _mapping_of_fields(run.get("train", {}), f"{where}.train")
            runs.append({**agent, **train})
    elif isinstance(data, dict):
        data = _mapping_of_fields(data, str(path))
        agent = _mapping_of_fields(data.get("agent", {}), f"{path}: agent")
        train = _mapping_of_fields(data.get("train", {}), f"{path}: train")
        runs = [{**agent, **train, **{k: v for k, v in data.items() if k not in ("agent", "train")}}]
        if not runs[0]:
            raise UserError(f"{path}: an empty mapping queues nothing; write config fields such as policy_lr: 0.001")
    elif data == []:
        raise UserError(f"{path}: an empty list queues nothing; write config fields such as policy_lr: 0.001")
    else:
        raise UserError(f"{path}: expected an exported run file or a mapping of config fields to values")
    out = []
    for i, values in enumerate(runs):
        source = f"{path}" + (f" (run {i + 1})" if len(runs) > 1 else "")
        exported = isinstance(data.get("runs"), list)
        if exported:  # an exported file carries every field: queue the searched ones
            values = {k: v for k, v in values.items() if k in {p.name for p in spec.space}}
        out.append(params_from_config(spec, values, source, inactive_is_error=not exported))
    return out
