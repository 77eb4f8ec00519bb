"""Write semantics on a working copy of the store: create/merge/replace, delete, ownership guards,
revisions, and — once everything is applied — the reference checks. Nothing here touches the
committed store; the store swaps the working copy in only when the whole transaction succeeded,
which is what makes a hierarchical PATCH all-or-nothing."""

from __future__ import annotations

import copy
import ipaddress
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nsxkube.lab.nsx import defaults, schema, semantics
from nsxkube.lab.nsx.errors import (
    MISSING_REFERENCE,
    MODULE_COMMON,
    OVERLAPPING_ADDRESSES,
    PROTECTED_OBJECT,
    STALE_REVISION,
    NsxApiError,
    field_errors,
    in_use,
    invalid,
    not_found,
)
from nsxkube.lab.nsx.references import references_of
from nsxkube.lab.nsx.registry import GLOBAL_CONFIG_TYPE, INFRA, INFRA_TYPE, Location, locate

NOT_PROTECTED = "NOT_PROTECTED"
REQUIRE_OVERRIDE = "REQUIRE_OVERRIDE"

# Server-set fields: kept apart from an object's content when merging and comparing.
META_FIELDS = frozenset(
    {
        "_revision", "_create_time", "_create_user", "_last_modified_time", "_last_modified_user",
        "_system_owned", "_protection", "path", "parent_path", "relative_path", "unique_id",
        "marked_for_delete", "overridden",
    }
)  # fmt: skip
# System-owned objects are frozen, except the global config (real NSX lets admins tune it).
SYSTEM_OWNED_EDITABLE = frozenset({"GlobalConfig"})


@dataclass(frozen=True)
class Actor:
    """Who writes, and what the objects they create look like."""

    user: str
    allow_overwrite: bool = False  # the request carried X-Allow-Overwrite: true
    protection: str = NOT_PROTECTED  # REQUIRE_OVERRIDE for a principal identity such as NCP
    system_owned: bool = False
    trusted: bool = False  # the emulator itself (presets, test planting): no ownership guards


@dataclass
class Changes:
    written: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)


def content_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in META_FIELDS}


def now_ms() -> int:
    return int(time.time() * 1000)


