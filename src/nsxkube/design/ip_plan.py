"""The IP plan of the node segment: every node's name and address, the API VIP, the
LoadBalancer pools, DHCP ranges and the gateway — with every conflict between them found."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from nsxkube.spec.model import ClusterSpec, Role
from nsxkube.spec.problems import Problem
from nsxkube.spec.types import IpRange

IPv4 = ipaddress.IPv4Address
RoleName = Literal["control-plane", "worker"]
VM_NAME_LIMIT = 63


@dataclass(frozen=True)
class Node:
    name: str
    role: RoleName
    index: int
    address: IPv4
    cpus: int
    memory_gib: int
    disk_gib: int

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class Reservation:
    purpose: str
    range: IpRange


@dataclass(frozen=True)
class Pool:
    name: str
    range: IpRange


@dataclass(frozen=True)
class IpPlan:
    segment: ipaddress.IPv4Network
    gateway: IPv4
    api_vip: IPv4
    pools: tuple[Pool, ...]
    dhcp_ranges: tuple[IpRange, ...]
    nodes: tuple[Node, ...]
    vip_holder: str = "kube-vip"
    """network.api_vip_provider: what answers ARP for the VIP (kube-vip or keepalived)."""

    @property
    def prefix_length(self) -> int:
        return self.segment.prefixlen

    @property
    def control_planes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_control_plane)

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_control_plane)

    @property
    def announced_addresses(self) -> tuple[IpRange, ...]:
        """Addresses nodes answer ARP for besides their own: the VIP and every pool."""
        return (IpRange(self.api_vip, self.api_vip), *(p.range for p in self.pools))

    def reservations(self) -> tuple[Reservation, ...]:
        """The whole segment's use, in address order: what an operator reserves in IPAM."""
        rows = [Reservation("gateway", IpRange(self.gateway, self.gateway))]
        rows.append(Reservation(f"API VIP ({self.vip_holder})", IpRange(self.api_vip, self.api_vip)))
        rows += [Reservation(f"node {n.name}", IpRange(n.address, n.address)) for n in self.nodes]
        rows += [Reservation(f"LoadBalancer pool {p.name}", p.range) for p in self.pools]
        rows += [Reservation("DHCP", r) for r in self.dhcp_ranges]
        return tuple(sorted(rows, key=lambda r: (int(r.range.first), r.purpose)))


def derive_ip_plan(spec: ClusterSpec) -> tuple[IpPlan | None, list[Problem]]:
    """Allocate node addresses and check every address rule; errors leave the plan None."""
    segment = spec.nsx.segment.cidr
    if segment.num_addresses < 8:
        return None, [Problem("nsx.segment.cidr", f"{segment} is too small for a cluster", hint="use a /24")]
    checker = _SegmentChecker(segment, spec.nsx.segment.gateway or segment.network_address + 1)
    problems = checker.problems
    checker.check_host("nsx.segment.gateway", checker.gateway, "gateway")
    vip = spec.network.api_vip
    if checker.check_host("network.api_vip", vip, "API VIP") and vip == checker.gateway:
        problems.append(Problem("network.api_vip", f"API VIP {vip} is the segment gateway"))
    pools = _pools(spec, checker, vip)
    dhcp = _dhcp_ranges(spec, checker, vip, pools)
    reserved = _Reserved(checker.gateway, vip, pools, dhcp)
    roles: list[tuple[str, RoleName, Role]] = [
        ("nodes.control_planes", "control-plane", spec.nodes.control_planes),
        ("nodes.workers", "worker", spec.nodes.workers),
    ]
    problems += _name_problems(spec, roles)
    explicit, taken = _explicit_addresses(roles, checker, reserved)
    last_host = segment.broadcast_address - 1
    default_range = IpRange(IPv4(int(vip) + 1), last_host) if vip in segment and vip < last_host else None
    allocation_range = spec.nodes.address_range or default_range
    if spec.nodes.address_range is not None:
        checker.check_range("nodes.address_range", spec.nodes.address_range, "node address range")
    needed = sum(role.count for key, _, role in roles if key not in explicit)
    allocated = _allocate(allocation_range, needed, reserved, set(taken)) if allocation_range else []
    if needed and len(allocated) < needed:
        where = str(allocation_range) if allocation_range else "nowhere"
        problems.append(
            Problem("nodes.address_range", f"{needed} node addresses are needed but {where} has only "
                    f"{len(allocated)} free", hint="widen nodes.address_range or the segment, or shrink a pool")
        )
    if problems:
        return None, problems
    nodes: list[Node] = []
    free = iter(allocated)
    for key, role_name, role in roles:
        addresses = explicit.get(key) or [next(free) for _ in range(role.count)]
        nodes += [Node(f"{spec.name}-{role.name_prefix}-{index}", role_name, index, address, role.cpus,
                       role.memory_gib, role.disk_gib) for index, address in enumerate(addresses, start=1)]
    return IpPlan(segment, checker.gateway, vip, tuple(pools), tuple(dhcp), tuple(nodes),
                  spec.network.api_vip_provider), problems


