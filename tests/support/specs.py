"""Specs for tests: the example from `nsxkube init`, changed by dotted keys."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from nsxkube.design import Design, derive_design
from nsxkube.spec import ClusterSpec, parse_spec
from nsxkube.spec.example import example_text


def example_data() -> dict[str, Any]:
    return yaml.safe_load(example_text())


def with_changes(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Return a copy with each dotted key set (``nodes.workers.count``); None deletes the key."""
    result = copy.deepcopy(data)
    for dotted, value in changes.items():
        target = result
        *parents, last = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return result


def spec_from(data: dict[str, Any]) -> ClusterSpec:
    return parse_spec(yaml.safe_dump(data, sort_keys=False))


def example_spec(**changes: Any) -> ClusterSpec:
    return spec_from(with_changes(example_data(), {k.replace("__", "."): v for k, v in changes.items()}))


def example_design(changes: dict[str, Any] | None = None) -> Design:
    return derive_design(spec_from(with_changes(example_data(), changes or {})))
