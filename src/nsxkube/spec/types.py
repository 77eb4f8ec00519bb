"""Small value types of cluster.yaml that pydantic does not have: address ranges, env-var names."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema


@dataclass(frozen=True, order=True)
class IpRange:
    """An inclusive IPv4 range, written ``A-B`` or as a CIDR (network and broadcast excluded)."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def addresses(self) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address(i) for i in range(int(self.first), int(self.last) + 1)]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, ipaddress.IPv4Address):
            return False
        return int(self.first) <= int(address) <= int(self.last)

    def overlaps(self, other: IpRange) -> bool:
        return int(self.first) <= int(other.last) and int(other.first) <= int(self.last)

    def inside(self, network: ipaddress.IPv4Network) -> bool:
        return self.first in network and self.last in network

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def parse_ip_range(value: object) -> IpRange:
    if isinstance(value, IpRange):
        return value
    if not isinstance(value, str):
        raise ValueError("expected an address range such as 172.16.50.200-172.16.50.250 or a CIDR")
    text = value.strip()
    try:
        if "/" in text:
            network = ipaddress.IPv4Network(text, strict=True)
            # by arithmetic: listing the hosts of 0.0.0.0/0 would take the machine's memory
            edge = 1 if network.num_addresses > 2 else 0
            return IpRange(network.network_address + edge, network.broadcast_address - edge)
        if "-" in text:
            left, right = (part.strip() for part in text.split("-", 1))
            first = ipaddress.IPv4Address(left)
            last = ipaddress.IPv4Address(right)
        else:
            first = last = ipaddress.IPv4Address(text)
    except ValueError as err:
        raise ValueError(f"{text!r} is not an IPv4 range (write A-B or a CIDR): {err}") from None
    if int(last) < int(first):
        raise ValueError(f"range {text!r} ends before it starts")
    return IpRange(first, last)


Range = Annotated[
    IpRange,
    BeforeValidator(parse_ip_range),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["172.16.50.200-172.16.50.250"]}),
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env_name(value: object) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, _), never the secret itself"
        )
    return value


EnvName = Annotated[str, BeforeValidator(check_env_name)]

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def check_dns_label(value: object) -> str:
    if not isinstance(value, str) or not _DNS_LABEL.match(value):
        raise ValueError(
            "must be a DNS-1123 label: lowercase letters, digits and '-', start and end alphanumeric, "
            "at most 63 characters"
        )
    return value


def check_dns_name(value: object) -> str:
    if not isinstance(value, str) or not _DNS_NAME.match(value.lower()):
        raise ValueError("must be a DNS name such as k8s-api.example.com")
    return value.lower()


DnsLabel = Annotated[str, BeforeValidator(check_dns_label)]
DnsName = Annotated[str, BeforeValidator(check_dns_name)]


def parse_cidr(value: object) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    text = str(value).strip()
    if "/" not in text:
        raise ValueError(f"{text!r} is not a CIDR: write it as 172.16.50.0/24")
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        try:
            loose = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 CIDR: {err}") from None
        raise ValueError(f"{text!r} has host bits set: did you mean {loose}?") from None


def parse_address(value: object) -> ipaddress.IPv4Address:
    if isinstance(value, ipaddress.IPv4Address):
        return value
    try:
        return ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


Cidr = Annotated[
    ipaddress.IPv4Network,
    BeforeValidator(parse_cidr),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["172.16.50.0/24"]}),
]
Address = Annotated[
    ipaddress.IPv4Address,
    BeforeValidator(parse_address),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["172.16.50.10"]}),
]
