"""``search --enqueue FILE``: the parameter sets a file asks to queue, every one checked against the study's space
before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .space import params_from_config
from .spec import StudySpec
from .yamlfile import read_yaml


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
        out.append(params_from_config(spec.space, values, source, inactive_is_error=not exported))
    return out
