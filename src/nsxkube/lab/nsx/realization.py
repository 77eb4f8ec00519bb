"""Realized state: each change leaves an object UNREALIZED for a while, then REALIZED — or ERROR
when a test forces it. Objects nobody touched since the emulator started (presets) are REALIZED.

What an intent reports also depends on what it is realized with (`effective_state`): a security
policy becomes a firewall section only together with its rules and the groups and services they
name, and a segment becomes a logical switch with its profile binding maps and the profiles they
bind. So a policy or segment is REALIZED only when all of those are, and an ERROR in any of them
shows on it with the failing path. (Inference: NSX's manager cannot publish a section whose
NSGroups or NSServices do not exist yet; VMware documents no aggregate status.)
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nsxkube.lab.nsx.references import references_of

DEFAULT_REALIZATION_DELAY = 0.5

# What real NSX calls the realized counterpart of each intent type.
ENTITY_TYPES = {
    "Segment": "RealizedLogicalSwitch",
    "SegmentPort": "RealizedLogicalPort",
    "Group": "RealizedNSGroup",
    "SecurityPolicy": "RealizedFirewallSection",
    "Rule": "RealizedFirewallRule",
    "Service": "RealizedServices",
    "Tier0": "RealizedLogicalRouter",
    "Tier1": "RealizedLogicalRouter",
}


@dataclass(frozen=True)
class RealizedState:
    state: str  # UNREALIZED | REALIZED | ERROR
    error: str | None = None


class Realizer:
    def __init__(self, delay: float = DEFAULT_REALIZATION_DELAY, clock: Callable[[], float] = time.monotonic) -> None:
        self._delay = delay
        self._clock = clock
        self._changed_at: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def delay(self) -> float:
        return self._delay

    def set_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("realization delay cannot be negative")
        self._delay = seconds

    def changed(self, paths: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for path in paths:
                self._changed_at[path] = now

    def forget(self, paths: Iterable[str]) -> None:
        with self._lock:
            for path in paths:
                self._changed_at.pop(path, None)

    def force_error(self, path: str, message: str) -> None:
        with self._lock:
            self._errors[path] = message

    def clear_error(self, path: str) -> None:
        with self._lock:
            self._errors.pop(path, None)

    def state(self, path: str) -> RealizedState:
        with self._lock:
            if path in self._errors:
                return RealizedState("ERROR", self._errors[path])
            changed_at = self._changed_at.get(path)
        if changed_at is not None and self._clock() - changed_at < self._delay:
            return RealizedState("UNREALIZED")
        return RealizedState("REALIZED")


_SEVERITY = {"REALIZED": 0, "UNREALIZED": 1, "ERROR": 2}
_REALIZED_WITH = {
    "SecurityPolicy": ("Rule",),
    "Segment": ("SegmentSecurityProfileBindingMap", "SegmentDiscoveryProfileBindingMap"),
}


def _dependencies(objects: Mapping[str, dict[str, Any]], path: str) -> list[str]:
    """The objects realized together with `path`: its realized-with children and what they reference."""
    obj = objects[path]
    kinds = _REALIZED_WITH.get(obj["resource_type"])
    if not kinds:
        return []
    members = [obj] + [o for o in objects.values() if o["parent_path"] == path and o["resource_type"] in kinds]
    found = [m["path"] for m in members[1:]]
    for member in members:
        found += [ref.path for ref in references_of(member["resource_type"], member) if ref.path in objects]
    return list(dict.fromkeys(found))


def effective_state(objects: Mapping[str, dict[str, Any]], path: str, realizer: Realizer) -> RealizedState:
    """The object's own state, or the worst of the objects it is realized with (naming the culprit)."""
    worst = realizer.state(path)
    for dependency in _dependencies(objects, path):
        state = realizer.state(dependency)
        if _SEVERITY[state.state] > _SEVERITY[worst.state]:
            error = f"{dependency}: {state.error}" if state.error else None
            worst = RealizedState(state.state, error)
    return worst


def realized_entity(obj: dict[str, Any], state: RealizedState) -> dict[str, Any]:
    """A GenericPolicyRealizedResource for one intent object."""
    entity_type = ENTITY_TYPES.get(obj["resource_type"], "Realized" + obj["resource_type"])
    realization_id = str(uuid.uuid5(uuid.NAMESPACE_URL, obj.get("unique_id", obj["path"])))
    entity: dict[str, Any] = {
        "resource_type": "GenericPolicyRealizedResource",
        "id": obj["id"],
        "display_name": obj.get("display_name", obj["id"]),
        "path": f"/infra/realized-state/enforcement-points/default/{entity_type.lower()}s/{obj['id']}",
        "parent_path": "/infra/realized-state/enforcement-points/default",
        "relative_path": obj["id"],
        "entity_type": entity_type,
        "intent_path": obj["path"],
        "intent_paths": [obj["path"]],
        "intent_reference": [obj["path"]],
        "realization_specific_identifier": realization_id,
        "state": state.state,
        "runtime_status": "UNINITIALIZED" if state.state != "REALIZED" else "SUCCESS",
        "alarms": [],
        "_revision": obj.get("_revision", 0),
        "_create_user": "system",
        "_last_modified_user": "system",
        "_system_owned": False,
        "_protection": "NOT_PROTECTED",
    }
    if state.error is not None:
        entity["alarms"] = [
            {
                "message": state.error,
                "source_reference": obj["path"],
                "error_details": {"error_code": 500, "error_message": state.error, "module_name": "policy"},
            }
        ]
    return entity


def consolidated_status(obj: dict[str, Any], state: RealizedState) -> dict[str, Any]:
    """The /realized-state/status answer for one intent object."""
    summary = {"REALIZED": "SUCCESS", "UNREALIZED": "IN_PROGRESS", "ERROR": "ERROR"}[state.state]
    publish = {"REALIZED": "REALIZED", "UNREALIZED": "IN_PROGRESS", "ERROR": "ERROR"}[state.state]
    return {
        "intent_path": obj["path"],
        "intent_version": str(obj.get("_revision", 0)),
        "consolidated_status": {"consolidated_status": summary},
        "publish_status": publish,
        **({"publish_status_error_details": [{"error_message": state.error}]} if state.error else {}),
    }
