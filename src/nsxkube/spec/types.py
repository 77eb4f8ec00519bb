"""Small value types of cluster.yaml that pydantic does not have: address ranges, env-var names."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
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


# ---- names, hosts and paths --------------------------------------------------------------------
# Each refuses the empty string (after the model strips whitespace, so whitespace-only too),
# control characters and lengths no real system accepts: such a value would only fail later,
# far from cluster.yaml, inside vCenter, NSX or a rendered script.

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: object, what: str, longest: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be text ({what})")
    text = value.strip()
    if not text:
        raise ValueError(f"must not be empty ({what})")
    if _CONTROL.search(text):
        raise ValueError(f"must not hold control characters or line breaks ({what})")
    if len(text) > longest:
        raise ValueError(f"is {len(text)} characters long; at most {longest} ({what})")
    return text


def check_inventory_name(value: object) -> str:
    # vSphere: "names of inventory objects ... 80 characters or less"
    return _text(value, "a vSphere inventory name, as vCenter shows it", 80)


def check_folder_path(value: object) -> str:
    text = _text(value, "a VM folder path such as k8s/prod", 80 * 8)
    parts = text.strip("/").split("/")
    if any(not part.strip() for part in parts) or any(len(part) > 80 for part in parts):
        raise ValueError(f"{text!r} is not a folder path: names of at most 80 characters separated by '/'")
    return text


def check_nsx_id(value: object) -> str:
    text = _text(value, "an NSX object id as in its policy path", 255)
    if "/" in text or any(c.isspace() for c in text):
        raise ValueError(f"{text!r} is not an NSX id: the last part of the policy path, without '/' or spaces")
    return text


def check_host(value: object) -> str:
    """A DNS host name or an IPv4 address; something made of digits and dots must be an address."""
    text = _text(value, "a host name or an IPv4 address", 253)
    if re.fullmatch(r"[0-9.]+", text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise ValueError(f"{text!r} is neither an IPv4 address nor a host name") from None
    try:
        return check_dns_name(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an IPv4 address nor a host name such as ntp.example.com") from None


def check_endpoint(value: object) -> str:
    """``host``, ``host:port``, ``[IPv6]:port`` or ``https://host[:port][/path]``: what the providers parse."""
    from urllib.parse import urlsplit

    text = _text(value, "a host name or address, optionally with :port", 300)
    parts = urlsplit(text if "//" in text else f"//{text}")
    if parts.scheme not in ("", "https") or parts.username or parts.password:
        raise ValueError(f"{text!r}: write the host (and :port) only, https is implied; no credentials")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port (1-65535)") from None
    if port == 0:
        raise ValueError(f"{text!r} has an invalid port (1-65535)")
    host = parts.hostname or ""
    if ":" in host:  # [IPv6]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        return text
    check_host(host)
    return text


def check_file_path(value: object) -> str:
    return _text(value, "a file path", 4096)


def check_http_url(value: object) -> str:
    text = _text(value, "an http(s) URL", 2048)
    if not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", text):
        raise ValueError(f"{text!r} is not an http(s) URL without credentials, such as http://mirror.example.com/ubuntu")
    return text


def check_absolute_path(value: object) -> str:
    text = _text(value, "an absolute path on the nodes", 4096)
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not an absolute path (it starts with /)")
    return text


AbsolutePath = Annotated[str, BeforeValidator(check_absolute_path)]
InventoryName = Annotated[str, BeforeValidator(check_inventory_name)]
FolderPath = Annotated[str, BeforeValidator(check_folder_path)]
NsxId = Annotated[str, BeforeValidator(check_nsx_id)]
Host = Annotated[str, BeforeValidator(check_host)]
Endpoint = Annotated[str, BeforeValidator(check_endpoint)]
HttpUrl = Annotated[str, BeforeValidator(check_http_url)]
FilePath = Annotated[Path, BeforeValidator(lambda v: Path(check_file_path(v)) if not isinstance(v, Path) else v)]
Text = Annotated[str, BeforeValidator(lambda v: _text(v, "text", 255))]
