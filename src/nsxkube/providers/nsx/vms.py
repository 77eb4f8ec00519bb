"""The node VMs as NSX sees them, and the two writes the node bindings need.

Finding a node's segment port: VM (by vCenter instance UUID = NSX `external_id`, or by name) →
its VIFs (`GET /api/v1/fabric/vifs?owner_vm_id=`) → the segment port whose `attachment.id` is the
VIF's `lport_attachment_id`. Writes: a port's manual `address_bindings` (read, add, PUT with the
read `_revision`; a 412 re-reads), and a VM's tags (`POST …/virtual-machines?action=update_tags`,
which REPLACES the tags: the VM's other tags are always sent back with ours).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.model import LivePort, LiveVif, LiveVm

VIRTUAL_MACHINES = "/infra/realized-state/enforcement-points/default/virtual-machines"
VIFS = "/api/v1/fabric/vifs"

Binding = tuple[str, str]  # (ip_address, mac_address)


def _tags(raw: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(t.get("scope", "")), str(t.get("tag", ""))) for t in raw or () if isinstance(t, dict))


def list_vms(client: NsxClient) -> list[LiveVm]:
    return [LiveVm(str(vm.get("external_id")), str(vm.get("display_name", "")), _tags(vm.get("tags")),
                   str(vm.get("power_state", ""))) for vm in client.list_objects(VIRTUAL_MACHINES)]


def list_vifs(client: NsxClient, owner_vm_id: str) -> list[LiveVif]:
    return [LiveVif(str(v.get("owner_vm_id")), str(v.get("mac_address", "")).lower(), v.get("lport_attachment_id"))
            for v in client.list_objects(VIFS, {"owner_vm_id": owner_vm_id})]


def attachment_owners(client: NsxClient) -> dict[str, str]:
    """Every VIF NSX knows: its port attachment id → the owning VM's external id (one paged list)."""
    return {str(v["lport_attachment_id"]): str(v.get("owner_vm_id")) for v in client.list_objects(VIFS)
            if v.get("lport_attachment_id")}


def live_port(body: dict[str, Any]) -> LivePort:
    bindings = tuple((str(b.get("ip_address")), str(b.get("mac_address", "")).lower())
                     for b in body.get("address_bindings") or ())
    return LivePort(str(body.get("path")), (body.get("attachment") or {}).get("id"), bindings,
                    str(body.get("_protection") or "NOT_PROTECTED"))


def list_ports(client: NsxClient, segment_path: str) -> list[LivePort]:
    return [live_port(p) for p in client.list_objects(f"{segment_path}/ports")]


def update_port_bindings(client: NsxClient, port_path: str, wanted: Sequence[Binding]) -> None:
    """Add the bindings the port lacks; keep every binding it has (realized ones cannot be removed)."""

    def add_missing(port: dict[str, Any]) -> dict[str, Any] | None:
        have = {(str(b.get("ip_address")), str(b.get("mac_address", "")).lower()) for b in port.get("address_bindings")
                or ()}
        missing = [b for b in wanted if b not in have]
        if not missing:
            return None
        added = [{"ip_address": ip, "mac_address": mac} for ip, mac in missing]
        return {**port, "address_bindings": [*(port.get("address_bindings") or []), *added]}

    client.update_object(port_path, add_missing)


def update_vm_tags(client: NsxClient, vm: LiveVm, tags: Sequence[tuple[str, str]]) -> None:
    """Set exactly `tags` on the VM (callers pass its current tags plus theirs)."""
    client.request("POST", VIRTUAL_MACHINES, params={"action": "update_tags"},
                   json={"virtual_machine_id": vm.external_id, "tags": [{"scope": s, "tag": t} for s, t in tags]})
