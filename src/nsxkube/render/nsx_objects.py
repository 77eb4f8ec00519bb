"""The NSX Policy API objects nsxkube owns for one cluster, and the hierarchical body that sends them.

Pure functions of the design: the network phase of `apply` and `nsxkube render` both start here,
so what an operator reads in the bundle is exactly what nsxkube sends. Field names follow
docs in ../shared/reference/nsx-policy-api.md; nothing the server sets (``_revision``, ``path``…)
ever appears in a body.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nsxkube.design import Design, Flow
from nsxkube.design.ports import ICMP_TYPES, VRRP_IP_PROTOCOL

ANY = "ANY"
INFRA = "/infra"
TRANSPORT_ZONES = "/infra/sites/default/enforcement-points/default/transport-zones"
DEFAULT_MAC_DISCOVERY_PROFILE = "/infra/mac-discovery-profiles/default-mac-discovery-profile"
DEFAULT_SEGMENT_SECURITY_PROFILE = "/infra/segment-security-profiles/default-segment-security-profile"
# NSX IP discovery keeps at most this many ARP bindings per port.
ARP_BINDING_LIMIT_MAX = 256
# A service entry holds at most 15 port values; a range "A-B" counts as two.
PORTS_PER_ENTRY = 15
RULE_SEQUENCE_STEP = 10

# Port-matrix endpoints whose addresses live on the node ports (the nodes answer for them).
ON_NODES = frozenset({"nodes", "control-planes", "api-vip", "lb-pools"})
# Groups made whatever the DFW setting: they name the cluster's own addresses for other policies.
CORE_ENDPOINTS = ("nodes", "control-planes", "api-vip", "lb-pools")


@dataclass(frozen=True)
class NsxObject:
    """One Policy API object: its path, type, the body sent, and the path of its parent."""

    path: str
    resource_type: str
    body: dict[str, Any] = field(hash=False)
    parent_path: str

    @property
    def id(self) -> str:
        return self.body["id"]


@dataclass(frozen=True)
class Endpoint:
    """A port-matrix endpoint as NSX sees it: a group of addresses, or ANY with the reason."""

    name: str
    group_id: str | None
    addresses: tuple[str, ...]
    note: str = ""


# ── the objects ──────────────────────────────────────────────────────────────────────────────


def desired_nsx_objects(design: Design) -> tuple[NsxObject, ...]:
    """Every object nsxkube owns for this cluster, parents and referenced objects first."""
    objects = [ip_discovery_profile(design), spoofguard_profile(design)]
    if not design.spec.nsx.segment.use_existing:
        # Someone else's segment is only read: no segment body, and no binding maps on it.
        objects += [segment(design), discovery_binding_map(design), security_binding_map(design)]
    objects += groups(design)
    if design.spec.nsx.dfw.enabled:
        objects += services(design)
        objects.append(security_policy(design))
    return tuple(objects)


def ownership_tags(design: Design) -> list[dict[str, str]]:
    return [{"scope": design.ownership.scope, "tag": design.ownership.tag}]


def _object(design: Design, parent_path: str, collection: str, resource_type: str, object_id: str,
            description: str, fields: dict[str, Any]) -> NsxObject:
    body = {"resource_type": resource_type, "id": object_id, "display_name": object_id,
            "description": description, "tags": ownership_tags(design), **fields}
    return NsxObject(f"{parent_path}/{collection}/{object_id}", resource_type, body, parent_path)


def segment_path(design: Design) -> str:
    return f"{INFRA}/segments/{design.spec.nsx.segment.name}"


def tier1_path(design: Design) -> str:
    return f"{INFRA}/tier-1s/{design.spec.nsx.tier1}"


def transport_zone_path(design: Design) -> str:
    return f"{TRANSPORT_ZONES}/{design.spec.nsx.transport_zone}"


def domain_path(design: Design) -> str:
    return f"{INFRA}/domains/{design.spec.nsx.domain}"


def segment(design: Design) -> NsxObject:
    plan = design.ip_plan
    subnet: dict[str, Any] = {"gateway_address": f"{plan.gateway}/{plan.prefix_length}"}
    if plan.dhcp_ranges:
        subnet["dhcp_ranges"] = [f"{r.first}-{r.last}" for r in plan.dhcp_ranges]
    return _object(design, INFRA, "segments", "Segment", design.spec.nsx.segment.name,
                   f"Kubernetes nodes of cluster {design.name}",
                   {"subnets": [subnet], "connectivity_path": tier1_path(design),
                    "transport_zone_path": transport_zone_path(design)})


def arp_binding_limit(design: Design) -> int:
    """1 for the node's own address plus every address it may announce (VIP and pools), capped."""
    announced = sum(r.size for r in design.ip_plan.announced_addresses)
    return min(ARP_BINDING_LIMIT_MAX, 1 + announced)


