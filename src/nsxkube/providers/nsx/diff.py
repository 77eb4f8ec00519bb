"""The diff of the objects nsxkube wants against what NSX has. Pure: (desired, live) → one
`ObjectChange` per desired object, table-testable without a server.

Only the fields nsxkube sends are compared, at every depth: NSX fills in defaults and server-set
fields (`_revision`, `path`, a subnet's `network`, a rule's `rule_id`…) that must not count as
drift. Lists must have the same length; lists of objects with ids (rules, service entries) are
matched by id, tags as a set, other lists in order. An object that exists but is not this
cluster's (no `nsxkube/cluster=<name>` tag, protected, or system-owned) is a conflict: never
adopted, never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nsxkube.providers.nsx.model import LiveInventory
from nsxkube.providers.nsx.ownership import not_ours_reason
from nsxkube.render.nsx_objects import NsxObject

Action = Literal["create", "update", "unchanged", "conflict"]
IGNORED = frozenset({"resource_type", "id", "children"})
KINDS = {
    "Segment": "segment", "Group": "group", "Service": "service", "SecurityPolicy": "DFW policy",
    "SpoofGuardProfile": "SpoofGuard profile", "IPDiscoveryProfile": "IP discovery profile",
    "SegmentSecurityProfileBindingMap": "security profile binding", "SegmentDiscoveryProfileBindingMap":
    "discovery profile binding",
}  # fmt: skip


@dataclass(frozen=True)
class ObjectChange:
    action: Action
    obj: NsxObject
    fields: tuple[str, ...] = ()
    detail: str = ""

    @property
    def kind(self) -> str:
        return kind_of(self.obj.resource_type)


def kind_of(resource_type: str) -> str:
    return KINDS.get(resource_type, resource_type)


def same(desired: Any, live: Any) -> bool:
    """True when `live` holds everything `desired` says (extra fields in live objects are ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(k in IGNORED or same(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        if desired and all(isinstance(d, Mapping) and "id" in d for d in desired):
            by_id = {item.get("id"): item for item in live if isinstance(item, Mapping)}
            return all(same(d, by_id.get(d["id"])) for d in desired)
        return all(same(d, item) for d, item in zip(desired, live, strict=True))
    return desired == live


def _same_tags(desired: Any, live: Any) -> bool:
    def as_set(tags: Any) -> set[tuple[Any, Any]]:
        return {(t.get("scope"), t.get("tag")) for t in tags or () if isinstance(t, Mapping)}

    return as_set(desired) == as_set(live) and len(desired or ()) == len(live or ())


def differing_fields(desired: Mapping[str, Any], live: Mapping[str, Any]) -> tuple[str, ...]:
    """The top-level fields nsxkube sends whose live value differs."""
    return tuple(
        key for key, value in desired.items()
        if key not in IGNORED and not (_same_tags(value, live.get(key)) if key == "tags" else same(value, live.get(key)))
    )  # fmt: skip


def diff_objects(desired: Sequence[NsxObject], inventory: LiveInventory, cluster: str) -> list[ObjectChange]:
    changes = []
    for obj in desired:
        live = inventory.get(obj.path)
        if live is None:
            changes.append(ObjectChange("create", obj))
        elif reason := not_ours_reason(live, cluster):
            changes.append(ObjectChange("conflict", obj, detail=f"exists and {reason}"))
        elif fields := differing_fields(obj.body, live.body):
            changes.append(ObjectChange("update", obj, fields))
        else:
            changes.append(ObjectChange("unchanged", obj))
    return changes
