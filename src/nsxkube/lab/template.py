"""The lab's node template: vcsim's sample VM turned into `ubuntu-2404-k8s-template` with
nsxkube's own `prepare_template`, so cloning in the lab goes through the same checks as on
vCenter (the simulator's VM has no OS; the lab's guests are simulated, see nsxkube.lab.guest)."""

from __future__ import annotations

import time
from typing import Any

from nsxkube.providers.vsphere.tasks import TaskWaiter

TEMPLATE = "ubuntu-2404-k8s-template"
SAMPLE_VM = "DC0_C0_RP0_VM0"  # the VM vcsim creates with -vm 1


def make_template(session: Any, *, source: str = SAMPLE_VM, name: str = TEMPLATE, old_simulator: bool = False,
                  timeout: float = 30.0) -> None:
    """Prepares ``source`` as the node template and renames it to ``name``; returns once vCenter
    lists it under that name."""
    from nsxkube.providers.vsphere.inventory import read_inventory
    from nsxkube.providers.vsphere.machines import read_vm
    from nsxkube.providers.vsphere.template import prepare_template

    def find(vm_name: str) -> list[Any]:
        inventory = read_inventory(session)
        found = inventory.find_vms(inventory.find_datacenter("DC0"), [vm_name]).get(vm_name, [])
        return [read_vm(session, e.ref, inventory.owner_field_key) for e in found]

    waiter = TaskWaiter(session)
    inventory = read_inventory(session)
    pool = next(e for e in inventory.by_kind("ResourcePool") if e.name == "Resources")
    raw = find(source)[0]
    prepare_template(session, waiter, raw, pool, timeout=timeout, step=lambda message: None)
    if old_simulator and find(source)[0].hardware_version < 15:
        # vcsim 0.24 (Debian's govmomi) stops UpgradeVM_Task at its own ESX version, vmx-13; only
        # that simulator takes a version in a reconfigure (vCenter sets it at creation or by upgrade)
        from pyVmomi import vim

        raw.ref.MarkAsVirtualMachine(pool=pool.ref)
        waiter.wait(raw.ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(version="vmx-15")), "lab template", timeout)
        raw.ref.MarkAsTemplate()
    waiter.wait(raw.ref.Rename_Task(name), "lab template", timeout)
    deadline = time.monotonic() + 5
    while not find(name) and time.monotonic() < deadline:
        time.sleep(0.05)
