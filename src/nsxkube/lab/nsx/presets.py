"""Starting states for the emulator, kept as code.

`empty`: a freshly installed NSX with one overlay and one VLAN transport zone, a tier-0 and a
tier-1 an admin made, the default profiles, domain `default`, a few predefined services, the
default layer-3 firewall section, the global config (TEP MTU 1700), and the default uplink
host-switch profile (no MTU of its own: the global one applies).

`tanzu`: `empty` plus what vSphere with Tanzu leaves behind — tier-1s, segments, a port, binding
maps, groups and a DFW policy created by NCP / nsx-operator under a principal identity
(`_protection: REQUIRE_OVERRIDE`, `ncp/*` and `nsx-op/*` tags), a `vnet-domain-c8-…` segment whose
subnet overlaps 172.16.50.0/24 (the default node network) partially, a segment an admin made
by hand with no tags, and the uplink profiles of the Supervisor's hosts and edges (TEP MTU 1700
and 9000: NSX 4.x keeps the TEP MTU there, per transport node). It also holds the Supervisor's
networks as a Tanzu (NCP) install leaves them: the namespace network as an IP block (the default
10.244.0.0/20, behind SNAT; the /28 segments above are carved from it), a routable namespace
network (a block tagged `ncp/no_snat`, as for a namespace with NAT off), the ingress and egress
CIDRs as IP pools (always routed), and the host TEP pool an admin made before enabling the
Supervisor.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from nsxkube.lab.nsx import hierarchy
from nsxkube.lab.nsx.store import Store
from nsxkube.lab.nsx.transaction import NOT_PROTECTED, REQUIRE_OVERRIDE, Actor, Changes

TZ_BASE = "/infra/sites/default/enforcement-points/default/transport-zones"
OVERLAY_TZ_ID = "overlay-tz"
VLAN_TZ_ID = "vlan-tz"
OVERLAY_TZ_PATH = f"{TZ_BASE}/{OVERLAY_TZ_ID}"
VLAN_TZ_PATH = f"{TZ_BASE}/{VLAN_TZ_ID}"
TIER0_ID = "t0-gw"
TIER1_ID = "t1-gw"
TIER0_PATH = f"/infra/tier-0s/{TIER0_ID}"
TIER1_PATH = f"/infra/tier-1s/{TIER1_ID}"
DEFAULT_DOMAIN_PATH = "/infra/domains/default"
DEFAULT_SPOOFGUARD_PROFILE = "/infra/spoofguard-profiles/default-spoofguard-profile"
DEFAULT_SEGMENT_SECURITY_PROFILE = "/infra/segment-security-profiles/default-segment-security-profile"
DEFAULT_IP_DISCOVERY_PROFILE = "/infra/ip-discovery-profiles/default-ip-discovery-profile"
DEFAULT_MAC_DISCOVERY_PROFILE = "/infra/mac-discovery-profiles/default-mac-discovery-profile"
DEFAULT_LAYER3_SECTION = f"{DEFAULT_DOMAIN_PATH}/security-policies/default-layer3-section"
TEP_MTU = 1700
UPLINK_PROFILES = "/infra/host-switch-profiles"
DEFAULT_UPLINK_PROFILE = f"{UPLINK_PROFILES}/nsx-default-uplink-hostswitch-profile"
TANZU_UPLINK_PROFILES = {"esxi-host-uplink-profile": TEP_MTU, "edge-uplink-profile": 9000}
PREDEFINED_SERVICES = {
    "SSH": ("TCP", "22"),
    "HTTP": ("TCP", "80"),
    "HTTPS": ("TCP", "443"),
    "DNS": ("TCP", "53"),
    "DNS-UDP": ("UDP", "53"),
    "NTP": ("UDP", "123"),
}

TANZU_CLUSTER = "domain-c8"
TANZU_CLUSTER_UUID = "5a0c6b2e-91f3-4c8e-a2d4-7e1f0b9c3d21"
TANZU_PRINCIPAL = f"wcp-cluster-user-{TANZU_CLUSTER}-{TANZU_CLUSTER_UUID}"
NCP_VERSION = "4.1.2.23087429"
TANZU_OVERLAPPING_CIDR = "172.16.50.128/25"  # overlaps the default node network 172.16.50.0/24
TANZU_T1_ID = "t1-domain-c8-5a0c6b2e-rtr"
TANZU_NAMESPACE_T1_ID = "t1-domain-c8-demo-rtr"
TANZU_OVERLAPPING_SEGMENT_ID = "vnet-domain-c8-5a0c6b2e-demo-tkc-0"
TANZU_SUPERVISOR_SEGMENT_ID = "vm-domain-c8-5a0c6b2e-0"
TANZU_VIP_SEGMENT_ID = "vip-vm-domain-c8-5a0c6b2e"
TANZU_USER_SEGMENT_ID = "legacy-vms"
TANZU_PORT_ID = "supervisor-cp-0-eth0"
TANZU_GROUP_IDS = (
    "domain-c8_5a0c6b2e_supervisor",
    "domain-c8_5a0c6b2e_vnet-demo-tkc",
    "domain-c8_5a0c6b2e_ingress",
)
TANZU_POLICY_ID = "domain-c8_5a0c6b2e_isolation"
# The Supervisor's networks (vSphere with Tanzu defaults where it has them).
TANZU_NAMESPACE_NETWORK = "10.244.0.0/20"  # the default namespace network, behind SNAT
TANZU_ROUTED_NAMESPACE_NETWORK = "10.244.16.0/20"  # a namespace created with NAT off (routable pods)
TANZU_INGRESS_CIDR = "10.30.10.0/24"
TANZU_EGRESS_CIDR = "10.30.20.0/24"
TEP_POOL_CIDR = "192.168.130.0/24"
TANZU_NAMESPACE_BLOCK_ID = "domain-c8_5a0c6b2e-ipblock-0"
TANZU_ROUTED_BLOCK_ID = "domain-c8_5a0c6b2e-routed-ipblock-0"
TANZU_INGRESS_POOL_ID = "domain-c8_5a0c6b2e-ingress"
TANZU_EGRESS_POOL_ID = "domain-c8_5a0c6b2e-egress"
TEP_POOL_ID = "host-tep-pool"
TANZU_PROTECTED_SEGMENT_IDS = (TANZU_OVERLAPPING_SEGMENT_ID, TANZU_SUPERVISOR_SEGMENT_ID, TANZU_VIP_SEGMENT_ID)

SYSTEM = Actor(user="system", system_owned=True, trusted=True)
ADMIN = Actor(user="admin", trusted=True)
NCP = Actor(user=TANZU_PRINCIPAL, protection=REQUIRE_OVERRIDE, trusted=True)

Seed = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], dict[str, Any]]


def plant(store: Store, actor: Actor, items: list[Seed]) -> Changes:
    """Create or merge objects as `actor` in one transaction; a third item element overrides
    server-set fields (e.g. `is_default`)."""
    with store.transaction(actor) as tx:
        for path, body, *overrides in items:
            hierarchy.patch_object(tx, path, body, replace=False)
            if overrides:
                tx.objects[path] = {**tx.objects[path], **overrides[0]}
    return tx.changes


def _tags(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"scope": scope, "tag": tag} for scope, tag in pairs]


def _l4_service(name: str, protocol: str, port: str) -> dict[str, Any]:
    entry = {"resource_type": "L4PortSetServiceEntry", "id": name, "l4_protocol": protocol, "destination_ports": [port]}
    return {"display_name": name, "service_entries": [entry]}


def load_empty(store: Store) -> None:
    services: list[Seed] = [
        (f"/infra/services/{name}", _l4_service(name, proto, port), {"is_default": True})
        for name, (proto, port) in PREDEFINED_SERVICES.items()
    ]
    icmp = {"resource_type": "ICMPTypeServiceEntry", "id": "ICMP-ALL", "protocol": "ICMPv4"}
    services.append(("/infra/services/ICMP-ALL", {"service_entries": [icmp]}, {"is_default": True}))
    plant(
        store,
        SYSTEM,
        [
            ("/infra/sites/default", {}),
            ("/infra/sites/default/enforcement-points/default", {"auto_enforce": True}),
            (DEFAULT_DOMAIN_PATH, {}),
            (DEFAULT_SPOOFGUARD_PROFILE, {}),
            (DEFAULT_SEGMENT_SECURITY_PROFILE, {}),
            (DEFAULT_IP_DISCOVERY_PROFILE, {}),
            (DEFAULT_MAC_DISCOVERY_PROFILE, {}),
            ("/infra/global-config", {"mtu": 1500, "physical_uplink_mtu": TEP_MTU}),
            (DEFAULT_UPLINK_PROFILE, _uplink_teaming("uplink-1"), {"is_default": True}),
            *services,
        ],
    )
    default_rule = {"id": "default-layer3-rule", "action": "ALLOW", "sequence_number": 2147483647}
    plant(
        store,
        Actor(user="system", trusted=True),
        [
            (
                DEFAULT_LAYER3_SECTION,
                {"display_name": "Default Layer3 Section", "sequence_number": 2147483647, "rules": [default_rule]},
                {"is_default": True},
            ),
            (f"{DEFAULT_LAYER3_SECTION}/rules/default-layer3-rule", {}, {"is_default": True}),
        ],
    )
    plant(
        store,
        ADMIN,
        [
            (OVERLAY_TZ_PATH, {"tz_type": "OVERLAY_STANDARD", "is_default": True}),
            (VLAN_TZ_PATH, {"tz_type": "VLAN_BACKED", "is_default": False, "uplink_teaming_policy_names": []}),
            (TIER0_PATH, {"ha_mode": "ACTIVE_STANDBY"}),
            (
                TIER1_PATH,
                {"tier0_path": TIER0_PATH, "route_advertisement_types": ["TIER1_CONNECTED", "TIER1_LB_VIP"]},
            ),
        ],
    )


def _uplink_teaming(*uplinks: str, **extra: Any) -> dict[str, Any]:
    active = [{"uplink_name": u, "uplink_type": "PNIC"} for u in uplinks]
    return {"teaming": {"policy": "FAILOVER_ORDER", "active_list": active}, "transport_vlan": 0, **extra}


def load_uplink_profiles(store: Store) -> None:
    """The uplink profiles an admin made for the Supervisor cluster's hosts and its edges."""
    plant(store, ADMIN, [(f"{UPLINK_PROFILES}/{name}", _uplink_teaming("uplink-1", "uplink-2", mtu=mtu))
                         for name, mtu in TANZU_UPLINK_PROFILES.items()])


