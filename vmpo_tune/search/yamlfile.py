"""Hand-written YAML files (study files, enqueue files): read safely, checked key by key.

:func:`read_yaml` reads with PyYAML's safe loader under limits (size, nesting, aliases), so nothing in a
file is evaluated as code and no file can hang the reader. The ``check_*`` helpers validate one value at
a key and report a problem through an :class:`Errors` (one line naming the file and the key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .. import validate
from ..errors import UserError

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


class Errors:
    """Reports a problem at a key of one file as a one-line :class:`UserError` (``file: key: problem``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, key: str, problem: str):
        raise UserError(f"{self.path}: {key}: {problem}")


def check_mapping(value: Any, key: str, err: Errors) -> dict:
    if not isinstance(value, dict):
        err(key, f"must be a mapping, got {type(value).__name__}")
    return value


def check_number(value: Any, key: str, err: Errors) -> float:
    """A finite number; YAML 1.1 reads ``1e-3`` as a string, so float literals in strings are accepted."""
    try:
        return validate.finite_number(key, value)
    except ValueError:
        err(key, f"must be a finite number, got {value!r}")
        raise


def check_positive_int(value: Any, key: str, err: Errors) -> int:
    try:
        return validate.positive_int(key, value)
    except ValueError:
        err(key, f"must be a positive integer, got {value!r}")
        raise


def check_nonnegative_int(value: Any, key: str, err: Errors) -> int:
    try:
        return validate.nonnegative_int(key, value)
    except ValueError:
        err(key, f"must be a non-negative integer, got {value!r}")
        raise


def check_choice(value: Any, valid: tuple[str, ...], key: str, err: Errors) -> str:
    try:
        return validate.choice(key, value, valid)
    except ValueError:
        err(key, f"unknown value {value!r} (valid: {', '.join(valid)}){validate.did_you_mean(str(value), valid)}")
        raise
