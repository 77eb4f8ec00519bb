"""Reading cluster.yaml: YAML errors with line and column, schema errors that name the key."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from nsxkube import untrusted
from nsxkube.errors import SpecError
from nsxkube.spec.model import ClusterSpec
from nsxkube.spec.problems import Problem
from nsxkube.wording import and_more

Loc = tuple[int | str, ...]


def load_spec(path: Path) -> ClusterSpec:
    """Read and validate cluster.yaml; raise SpecError with every problem found.

    The file is read as untrusted input (see ``nsxkube.untrusted``): at most 1 MiB, no YAML
    anchors, aliases or tags, bounded nesting; each refusal is one line with its position."""
    try:
        text = untrusted.read_text(path)
    except untrusted.InputError as err:
        hint = "create one with `nsxkube init`" if err.message == "no such file" else None
        raise SpecError(f"{err.where(str(path))}: cannot read: {err}", hint=hint) from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "cluster.yaml") -> ClusterSpec:
    try:
        root = untrusted.compose_yaml(text)
        problems = _duplicate_keys(root)
        if problems:
            raise _spec_error(source, problems)
        data = untrusted.construct_yaml(root)
    except untrusted.InputError as err:
        raise SpecError(f"{err.where(source)}: {err}") from None
    if data is None:
        raise SpecError(f"{source}: the file is empty", hint="start from `nsxkube init`")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the top level must be a mapping of keys (name:, vsphere:, nsx:, …)")
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as err:
        keys: Keys = {}
        raise _spec_error(source, [_problem(e, root, keys) for e in err.errors()]) from None


def _spec_error(source: str, problems: list[Problem]) -> SpecError:
    problems = sorted(problems, key=lambda p: (p.line or 0, p.key))
    return SpecError(and_more([p.one_line(source) for p in problems]), problems=tuple(problems))


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            name = untrusted.one_line(key, 60)
            dotted = f"{path}.{name}" if path else name
            if key in seen:
                problems.append(
                    Problem(dotted, "key appears twice", hint="keep one", line=key_node.start_mark.line + 1,
                            column=key_node.start_mark.column + 1)
                )
            seen.add(key)
            problems += _duplicate_keys(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += _duplicate_keys(item, f"{path}[{index}]")
    return problems


def _problem(error: Any, root: yaml.Node | None, keys: Keys) -> Problem:
    kind = error["type"]
    raw: Loc = tuple(error["loc"])
    if kind == "extra_forbidden" and raw:  # the last part is the user's key, whatever it looks like
        loc: Loc = (*(part for part in raw[:-1] if not _is_internal(part)), raw[-1])
    else:
        loc = tuple(part for part in raw if not _is_internal(part))
    key = _dotted(loc)
    if kind == "extra_forbidden":
        unknown = untrusted.one_line(str(loc[-1]), 60)
        known = _known_keys(loc[:-1])
        guess = difflib.get_close_matches(unknown, known, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"known keys here: {', '.join(known)}"
        message, node_loc = f"unknown key '{unknown}'", loc
    elif kind == "missing":
        message, hint, node_loc = "required key is missing", None, loc[:-1]
    else:
        message = untrusted.one_line(str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, "),
                                     300)
        hint, node_loc = None, loc
    line, column = _position(root, node_loc, keys)
    return Problem(key, message, hint=hint, line=line, column=column)


def _is_internal(part: int | str) -> bool:
    # pydantic adds type tags such as 'function-after[...]' to the location of validated unions
    return isinstance(part, str) and re.fullmatch(r"(function-[a-z]+|[a-z][a-z-]*)\[.*\]", part, re.DOTALL) is not None


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        name = untrusted.one_line(str(part), 60)
        text += f"[{part}]" if isinstance(part, int) else (f".{name}" if text else name)
    return text


def _known_keys(loc: Loc) -> list[str]:
    model: type[BaseModel] | None = ClusterSpec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(str(part))
        model = _model_of(field.annotation) if field else None
    return sorted(model.model_fields) if model else []


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found:
            return found
    return None


Keys = dict[int, dict[object, tuple[yaml.Node, yaml.Node]]]
"""Per mapping node (by id), its entries by key: thousands of problems are located in linear time."""


def _entries(node: yaml.MappingNode, keys: Keys) -> dict[object, tuple[yaml.Node, yaml.Node]]:
    if id(node) not in keys:
        entries: dict[object, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            entries.setdefault(key_node.value, (key_node, value_node))  # the first, as the loop used to find
        keys[id(node)] = entries
    return keys[id(node)]


def _position(root: yaml.Node | None, loc: Loc, keys: Keys | None = None) -> tuple[int | None, int | None]:
    keys = {} if keys is None else keys
    node = root
    best = root
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            found = _entries(node, keys).get(part if isinstance(part, str) else str(part))
            if found is not None:
                key_node, value_node = found
                child = key_node if part == loc[-1] and isinstance(value_node, yaml.ScalarNode) else value_node
                best = key_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            best = child
        if child is None:
            break
        node = child
    if best is None:
        return None, None
    return best.start_mark.line + 1, best.start_mark.column + 1


def locate(text: str, key: str) -> tuple[int | None, int | None]:
    """Line and column of a dotted key (``nodes.workers.addresses[1]``) in a YAML text."""
    loc: list[int | str] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        loc.append(int(part[1:-1]) if part.startswith("[") else part)
    try:
        root = untrusted.compose_yaml(text)
    except untrusted.InputError:
        return None, None
    return _position(root, tuple(loc))
