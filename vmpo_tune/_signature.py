"""Constructor signatures generated from the config dataclasses (defaults defined once)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Iterable, Mapping

_P = inspect.Parameter


def config_signature(
    configs: Iterable[type],
    positional: Iterable[str],
    required: Iterable[str] = (),
    extra: Iterable[tuple[str, Any]] = (),
    annotations: Mapping[str, Any] | None = None,
) -> inspect.Signature:
    """A signature made of the fields of ``configs``.

    ``positional`` names the positional-or-keyword parameters in their documented order
    (a name that is no config field is required); the remaining fields follow as
    keyword-only. Names in ``required`` lose their default. ``extra`` adds keyword-only
    ``(name, default)`` parameters that belong to no config.
    """
    fields = {f.name: f for cls in configs for f in dataclasses.fields(cls)}
    required, annotations, positional = set(required), dict(annotations or {}), list(positional)

    def param(name: str, kind) -> inspect.Parameter:
        field = fields.get(name)
        if field is None or name in required:
            default = _P.empty
        else:
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        annotation = annotations.get(name, field.type if field is not None else _P.empty)
        return _P(name, kind, default=default, annotation=annotation)

    params = [param(n, _P.POSITIONAL_OR_KEYWORD) for n in positional]
    params += [param(n, _P.KEYWORD_ONLY) for n in fields if n not in positional]
    params += [_P(n, _P.KEYWORD_ONLY, default=d) for n, d in extra]
    return inspect.Signature(params)


def bind(signature: inspect.Signature, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Bind a call to ``signature`` (``TypeError`` on unknown or missing arguments), defaults applied."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def with_self(signature: inspect.Signature) -> inspect.Signature:
    return signature.replace(parameters=[_P("self", _P.POSITIONAL_OR_KEYWORD), *signature.parameters.values()])
