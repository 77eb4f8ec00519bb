"""The compute inventory NSX learns from vCenter: virtual machines and their virtual NICs (VIFs).

It is not policy intent: nobody creates these through the Policy API. vCenter reports them, and a
test or the lab glue (`vms.attach_vm`) adds them here. Served as real NSX serves them:

    GET  /policy/api/v1/infra/realized-state/enforcement-points/default/virtual-machines
    POST /policy/api/v1/infra/realized-state/enforcement-points/default/virtual-machines?action=update_tags
         {"virtual_machine_id": <external_id>, "tags": [...]}  → 204; replaces the VM's tags
    GET  /api/v1/fabric/vifs?owner_vm_id=…&lport_attachment_id=…

A VM's `external_id` is vCenter's instance UUID; a VIF's `lport_attachment_id` is the
`attachment.id` of its segment port.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from nsxkube.lab.nsx import paging, schema
from nsxkube.lab.nsx.errors import NsxApiError, field_errors, invalid

POLICY_VMS = "/policy/api/v1/infra/realized-state/enforcement-points/default/virtual-machines"
FABRIC_VIFS = "/api/v1/fabric/vifs"
UPDATE_TAGS_FIELDS = {"virtual_machine_id": schema.STR, "tags": schema.arr(schema.struct("Tag"))}
VIF_FILTERS = ("owner_vm_id", "lport_attachment_id", "host_id", "vm_id")
MAX_TAGS = 30  # NSX keeps at most 30 tags on an object


class Inventory:
    def __init__(self) -> None:
        self._vms: dict[str, dict[str, Any]] = {}
        self._vifs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add_vm(self, external_id: str, display_name: str, *, tags: list[dict[str, str]] | None = None,
               host_id: str = "host-1") -> dict[str, Any]:
        vm = {
            "resource_type": "VirtualMachine", "id": external_id, "external_id": external_id,
            "display_name": display_name, "tags": list(tags or []), "host_id": host_id,
            "power_state": "VM_RUNNING", "type": "REGULAR", "local_id_on_host": display_name,
            "compute_ids": [f"instanceUuid:{external_id}", f"moIdOnHost:{display_name}"],
            "source": {"target_type": "HostNode", "target_id": host_id, "is_valid": True},
            "_last_sync_time": 0,
        }  # fmt: skip
        with self._lock:
            self._vms[external_id] = vm
        return copy.deepcopy(vm)

    def add_vif(self, owner_vm_id: str, device_key: str, mac_address: str, attachment_id: str) -> dict[str, Any]:
        vif = {
            "resource_type": "VirtualNetworkInterface", "external_id": f"{owner_vm_id}-{device_key}",
            "display_name": "Network adapter 1", "owner_vm_id": owner_vm_id, "device_key": device_key,
            "device_name": "Network adapter 1", "mac_address": mac_address, "lport_attachment_id": attachment_id,
            "host_id": self._vms.get(owner_vm_id, {}).get("host_id", "host-1"), "vm_local_id_on_host": owner_vm_id,
            "ip_address_info": [], "_last_sync_time": 0,
        }  # fmt: skip
        with self._lock:
            self._vifs[vif["external_id"]] = vif
        return copy.deepcopy(vif)

    def remove_vm(self, external_id: str) -> list[str]:
        """Forgets a VM and its VIFs (vCenter reported it deleted); returns the VIFs' attachment ids."""
        with self._lock:
            self._vms.pop(external_id, None)
            gone = [k for k, v in self._vifs.items() if v["owner_vm_id"] == external_id]
            return [self._vifs.pop(k)["lport_attachment_id"] for k in gone]

    def vm(self, external_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._vms.get(external_id)
            return copy.deepcopy(found) if found else None

    # ---- the API ---------------------------------------------------------------------------------

    def list_vms(self, query: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(v) for _, v in sorted(self._vms.items())]
        return paging.paginate(items, query, key="external_id")

    def list_vifs(self, query: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(v) for _, v in sorted(self._vifs.items())]
        for name in VIF_FILTERS:
            if query.get(name):
                field = "owner_vm_id" if name == "vm_id" else name
                items = [v for v in items if v.get(field) == query[name]]
        return paging.paginate(items, query, key="external_id")

    def update_tags(self, body: Any) -> None:
        """The tags replace the VM's tags (the real API's documented behaviour)."""
        if not isinstance(body, dict):
            raise field_errors(["the body must be a VirtualMachineTagsUpdate object"])
        problems = schema.struct_problems(UPDATE_TAGS_FIELDS, body)
        for key in ("virtual_machine_id", "tags"):
            if body.get(key) is None:
                problems.append(f"required property {key} is missing")
        if problems:
            raise field_errors(problems)
        if len(body["tags"]) > MAX_TAGS:
            raise invalid(f"a virtual machine can carry at most {MAX_TAGS} tags, got {len(body['tags'])}")
        with self._lock:
            vm = self._vms.get(body["virtual_machine_id"])
            if vm is None:
                raise NsxApiError(404, 600, f"Virtual machine with external id {body['virtual_machine_id']} "
                                  "could not be found.")
            vm["tags"] = [{"scope": t.get("scope", ""), "tag": t.get("tag", "")} for t in body["tags"]]