class _SegmentChecker:
    """Where an address or range may sit in the node segment; every finding lands in ``problems``."""

    def __init__(self, segment: ipaddress.IPv4Network, gateway: IPv4) -> None:
        self.segment, self.gateway = segment, gateway
        self.usable = IpRange(segment.network_address + 1, segment.broadcast_address - 1)
        self.problems: list[Problem] = []

    def check_host(self, key: str, address: IPv4, what: str) -> bool:
        segment = self.segment
        if address not in segment:
            self.problems.append(Problem(key, f"{what} {address} is outside the node segment {segment}"))
        elif address == segment.network_address:
            self.problems.append(Problem(key, f"{what} {address} is the segment's network address"))
        elif address == segment.broadcast_address:
            self.problems.append(Problem(key, f"{what} {address} is the segment's broadcast address"))
        else:
            return True
        return False

    def check_range(self, key: str, rng: IpRange, what: str) -> bool:
        if not rng.inside(self.segment):
            self.problems.append(Problem(key, f"{what} {rng} is not inside the node segment {self.segment}"))
        elif not rng.inside(self.usable):
            self.problems.append(Problem(key, f"{what} {rng} includes the network or broadcast address of "
                                              f"{self.segment}"))
        elif self.gateway in rng:
            self.problems.append(Problem(key, f"{what} {rng} includes the gateway {self.gateway}"))
        else:
            return True
        return False


def _pools(spec: ClusterSpec, checker: _SegmentChecker, vip: IPv4) -> list[Pool]:
    pools: list[Pool] = []
    seen_names: set[str] = set()
    problems = checker.problems
    for i, pool in enumerate(spec.network.loadbalancer_pools):
        key = f"network.loadbalancer_pools[{i}]"
        if pool.name in seen_names:
            problems.append(Problem(f"{key}.name", f"duplicate pool name '{pool.name}'", hint="names must be unique"))
        seen_names.add(pool.name)
        if not checker.check_range(f"{key}.range", pool.range, f"pool {pool.name}"):
            continue
        if vip in pool.range:
            problems.append(Problem(f"{key}.range", f"pool {pool.name} {pool.range} contains the API VIP {vip}",
                                    hint="the VIP must stay outside every LoadBalancer pool"))
        for other in pools:
            if pool.range.overlaps(other.range):
                problems.append(Problem(f"{key}.range", f"pool {pool.name} {pool.range} overlaps pool {other.name}"))
        pools.append(Pool(pool.name, pool.range))
    return pools