def _ncp_tags(created_for: str, *extra: tuple[str, str]) -> list[dict[str, str]]:
    return _tags(
        ("ncp/cluster", TANZU_CLUSTER),
        ("ncp/version", NCP_VERSION),
        ("ncp/created_for", created_for),
        ("ncp/cluster_uuid", TANZU_CLUSTER_UUID),
        *extra,
    )


def _segment(t1_id: str, gateway: str, tags: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    return {
        "connectivity_path": f"/infra/tier-1s/{t1_id}",
        "transport_zone_path": OVERLAY_TZ_PATH,
        "subnets": [{"gateway_address": gateway}],
        "tags": tags,
        **extra,
    }


def load_tanzu(store: Store) -> None:
    load_empty(store)
    load_uplink_profiles(store)
    t1 = f"/infra/tier-1s/{TANZU_T1_ID}"
    vnet = f"/infra/segments/{TANZU_OVERLAPPING_SEGMENT_ID}"
    supervisor = f"/infra/segments/{TANZU_SUPERVISOR_SEGMENT_ID}"
    groups = [f"{DEFAULT_DOMAIN_PATH}/groups/{g}" for g in TANZU_GROUP_IDS]
    supervisor_group, vnet_group, ingress_group = groups
    advertise = ["TIER1_CONNECTED", "TIER1_NAT", "TIER1_LB_VIP", "TIER1_LB_SNAT"]
    plant(
        store,
        NCP,
        [
            (t1, {"tier0_path": TIER0_PATH, "route_advertisement_types": advertise, "tags": _ncp_tags("ncp")}),
            (
                f"/infra/tier-1s/{TANZU_NAMESPACE_T1_ID}",
                {
                    "tier0_path": TIER0_PATH,
                    "route_advertisement_types": advertise,
                    "tags": _tags(
                        ("nsx-op/cluster", TANZU_CLUSTER),
                        ("nsx-op/namespace", "demo"),
                        ("nsx-op/version", "4.1.2"),
                        ("nsx/managed-by", "nsx-op"),
                    ),
                },
            ),
            (
                vnet,
                _segment(
                    TANZU_T1_ID,
                    "172.16.50.129/25",
                    _ncp_tags("VirtualNetwork", ("ncp/project", "demo"), ("ncp/vnet", "demo-tkc")),
                    display_name=f"vnet-{TANZU_CLUSTER}:5a0c6b2e-demo-tkc-0",
                ),
            ),
            (
                supervisor,
                _segment(
                    TANZU_T1_ID,
                    "10.244.0.1/28",
                    _ncp_tags("SupervisorControlPlane"),
                    display_name=f"vm-{TANZU_CLUSTER}:5a0c6b2e-0",
                ),
            ),
            (
                f"/infra/segments/{TANZU_VIP_SEGMENT_ID}",
                _segment(
                    TANZU_NAMESPACE_T1_ID,
                    "10.244.1.1/28",
                    _tags(("nsx-op/cluster", TANZU_CLUSTER), ("nsx-op/namespace", "demo"), ("owner", "NCP")),
                    display_name="VIP-VM",
                ),
            ),
            (
                f"{supervisor}/ports/{TANZU_PORT_ID}",
                {
                    "attachment": {"id": "4f1e2d3c-0b9a-4877-8665-5a4b3c2d1e0f", "type": "PARENT"},
                    "address_bindings": [{"ip_address": "10.244.0.2", "mac_address": "00:50:56:b3:0a:01"}],
                    "tags": _ncp_tags("SupervisorControlPlaneVM"),
                },
            ),
            (
                f"{vnet}/segment-security-profile-binding-maps/ncp-security-binding",
                {
                    "spoofguard_profile_path": DEFAULT_SPOOFGUARD_PROFILE,
                    "segment_security_profile_path": DEFAULT_SEGMENT_SECURITY_PROFILE,
                },
            ),
            (
                f"{vnet}/segment-discovery-profile-binding-maps/ncp-discovery-binding",
                {
                    "ip_discovery_profile_path": DEFAULT_IP_DISCOVERY_PROFILE,
                    "mac_discovery_profile_path": DEFAULT_MAC_DISCOVERY_PROFILE,
                },
            ),
            (
                supervisor_group,
                {
                    "expression": [
                        {
                            "resource_type": "Condition",
                            "member_type": "Segment",
                            "key": "Tag",
                            "operator": "EQUALS",
                            "value": "ncp/created_for|SupervisorControlPlane",
                        },
                        {"resource_type": "ConjunctionOperator", "conjunction_operator": "OR"},
                        {"resource_type": "PathExpression", "paths": [supervisor]},
                    ],
                    "tags": _ncp_tags("SupervisorControlPlane"),
                },
            ),
            (
                vnet_group,
                {
                    "expression": [{"resource_type": "PathExpression", "paths": [vnet]}],
                    "tags": _ncp_tags("VirtualNetwork", ("ncp/vnet", "demo-tkc")),
                },
            ),
            (
                ingress_group,
                {
                    "expression": [
                        {
                            "resource_type": "IPAddressExpression",
                            "ip_addresses": [TANZU_OVERLAPPING_CIDR, "10.244.1.0/28"],
                        }
                    ],
                    "tags": _ncp_tags("Ingress"),
                },
            ),
            (
                f"{DEFAULT_DOMAIN_PATH}/security-policies/{TANZU_POLICY_ID}",
                {
                    "category": "Application",
                    "sequence_number": 10,
                    "scope": [vnet_group, supervisor_group],
                    "tags": _ncp_tags("NetworkPolicy"),
                    "rules": [
                        _rule("allow-supervisor-to-vnet", 10, [supervisor_group], [vnet_group]),
                        _rule("allow-intra-vnet", 20, [vnet_group], [vnet_group]),
                        _rule("allow-https-to-ingress", 30, ["ANY"], [ingress_group], ["/infra/services/HTTPS"]),
                        _rule("drop-other-to-vnet", 40, ["ANY"], [vnet_group], action="DROP", direction="IN"),
                    ],
                },
            ),
        ],
    )
    plant(store, NCP, _supervisor_networks())
    plant(
        store,
        ADMIN,
        [
            *_pool(TEP_POOL_ID, TEP_POOL_CIDR, []),
            (
                f"/infra/segments/{TANZU_USER_SEGMENT_ID}",
                {
                    "connectivity_path": TIER1_PATH,
                    "transport_zone_path": OVERLAY_TZ_PATH,
                    "subnets": [
                        {"gateway_address": "192.168.10.1/24", "dhcp_ranges": ["192.168.10.100-192.168.10.199"]}
                    ],
                },
            )
        ],
    )


def _pool(pool_id: str, cidr: str, tags: list[dict[str, str]]) -> list[Seed]:
    """An IP pool with one static subnet, all of the CIDR allocatable but its first address."""
    path = f"/infra/ip-pools/{pool_id}"
    first, last = _first_and_last(cidr)
    subnet = {"cidr": cidr, "allocation_ranges": [{"start": first, "end": last}], "tags": tags}
    return [(path, {"ip_address_type": "IPV4", "tags": tags}), (f"{path}/ip-subnets/{pool_id}-subnet-0", subnet)]


def _first_and_last(cidr: str) -> tuple[str, str]:
    network = ipaddress.IPv4Network(cidr)
    return str(network.network_address + 2), str(network.broadcast_address - 1)


def _supervisor_networks() -> list[Seed]:
    """What enabling the Supervisor with NCP writes for its networks (tags as NCP writes them)."""
    namespace_tags = _ncp_tags("NamespaceNetwork")
    return [
        (f"/infra/ip-blocks/{TANZU_NAMESPACE_BLOCK_ID}",
         {"cidr": TANZU_NAMESPACE_NETWORK, "visibility": "PRIVATE", "tags": namespace_tags}),
        # NCP gives namespaces with NAT off their subnets from the blocks tagged ncp/no_snat only.
        (f"/infra/ip-blocks/{TANZU_ROUTED_BLOCK_ID}",
         {"cidr": TANZU_ROUTED_NAMESPACE_NETWORK, "visibility": "EXTERNAL",
          "tags": [*namespace_tags, {"scope": "ncp/no_snat", "tag": TANZU_CLUSTER}]}),
        *_pool(TANZU_INGRESS_POOL_ID, TANZU_INGRESS_CIDR, _ncp_tags("Ingress", ("ncp/external", "true"))),
        *_pool(TANZU_EGRESS_POOL_ID, TANZU_EGRESS_CIDR, _ncp_tags("Egress", ("ncp/external", "true"))),
    ]


def _rule(
    rule_id: str,
    sequence: int,
    sources: list[str],
    destinations: list[str],
    services: list[str] | None = None,
    *,
    action: str = "ALLOW",
    direction: str = "IN_OUT",
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "sequence_number": sequence,
        "source_groups": sources,
        "destination_groups": destinations,
        "services": services or ["ANY"],
        "action": action,
        "direction": direction,
        "tags": _ncp_tags("NetworkPolicy"),
    }


PRESETS: dict[str, Callable[[Store], None]] = {"empty": load_empty, "tanzu": load_tanzu}


def load_preset(store: Store, name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    PRESETS[name](store)


__all__ = ["NOT_PROTECTED", "PRESETS", "load_preset", "plant"]
