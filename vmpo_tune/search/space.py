"""The search space: its parameters, the one walk over the active ones, and the maps between a trial's
Optuna-named parameters and configuration values.

A parameter may be conditional (``when: {advantage_estimator: gae}``): it is *active* only when the values
chosen before it meet its conditions. Sampling a trial, the documented default and a hand-written or
exported configuration all choose values through :func:`choose_active`, so the three agree on which
parameters a configuration has.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import optuna

from .. import validate
from ..config import TrainConfig, VMPOConfig, field_names
from ..errors import UserError
from .yamlfile import Errors, check_choice, check_mapping, check_number

TRANSFORMS = ("one_minus",)
RESERVED = ("env_id", "seed", "device", "eval_interval", "eval_episodes", "checkpoints")
"""Fields a study may not set: they belong to the run (or the search needs them), not to the configuration."""
TUNABLE = tuple(n for n in (*field_names(VMPOConfig), *field_names(TrainConfig)) if n not in RESERVED)
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


# ---------------------------------------------------------------------------- the walk over active parameters


def is_active(param: ParamSpec, values: Mapping[str, Any]) -> bool:
    """Whether a parameter's ``when`` conditions hold for the config values chosen so far."""
    return all(values.get(name) == expected for name, expected in param.when)


def choose_active(space: Sequence[ParamSpec], choose: Callable[[ParamSpec], tuple[Any, Any] | None]) -> dict[str, Any]:
    """Walk the space in order and ask ``choose`` for each parameter active under the values chosen so far:
    it returns ``(sampled value, config value)``, or None to leave the parameter out. Returns the
    Optuna-named sampled values. Unconditional parameters come first in a parsed space, so a condition
    always reads a value chosen already."""
    params: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for p in space:
        if not is_active(p, values):
            continue
        chosen = choose(p)
        if chosen is not None:
            params[p.optuna_name], values[p.name] = chosen
    return params


def _stored(p: ParamSpec, sampled: Any) -> Any:
    """A sampled value as Optuna stores it (ints as int, floats as float)."""
    return int(sampled) if p.kind == "int" else float(sampled) if p.kind == "float" else sampled


def in_space(p: ParamSpec, value: Any) -> bool:
    """Whether a sampled-space value lies in the parameter's range or choices."""
    if p.kind == "categorical":
        return value in p.choices
    try:
        return p.low <= float(value) <= p.high
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------- sampling and mapping


def sample_params(trial: optuna.Trial, space: Sequence[ParamSpec]) -> dict[str, Any]:
    """Suggest every active parameter; returns Optuna-named parameters (as stored)."""

    def suggest(p: ParamSpec) -> tuple[Any, Any]:
        if p.kind == "categorical":
            sampled = trial.suggest_categorical(p.optuna_name, list(p.choices))
        elif p.kind == "int":
            sampled = trial.suggest_int(p.optuna_name, p.low, p.high, step=p.step or 1, log=p.log)
        else:
            sampled = trial.suggest_float(p.optuna_name, p.low, p.high, step=p.step, log=p.log)
        return sampled, p.to_config_value(sampled)

    return choose_active(space, suggest)


