"""Reading NSX in few round trips: one hierarchical GET of /infra for the policy objects (VMware's
`filter=Type-A|B` form), plus what lives outside that tree — the manager's version, the transport
zone(s), and the TEP MTU (uplink host-switch profiles and the switching config). These reads do
not depend on each other, so they go out at once, on one session: at 100 ms to the manager a plan
costs the login and about two round trips, not one per read.

Policies come back with their rules as `ChildRule` children; they are folded back into the
policy's `rules` so a policy reads the way nsxkube sends it. A child belongs to the object it is
nested in — its place in the tree says so even when the answer leaves out `parent_path`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.errors import NsxRequestError
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.version import NODE_VERSION, NsxVersion, parse_version, require_supported

TRANSPORT_ZONES = "/infra/sites/default/enforcement-points/default/transport-zones"
SWITCHING_CONFIG = "/api/v1/global-configs/SwitchingGlobalConfig"
GLOBAL_CONFIG = "/infra/global-config"
IP_BLOCKS = "/infra/ip-blocks"
IP_POOLS = "/infra/ip-pools"
POLICY_HOST_SWITCH_PROFILES = "/infra/host-switch-profiles"  # NSX 4.0+
MANAGER_HOST_SWITCH_PROFILES = "/api/v1/host-switch-profiles"  # NSX-T 3.x; deprecated, still served in 4.x
POLICY_UPLINK_TYPE = "PolicyUplinkHostSwitchProfile"
MANAGER_UPLINK_TYPE = "UplinkHostSwitchProfile"

# What nsxkube writes, and the parents the tree must descend through to reach it.
MANAGED_TYPES = (
    "Segment", "SegmentSecurityProfileBindingMap", "SegmentDiscoveryProfileBindingMap", "Domain", "Group",
    "SecurityPolicy", "Rule", "Service", "SpoofGuardProfile", "IPDiscoveryProfile",
)  # fmt: skip
# Not SegmentPort: NCP can keep a port per pod; the few callers that need ports list one segment's.
PLAN_TYPES = (*MANAGED_TYPES, "Tier1")
DISCOVER_TYPES = (*MANAGED_TYPES, "Tier0", "Tier1", "SegmentSecurityProfile", "MacDiscoveryProfile", "GlobalConfig")
# Reads in flight at once: enough for one plan's independent reads, few enough for any manager.
MAX_PARALLEL = 6

T = TypeVar("T")


@dataclass(frozen=True)
class TepMtu:
    """The TEP MTU NSX applies, and where it was read."""

    value: int | None
    source: str


def type_filter(types: Iterable[str]) -> str:
    return "Type-" + "|".join(types)


def walk_tree(node: Mapping[str, Any], parent_path: str = "/infra") -> Iterator[dict[str, Any]]:
    """Every object under a hierarchical answer, parents first (Child<Type> wrappers unwrapped),
    each with its `parent_path` taken from where it sits in the tree when the answer leaves it out."""
    for wrapper in node.get("children") or ():
        kind = str(wrapper.get("resource_type", ""))
        obj = wrapper.get(kind[len("Child") :]) if kind.startswith("Child") else None
        if isinstance(obj, dict):
            placed = obj if obj.get("parent_path") else {**obj, "parent_path": parent_path}
            yield placed
            yield from walk_tree(obj, str(placed.get("path") or parent_path))


def objects_of_tree(tree: Mapping[str, Any]) -> dict[str, LiveObject]:
    found: dict[str, dict[str, Any]] = {}
    rules: dict[str, list[dict[str, Any]]] = {}
    for obj in walk_tree(tree):
        if obj.get("resource_type") == "Rule":
            rules.setdefault(str(obj["parent_path"]), []).append({k: v for k, v in obj.items() if k != "children"})
        else:
            found[str(obj.get("path"))] = obj
    for policy_path, policy_rules in rules.items():
        if policy_path in found:
            ordered = sorted(policy_rules, key=lambda r: (r.get("sequence_number", 0), str(r.get("id"))))
            found[policy_path] = {**found[policy_path], "rules": ordered}
    return {path: LiveObject.from_body(body) for path, body in found.items()}


def find_tree(client: NsxClient, types: Iterable[str]) -> dict[str, LiveObject]:
    return objects_of_tree(client.request("GET", "/infra", params={"filter": type_filter(types)}) or {})


def get_version(client: NsxClient) -> NsxVersion:
    """The manager's version; ProviderError when nsxkube does not support it."""
    manager = client.config.endpoint.display
    return require_supported(parse_version(client.get_object(NODE_VERSION), manager), manager)