def _dhcp_ranges(spec: ClusterSpec, checker: _SegmentChecker, vip: IPv4, pools: list[Pool]) -> list[IpRange]:
    dhcp: list[IpRange] = []
    problems = checker.problems
    for i, rng in enumerate(spec.nsx.segment.dhcp_ranges):
        key = f"nsx.segment.dhcp_ranges[{i}]"
        if not checker.check_range(key, rng, "DHCP range"):
            continue
        if vip in rng:
            problems.append(Problem(key, f"DHCP range {rng} contains the API VIP {vip}"))
        problems += [Problem(key, f"DHCP range {rng} overlaps LoadBalancer pool {pool.name}")
                     for pool in pools if rng.overlaps(pool.range)]
        problems += [Problem(key, f"DHCP range {rng} overlaps DHCP range {other}")
                     for other in dhcp if rng.overlaps(other)]
        dhcp.append(rng)
    return dhcp


class _Reserved:
    """What an address of the segment is already used for (called with each candidate address)."""

    def __init__(self, gateway: IPv4, vip: IPv4, pools: list[Pool], dhcp: list[IpRange]) -> None:
        self.gateway, self.vip, self.pools, self.dhcp = gateway, vip, pools, dhcp

    def __call__(self, address: IPv4) -> str | None:
        if address == self.gateway:
            return "the gateway"
        if address == self.vip:
            return "the API VIP"
        for pool in self.pools:
            if address in pool.range:
                return f"LoadBalancer pool {pool.name}"
        for rng in self.dhcp:
            if address in rng:
                return f"DHCP range {rng}"
        return None


def _name_problems(spec: ClusterSpec, roles: list[tuple[str, RoleName, Role]]) -> list[Problem]:
    problems = []
    nodes = spec.nodes
    if nodes.control_planes.name_prefix == nodes.workers.name_prefix:
        problems.append(
            Problem("nodes.workers.name_prefix",
                    f"control planes and workers share the name prefix '{nodes.workers.name_prefix}': "
                    "VM names would repeat", hint="give each role its own prefix")
        )
    longest = max(len(f"{spec.name}-{role.name_prefix}-{max(role.count, 1)}") for _, _, role in roles)
    if longest > VM_NAME_LIMIT:
        problems.append(
            Problem("name", f"VM names would be {longest} characters, over the {VM_NAME_LIMIT} of a DNS label",
                    hint="shorten the cluster name or the name prefixes")
        )
    return problems


def _explicit_addresses(roles: list[tuple[str, RoleName, Role]], checker: _SegmentChecker,
                        reserved: _Reserved) -> tuple[dict[str, list[IPv4]], dict[IPv4, str]]:
    """The addresses cluster.yaml lists per role (checked), and which key took each: allocation
    avoids them."""
    problems = checker.problems
    taken: dict[IPv4, str] = {}
    explicit: dict[str, list[IPv4]] = {}
    for key, _, role in roles:
        if role.addresses and len(role.addresses) != role.count:
            problems.append(
                Problem(f"{key}.addresses", f"{len(role.addresses)} addresses listed for {role.count} nodes",
                        hint="list one address per node, or none to allocate from nodes.address_range")
            )
            continue
        for i, address in enumerate(role.addresses):
            akey = f"{key}.addresses[{i}]"
            if not checker.check_host(akey, address, "node address"):
                continue
            conflict = reserved(address)
            if conflict:
                problems.append(Problem(akey, f"node address {address} is {conflict}"))
            elif address in taken:
                problems.append(Problem(akey, f"node address {address} is already used by {taken[address]}"))
            taken[address] = key
        if role.addresses:
            explicit[key] = list(role.addresses)
    return explicit, taken


def _allocate(rng: IpRange, needed: int, reserved_by, taken: set[IPv4]) -> list[IPv4]:
    found: list[IPv4] = []
    for address in _walk(rng):
        if len(found) == needed:
            break
        if address in taken or reserved_by(address):
            continue
        found.append(address)
    return found


def _walk(rng: IpRange) -> Iterator[IPv4]:
    for value in range(int(rng.first), int(rng.last) + 1):
        yield IPv4(value)
