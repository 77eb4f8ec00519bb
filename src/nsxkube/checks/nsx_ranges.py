"""The cluster's address ranges against what NSX routes, for `nsx discover`. Pure: (design, inventory)
→ findings, each naming the NSX objects it collides with and proposing a free range.

What NSX hands out or routes: segments' subnets, IP blocks (vSphere with Tanzu's namespace
networks, carved into /28 segments) and IP pools (its ingress and egress CIDRs, TEP pools). A
Tanzu namespace block sits behind SNAT, so its addresses never leave NSX, unless it is tagged
`ncp/no_snat` (the blocks NCP gives to namespaces with NAT off); any other block or pool is taken
as routed. Tanzu's own segments are behind SNAT unless carved from a routed block; anyone else's
segment is routed unless it lies in a block behind SNAT. (The network phase's preflight reads no
blocks or pools: there only segments count, judged by their owner.)

- node segment, API VIP, LoadBalancer pools against a routed block or pool: fail (another router
  answers for those addresses); against a block behind SNAT: warn (Tanzu may carve segments from it).
  Against other segments the audit's segment-cidr and addresses checks already answer.
- pod range: warn naming the NSX objects behind SNAT, fail when any of them is routed (pods'
  routes inside the cluster hide those NSX addresses from every pod).
- service range: a note (ClusterIPs never leave the nodes, but pods cannot reach those NSX
  addresses either).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from nsxkube.design import Design
from nsxkube.design.free_ranges import TANZU_DEFAULTS, as_range, free_network, free_range_in
from nsxkube.findings import Finding, Status
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.ownership import ownership_of
from nsxkube.render.nsx_objects import segment_path
from nsxkube.spec.types import IpRange

IPv4Network = ipaddress.IPv4Network
TANZU_OWNERS = ("tanzu-ncp", "nsx-operator")
POOL_SUBNET_TYPES = ("IpAddressPoolStaticSubnet", "IpAddressPoolBlockSubnet")


@dataclass(frozen=True)
class NsxRange:
    """A network NSX hands out or routes, the object it comes from, and whether it leaves NSX."""

    network: IPv4Network
    obj: LiveObject
    kind: str  # segment | IP block | IP pool
    routed: bool

    @property
    def name(self) -> str:
        return self.obj.parent_path.rsplit("/", 1)[1] if self.kind == "IP pool" else self.obj.id

    @property
    def label(self) -> str:
        way = "routed" if self.routed else "behind SNAT"
        return f"{self.kind} {self.name} {self.network} ({ownership_of(self.obj).label}, {way})"


def nsx_ranges(inventory: LiveInventory, *, skip_path: str = "") -> list[NsxRange]:
    """Every IPv4 network NSX knows of, but the segment at `skip_path` (the cluster's own)."""
    blocks = [NsxRange(net, block, "IP block", _block_is_routed(block))
              for block in inventory.of_type("IpAddressBlock") for net in _cidrs(block)]
    pools = [NsxRange(net, subnet, "IP pool", True)
             for subnet in inventory.of_type(*POOL_SUBNET_TYPES) for net in _cidrs(subnet)]
    routed_blocks = [b.network for b in blocks if b.routed]
    behind_snat = [b.network for b in blocks if not b.routed]
    segments = [NsxRange(net, seg, "segment", _segment_is_routed(seg, net, routed_blocks, behind_snat))
                for seg in inventory.of_type("Segment") if seg.path != skip_path for net in seg.networks()]
    return sorted([*blocks, *pools, *segments], key=lambda r: (int(r.network.network_address), r.obj.path))


def _segment_is_routed(segment: LiveObject, network: IPv4Network, routed_blocks: list[IPv4Network],
                       behind_snat: list[IPv4Network]) -> bool:
    """Tanzu's segments are behind SNAT unless carved from a routed (ncp/no_snat) block; an admin's
    segment is routed unless it lies in a block behind SNAT."""
    if any(network.subnet_of(b) for b in routed_blocks):
        return True
    if ownership_of(segment).owner in TANZU_OWNERS:
        return False
    return not any(network.subnet_of(b) for b in behind_snat)


def _block_is_routed(block: LiveObject) -> bool:
    if ownership_of(block).owner not in TANZU_OWNERS:
        return True  # an admin's block: nothing says it stays behind NAT
    return bool(block.tag_values("ncp/no_snat"))


def _cidrs(obj: LiveObject) -> list[IPv4Network]:
    texts = [obj.body.get("cidr"), *(obj.body.get("cidr_list") or ())]
    found = []
    for text in texts:
        try:
            network = ipaddress.ip_network(str(text), strict=False) if text else None
        except ValueError:
            continue
        if isinstance(network, IPv4Network):
            found.append(network)
    return found


def range_findings(design: Design, inventory: LiveInventory) -> list[Finding]:
    ranges = nsx_ranges(inventory, skip_path=segment_path(design))
    taken = [r.network for r in ranges]
    k8s, plan = design.spec.kubernetes, design.ip_plan
    ours = [plan.segment, k8s.pod_cidr, k8s.service_cidr]
    allocated = _allocated(design)
    not_segments = [r for r in ranges if r.kind != "segment"]

    def in_segment(check: str, what: str, rng: IpRange) -> Finding:
        hits = [r for r in not_segments if _touches(rng, r.network)]
        free = free_range_in(plan.segment, rng.size, [*allocated, *(as_range(n) for n in taken)])
        hint = (f"move it to free addresses of {plan.segment}, e.g. {free}" if free else
                f"no free addresses left in {plan.segment}: move nsx.segment.cidr first (routed-node-segment)")
        return _finding(check, what, hits, hint, fail_when_routed=True, nat="warn")

    segment_hits = [r for r in not_segments if r.network.overlaps(plan.segment)]
    free_segment = free_network(plan.segment.prefixlen, [*taken, k8s.pod_cidr, k8s.service_cidr], start=plan.segment)
    findings = [_finding("routed-node-segment", f"node segment {plan.segment}", segment_hits,
                         _suggest("nsx.segment.cidr (and the addresses in it)", free_segment),
                         fail_when_routed=True, nat="warn"),
                in_segment("routed-api-vip", f"API VIP {plan.api_vip}", IpRange(plan.api_vip, plan.api_vip))]
    findings += [in_segment("routed-lb-pools", f"LoadBalancer pool {p.name} {p.range}", p.range) for p in plan.pools]
    pod_hits = [r for r in ranges if r.network.overlaps(k8s.pod_cidr)]
    free_pods = free_network(k8s.pod_cidr.prefixlen, [*taken, *TANZU_DEFAULTS, *_others(ours, k8s.pod_cidr)],
                             start=k8s.pod_cidr)
    findings.append(_finding("pod-cidr-nsx", f"pod range {k8s.pod_cidr}", pod_hits,
                             _suggest("kubernetes.pod_cidr", free_pods), fail_when_routed=True, nat="warn"))
    service_hits = [r for r in ranges if r.network.overlaps(k8s.service_cidr)]
    free_services = free_network(k8s.service_cidr.prefixlen,
                                 [*taken, *TANZU_DEFAULTS, *_others(ours, k8s.service_cidr)], start=k8s.service_cidr)
    findings.append(_finding("service-cidr-nsx", f"service range {k8s.service_cidr}", service_hits,
                             _suggest("kubernetes.service_cidr", free_services), fail_when_routed=False, nat="ok"))
    return findings


def _finding(check: str, what: str, hits: list[NsxRange], hint: str, *, fail_when_routed: bool,
             nat: Status) -> Finding:
    if not hits:
        return Finding(check, "ok", f"{what} overlaps nothing NSX routes or hands out")
    routed = any(h.routed for h in hits)
    status: Status = "fail" if routed and fail_when_routed else nat
    prefix = "note: " if status == "ok" else ""
    consequence = {
        "fail": "NSX routes these addresses elsewhere",
        "warn": "not routed today, but NSX hands these addresses out",
        "ok": "ClusterIPs stay on the nodes, but pods cannot reach these NSX addresses",
    }[status]
    return Finding(check, status, f"{prefix}{what} overlaps {'; '.join(h.label for h in hits)}: {consequence}",
                   hint)


def _suggest(key: str, free: IPv4Network | IpRange | None) -> str:
    return f"set {key} to a free range, e.g. {free}" if free else f"set {key} to a range NSX does not use"


def _allocated(design: Design) -> list[IpRange]:
    plan = design.ip_plan
    return [IpRange(plan.gateway, plan.gateway), IpRange(plan.api_vip, plan.api_vip), *(p.range for p in plan.pools),
            *plan.dhcp_ranges, *(IpRange(n.address, n.address) for n in plan.nodes)]


def _others(ours: Iterable[IPv4Network], this: IPv4Network) -> list[IPv4Network]:
    return [n for n in ours if n != this]


def _touches(rng: IpRange, network: IPv4Network) -> bool:
    return int(rng.first) <= int(network.broadcast_address) and int(network.network_address) <= int(rng.last)


# ---- proposals for `nsxkube init --from-nsx` -----------------------------------------------------


@dataclass(frozen=True)
class RangeProposal:
    """Pod and service ranges for a new cluster.yaml, and why each moved from the default (if it did)."""

    pod_cidr: IPv4Network
    service_cidr: IPv4Network
    tanzu: bool
    pod_reason: str = ""
    service_reason: str = ""


def tanzu_found(inventory: LiveInventory) -> bool:
    """Whether vSphere with Tanzu (NCP or nsx-operator) has written anything to this NSX."""
    return any(ownership_of(o).owner in TANZU_OWNERS for o in inventory.objects.values())


def propose_ranges(inventory: LiveInventory, *, pod_cidr: IPv4Network, service_cidr: IPv4Network,
                   node_segment: IPv4Network) -> RangeProposal:
    """Keep each range when nothing in NSX (nor, with Tanzu present, Tanzu's defaults) overlaps it;
    otherwise the next free network of the same size after it."""
    ranges = nsx_ranges(inventory)
    tanzu = tanzu_found(inventory)
    defaults = [(n, "Tanzu's default " + ("namespace network" if n.prefixlen == 20 else "Service range"))
                for n in TANZU_DEFAULTS] if tanzu else []
    avoid = [(r.network, f"{r.kind} {r.name}") for r in ranges] + defaults

    def choose(wanted: IPv4Network, others: list[IPv4Network]) -> tuple[IPv4Network, str]:
        hits = [label for network, label in avoid if network.overlaps(wanted)]
        if not hits:
            return wanted, ""
        free = free_network(wanted.prefixlen, [n for n, _ in avoid] + others, start=wanted)
        if free is None:
            return wanted, f"{wanted} overlaps {'; '.join(hits)} and no free /{wanted.prefixlen} was found"
        return free, f"not {wanted}: it overlaps {', '.join(hits)}"

    pods, pod_reason = choose(pod_cidr, [node_segment, service_cidr])
    services, service_reason = choose(service_cidr, [node_segment, pods])
    return RangeProposal(pods, services, tanzu, pod_reason, service_reason)
