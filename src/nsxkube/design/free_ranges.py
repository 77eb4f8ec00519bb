"""Finding free address space: the next private network of a size that overlaps nothing taken, and
the first free run of addresses inside a network. Pure arithmetic on integers: never a list of the
addresses (a /8 is sixteen million of them).

Also the address ranges vSphere with Tanzu uses unless told otherwise, so that proposals can
avoid them before NSX shows them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from nsxkube.spec.types import IpRange

IPv4Network = ipaddress.IPv4Network

PRIVATE_SPACES = (IPv4Network("10.0.0.0/8"), IPv4Network("172.16.0.0/12"), IPv4Network("192.168.0.0/16"))

# vSphere with Tanzu (NSX networking) defaults: the namespace network (carved into /28 segments,
# behind SNAT unless NAT is off) and the Supervisor's own Service range.
TANZU_NAMESPACE_NETWORK = IPv4Network("10.244.0.0/20")
TANZU_SERVICE_CIDR = IPv4Network("10.96.0.0/23")
TANZU_DEFAULTS = (TANZU_NAMESPACE_NETWORK, TANZU_SERVICE_CIDR)


def free_network(prefixlen: int, taken: Iterable[IPv4Network], *, start: IPv4Network | None = None,
                 spaces: tuple[IPv4Network, ...] = PRIVATE_SPACES) -> IPv4Network | None:
    """The first /prefixlen network inside `spaces` that overlaps nothing in `taken`.

    The search begins at `start` (in the space that holds it) and goes on through the other
    spaces from their beginning, so a proposal stays near what the operator wrote.
    """
    blocked = sorted((int(n.network_address), int(n.broadcast_address)) for n in taken)
    size = 2 ** (32 - prefixlen)
    ordered = list(spaces)
    begin: dict[IPv4Network, int] = {}
    if start is not None:
        home = next((s for s in spaces if start.subnet_of(s)), None) if start.version == 4 else None
        if home is not None:
            ordered = [home, *(s for s in spaces if s != home)]
            begin[home] = int(start.network_address)
    for space in ordered:
        if prefixlen < space.prefixlen:
            continue
        candidate = _align_up(begin.get(space, int(space.network_address)), size)
        end = int(space.broadcast_address)
        while candidate + size - 1 <= end:
            clash = max((last for first, last in blocked if first <= candidate + size - 1 and candidate <= last),
                        default=None)
            if clash is None:
                return IPv4Network((candidate, prefixlen))
            candidate = _align_up(clash + 1, size)
    return None


def free_range_in(network: IPv4Network, size: int, taken: Iterable[IpRange]) -> IpRange | None:
    """The first `size` consecutive host addresses of `network` that no taken range touches."""
    first_host, last_host = int(network.network_address) + 1, int(network.broadcast_address) - 1
    cursor = first_host
    for rng in sorted(taken, key=lambda r: int(r.first)):
        if int(rng.first) - cursor >= size:
            break
        cursor = max(cursor, int(rng.last) + 1)
    if cursor + size - 1 > last_host:
        return None
    return IpRange(ipaddress.IPv4Address(cursor), ipaddress.IPv4Address(cursor + size - 1))


def as_range(network: IPv4Network) -> IpRange:
    return IpRange(network.network_address, network.broadcast_address)


def _align_up(value: int, size: int) -> int:
    return -(-value // size) * size
