"""Reading NSX in few calls: one hierarchical GET of /infra for the policy objects (VMware's
`filter=Type-A|B` form), plus the transport zones and the TEP MTU, which live outside that tree.

A plan reads four things (tree, its transport zone, the MTU, and the login); discover reads the
same with a wider filter and every transport zone. Policies come back with their rules as
`ChildRule` children; they are folded back into the policy's `rules` so a policy reads the way
nsxkube sends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.errors import NsxRequestError
from nsxkube.providers.nsx.model import LiveInventory, LiveObject

TRANSPORT_ZONES = "/infra/sites/default/enforcement-points/default/transport-zones"
SWITCHING_CONFIG = "/api/v1/global-configs/SwitchingGlobalConfig"
GLOBAL_CONFIG = "/infra/global-config"
IP_BLOCKS = "/infra/ip-blocks"
IP_POOLS = "/infra/ip-pools"

# What nsxkube writes, and the parents the tree must descend through to reach it.
MANAGED_TYPES = (
    "Segment", "SegmentSecurityProfileBindingMap", "SegmentDiscoveryProfileBindingMap", "Domain", "Group",
    "SecurityPolicy", "Rule", "Service", "SpoofGuardProfile", "IPDiscoveryProfile",
)  # fmt: skip
# Not SegmentPort: NCP can keep a port per pod; the few callers that need ports list one segment's.
PLAN_TYPES = (*MANAGED_TYPES, "Tier1")
DISCOVER_TYPES = (*MANAGED_TYPES, "Tier0", "Tier1", "SegmentSecurityProfile", "MacDiscoveryProfile", "GlobalConfig")


def type_filter(types: Iterable[str]) -> str:
    return "Type-" + "|".join(types)


def walk_tree(node: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object under a hierarchical answer, parents first (Child<Type> wrappers unwrapped)."""
    for wrapper in node.get("children") or ():
        kind = str(wrapper.get("resource_type", ""))
        obj = wrapper.get(kind[len("Child") :]) if kind.startswith("Child") else None
        if isinstance(obj, dict):
            yield obj
            yield from walk_tree(obj)


def objects_of_tree(tree: Mapping[str, Any]) -> dict[str, LiveObject]:
    found: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[dict[str, Any]]] = {}
    for obj in walk_tree(tree):
        if obj.get("resource_type") == "Rule":
            rules.setdefault(str(obj.get("parent_path")), []).append({k: v for k, v in obj.items() if k != "children"})
        else:
            found[str(obj.get("path"))] = obj
    for policy_path, policy_rules in rules.items():
        if policy_path in found:
            ordered = sorted(policy_rules, key=lambda r: (r.get("sequence_number", 0), str(r.get("id"))))
            found[policy_path] = {**found[policy_path], "rules": ordered}
    return {path: LiveObject.from_body(body) for path, body in found.items()}


def find_tree(client: NsxClient, types: Iterable[str]) -> dict[str, LiveObject]:
    return objects_of_tree(client.request("GET", "/infra", params={"filter": type_filter(types)}) or {})


def find_tep_mtu(client: NsxClient) -> int | None:
    """The TEP (Geneve underlay) MTU the manager applies by default; None when it cannot be read."""
    try:
        config = client.get_object(SWITCHING_CONFIG)
    except NsxRequestError:  # e.g. a Policy-only role: the audit then says it could not check
        return None
    value = (config or {}).get("physical_uplink_mtu")
    return int(value) if isinstance(value, int) else None


def find_ip_ranges(client: NsxClient) -> dict[str, LiveObject]:
    """IP blocks, IP pools and their subnets (what Tanzu's namespace, ingress and egress networks are),
    read from their plain lists: a pool's subnets are a collection of static or block subnets."""
    found = {b["path"]: LiveObject.from_body(b) for b in client.list_objects(IP_BLOCKS)}
    for pool in client.list_objects(IP_POOLS):
        found[pool["path"]] = LiveObject.from_body(pool)
        subnets = client.list_objects(f"{IP_POOLS}/{pool['id']}/ip-subnets")
        found.update((s["path"], LiveObject.from_body(s)) for s in subnets)
    return found


def get_plan_inventory(client: NsxClient, transport_zone: str) -> LiveInventory:
    """What the network phase needs: its objects, everything they could collide with, its TZ, the MTU."""
    objects = find_tree(client, PLAN_TYPES)
    zone = client.get_object(f"{TRANSPORT_ZONES}/{transport_zone}")
    zones = {zone["path"]: LiveObject.from_body(zone)} if zone else {}
    return LiveInventory(objects, zones, find_tep_mtu(client), manager=client.config.endpoint.display)


def get_full_inventory(client: NsxClient) -> LiveInventory:
    """The whole picture for `nsx discover`: gateways, segments, profiles, DFW, IP blocks and pools,
    every TZ, the MTUs."""
    objects = {**find_tree(client, DISCOVER_TYPES), **find_ip_ranges(client)}
    zones = {z["path"]: LiveObject.from_body(z) for z in client.list_objects(TRANSPORT_ZONES)}
    config = objects.get(GLOBAL_CONFIG)
    gateway_mtu = config.body.get("mtu") if config else None
    return LiveInventory(objects, zones, find_tep_mtu(client),
                         gateway_mtu if isinstance(gateway_mtu, int) else None, client.config.endpoint.display)