def ip_discovery_profile(design: Design) -> NsxObject:
    # Trust-on-first-use would pin each port to the first address it ARPs for, so a VIP that moves
    # to another node (kube-vip failover, MetalLB/Cilium L2 leader change) would stay stale.
    return _object(design, INFRA, "ip-discovery-profiles", "IPDiscoveryProfile", f"{design.name}-ip-discovery",
                   "ARP snooping without trust-on-first-use, room for the API VIP and LoadBalancer pools",
                   {"ip_v4_discovery_options": {"arp_snooping_config": {
                       "arp_snooping_enabled": True, "arp_binding_limit": arp_binding_limit(design)}},
                    "tofu_enabled": False})


def spoofguard_profile(design: Design) -> NsxObject:
    allowlist = design.spec.nsx.vip_mode == "allowlist"
    description = ("SpoofGuard on: the VIP and pools are manual address bindings on the node ports" if allowlist
                   else "SpoofGuard binding allowlist off so the API VIP and LoadBalancer IPs can move between nodes")
    return _object(design, INFRA, "spoofguard-profiles", "SpoofGuardProfile", f"{design.name}-spoofguard",
                   description, {"address_binding_allowlist": allowlist})


def discovery_binding_map(design: Design) -> NsxObject:
    return _object(design, segment_path(design), "segment-discovery-profile-binding-maps",
                   "SegmentDiscoveryProfileBindingMap", f"{design.name}-discovery",
                   "binds the cluster's IP discovery profile to the node segment",
                   {"ip_discovery_profile_path": ip_discovery_profile(design).path,
                    "mac_discovery_profile_path": DEFAULT_MAC_DISCOVERY_PROFILE})


def security_binding_map(design: Design) -> NsxObject:
    return _object(design, segment_path(design), "segment-security-profile-binding-maps",
                   "SegmentSecurityProfileBindingMap", f"{design.name}-security",
                   "binds the cluster's SpoofGuard profile to the node segment",
                   {"spoofguard_profile_path": spoofguard_profile(design).path,
                    "segment_security_profile_path": DEFAULT_SEGMENT_SECURITY_PROFILE})


# ── groups: the port matrix's endpoints ─────────────────────────────────────────────────────


def _ip_or_none(text: str) -> str | None:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def endpoint(design: Design, name: str) -> Endpoint:
    """Resolve a port-matrix endpoint name into the group nsxkube creates for it, or ANY."""
    spec, plan = design.spec, design.ip_plan
    network = spec.network
    group_id = f"{design.name}-{name}"
    if name == "nodes":
        return Endpoint(name, group_id, tuple(str(n.address) for n in plan.nodes))
    if name == "control-planes":
        return Endpoint(name, group_id, tuple(str(n.address) for n in plan.control_planes))
    if name == "api-vip":
        return Endpoint(name, group_id, (str(plan.api_vip),))
    if name == "lb-pools":
        return Endpoint(name, group_id, tuple(str(p.range) for p in plan.pools))
    if name in ("admin-networks", "client-networks"):
        nets = network.admin_networks if name == "admin-networks" else network.client_networks
        if any(n.prefixlen == 0 for n in nets):
            return Endpoint(name, None, (), "0.0.0.0/0 is everyone: the rule says ANY")
        return Endpoint(name, group_id, tuple(str(n) for n in nets))
    if name == "dns-servers":
        return Endpoint(name, group_id, tuple(str(a) for a in network.dns_servers))
    if name == "ntp-servers":
        return _hosts_endpoint(name, group_id, network.ntp_servers)
    if name == "vcenter":
        return _hosts_endpoint(name, group_id, [spec.vsphere.server])
    if name == "proxy":
        host = urlsplit(network.proxy.url).hostname if network.proxy else None
        return _hosts_endpoint(name, group_id, [host] if host else [])
    if name == "internet":
        return Endpoint(name, None, (), "any address outside the site: the rule says ANY")
    raise ValueError(f"port matrix endpoint {name!r} has no NSX group rule")