def _uplink_profiles(client: NsxClient) -> tuple[list[dict[str, Any]], str]:
    """The uplink host-switch profiles (Policy API from NSX 4.0, else the manager API) and which API said so."""
    try:
        return (client.list_objects(POLICY_HOST_SWITCH_PROFILES, {"hostswitch_profile_type": POLICY_UPLINK_TYPE}),
                "policy")
    except NsxRequestError as err:
        if err.status not in (400, 404, 501):  # 3.x has no policy host-switch profiles
            raise
    return client.list_objects(MANAGER_HOST_SWITCH_PROFILES, {"hostswitch_profile_type": MANAGER_UPLINK_TYPE}), "manager"


def _switching_config(client: NsxClient) -> dict[str, Any]:
    try:
        return client.get_object(SWITCHING_CONFIG) or {}
    except NsxRequestError:  # e.g. a Policy-only role: the audit then says it could not check
        return {}


def _readable_uplink_profiles(client: NsxClient) -> tuple[list[dict[str, Any]], str]:
    try:
        return _uplink_profiles(client)
    except NsxRequestError:
        return [], ""


def tep_mtu_of(config: Mapping[str, Any], profiles: list[dict[str, Any]], api: str) -> TepMtu:
    """The TEP (Geneve underlay) MTU: the smallest `mtu` of the uplink profiles, which NSX 4.x applies
    per transport node; a profile without one uses the switching config's `physical_uplink_mtu`. Pure."""
    global_mtu = config.get("physical_uplink_mtu")
    global_mtu = global_mtu if isinstance(global_mtu, int) else None
    candidates = [(p["mtu"], 0, f"uplink profile {p.get('display_name') or p.get('id')}") for p in profiles
                  if isinstance(p.get("mtu"), int)]
    if global_mtu is not None and (not profiles or any(not isinstance(p.get("mtu"), int) for p in profiles)):
        candidates.append((global_mtu, 1, "SwitchingGlobalConfig physical_uplink_mtu"))
    if not candidates:
        return TepMtu(None, "neither the uplink profiles nor SwitchingGlobalConfig could be read")
    value, _, source = min(candidates)  # on a tie, name the profile: it is what the hosts use
    via = ", manager API" if api == "manager" else ""
    counted = f", the smallest of {len(profiles)} uplink profiles{via}" if profiles else ""
    return TepMtu(value, source + counted)


def find_tep_mtu(client: NsxClient) -> TepMtu:
    config, (profiles, api) = _in_parallel(client, lambda: _switching_config(client),
                                           lambda: _readable_uplink_profiles(client))
    return tep_mtu_of(config, profiles, api)


def _zone_by_id(client: NsxClient, transport_zone: str) -> dict[str, LiveObject]:
    """The zone named by id; when there is none, every zone, so the audit can match a display name."""
    zone = client.get_object(f"{TRANSPORT_ZONES}/{transport_zone}")
    if zone:
        return {zone["path"]: LiveObject.from_body(zone)}
    return _all_zones(client)


def _all_zones(client: NsxClient) -> dict[str, LiveObject]:
    return {z["path"]: LiveObject.from_body(z) for z in client.list_objects(TRANSPORT_ZONES)}


def _in_parallel(client: NsxClient, *reads: Callable[[], Any]) -> list[Any]:
    """Run independent reads at once on the client's one session (logged in first, once)."""
    client.request_ready()
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(reads)), thread_name_prefix="nsx-read") as pool:
        futures = [pool.submit(read) for read in reads]
        return [f.result() for f in futures]  # the first failure, in call order, is raised


def _announce(client: NsxClient, version: NsxVersion) -> None:
    client.notify(f"NSX {version.release} ({version.text}) at {client.config.endpoint.display}")


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
    version, objects, zones, config, (profiles, api) = _in_parallel(
        client, lambda: get_version(client), lambda: find_tree(client, PLAN_TYPES),
        lambda: _zone_by_id(client, transport_zone), lambda: _switching_config(client),
        lambda: _readable_uplink_profiles(client))
    _announce(client, version)
    tep = tep_mtu_of(config, profiles, api)
    return LiveInventory(objects, zones, tep.value, manager=client.config.endpoint.display,
                         nsx_version=version.text, tep_mtu_source=tep.source)


def get_full_inventory(client: NsxClient) -> LiveInventory:
    """The whole picture for `nsx discover`: gateways, segments, profiles, DFW, IP blocks and pools,
    every TZ, the MTUs."""
    version, objects, ranges, zones, switching, (profiles, api) = _in_parallel(
        client, lambda: get_version(client), lambda: find_tree(client, DISCOVER_TYPES),
        lambda: find_ip_ranges(client), lambda: _all_zones(client), lambda: _switching_config(client),
        lambda: _readable_uplink_profiles(client))
    objects = {**objects, **ranges}
    tep = tep_mtu_of(switching, profiles, api)
    config = objects.get(GLOBAL_CONFIG)
    gateway_mtu = config.body.get("mtu") if config else None
    return LiveInventory(objects, zones, tep.value, gateway_mtu if isinstance(gateway_mtu, int) else None,
                         client.config.endpoint.display, nsx_version=version.text, tep_mtu_source=tep.source)
