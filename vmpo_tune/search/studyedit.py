"""Rewriting the ``default:`` of searched parameters in a study file's text, its comments and layout kept.

A study file is hand-written: its comments say why a value is what it is, and its columns are aligned. So the
text is edited in place, not loaded and dumped again: PyYAML's composer gives each node's position, and only
the characters of each ``default:`` value change (or ``default: X`` is added to a parameter that has none, at
the end of a flow mapping or as the last line of a block one). Each value is written so that PyYAML's safe
loader reads back the same value of the same type (``1.0e-05``, not ``1e-05``, which YAML 1.1 reads as text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from ..errors import UserError


def scalar_text(value: Any) -> str:
    """``value`` as one YAML scalar that the safe loader reads back equal and of the same type."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).split("\n", 1)[0]
    back = yaml.safe_load(text)
    if back != value or type(back) is not type(value):
        raise UserError(f"cannot write {value!r} as a YAML scalar that reads back as the same value")
    return text


def _entry(mapping: MappingNode, key: str) -> Node | None:
    """The value at ``key``; a YAML alias (``*name``, which reads the node an anchor defined earlier) is refused
    by the callers: its position is the anchor's, so editing there would change every use of the anchor."""
    return next((v for k, v in mapping.value if isinstance(k, ScalarNode) and k.value == key), None)


def _is_alias(mapping: MappingNode, key: str) -> bool:
    """Whether the value at ``key`` is written through an alias (it starts before its own key ends)."""
    pair = next((k, v) for k, v in mapping.value if isinstance(k, ScalarNode) and k.value == key)
    return pair[1].start_mark.index < pair[0].end_mark.index


def _after_block(text: str, end: int) -> int:
    """Where a line goes after a nested block that ends at ``end`` (the start of the next token's line): before the
    blank and comment lines that precede the next key, which belong to it."""
    pos = text.rfind("\n", 0, end) + 1
    while pos > 0:
        previous = text.rfind("\n", 0, pos - 1) + 1
        if text[previous:pos].strip() and not text[previous:pos].lstrip().startswith("#"):
            break
        pos = previous
    return pos


def _insertion(text: str, entry: MappingNode, value: str, eol: str) -> tuple[int, int, str]:
    """Where and what to add for a parameter whose mapping has no ``default`` key (``eol``: the file's line end)."""
    last_end = entry.value[-1][1].end_mark.index
    if entry.flow_style:  # {low: 1, high: 2}: right after the last value (before any comma, comment or brace)
        return last_end, last_end, f", default: {value}"
    indent = " " * entry.value[0][0].start_mark.column
    line_start = text.rfind("\n", 0, last_end) + 1
    if text[line_start:last_end].strip() == "":  # a nested block ended: the mark is at the next token's line
        pos = _after_block(text, last_end)
        return pos, pos, f"{indent}default: {value}{eol}"
    line_end = text.find(eol, last_end)
    line_end = len(text) if line_end < 0 else line_end
    return line_end, line_end, f"{eol}{indent}default: {value}"


def _replacement(text: str, entry: MappingNode, default: ScalarNode, value: str, where: str) -> tuple[int, int, str]:
    """The characters of a ``default:`` value and what replaces them; an anchored value (``&name 0.1``, which
    another key may read) is refused: replacing it would change or break that key."""
    start, end = default.start_mark.index, default.end_mark.index
    if _is_alias(entry, "default") or text[start:end].startswith("&"):
        raise UserError(f"{where} is a YAML anchor or alias; write the value out")
    if start == end and text[start - 1 : start] == ":":  # an empty value (``default:``) right after its colon
        return start, end, f" {value}"
    return start, end, value


def set_defaults(text: str, values: Mapping[str, Any], source: str) -> str:
    """``text`` (a study file) with ``search_space.NAME.default`` set to each of ``values``; nothing else changes.

    A :class:`UserError` (one line naming ``source``) when the file cannot be edited that way: no
    ``search_space`` mapping, a parameter that is not in it or not a mapping, or one written through a YAML
    anchor, alias or merge key (editing it would change another parameter too). ``text`` keeps its line endings:
    read and write it with ``newline=""``."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    space = _entry(root, "search_space") if isinstance(root, MappingNode) else None
    if not isinstance(space, MappingNode):
        raise UserError(f"{source}: has no search_space mapping to set defaults in; pass the study's own file")
    shared = [id(v) for _, v in space.value]
    merged = [k for _, v in space.value if isinstance(v, MappingNode) for k, _ in v.value if k.value == "<<"]
    if merged:  # ``<<: *other`` copies another parameter's keys, its default included
        raise UserError(f"{source}:{merged[0].start_mark.line + 1}: a YAML merge key in search_space; write it out")
    edits = []
    for name, value in values.items():
        entry = _entry(space, name)
        if not isinstance(entry, MappingNode):
            raise UserError(f"{source}: search_space.{name} is not a mapping in this file; pass the study's own file")
        if _is_alias(space, name) or shared.count(id(entry)) > 1:
            raise UserError(f"{source}: search_space.{name} is shared with another parameter (an alias); write it out")
        new = scalar_text(value)
        default = _entry(entry, "default")
        where = f"{source}: search_space.{name}.default"
        if default is None:
            edits.append(_insertion(text, entry, new, "\r\n" if "\r\n" in text else "\n"))
        elif isinstance(default, ScalarNode):
            edits.append(_replacement(text, entry, default, new, where))
        else:
            raise UserError(f"{where} is not a plain value; write it as one")
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text
