"""Lab glue: what vCenter and NSX do when a VM's NIC joins a segment — the VM and its VIF appear in
NSX's inventory, and NSX creates a segment port whose attachment is the VIF. nsxkube itself never
creates ports; tests and the lab use this to stand in for vCenter (the machines phase against
vcsim cannot reach the emulator).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nsxkube.lab.nsx.api import note_changes
from nsxkube.lab.nsx.errors import NsxApiError
from nsxkube.lab.nsx.presets import plant
from nsxkube.lab.nsx.transaction import Actor

if TYPE_CHECKING:
    from nsxkube.lab.nsx.api import NsxApi

# NSX creates VIF ports itself: not a principal identity, so not protected, and not system-owned
# (admins add address bindings and tags to these ports).
PORT_CREATOR = Actor(user="nsx_policy", trusted=True)
FIRST_NIC_DEVICE_KEY = "4000"


@dataclass(frozen=True)
class LabVm:
    name: str
    external_id: str  # vCenter's instance UUID
    mac: str
    attachment_id: str
    port_path: str


def vmware_mac(name: str) -> str:
    """A stable MAC in VMware's 00:50:56 range, derived from the VM name."""
    digest = hashlib.sha256(name.encode()).digest()
    return "00:50:56:" + ":".join(f"{b:02x}" for b in (digest[0] & 0x3F, digest[1], digest[2]))


def attach_vm(api: NsxApi, name: str, segment_id: str, *, external_id: str | None = None,
              mac: str | None = None, tags: list[dict[str, str]] | None = None) -> LabVm:
    """A powered-on VM `name` with one NIC on `segment_id`: inventory VM + VIF + segment port."""
    segment_path = f"/infra/segments/{segment_id}"
    if api.store.view(segment_path) is None:
        raise NsxApiError(404, 600, f"segment {segment_path} does not exist: create it before attaching VMs")
    external_id = external_id or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.vm.lab"))
    mac = (mac or vmware_mac(name)).lower()
    attachment_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{external_id}/{FIRST_NIC_DEVICE_KEY}"))
    api.inventory.add_vm(external_id, name, tags=tags)
    api.inventory.add_vif(external_id, FIRST_NIC_DEVICE_KEY, mac, attachment_id)
    port_path = f"{segment_path}/ports/{attachment_id}"
    port = {"display_name": f"{name}/{name}.vmx@{attachment_id}", "attachment": {"id": attachment_id, "type": "PARENT"}}
    note_changes(api.realizer, plant(api.store, PORT_CREATOR, [(port_path, port)]))
    return LabVm(name, external_id, mac, attachment_id, port_path)


def detach_vm(api: NsxApi, external_id: str) -> list[str]:
    """VM `external_id` was deleted in vCenter: NSX forgets it and removes its segment ports.
    Returns the policy paths of the ports removed."""
    attachments = set(api.inventory.remove_vm(external_id))
    ports = [p for p, o in api.store.committed().items()
             if o.get("resource_type") == "SegmentPort" and (o.get("attachment") or {}).get("id") in attachments]
    if ports:
        with api.store.transaction(PORT_CREATOR) as tx:
            for path in ports:
                tx.delete(path, subtree=True)
        note_changes(api.realizer, tx.changes)
    return sorted(ports)
