"""The audit of a live NSX against cluster.yaml: every conflict `nsx discover` reports and the
network phase refuses to write past. Pure: (design, inventory) → findings, each ok / warn / fail
with a detail and a hint. Who owns what comes from `providers.nsx.ownership`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from nsxkube.checks.nsx_ranges import range_findings
from nsxkube.design import Design
from nsxkube.findings import Finding, failures
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.ownership import Ownership, not_ours_reason, ownership_of
from nsxkube.render.nsx_objects import (
    desired_nsx_objects,
    domain_path,
    policy_path,
    segment_path,
    tier1_path,
    transport_zone_path,
)
from nsxkube.spec.types import IpRange

__all__ = ["Finding", "Ownership", "audit", "failures", "ownership_of"]

OVERLAY_TYPES = ("OVERLAY_STANDARD", "OVERLAY_ENS", "OVERLAY_BACKED")
FOREIGN_GATEWAY_OWNERS = ("tanzu-ncp", "nsx-operator")


def audit(design: Design, inventory: LiveInventory) -> list[Finding]:
    findings = [_transport_zone(design, inventory), _tier1(design, inventory), _domain(design, inventory)]
    if design.spec.nsx.segment.use_existing:
        findings += _existing_segment(design, inventory)
    findings += _overlaps(design, inventory)
    findings += _addresses(design, inventory)
    findings += range_findings(design, inventory)  # pod, service, VIP, pools against NSX's blocks and pools
    findings += _ids(design, inventory)
    findings += _names(design, inventory)
    findings.append(_tep_mtu(design, inventory))
    findings += _dfw_order(design, inventory)
    return findings


# ---- where the segment goes ---------------------------------------------------------------------


def _zone_label(zone: LiveObject) -> str:
    return f"{zone.id} ({zone.display_name})" if zone.display_name != zone.id else zone.id


def _transport_zone(design: Design, inventory: LiveInventory) -> Finding:
    """By id (what the segment's transport_zone_path names), else by display name: NSX gives zones made
    in the UI a UUID id, and people know them by name."""
    wanted = design.spec.nsx.transport_zone
    zone = inventory.transport_zones.get(transport_zone_path(design))
    if zone is None:
        named = sorted((z for z in inventory.transport_zones.values() if z.display_name == wanted),
                       key=lambda z: z.id)
        if len(named) > 1:
            return Finding("transport-zone", "fail", f"transport zone name {wanted!r} is ambiguous: "
                           f"{len(named)} zones carry it ({', '.join(z.id for z in named)})",
                           "set nsx.transport_zone to the id of the one the nodes use")
        if named:
            kind = str(named[0].body.get("tz_type", "unknown type"))
            return Finding("transport-zone", "fail", f"transport zone {wanted!r} is the display name of zone "
                           f"{named[0].id} ({kind}); the segment names its zone by id",
                           f"set nsx.transport_zone: {named[0].id}")
        known = ", ".join(sorted(_zone_label(z) for z in inventory.transport_zones.values()))
        return Finding("transport-zone", "fail", f"transport zone {wanted} does not exist (no zone has that id "
                       "or display name)", f"set nsx.transport_zone to an overlay zone{f' ({known})' if known else ''}")
    kind = str(zone.body.get("tz_type", "unknown type"))
    if kind not in OVERLAY_TYPES:
        return Finding("transport-zone", "fail", f"transport zone {wanted} is {kind}, not an overlay zone",
                       "the node segment needs an overlay (Geneve) transport zone")
    return Finding("transport-zone", "ok", f"transport zone {wanted} ({kind})")


def _tier1(design: Design, inventory: LiveInventory) -> Finding:
    wanted = design.spec.nsx.tier1
    gateway = inventory.get(tier1_path(design))
    if gateway is None:
        return Finding("tier-1", "fail", f"tier-1 gateway {wanted} does not exist",
                       "create it (connected to a tier-0) or set nsx.tier1 to an existing one")
    owner = ownership_of(gateway)
    if owner.owner in FOREIGN_GATEWAY_OWNERS:
        return Finding("tier-1", "warn", f"tier-1 gateway {wanted} is managed by {owner.label}",
                       "attach the nodes to a tier-1 of your own; vSphere with Tanzu may reconfigure this one")
    return Finding("tier-1", "ok", f"tier-1 gateway {wanted} ({owner.label})")


def _domain(design: Design, inventory: LiveInventory) -> Finding:
    domain = design.spec.nsx.domain
    if inventory.get(domain_path(design)) is None:
        return Finding("domain", "fail", f"policy domain {domain} does not exist", "use nsx.domain: default")
    return Finding("domain", "ok", f"policy domain {domain}")


def _existing_segment(design: Design, inventory: LiveInventory) -> Iterator[Finding]:
    spec = design.spec.nsx.segment
    live = inventory.get(segment_path(design))
    if live is None:
        yield Finding("existing-segment", "fail", f"segment {spec.name} does not exist (nsx.segment.use_existing)",
                      "create it, or set use_existing: false and let nsxkube create it")
        return
    if spec.cidr not in live.networks():
        nets = ", ".join(str(n) for n in live.networks()) or "no subnet"
        yield Finding("existing-segment", "fail", f"segment {spec.name} has {nets}, not {spec.cidr}",
                      "set nsx.segment.cidr to the segment's subnet")
        return
    yield Finding("existing-segment", "ok", f"segment {spec.name} ({ownership_of(live).label}) has {spec.cidr}")
    attached = live.body.get("connectivity_path")
    if attached != tier1_path(design):
        yield Finding("existing-segment", "warn", f"segment {spec.name} is attached to {attached or 'no gateway'}, "
                      f"not tier-1 {design.spec.nsx.tier1}", "set nsx.tier1 to the gateway it uses")


# ---- addresses ----------------------------------------------------------------------------------


def _other_segments(design: Design, inventory: LiveInventory) -> Iterator[tuple[LiveObject, ipaddress.IPv4Network]]:
    ours = segment_path(design)
    for segment in inventory.of_type("Segment"):
        if segment.path != ours:
            for network in segment.networks():
                yield segment, network


def free_network(design: Design, inventory: LiveInventory, tries: int = 256) -> ipaddress.IPv4Network | None:
    """The next network of the spec's size after it that no segment and no cluster range overlaps."""
    cidr, k8s = design.spec.nsx.segment.cidr, design.spec.kubernetes
    taken = [net for _, net in _other_segments(design, inventory)] + [k8s.pod_cidr, k8s.service_cidr]
    for step in range(1, tries + 1):
        start = int(cidr.network_address) + step * cidr.num_addresses
        if start + cidr.num_addresses > 2**32:
            return None
        candidate = ipaddress.IPv4Network((start, cidr.prefixlen))
        if candidate.is_private and not any(candidate.overlaps(t) for t in taken):
            return candidate
    return None


def _inspected(design: Design, inventory: LiveInventory) -> str:
    others = {seg.path for seg, _ in _other_segments(design, inventory)}
    return f"{len(others)} other segment(s) with subnets inspected"


def _overlaps(design: Design, inventory: LiveInventory) -> list[Finding]:
    """One finding per segment that overlaps the node network; the detail says how many were inspected."""
    cidr = design.spec.nsx.segment.cidr
    free = free_network(design, inventory)
    hint = "choose a free range for nsx.segment.cidr and the addresses in it" + (
        f", e.g. {free}" if free else "")
    inspected = _inspected(design, inventory)
    found = [
        Finding("segment-cidr", "fail", f"segment {seg.id} ({ownership_of(seg).label}) has {net}, which overlaps "
                f"the node network {cidr} ({inspected})", hint)
        for seg, net in _other_segments(design, inventory) if net.overlaps(cidr)
    ]
    return found or [Finding("segment-cidr", "ok", f"no other segment overlaps {cidr} ({inspected})")]


def _range_in(rng: IpRange, network: ipaddress.IPv4Network) -> bool:
    return int(rng.first) <= int(network.broadcast_address) and int(network.network_address) <= int(rng.last)


def _addresses(design: Design, inventory: LiveInventory) -> list[Finding]:
    """One finding per colliding segment, naming the cluster addresses inside it (not one per address)."""
    plan = design.ip_plan
    named = [(f"API VIP {plan.api_vip}", IpRange(plan.api_vip, plan.api_vip))]
    named += [(f"LoadBalancer pool {p.name} {p.range}", p.range) for p in plan.pools]
    named += [(f"node {n.name} {n.address}", IpRange(n.address, n.address)) for n in plan.nodes]
    found = []
    for seg, net in _other_segments(design, inventory):
        inside = [what for what, rng in named if _range_in(rng, net)]
        if inside:
            shown = ", ".join(inside[:4]) + (f" and {len(inside) - 4} more" if len(inside) > 4 else "")
            found.append(Finding(
                "addresses", "fail", f"{shown} {'is' if len(inside) == 1 else 'are'} inside segment {seg.id} {net} "
                f"({ownership_of(seg).label}): {len(inside)} of the cluster's {len(named)} addresses and ranges",
                "another segment answers for these addresses: move the VIP, pools and nodes to a free range"))
    return found or [Finding("addresses", "ok", f"none of the cluster's {len(named)} addresses and ranges is in "
                             f"another segment ({_inspected(design, inventory)})")]


# ---- ids and names ------------------------------------------------------------------------------


def _ids(design: Design, inventory: LiveInventory) -> list[Finding]:
    found = []
    desired = desired_nsx_objects(design)
    for obj in desired:
        live = inventory.get(obj.path)
        reason = not_ours_reason(live, design.name) if live else None
        if reason:
            found.append(Finding("ids", "fail", f"{obj.resource_type} {obj.path} already exists and {reason}",
                                 "rename ours in cluster.yaml (cluster name or segment name); nsxkube never adopts"))
    return found or [Finding("ids", "ok", f"none of the {len(desired)} object ids nsxkube uses is taken by others")]


def _names(design: Design, inventory: LiveInventory) -> list[Finding]:
    found = []
    for obj in desired_nsx_objects(design):
        name = obj.body.get("display_name")
        for live in inventory.of_type(obj.resource_type):
            if live.path != obj.path and live.display_name == name:
                found.append(Finding("names", "warn", f"display name {name!r} of {obj.resource_type} {obj.path} is "
                                     f"also used by {live.path} ({ownership_of(live).label})",
                                     "NSX allows it, but people will confuse the two in the UI"))
    return found or [Finding("names", "ok", "no display name collision")]


# ---- MTU and DFW order --------------------------------------------------------------------------


def _tep_mtu(design: Design, inventory: LiveInventory) -> Finding:
    mtu = design.mtu
    needed = mtu.node_mtu + mtu.nsx_overhead
    live = inventory.tep_mtu
    source = f" (from {inventory.tep_mtu_source})" if inventory.tep_mtu_source else ""
    if live is None:
        return Finding("tep-mtu", "warn", "could not read the TEP MTU (uplink host-switch profiles, "
                       "SwitchingGlobalConfig)", f"check in NSX that the host uplink MTU is at least {needed}")
    if live < needed:
        return Finding("tep-mtu", "fail", f"TEP MTU {live}{source} is too small for node MTU {mtu.node_mtu} "
                       f"(Geneve needs {mtu.nsx_overhead} more: {needed})",
                       f"lower network.node_mtu to {live - mtu.nsx_overhead} or raise the TEP MTU in NSX")
    if live != design.spec.nsx.tep_mtu:
        return Finding("tep-mtu", "warn", f"NSX's TEP MTU is {live}{source}, cluster.yaml says nsx.tep_mtu "
                       f"{mtu.tep_mtu}", f"set nsx.tep_mtu: {live} so the MTU chain matches NSX")
    return Finding("tep-mtu", "ok", f"TEP MTU {live}{source} carries node MTU {mtu.node_mtu} (needs {needed})")


def _dfw_order(design: Design, inventory: LiveInventory) -> list[Finding]:
    dfw = design.spec.nsx.dfw
    if not dfw.enabled:
        return []
    ours = policy_path(design)
    found = [
        Finding("dfw-order", "warn", f"policy {p.path} ({ownership_of(p).label}) has the same category {dfw.category} "
                f"and sequence number {dfw.sequence_number}", "pick another nsx.dfw.sequence_number: "
                "the order between the two is undefined")
        for p in inventory.of_type("SecurityPolicy")
        if p.path != ours and p.body.get("category") == dfw.category
        and p.body.get("sequence_number") == dfw.sequence_number
    ]
    return found or [Finding("dfw-order", "ok", f"no other {dfw.category} policy has sequence number "
                             f"{dfw.sequence_number}")]
