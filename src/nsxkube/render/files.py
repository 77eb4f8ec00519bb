"""The unit every render function returns, and deterministic YAML/JSON text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class RenderedFile:
    """One file of the bundle: a relative POSIX path, its text and its mode."""

    path: str
    content: str
    mode: int = 0o644

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


class _BlockDumper(yaml.SafeDumper):
    """Block style, no anchors/aliases, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent lists under their key, as kubectl and most linters expect.
        super().increase_indent(flow, False)


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_BlockDumper.add_representer(str, _str_presenter)


def to_yaml(data: Any) -> str:
    """One YAML document, keys in the order given (dicts keep insertion order)."""
    return yaml.dump(data, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=120)


def to_yaml_documents(documents: list[Any]) -> str:
    """Several documents separated by ``---``, as `kubectl apply -f` reads them."""
    return "".join(f"---\n{to_yaml(doc)}" for doc in documents)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