class Transaction:
    def __init__(self, objects: dict[str, dict[str, Any]], actor: Actor, rule_ids: Iterator[int]) -> None:
        self.objects = objects
        self.actor = actor
        self.changes = Changes()
        self._rule_ids = rule_ids

    # ---- writes -------------------------------------------------------------------------------

    def write(
        self,
        path: str,
        body: Any,
        *,
        replace: bool = False,
        expected_revision: Any = None,
        check_revision: bool = False,
    ) -> None:
        """PATCH (merge) or PUT (replace) one object; children in the body are not handled here."""
        loc = self._object_location(path)
        rtype = loc.otype.resource_type
        if loc.otype is INFRA_TYPE:
            raise invalid("the Infra root is changed only through its children")
        if loc.otype.read_only and not self.actor.trusted:
            raise invalid(f"{rtype} objects are read-only in the Policy API: {path}")
        incoming = schema.require_valid(rtype, body)
        if incoming.get("id") not in (None, loc.object_id):
            raise invalid(f"id {incoming['id']!r} in the body does not match the path {path}")
        incoming.pop("children", None)
        rules = incoming.pop("rules", None) if rtype == "SecurityPolicy" else None
        existing = self.objects.get(loc.path)
        if existing is None:
            self._require_parent(loc)
        else:
            self._guard_owner(existing)
            if check_revision and expected_revision != existing["_revision"]:
                raise NsxApiError(
                    412,
                    STALE_REVISION,
                    f"The object {rtype}/{loc.object_id} was modified by somebody else "
                    f"(current _revision {existing['_revision']}, request carried {expected_revision}). "
                    "Please refresh and retry.",
                    module=MODULE_COMMON,
                )
        base = {} if replace or existing is None else copy.deepcopy(content_of(existing))
        merged = {k: v for k, v in {**base, **incoming}.items() if v is not None}
        merged.update(resource_type=rtype, id=loc.object_id)
        merged.setdefault("display_name", loc.object_id)
        if existing is None and rtype == "Segment" and "transport_zone_path" not in merged:
            raise field_errors(["required property transport_zone_path is missing"])
        defaults.complete(rtype, merged, existing)
        if rtype == "Rule" and "rule_id" not in merged:
            merged["rule_id"] = next(self._rule_ids)
        semantics.check(rtype, merged)
        if existing is not None and rtype == "Segment":
            semantics.check_segment_update(content_of(existing), merged)
        changed = existing is None or content_of(existing) != merged
        if changed:
            self._guard_system_owned(existing, "changed")
            self._store(loc, merged, existing)
        if rules is not None and self._replace_rules(loc.path, rules) and not changed:
            self._store(loc, merged, existing)  # a policy's revision moves with its inline rules

    def delete(self, path: str, *, subtree: bool) -> None:
        """DELETE one object (subtree=False: only owned children go with it) or a whole subtree."""
        loc = self._object_location(path)
        if loc.otype in (INFRA_TYPE, GLOBAL_CONFIG_TYPE) or (loc.otype.read_only and not self.actor.trusted):
            raise invalid(f"{path} cannot be deleted")
        if loc.path not in self.objects:
            return  # DELETE is idempotent, as in real NSX
        descendants = sorted(p for p in self.objects if p.startswith(loc.path + "/"))
        if not subtree:
            owned = tuple(f"{loc.path}/{c}/" for c in loc.otype.owned_children)
            blocking = [p for p in descendants if not p.startswith(owned)] if owned else descendants
            if blocking:
                raise in_use(loc.path, f"it has children, e.g. {blocking[0]}")
        doomed = [loc.path, *descendants]
        for doomed_path in doomed:
            self._guard_owner(self.objects[doomed_path])
            self._guard_system_owned(self.objects[doomed_path], "deleted")
        for doomed_path in doomed:
            del self.objects[doomed_path]
            self.changes.deleted.add(doomed_path)
            self.changes.written.discard(doomed_path)

    def require_existing(self, path: str) -> dict[str, Any]:
        obj = self.objects.get(path)
        if obj is None:
            raise NsxApiError(400, MISSING_REFERENCE, f"{path} does not exist")
        return obj

    # ---- the end of a transaction ------------------------------------------------------------

    def finish(self) -> Changes:
        """Check every reference the transaction may have broken or created; raise on the first."""
        deleted = self.changes.deleted
        for path, obj in self.objects.items():
            refs = references_of(obj["resource_type"], obj)
            if path not in self.changes.written and not any(r.path in deleted for r in refs):
                continue
            for ref in refs:
                target = self.objects.get(ref.path)
                if target is None and ref.path in deleted:
                    raise in_use(ref.path, f"{path} refers to it in {ref.field}")
                if target is None:
                    raise NsxApiError(
                        400,
                        MISSING_REFERENCE,
                        f"{obj['resource_type']} {path}: {ref.field} refers to {ref.path}, which does not exist",
                    )
                if ref.target_types and target["resource_type"] not in ref.target_types:
                    raise NsxApiError(
                        400,
                        MISSING_REFERENCE,
                        f"{obj['resource_type']} {path}: {ref.field} must point at a "
                        f"{' or '.join(sorted(ref.target_types))}, but {ref.path} is a {target['resource_type']}",
                    )
        self._check_subnet_overlaps()
        return self.changes

    # ---- helpers -------------------------------------------------------------------------------

    def _object_location(self, path: str) -> Location:
        loc = locate(path)
        if loc is None or loc.kind != "object":
            raise not_found(path)
        return loc

    def _require_parent(self, loc: Location) -> None:
        if loc.parent_path == INFRA:
            return
        parent = self.objects.get(loc.parent_path)
        if parent is None:
            raise not_found(loc.parent_path)
        self._guard_owner(parent)  # adding a child changes the parent's subtree

    def _guard_owner(self, obj: dict[str, Any]) -> None:
        if self.actor.trusted or self.actor.allow_overwrite or obj.get("_protection") != REQUIRE_OVERRIDE:
            return
        raise NsxApiError(
            403,
            PROTECTED_OBJECT,
            f"Principal '{self.actor.user}' with role '[enterprise_admin]' attempts to delete or modify an "
            f"object of type {obj['resource_type']} it doesn't own. "
            f"(createUser={obj.get('_create_user')}, allowOverwrite=null)",
            module=MODULE_COMMON,
            details=obj["path"],
        )

    def _guard_system_owned(self, obj: dict[str, Any] | None, verb: str) -> None:
        if obj is None or self.actor.trusted:
            return
        if obj.get("_system_owned") and not (verb == "changed" and obj["resource_type"] in SYSTEM_OWNED_EDITABLE):
            raise invalid(f"{obj['path']} is owned by the system and cannot be {verb}")
        if verb == "deleted" and obj.get("is_default"):
            raise invalid(f"{obj['path']} is a default object and cannot be deleted")

    def _store(self, loc: Location, content: dict[str, Any], existing: dict[str, Any] | None) -> None:
        now, user = now_ms(), self.actor.user
        if existing is None:
            meta: dict[str, Any] = {
                "path": loc.path,
                "parent_path": loc.parent_path,
                "relative_path": loc.object_id,
                "unique_id": str(uuid.uuid4()),
                "marked_for_delete": False,
                "overridden": False,
                "_create_time": now,
                "_create_user": user,
                "_system_owned": self.actor.system_owned,
                "_protection": self.actor.protection,
                "_revision": 0,
            }
        else:
            meta = {k: v for k, v in existing.items() if k in META_FIELDS}
            meta["_revision"] = existing["_revision"] + 1
        meta.update(_last_modified_time=now, _last_modified_user=user)
        self.objects[loc.path] = {**content, **meta}
        self.changes.written.add(loc.path)

    def _replace_rules(self, policy_path: str, rules: list[dict[str, Any]]) -> bool:
        """Inline `rules` replace the policy's rule set: listed rules are written, others deleted."""
        before = {p: o for p, o in self.objects.items() if o["parent_path"] == policy_path}
        listed: set[str] = set()
        for i, rule in enumerate(rules):
            if not rule.get("id"):
                raise field_errors([f"required property rules[{i}].id is missing"])
            rule_path = f"{policy_path}/rules/{rule['id']}"
            if rule_path in listed:
                raise invalid(f"rule id {rule['id']} appears twice in {policy_path}")
            listed.add(rule_path)
            self.write(rule_path, rule, replace=True)
        for rule_path in set(before) - listed:
            self.delete(rule_path, subtree=True)
        return any(self.objects.get(p) is not before.get(p) for p in listed | set(before))

    def _check_subnet_overlaps(self) -> None:
        """Segments on one gateway must not share addresses (real NSX refuses the write)."""
        segments = [o for o in self.objects.values() if o["resource_type"] == "Segment" and o.get("connectivity_path")]
        for seg in segments:
            if seg["path"] not in self.changes.written:
                continue
            for other in segments:
                if other is seg or other["connectivity_path"] != seg["connectivity_path"]:
                    continue
                for mine in _networks(seg):
                    for theirs in _networks(other):
                        if mine.version == theirs.version and mine.overlaps(theirs):  # type: ignore[arg-type]
                            raise NsxApiError(
                                400,
                                OVERLAPPING_ADDRESSES,
                                f"Segment {seg['path']} subnet {mine} overlaps {theirs} of {other['path']} "
                                f"on the same gateway {seg['connectivity_path']}",
                            )


def _networks(segment: dict[str, Any]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for subnet in segment.get("subnets") or []:
        try:
            out.append(ipaddress.ip_interface(subnet["gateway_address"]).network)
        except (KeyError, ValueError):
            continue
    return out
