"""What NSX and vCenter tell each other on real infrastructure, done for the lab's two simulators.

* A realized overlay segment appears in vCenter as an NSX-backed distributed port group of the
  same name (backing type ``nsx``, ``segmentId`` = the segment's policy path) — so the machines
  phase finds ``vsphere.network`` only once the network phase has created the segment, as on
  vCenter 7+ with NSX on a VDS. A segment that is deleted takes its port group with it.
* A VM that powers on with its NIC on such a port group appears in NSX's inventory, with its VIF
  and a segment port (`NsxEmulator.attach_vm`); a VM that is deleted leaves NSX again.

nsxkube never does either of these itself; without them the lab could not show the machines and
network-bindings phases working together.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from nsxkube.lab.guest import BootedVm
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.realization import effective_state

SEGMENTS_PREFIX = "/infra/segments/"


class NsxVcenterBridge:
    def __init__(self, emulator: NsxEmulator, session: Any, *, switch_name: str | None = None) -> None:
        self.emulator = emulator
        self.session = session
        self.switch_name = switch_name  # None: the only distributed switch (vcsim has one, DVS0)
        self.published: dict[str, Any] = {}  # segment path → its port group (managed object)
        self.errors: list[str] = []
        self._lock = threading.Lock()

    # ---- segments → port groups ----------------------------------------------------------------

    def sync_segments(self) -> None:
        """Publishes realized segments that have no port group yet; removes those of deleted ones."""
        from pyVmomi import vim

        objects = self.emulator.store.committed()
        segments = {p: o for p, o in objects.items() if o.get("resource_type") == "Segment"
                    and p.startswith(SEGMENTS_PREFIX) and p.count("/") == 3}
        with self._lock:
            for path, segment in sorted(segments.items()):
                if path in self.published:
                    continue
                if effective_state(objects, path, self.emulator.realizer).state != "REALIZED":
                    continue
                spec = vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
                    name=segment.get("display_name") or path.rsplit("/", 1)[1], type="ephemeral", numPorts=0,
                    backingType="nsx", segmentId=path,
                    logicalSwitchUuid=str(uuid.uuid5(uuid.NAMESPACE_URL, segment.get("unique_id", path))))
                before = self._portgroups()
                self._wait(self._switch().AddDVPortgroup_Task([spec]))
                added = [pg for moref, pg in self._portgroups().items() if moref not in before]
                self.published[path] = added[0] if added else None
            for path in [p for p in self.published if p not in segments]:
                portgroup = self.published.pop(path)
                if portgroup is not None:
                    self._wait(portgroup.Destroy_Task())

    def segment_of(self, portgroup_key: str | None) -> str | None:
        """The segment id behind a published port group's key, or None."""
        with self._lock:
            for path, portgroup in self.published.items():
                if portgroup is not None and portgroup_key in (portgroup._moId, getattr(portgroup, "key", None)):
                    return path.rsplit("/", 1)[1]
        return None

    # ---- VMs → NSX inventory ------------------------------------------------------------------

    def vm_booted(self, vm: BootedVm) -> None:
        segment = self.segment_of(vm.portgroup_key)
        if segment is None:
            return  # not on an NSX segment: NSX does not learn about it
        self.emulator.attach_vm(vm.name, segment, external_id=vm.instance_uuid or None, mac=vm.mac)

    def vm_gone(self, vm: BootedVm) -> None:
        self.emulator.detach_vm(vm.instance_uuid)

    # ---- vCenter helpers -------------------------------------------------------------------------

    def _switch(self) -> Any:
        from pyVmomi import vim

        for switch, props in self.session.read_view(self.session.content.rootFolder,
                                                    {vim.DistributedVirtualSwitch: ["name"]}):
            if self.switch_name in (None, props.get("name")):
                return switch
        raise RuntimeError(f"vcsim has no distributed switch {self.switch_name or ''}")

    def _portgroups(self) -> dict[str, Any]:
        """moref → port group (vcsim does not serve config.segmentId back, so new ones are found
        by what was not there before)."""
        from pyVmomi import vim

        rows = self.session.read_view(self.session.content.rootFolder, {vim.dvs.DistributedVirtualPortgroup: ["name"]})
        return {pg._moId: pg for pg, _ in rows}

    def _wait(self, task: Any) -> None:
        from nsxkube.providers.vsphere.tasks import TaskWaiter

        TaskWaiter(self.session).wait(task, "lab: NSX port group", 30)
