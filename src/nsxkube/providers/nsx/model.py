"""What the NSX provider reads, as frozen records. Observed objects start with ``Live``.

A `LiveObject` keeps the fields every policy object has (path, type, tags, who created it, its
protection) and the whole body as read; helpers below read the few typed fields the audit and
the diff need. Nothing here talks to NSX.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IPv4Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class LiveObject:
    path: str
    resource_type: str
    id: str
    display_name: str
    parent_path: str
    tags: tuple[tuple[str, str], ...] = ()
    protection: str = "NOT_PROTECTED"
    system_owned: bool = False
    create_user: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LiveObject:
        content = {k: v for k, v in body.items() if k != "children"}
        return cls(
            path=str(body.get("path", "")),
            resource_type=str(body.get("resource_type", "")),
            id=str(body.get("id", "")),
            display_name=str(body.get("display_name") or body.get("id", "")),
            parent_path=str(body.get("parent_path", "")),
            tags=tuple((str(t.get("scope", "")), str(t.get("tag", ""))) for t in body.get("tags") or ()),
            protection=str(body.get("_protection") or "NOT_PROTECTED"),
            system_owned=bool(body.get("_system_owned")),
            create_user=body.get("_create_user"),
            body=content,
        )

    def tag_values(self, scope: str) -> list[str]:
        return [tag for s, tag in self.tags if s == scope]

    @property
    def protected(self) -> bool:
        return self.protection in ("REQUIRE_OVERRIDE", "PROTECTED")

    def networks(self) -> list[IPv4Network]:
        """A segment's subnets (IPv4), from each `gateway_address` (e.g. 172.16.50.1/24)."""
        found = []
        for subnet in self.body.get("subnets") or ():
            try:
                interface = ipaddress.ip_interface(subnet.get("gateway_address", ""))
            except ValueError:
                continue
            if isinstance(interface, ipaddress.IPv4Interface):
                found.append(interface.network)
        return found


@dataclass(frozen=True)
class LiveInventory:
    """Everything one read of NSX found: policy objects by path, transport zones, MTU settings."""

    objects: Mapping[str, LiveObject]
    transport_zones: Mapping[str, LiveObject] = field(default_factory=dict)
    tep_mtu: int | None = None  # smallest uplink-profile MTU, else the switching config's physical_uplink_mtu
    gateway_mtu: int | None = None  # mtu of the policy global config
    manager: str = ""
    nsx_version: str = ""  # the manager's product_version, e.g. 4.2.1.0.0.24304122
    tep_mtu_source: str = ""  # where tep_mtu was read (an uplink profile or SwitchingGlobalConfig)

    def get(self, path: str) -> LiveObject | None:
        return self.objects.get(path) or self.transport_zones.get(path)

    def of_type(self, *resource_types: str) -> list[LiveObject]:
        return sorted((o for o in self.objects.values() if o.resource_type in resource_types), key=lambda o: o.path)

    def children_of(self, path: str, resource_type: str) -> list[LiveObject]:
        return [o for o in self.of_type(resource_type) if o.parent_path == path]


@dataclass(frozen=True)
class LiveVm:
    external_id: str  # vCenter's instance UUID
    display_name: str
    tags: tuple[tuple[str, str], ...]
    power_state: str = ""


@dataclass(frozen=True)
class LiveVif:
    owner_vm_id: str
    mac_address: str
    attachment_id: str | None


@dataclass(frozen=True)
class LivePort:
    path: str
    attachment_id: str | None
    address_bindings: tuple[tuple[str, str], ...]  # (ip_address, mac_address)
    protection: str = "NOT_PROTECTED"