def params_to_values(space: Sequence[ParamSpec], params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna-named parameters -> config field values (inverse transforms applied)."""
    return {p.name: p.to_config_value(params[p.optuna_name]) for p in space if p.optuna_name in params}


def default_params(space: Sequence[ParamSpec], base: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna-named parameters of the documented default configuration.

    A parameter's ``default`` in the study file wins; otherwise its value in ``base`` (the configs' own
    defaults under the study's fixed values), if it lies in the searched range; conditional parameters only
    when their condition holds.
    """

    def default(p: ParamSpec) -> tuple[Any, Any] | None:
        value = p.default if p.default is not None else base.get(p.name)
        if value is None or not in_space(p, p.to_sampled_value(value)):
            return None
        return _stored(p, p.to_sampled_value(value)), value

    return choose_active(space, default)


def params_from_config(
    space: Sequence[ParamSpec], values: Mapping[str, Any], source: str, inactive_is_error: bool = False
) -> dict[str, Any]:
    """Optuna-named parameters for config field values (a hand-written or exported config), checked
    against the space: a value outside its range or a key the space does not search is a UserError;
    with ``inactive_is_error`` (a hand-written file), so is a key the file's own values switch off
    (``gae_lambda`` beside ``advantage_estimator: returns``). Searched parameters it leaves out are
    sampled as usual."""
    searched = {p.name for p in space}
    extra = sorted(k for k in values if k not in searched)
    if extra:
        known = extra[0] in set(field_names(VMPOConfig)) | set(field_names(TrainConfig))
        why = "is not searched by this study (it fixes it)" if known else "is not a VMPOConfig / TrainConfig field"
        raise UserError(f"{source}: {extra[0]}: {why}{validate.did_you_mean(extra[0], sorted(searched))}")

    def given(p: ParamSpec) -> tuple[Any, Any] | None:
        if p.name not in values:
            return None
        value = _typed(p, values[p.name], source)
        sampled = p.to_sampled_value(value)
        if not in_space(p, sampled):
            where = f"one of {list(p.choices)}" if p.kind == "categorical" else f"in [{p.low}, {p.high}]"
            raise UserError(
                f"{source}: {p.name}: {value!r} is outside the study's search space ({where} after "
                f"{p.transform or 'no'} transform); widen search_space.{p.name} or pick another value"
            )
        return _stored(p, sampled), value

    params = choose_active(space, given)
    unused = [p for p in space if p.name in values and p.optuna_name not in params]
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


# ---------------------------------------------------------------------------- parsing a study file's search_space


def parse_space(value: Any, err: Errors) -> tuple[ParamSpec, ...]:
    """A study file's ``search_space`` section, checked; unconditional parameters first."""
    entries = check_mapping(value, "search_space", err)
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


def _param(name: str, entry: Any, err: Errors) -> ParamSpec:
    key = f"search_space.{name}"
    if name not in TUNABLE:
        err(key, f"unknown parameter (valid: {', '.join(TUNABLE)}){validate.did_you_mean(name, TUNABLE)}")
    entry = check_mapping(entry, key, err)
    unknown = sorted(set(entry) - set(PARAM_KEYS))
    if unknown:
        hint = validate.did_you_mean(unknown[0], PARAM_KEYS)
        err(f"{key}.{unknown[0]}", f"unknown key (valid: {', '.join(PARAM_KEYS)}){hint}")
    when = check_mapping(entry.get("when", {}), f"{key}.when", err)
    transform = entry.get("transform")
    if transform is not None:
        check_choice(transform, TRANSFORMS, f"{key}.transform", err)
    common = dict(name=name, default=entry.get("default"), when=tuple(sorted(when.items())), transform=transform)
    if "choices" in entry:
        return ParamSpec(kind="categorical", choices=_choices(entry, key, err), **common)
    if common["default"] is not None:  # YAML 1.1 reads 1e-3 as a string
        common["default"] = check_number(common["default"], f"{key}.default", err)
    return ParamSpec(**_numeric(entry, key, err), **common)


def _choices(entry: dict, key: str, err: Errors) -> tuple:
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


def _numeric(entry: dict, key: str, err: Errors) -> dict:
    for bound in ("low", "high"):
        if bound not in entry:
            err(key, f"needs low and high (or choices); {bound} is missing")
    low, high = check_number(entry["low"], f"{key}.low", err), check_number(entry["high"], f"{key}.high", err)
    kind = entry.get("type") or ("int" if isinstance(low, int) and isinstance(high, int) else "float")
    check_choice(kind, ("float", "int"), f"{key}.type", err)
    log = entry.get("log", False)
    if not isinstance(log, bool):
        err(f"{key}.log", f"must be true or false, got {log!r}")
    if low >= high:
        err(key, f"low ({low}) must be < high ({high})")
    if log and low <= 0:
        err(key, f"log scale needs low > 0, got low={low}")
    step = entry.get("step")
    if step is not None:
        step = check_number(step, f"{key}.step", err)
        if step <= 0 or log:
            err(f"{key}.step", "must be > 0 and cannot be combined with log")
    if kind == "float":
        return dict(kind=kind, low=float(low), high=float(high), log=log, step=step)
    if not (float(low).is_integer() and float(high).is_integer()):
        err(key, f"an int parameter needs integer bounds, got {low}..{high}")
    return dict(kind=kind, low=int(low), high=int(high), log=log, step=None if step is None else int(step))