def _hosts_endpoint(name: str, group_id: str, hosts: Sequence[str]) -> Endpoint:
    addresses = [_ip_or_none(h) for h in hosts]
    if hosts and all(addresses):
        return Endpoint(name, group_id, tuple(a for a in addresses if a))
    # A DFW group cannot follow a DNS name: the rule keeps its port but opens the destination.
    named = ", ".join(h for h, a in zip(hosts, addresses, strict=True) if a is None) or "none listed"
    return Endpoint(name, None, (), f"given by name ({named}): the rule says ANY with the port")


def group_path(design: Design, group_id: str) -> str:
    return f"{domain_path(design)}/groups/{group_id}"


def endpoint_paths(design: Design, name: str) -> list[str]:
    """A rule's source or destination list: the group's path, or ANY alone."""
    ep = endpoint(design, name)
    return [group_path(design, ep.group_id)] if ep.group_id else [ANY]


def group_endpoints(design: Design) -> list[Endpoint]:
    """Endpoints that become groups, in a stable order: the cluster's own, then the peers the DFW names."""
    names = [n for n in CORE_ENDPOINTS if n != "lb-pools" or design.ip_plan.pools]
    if design.spec.nsx.dfw.enabled:
        for flow in design.ports:
            names += [n for n in (flow.source, flow.destination) if n not in names]
    return [ep for ep in (endpoint(design, n) for n in names) if ep.group_id]


def groups(design: Design) -> list[NsxObject]:
    return [_group(design, ep) for ep in group_endpoints(design)]


def _group(design: Design, ep: Endpoint) -> NsxObject:
    addresses = {"resource_type": "IPAddressExpression", "ip_addresses": list(ep.addresses)}
    if ep.name == "nodes":
        # The ownership tag finds the VMs once the machines phase tags them; the addresses make the
        # rules work before that. OR is the only conjunction allowed between different expression types.
        tag = design.ownership
        expression = [
            {"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Tag", "operator": "EQUALS",
             "value": f"{tag.scope}|{tag.tag}"},
            {"resource_type": "ConjunctionOperator", "conjunction_operator": "OR"},
            addresses,
        ]
        description = "the cluster's VMs by ownership tag, or by node address"
    else:
        expression = [addresses]
        description = f"{ep.name} of cluster {design.name}"
    return _object(design, domain_path(design), "groups", "Group", ep.group_id or "", description,
                   {"expression": expression})


# ── services and the security policy: the port matrix ───────────────────────────────────────


def service_path(design: Design, flow: Flow) -> str:
    return f"{INFRA}/services/{design.name}-{flow.id}"


def port_weight(port: str) -> int:
    return 2 if "-" in port else 1


def port_chunks(ports: Iterable[str]) -> list[list[str]]:
    """Split ports into lists of at most 15 values (a range counts two), order kept."""
    chunks: list[list[str]] = []
    weight = PORTS_PER_ENTRY
    for port in ports:
        if weight + port_weight(port) > PORTS_PER_ENTRY:
            chunks.append([])
            weight = 0
        chunks[-1].append(port)
        weight += port_weight(port)
    return chunks


def service_entries(flow: Flow) -> list[dict[str, Any]]:
    if flow.protocol == "ICMP":
        # The stateful DFW lets echo replies back; "destination unreachable" carries path-MTU
        # discovery's "fragmentation needed" (see the port matrix).
        return [
            {"resource_type": "ICMPTypeServiceEntry", "id": f"icmp-{name}", "display_name": f"icmp-{name}",
             "protocol": "ICMPv4", "icmp_type": ICMP_TYPES[name]}
            for name in flow.ports
        ]
    if flow.protocol == "VRRP":
        return [{"resource_type": "IPProtocolServiceEntry", "id": "vrrp", "display_name": "vrrp",
                 "protocol_number": VRRP_IP_PROTOCOL}]
    proto = flow.protocol.lower()
    return [
        {"resource_type": "L4PortSetServiceEntry", "id": f"{proto}-{i}", "display_name": f"{proto}-{i}",
         "l4_protocol": flow.protocol, "destination_ports": chunk}
        for i, chunk in enumerate(port_chunks(flow.ports), start=1)
    ]


