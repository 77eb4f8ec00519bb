"""The node template: what a clone needs from it (checked), and turning a VM into it (prepare).

Requirements come from the node image (kubernetes-stack.md): hardware version ≥ 15, a
paravirtual SCSI controller and ``disk.EnableUUID = TRUE`` for the vSphere CSI driver; one
vmxnet3 NIC because every node's network config matches the vmxnet3 driver; a disk no larger
than the smallest node disk, since a clone can grow a disk but never shrink it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nsxkube.errors import ProviderError, UsageError
from nsxkube.findings import Finding, failures, passed_or_failed  # noqa: F401
from nsxkube.providers.vsphere.diff import gib
from nsxkube.providers.vsphere.model import KIB_PER_GIB, MIN_HARDWARE_VERSION, Entity, LiveVm
from nsxkube.providers.vsphere.tasks import TaskWaiter

PREPARE = "nsxkube template prepare <cluster.yaml> --vm {name}"


def check_template(vm: LiveVm, *, min_disk_gib: int) -> list[Finding]:
    """Every requirement, passed or not, with the fix for each failure (pure)."""
    prepare = PREPARE.format(name=vm.name)
    findings = [
        passed_or_failed("template", vm.is_template, "is a template" if vm.is_template else "is a VM, not a template",
                "" if vm.is_template else f"run `{prepare}`: it powers the VM off and marks it as a template"),
        passed_or_failed("hardware version", vm.hardware_version >= MIN_HARDWARE_VERSION, f"vmx-{vm.hardware_version}",
                "" if vm.hardware_version >= MIN_HARDWARE_VERSION else
                f"the vSphere CSI driver needs vmx-{MIN_HARDWARE_VERSION} or later: `{prepare}` upgrades it"),
    ]
    uuid = vm.extra_config.get("disk.EnableUUID", "")
    findings.append(passed_or_failed("disk.EnableUUID", uuid.upper() == "TRUE", f"= {uuid or 'unset'}",
                            "" if uuid.upper() == "TRUE" else
                            f"the CSI driver needs disk UUIDs in the guest: `{prepare}` sets it to TRUE"))
    disk = vm.boot_disk
    if disk is None:
        findings.append(passed_or_failed("disk", False, "the VM has no disk", "build the template with the OS on one disk"))
    else:
        pvscsi = disk.controller == "pvscsi"
        findings.append(passed_or_failed("SCSI controller", pvscsi, f"boot disk on {disk.controller}",
                                "" if pvscsi else "rebuild the template with a VMware Paravirtual SCSI controller "
                                "(the guest needs its driver from the first boot; nsxkube does not swap controllers)"))
        fits = disk.capacity_kib <= min_disk_gib * KIB_PER_GIB
        size = gib(disk.capacity_kib, KIB_PER_GIB)
        findings.append(passed_or_failed("disk size", fits, f"{size} GiB, nodes get {min_disk_gib} GiB or more",
                                "" if fits else f"clones grow a disk but never shrink it: set every role's disk_gib "
                                f"to at least {size}, or build the template with a smaller disk"))
    count = len(vm.nics)
    findings.append(passed_or_failed("NICs", count == 1, f"{count} NIC(s)", "" if count == 1 else
                            ("add one vmxnet3 NIC (nodes get one NIC on the node segment)" if count == 0 else
                             "remove all but one NIC: nodes get one NIC on the node segment")))
    if count:
        vmxnet3 = vm.nics[0].adapter == "vmxnet3"
        findings.append(passed_or_failed("NIC type", vmxnet3, vm.nics[0].adapter, "" if vmxnet3 else
                                f"the node network config matches the vmxnet3 driver: `{prepare}` replaces the NIC"))
    return findings




# ---- prepare -------------------------------------------------------------------------------------


def prepare_template(session: Any, waiter: TaskWaiter, vm: LiveVm, pool: Entity, *, timeout: float,
                     step: Callable[[str], None]) -> None:
    """Makes ``vm`` the node template: disk.EnableUUID, a vmxnet3 NIC, hardware ≥ vmx-15, powered
    off (guest shutdown when VMware Tools run), marked as template. Each change is reported."""
    from pyVmomi import vim

    if vm.owner or vm.owner_in_extra_config:
        raise UsageError(f"VM {vm.name} is a node of nsxkube cluster {vm.owner or vm.owner_in_extra_config}: "
                         "refusing to turn it into a template", hint="pass the VM you built the node image on")
    if vm.is_template:
        if not _needs_changes(vm):
            step(f"{vm.name} is a template already and needs no change")
            return
        vm.ref.MarkAsVirtualMachine(pool=pool.ref)
        step(f"turned template {vm.name} back into a VM to change it")
    elif vm.powered_on:
        _power_off(session, waiter, vm, timeout, step)
    spec, changes = vim.vm.ConfigSpec(), []
    if vm.extra_config.get("disk.EnableUUID", "").upper() != "TRUE":
        spec.extraConfig = [vim.option.OptionValue(key="disk.EnableUUID", value="TRUE")]
        changes.append("disk.EnableUUID = TRUE")
    if vm.nics and vm.nics[0].adapter != "vmxnet3":
        old = vm.nics[0].device
        new = vim.vm.device.VirtualVmxnet3(key=-1, backing=old.backing, addressType="generated",
                                           connectable=old.connectable)
        spec.deviceChange = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=old),
                             vim.vm.device.VirtualDeviceSpec(operation="add", device=new)]
        changes.append(f"NIC {vm.nics[0].adapter} → vmxnet3 on the same network")
    if changes:
        waiter.wait(vm.ref.ReconfigVM_Task(spec=spec), f"reconfigure {vm.name}", timeout)
        step(f"set {'; '.join(changes)}")
    if vm.hardware_version < MIN_HARDWARE_VERSION:
        target = f"vmx-{MIN_HARDWARE_VERSION}"
        waiter.wait(vm.ref.UpgradeVM_Task(version=target), f"upgrade {vm.name}", timeout)
        step(f"upgraded hardware vmx-{vm.hardware_version} → {target}")
    vm.ref.MarkAsTemplate()
    step(f"marked {vm.name} as template")


def _needs_changes(vm: LiveVm) -> bool:
    return (vm.extra_config.get("disk.EnableUUID", "").upper() != "TRUE" or vm.hardware_version < MIN_HARDWARE_VERSION
            or bool(vm.nics and vm.nics[0].adapter != "vmxnet3"))


def _power_off(session: Any, waiter: TaskWaiter, vm: LiveVm, timeout: float, step: Callable[[str], None]) -> None:
    if vm.tools_running:
        vm.ref.ShutdownGuest()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = session.read_objects([vm.ref], ["runtime.powerState"]).get(vm.moref, {})
            if state.get("runtime.powerState") == "poweredOff":
                step(f"shut {vm.name} down (guest shutdown)")
                return
            time.sleep(1.0)
        raise ProviderError(f"{vm.name} did not shut down within {timeout:g} s",
                            hint="shut the guest down yourself (sudo poweroff), then run prepare again")
    waiter.wait(vm.ref.PowerOffVM_Task(), f"power off {vm.name}", timeout)
    step(f"powered {vm.name} off (VMware Tools not running, so no guest shutdown)")


# ---- finding the VMs -------------------------------------------------------------------------------


def read_template(session: Any, vsphere: Any) -> LiveVm:
    """The spec's template (a VM with that name, template or not: the checks say which)."""
    from nsxkube.providers.vsphere.inventory import read_inventory
    from nsxkube.providers.vsphere.machines import read_vm

    inventory = read_inventory(session)
    entity = inventory.find_template(inventory.find_datacenter(vsphere.datacenter), vsphere.template)
    return read_vm(session, entity.ref, inventory.owner_field_key)


def read_vm_to_prepare(session: Any, vsphere: Any, name: str) -> tuple[LiveVm, Entity]:
    """The VM named ``name`` in the spec's datacenter, and the resource pool it returns to as a VM."""
    from nsxkube.providers.vsphere.inventory import listing, read_inventory
    from nsxkube.providers.vsphere.machines import read_vm

    inventory = read_inventory(session)
    datacenter = inventory.find_datacenter(vsphere.datacenter)
    found = inventory.find_vms(datacenter, [name]).get(name, [])
    if len(found) != 1:
        vms = [v.name for v in inventory.within(datacenter, "VirtualMachine")]
        raise UsageError(f"VM {name!r} {'not found' if not found else 'is not unique'} in datacenter {datacenter.name}",
                         hint=f"VMs there: {listing(vms)}")
    pool = inventory.find_resource_pool(inventory.find_cluster(datacenter, vsphere.cluster), vsphere.resource_pool)
    return read_vm(session, found[0].ref, inventory.owner_field_key), pool
