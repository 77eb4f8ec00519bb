"""Which other objects an object points at, by field. The store uses this both ways: a write
must point at objects that exist, and a delete must not leave anything pointing at nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ANY_TYPE: frozenset[str] = frozenset()  # no restriction on the target's type


@dataclass(frozen=True)
class Reference:
    field: str
    path: str
    target_types: frozenset[str]


def _paths(values: Any) -> Iterator[str]:
    for value in values or []:
        if isinstance(value, str) and value.startswith("/"):
            yield value


def _expression_paths(expressions: list[dict[str, Any]]) -> Iterator[str]:
    for expr in expressions or []:
        if expr.get("resource_type") == "PathExpression":
            yield from _paths(expr.get("paths"))
        elif expr.get("resource_type") == "NestedExpression":
            yield from _expression_paths(expr.get("expressions") or [])


def _nested_services(entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries or []:
        if entry.get("resource_type") == "NestedServiceServiceEntry":
            yield from _paths([entry.get("nested_service_path")])


# field → allowed target types, for fields holding a single path
_SINGLE: dict[str, dict[str, frozenset[str]]] = {
    "Segment": {
        "connectivity_path": frozenset({"Tier0", "Tier1"}),
        "transport_zone_path": frozenset({"PolicyTransportZone"}),
    },
    "SegmentSecurityProfileBindingMap": {
        "spoofguard_profile_path": frozenset({"SpoofGuardProfile"}),
        "segment_security_profile_path": frozenset({"SegmentSecurityProfile"}),
    },
    "SegmentDiscoveryProfileBindingMap": {
        "ip_discovery_profile_path": frozenset({"IPDiscoveryProfile"}),
        "mac_discovery_profile_path": frozenset({"MacDiscoveryProfile"}),
    },
    "Tier1": {"tier0_path": frozenset({"Tier0"})},
}

# field → allowed target types, for fields holding a list of paths (other values are literals)
_LISTS: dict[str, dict[str, frozenset[str]]] = {
    "Rule": {
        "source_groups": frozenset({"Group"}),
        "destination_groups": frozenset({"Group"}),
        "services": frozenset({"Service"}),
        "scope": ANY_TYPE,
        "profiles": ANY_TYPE,
    },
    "SecurityPolicy": {"scope": ANY_TYPE},
}


def references_of(resource_type: str, obj: dict[str, Any]) -> list[Reference]:
    refs = [
        Reference(field, obj[field], targets)
        for field, targets in _SINGLE.get(resource_type, {}).items()
        if isinstance(obj.get(field), str) and obj[field]
    ]
    for field, targets in _LISTS.get(resource_type, {}).items():
        refs += [Reference(field, path, targets) for path in _paths(obj.get(field))]
    if resource_type == "Group":
        refs += [Reference("expression.paths", p, ANY_TYPE) for p in _expression_paths(obj.get("expression"))]
    if resource_type in ("Rule", "Service"):
        refs += [
            Reference("service_entries.nested_service_path", p, frozenset({"Service"}))
            for p in _nested_services(obj.get("service_entries"))
        ]
    return refs
