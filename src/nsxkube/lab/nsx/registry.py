"""Which object types live where: policy paths are `/infra` followed by collection/id pairs.

A type is named by the chain of collection names leading to it, e.g. a segment port is
("segments", "ports") → /infra/segments/{segment}/ports/{port}. From that chain we derive the
path of a hierarchical child, the type behind any URL, and the collection a list call reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

INFRA = "/infra"
GLOBAL_CONFIG_PATH = "/infra/global-config"
TZ_PARENT = "/infra/sites/default/enforcement-points/default"


@dataclass(frozen=True)
class ObjectType:
    resource_type: str
    chain: tuple[str, ...]
    # Served but never writable through the Policy API (transport zones come from the manager).
    read_only: bool = False
    # Child collections a plain DELETE removes with the object; any other child blocks the delete.
    owned_children: tuple[str, ...] = ()


INFRA_TYPE = ObjectType("Infra", ())
GLOBAL_CONFIG_TYPE = ObjectType("GlobalConfig", ("global-config",))

OBJECT_TYPES: tuple[ObjectType, ...] = (
    ObjectType("Domain", ("domains",)),
    ObjectType("Group", ("domains", "groups")),
    ObjectType("SecurityPolicy", ("domains", "security-policies"), owned_children=("rules",)),
    ObjectType("Rule", ("domains", "security-policies", "rules")),
    ObjectType("Service", ("services",)),
    ObjectType(
        "Segment",
        ("segments",),
        owned_children=("segment-security-profile-binding-maps", "segment-discovery-profile-binding-maps"),
    ),
    ObjectType("SegmentSecurityProfileBindingMap", ("segments", "segment-security-profile-binding-maps")),
    ObjectType("SegmentDiscoveryProfileBindingMap", ("segments", "segment-discovery-profile-binding-maps")),
    ObjectType("SegmentPort", ("segments", "ports")),
    ObjectType("SpoofGuardProfile", ("spoofguard-profiles",)),
    ObjectType("IPDiscoveryProfile", ("ip-discovery-profiles",)),
    ObjectType("MacDiscoveryProfile", ("mac-discovery-profiles",)),
    ObjectType("SegmentSecurityProfile", ("segment-security-profiles",)),
    # IP management: what Tanzu leaves for its namespace networks (blocks) and ingress/egress (pools).
    # Real pools hold static or block subnets in one collection; the emulator keeps the static kind.
    ObjectType("IpAddressBlock", ("ip-blocks",)),
    ObjectType("IpAddressPool", ("ip-pools",), owned_children=("ip-subnets",)),
    ObjectType("IpAddressPoolStaticSubnet", ("ip-pools", "ip-subnets")),
    ObjectType("Tier0", ("tier-0s",)),
    ObjectType("Tier1", ("tier-1s",)),
    ObjectType("Site", ("sites",), read_only=True),
    ObjectType("EnforcementPoint", ("sites", "enforcement-points"), read_only=True),
    ObjectType("PolicyTransportZone", ("sites", "enforcement-points", "transport-zones"), read_only=True),
    # Uplink profiles carry the TEP MTU per host switch (NSX 4.x); made in System > Fabric, not here.
    ObjectType("PolicyUplinkHostSwitchProfile", ("host-switch-profiles",), read_only=True),
)

# Collections the real Policy API serves under an object of a modelled type, but that the emulator
# holds nothing in (from the API reference's list operations; see docs/testing.md). A GET lists
# them empty when the parent exists and answers 404 when it does not; a write into them is 501.
EMPTY_COLLECTIONS: dict[str, tuple[str, ...]] = {
    "Segment": ("segment-qos-profile-binding-maps", "segment-monitoring-profile-binding-maps",
                "dhcp-static-binding-configs"),
    "SegmentPort": ("port-discovery-profile-binding-maps", "port-security-profile-binding-maps",
                    "port-qos-profile-binding-maps", "port-monitoring-profile-binding-maps"),
    "Tier0": ("locale-services", "static-routes", "prefix-lists", "route-maps", "community-lists"),
    "Tier1": ("locale-services", "static-routes", "segments"),
    "Domain": ("gateway-policies",),
}
# Group members are computed, not stored: /infra/domains/{d}/groups/{g}/members/{kind}.
GROUP_MEMBER_KINDS = ("virtual-machines", "ip-addresses", "segments", "segment-ports", "vifs", "ip-groups",
                      "physical-servers")

BY_RESOURCE_TYPE: dict[str, ObjectType] = {t.resource_type: t for t in (*OBJECT_TYPES, INFRA_TYPE, GLOBAL_CONFIG_TYPE)}
_BY_CHAIN: dict[tuple[str, ...], ObjectType] = {t.chain: t for t in OBJECT_TYPES}


@dataclass(frozen=True)
class EmptyCollection:
    """A known collection with nothing in it: its parent object, and the object id if one was named."""

    parent_path: str
    parent_type: ObjectType
    name: str
    object_id: str | None


def locate_empty(path: str) -> EmptyCollection | None:
    """`/infra/segments/s/segment-qos-profile-binding-maps[/id]` → what it names, or None."""
    parts = path.rstrip("/").split("/")
    for cut in (len(parts) - 1, len(parts) - 2):
        if cut < 3:
            continue
        parent = locate("/".join(parts[:cut]))
        if parent is None or parent.kind != "object":
            continue
        name = parts[cut]
        if name in EMPTY_COLLECTIONS.get(parent.otype.resource_type, ()):
            object_id = unquote(parts[cut + 1]) if cut + 1 < len(parts) else None
            return EmptyCollection(parent.path, parent.otype, name, object_id)
    return None


def nearest_object(path: str) -> Location | None:
    """The deepest object of a modelled type that `path` lies under (for 404-versus-501)."""
    parts = path.rstrip("/").split("/")
    for cut in range(len(parts) - 1, 2, -1):
        found = locate("/".join(parts[:cut]))
        if found is not None and found.kind == "object":
            return found
    return None


@dataclass(frozen=True)
class Location:
    """What a URL path names: one object, or a collection of objects of one type."""

    kind: Literal["object", "collection"]
    otype: ObjectType
    path: str
    parent_path: str

    @property
    def object_id(self) -> str:
        return self.path.rsplit("/", 1)[1]


def locate(path: str) -> Location | None:
    """Map a policy path (without the /policy/api/v1 prefix) to what it names, or None."""
    path = path.rstrip("/") or "/"
    if path == INFRA:
        return Location("object", INFRA_TYPE, INFRA, "")
    if path == GLOBAL_CONFIG_PATH:
        return Location("object", GLOBAL_CONFIG_TYPE, GLOBAL_CONFIG_PATH, INFRA)
    if not path.startswith(INFRA + "/"):
        return None
    segments = [unquote(s) for s in path[len(INFRA) + 1 :].split("/")]
    if any(not s or "/" in s for s in segments):  # an id may not hide a slash (%2F)
        return None
    otype = _BY_CHAIN.get(tuple(segments[0::2]))
    if otype is None:
        return None
    canonical = INFRA + "/" + "/".join(segments)
    if len(segments) % 2 == 0:
        return Location("object", otype, canonical, parent_of(canonical))
    parent = INFRA + ("/" + "/".join(segments[:-1]) if len(segments) > 1 else "")
    return Location("collection", otype, canonical, parent)


def parent_of(path: str) -> str:
    """Parent object path: drop the last collection/id pair."""
    if path == GLOBAL_CONFIG_PATH:
        return INFRA
    return path.rsplit("/", 2)[0]


def child_path(parent_path: str, parent_type: ObjectType, child_type: ObjectType, child_id: str) -> str | None:
    """Path of a `child_type` object under `parent_path`, or None when it cannot live there."""
    if child_type in (INFRA_TYPE, GLOBAL_CONFIG_TYPE) or child_type.chain[:-1] != parent_type.chain:
        return None
    return f"{parent_path}/{child_type.chain[-1]}/{child_id}"


def type_of_path(path: str) -> ObjectType | None:
    loc = locate(path)
    return loc.otype if loc and loc.kind == "object" else None