def services(design: Design) -> list[NsxObject]:
    return [
        _object(design, INFRA, "services", "Service", f"{design.name}-{flow.id}",
                f"{flow.protocol} {flow.ports_text}: {flow.reason}", {"service_entries": service_entries(flow)})
        for flow in design.ports
    ]


def rule_direction(flow: Flow) -> str:
    """Where the DFW of the node ports sees the flow: arriving, leaving, or both ends on nodes."""
    source_on_nodes, destination_on_nodes = flow.source in ON_NODES, flow.destination in ON_NODES
    if source_on_nodes and destination_on_nodes:
        return "IN_OUT"
    return "OUT" if source_on_nodes else "IN"


def policy_id(design: Design) -> str:
    return f"{design.name}-k8s"


def policy_path(design: Design) -> str:
    return f"{domain_path(design)}/security-policies/{policy_id(design)}"


def _rule(design: Design, rule_id: str, description: str, sequence: int, fields: dict[str, Any]) -> dict[str, Any]:
    return {"resource_type": "Rule", "id": rule_id, "display_name": f"{design.name}-{rule_id}",
            "description": description, "tags": ownership_tags(design), "sequence_number": sequence, **fields,
            "ip_protocol": "IPV4"}


def flow_rules(design: Design) -> list[dict[str, Any]]:
    return [
        _rule(design, flow.id, flow.reason, RULE_SEQUENCE_STEP * i, {
            "source_groups": endpoint_paths(design, flow.source),
            "destination_groups": endpoint_paths(design, flow.destination),
            "services": [service_path(design, flow)],
            "action": "ALLOW", "direction": rule_direction(flow), "logged": False})
        for i, flow in enumerate(design.ports, start=1)
    ]


def cluster_address_paths(design: Design) -> list[str]:
    """Groups of every address the node ports answer for: the nodes, the VIP and the pools."""
    return [group_path(design, ep.group_id) for ep in group_endpoints(design)
            if ep.name in ON_NODES and ep.name != "control-planes" and ep.group_id]


def deny_rules(design: Design, first_sequence: int) -> list[dict[str, Any]]:
    dfw = design.spec.nsx.dfw
    ours = cluster_address_paths(design)
    common = {"services": [ANY], "action": "DROP", "logged": dfw.log_denied}
    return [
        _rule(design, "deny-other-in", "anything the port matrix does not allow into the cluster", first_sequence,
              {"source_groups": [ANY], "destination_groups": ours, **common, "direction": "IN"}),
        _rule(design, "deny-other-out", "anything the port matrix does not allow out of the cluster",
              first_sequence + RULE_SEQUENCE_STEP,
              {"source_groups": ours, "destination_groups": [ANY], **common, "direction": "OUT"}),
    ]


def security_policy(design: Design) -> NsxObject:
    dfw = design.spec.nsx.dfw
    rules = flow_rules(design)
    if dfw.default_deny:
        rules += deny_rules(design, RULE_SEQUENCE_STEP * (len(rules) + 1))
    return _object(design, domain_path(design), "security-policies", "SecurityPolicy", policy_id(design),
                   f"the port matrix of Kubernetes cluster {design.name}",
                   {"category": dfw.category, "sequence_number": dfw.sequence_number,
                    "scope": [group_path(design, f"{design.name}-nodes")], "stateful": True, "rules": rules})


# ── SpoofGuard allowlist: manual bindings on the node ports ─────────────────────────────────


def announced_by(design: Design) -> dict[str, list[str]]:
    """Node name → every address its port may send from: its own, then the VIP (control planes), then pools."""
    plan = design.ip_plan
    pool_addresses = [str(a) for p in plan.pools for a in p.range.addresses()]
    return {
        node.name: [str(node.address), *([str(plan.api_vip)] if node.is_control_plane else []), *pool_addresses]
        for node in plan.nodes
    }


def port_address_bindings(design: Design) -> dict[str, list[str]]:
    """The manual address bindings the network phase adds to each node's segment port (allowlist mode).

    The ports exist only once the VMs do, so these are not in the infra body. The node's own address
    comes first: a port's manual bindings take precedence over what IP discovery learned (inference,
    see the reference), so leaving it out would cut the node off. Empty in segment-profiles mode,
    where SpoofGuard's allowlist is off and no binding is needed.
    """
    if design.spec.nsx.vip_mode != "allowlist":
        return {}
    return announced_by(design)


