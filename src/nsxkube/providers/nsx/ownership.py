"""Who an NSX object belongs to, read from the markers the reference lists. Pure.

Order matters: nsxkube's own tag first (and which cluster), then nsx-operator (`nsx-op/*`,
`nsx/managed-by`), then Tanzu / NCP (`ncp/*`, `pks/*`, tag `owner=NCP`, or protected by a
principal identity: `_protection: REQUIRE_OVERRIDE`), then objects NSX made itself
(`_system_owned`, `is_default`), and everything else is unknown — typically made by an admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from nsxkube.design import OWNERSHIP_SCOPE
from nsxkube.providers.nsx.model import LiveObject

LEASE_SCOPE = "nsxkube/lease"  # marks the cluster lease, see providers.nsx.lease

Owner = Literal["nsxkube", "nsx-operator", "tanzu-ncp", "system", "unknown"]
LABELS: dict[str, str] = {
    "nsxkube": "nsxkube", "nsx-operator": "nsx-operator", "tanzu-ncp": "Tanzu / NCP", "system": "NSX (system)",
    "unknown": "unknown",
}  # fmt: skip


@dataclass(frozen=True)
class Ownership:
    owner: Owner
    detail: str = ""  # the cluster for nsxkube / NCP / nsx-operator, or what gave it away

    @property
    def label(self) -> str:
        return f"{LABELS[self.owner]}: {self.detail}" if self.detail else LABELS[self.owner]


def _first(obj: LiveObject, *scopes: str) -> str:
    return next((tag for scope in scopes for tag in obj.tag_values(scope) if tag), "")


def ownership_of(obj: LiveObject) -> Ownership:
    scopes = {scope for scope, _ in obj.tags}
    if OWNERSHIP_SCOPE in scopes:
        return Ownership("nsxkube", _first(obj, OWNERSHIP_SCOPE))
    if any(s.startswith("nsx-op/") for s in scopes) or "nsx/managed-by" in scopes:
        return Ownership("nsx-operator", _first(obj, "nsx-op/cluster") or _first(obj, "nsx/managed-by"))
    if any(s.startswith(("ncp/", "pks/")) for s in scopes) or ("owner", "NCP") in obj.tags:
        return Ownership("tanzu-ncp", _first(obj, "ncp/cluster", "pks/cluster"))
    if obj.protected:
        return Ownership("tanzu-ncp", f"protected, created by {obj.create_user or 'a principal identity'}")
    if obj.system_owned or obj.body.get("is_default") is True:
        return Ownership("system")
    return Ownership("unknown", f"created by {obj.create_user}" if obj.create_user else "")


def not_ours_reason(obj: LiveObject, cluster: str) -> str | None:
    """Why nsxkube must not touch `obj` for `cluster`, or None when it may (tagged for it, unprotected)."""
    owner = ownership_of(obj)
    if obj.protected:
        return f"it is protected ({owner.label}); changing it needs X-Allow-Overwrite, which nsxkube never sends"
    if obj.system_owned:
        return "NSX owns it (system object)"
    if owner.owner != "nsxkube":
        return f"it belongs to {owner.label}, not to nsxkube"
    if owner.detail != cluster:
        return f"it belongs to nsxkube cluster {owner.detail!r}, not {cluster!r}"
    return None


# What nsxkube writes (and so may delete): never a domain, gateway, port or anything NSX made.
DELETABLE_TYPES = frozenset({
    "Segment", "SegmentSecurityProfileBindingMap", "SegmentDiscoveryProfileBindingMap", "Group",
    "SecurityPolicy", "Service", "SpoofGuardProfile", "IPDiscoveryProfile",
})  # fmt: skip


def owned_objects(objects: Iterable[LiveObject], cluster: str) -> list[LiveObject]:
    """The objects destroy may delete for `cluster`: tagged for it, of a type nsxkube writes, not protected.
    The cluster lease (`providers.nsx.lease`) is not among them: the run that holds it deletes it."""
    return sorted((o for o in objects if o.resource_type in DELETABLE_TYPES and not_ours_reason(o, cluster) is None
                   and not o.tag_values(LEASE_SCOPE)), key=lambda o: o.path)