# ── the hierarchical body ───────────────────────────────────────────────────────────────────

# Order of the top-level children: what others reference goes first, so a server (or emulator)
# that applies children in order never meets a path that does not exist yet. Deletion reverses it.
_TOP_LEVEL_RANK = {"SpoofGuardProfile": 0, "IPDiscoveryProfile": 0, "Segment": 1, "Service": 3}
_SEGMENT_REFERENCE_RANK = 2
_DOMAIN_RANK = 4


def _wrapper(obj: NsxObject, delete: bool) -> dict[str, Any]:
    wrapper: dict[str, Any] = {"resource_type": f"Child{obj.resource_type}", obj.resource_type: copy.deepcopy(obj.body)}
    if delete:
        wrapper["marked_for_delete"] = True
    return wrapper


def _reference(target_type: str, object_id: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    # Descends into an existing parent without changing it (and fails if it does not exist).
    return {"resource_type": "ChildResourceReference", "id": object_id, "target_type": target_type,
            "children": children}


def infra_patch_body(objects: Sequence[NsxObject], delete: bool = False) -> dict[str, Any]:
    """One ``PATCH /policy/api/v1/infra`` body for any subset of the desired objects.

    ``delete=True`` marks every object's wrapper ``marked_for_delete`` (destroy). The domain is
    always a ``ChildResourceReference``: nsxkube never modifies it. Binding maps nest under their
    ``ChildSegment`` when the segment is in the subset; otherwise under a ``ChildResourceReference``
    with ``target_type: Segment`` — the hierarchical API's generic way to reach an existing parent
    (nsx-operator reaches VPC subnets and security policies the same way). A minimal ``ChildSegment``
    was rejected: a PATCH of it would create an empty segment if ours were gone, and bump the revision
    of a segment nsxkube did not mean to change.
    """
    _refuse_duplicates(objects)
    segments = {o.path: o for o in objects if o.resource_type == "Segment"}
    segment_children: dict[str, list[dict[str, Any]]] = {}
    domain_children: dict[str, list[dict[str, Any]]] = {}
    top_level: list[tuple[int, dict[str, Any]]] = []
    for obj in objects:
        if obj.parent_path == INFRA:
            rank = _TOP_LEVEL_RANK.get(obj.resource_type)
            if rank is None:
                raise ValueError(f"{obj.path}: no place for a {obj.resource_type} under /infra")
            top_level.append((rank, _wrapper(obj, delete)))
        elif obj.parent_path.startswith(f"{INFRA}/segments/"):
            segment_children.setdefault(obj.parent_path, []).append(_wrapper(obj, delete))
        elif obj.parent_path.startswith(f"{INFRA}/domains/"):
            domain_children.setdefault(obj.parent_path, []).append(_wrapper(obj, delete))
        else:
            raise ValueError(f"{obj.path}: parent {obj.parent_path} is not one nsxkube writes under")

    for parent, children in segment_children.items():
        children = _in_order(children, delete)
        if parent in segments:
            wrapper = next(w for _, w in top_level if w.get("Segment", {}).get("id") == segments[parent].id)
            wrapper["Segment"]["children"] = children
        else:
            top_level.append((_SEGMENT_REFERENCE_RANK, _reference("Segment", parent.rsplit("/", 1)[1], children)))
    for parent, children in domain_children.items():
        top_level.append((_DOMAIN_RANK, _reference("Domain", parent.rsplit("/", 1)[1], _in_order(children, delete))))

    ordered = [w for _, w in sorted(top_level, key=lambda item: item[0])]  # stable: input order within a rank
    return {"resource_type": "Infra", "children": _in_order(ordered, delete)}


def _in_order(children: list[dict[str, Any]], delete: bool) -> list[dict[str, Any]]:
    # Deleting, the referencing objects (policy, then groups…) go before what they reference.
    return list(reversed(children)) if delete else children


def _refuse_duplicates(objects: Sequence[NsxObject]) -> None:
    seen: set[str] = set()
    for obj in objects:
        if obj.path in seen:
            raise ValueError(f"{obj.path} appears twice")
        seen.add(obj.path)
