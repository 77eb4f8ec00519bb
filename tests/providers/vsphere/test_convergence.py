"""The machines diff against what vcsim (a real vCenter API server) answers: after `destroy` and
`apply` in the same lab, and after someone moves a NIC, rewrites guestinfo or removes a disk, plan
names the drift and apply converges (or says why only a rebuild can)."""

from __future__ import annotations

from typing import Any

import pytest

from nsxkube.phases.machines import PHASE
from nsxkube.pipeline import runner
from nsxkube.pipeline.change import Change
from tests.providers.vsphere.lab import VsphereLab

pytestmark = pytest.mark.slow

GIB_KIB = 1024 * 1024


def apply(lab: VsphereLab) -> runner.RunResult:
    ctx = lab.context()
    with lab.guest(ctx.design) as guest:
        result = runner.apply(ctx, [PHASE], "cluster.yaml")
    assert not guest.errors, guest.errors
    assert result.ok, result.phases[0].error
    return result


def planned(lab: VsphereLab) -> dict[str, Change]:
    return {c.name: c for c in runner.observe_and_plan(lab.context(), PHASE)[1] if c.kind == "vm"}


def assert_converged(lab: VsphereLab) -> None:
    vms = planned(lab)
    assert len(vms) == 5 and all(c.action == "unchanged" for c in vms.values()), [c.one_line() for c in vms.values()]
    design = lab.context().design
    for node in design.ip_plan.nodes:
        vm = lab.vm(node.name)
        assert [d.capacity_kib for d in vm.disks] == [node.disk_gib * GIB_KIB], node.name
        assert [n.network for n in vm.nics] == [lab.entity("DistributedVirtualPortgroup", "DC0_DVPG0").moref]


def reconfigure(lab: VsphereLab, vm: Any, **spec: Any) -> None:
    from pyVmomi import vim

    lab.wait(vm.ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(**spec)))


def test_destroy_then_apply_in_the_same_lab_converges(vsphere_lab: VsphereLab) -> None:
    apply(vsphere_lab)
    assert_converged(vsphere_lab)
    destroyed = runner.destroy(vsphere_lab.context(assume_yes=True), [PHASE], confirm=lambda changes: True)
    assert destroyed.ok, destroyed.phases[0].error
    # vcsim took a disk edit in the CloneSpec literally: the clones' disks were the template's own file,
    # which destroy deleted; every later clone came out without a disk and still read as "up to date"
    apply(vsphere_lab)
    assert_converged(vsphere_lab)


def test_a_nic_moved_to_another_network_is_moved_back(vsphere_lab: VsphereLab) -> None:
    import copy

    from pyVmomi import vim

    apply(vsphere_lab)
    worker = vsphere_lab.vm("k8s-prod-worker-1")
    nic = copy.copy(worker.nics[0].device)
    other = vsphere_lab.entity("Network", "VM Network")
    nic.backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(network=other.ref, deviceName="VM Network")
    reconfigure(vsphere_lab, worker, deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic)])
    assert vsphere_lab.vm("k8s-prod-worker-1").nics[0].network == other.moref

    change = planned(vsphere_lab)["k8s-prod-worker-1"]
    assert (change.action, change.fields) == ("update", (f"network {other.moref}→DC0_DVPG0",))
    apply(vsphere_lab)
    assert_converged(vsphere_lab)
    assert vsphere_lab.vm("k8s-prod-worker-1").moref == worker.moref  # moved in place, not re-created


def test_guestinfo_is_rewritten_on_a_stopped_vm_and_left_to_a_rebuild_on_a_running_one(vsphere_lab: VsphereLab) -> None:
    from pyVmomi import vim

    apply(vsphere_lab)
    worker = vsphere_lab.vm("k8s-prod-worker-2")
    reconfigure(vsphere_lab, worker, extraConfig=[vim.option.OptionValue(key="guestinfo.userdata", value="H4sIold")])
    running = planned(vsphere_lab)["k8s-prod-worker-2"]
    assert (running.action, running.fields) == ("manual", ("guestinfo userdata",))
    assert "rebuild the node" in running.detail

    vsphere_lab.wait(worker.ref.PowerOffVM_Task())
    stopped = planned(vsphere_lab)["k8s-prod-worker-2"]
    assert (stopped.action, stopped.fields) == ("update", ("guestinfo userdata", "power on"))
    apply(vsphere_lab)
    assert_converged(vsphere_lab)


def test_a_vm_without_its_disk_is_not_up_to_date(vsphere_lab: VsphereLab) -> None:
    from pyVmomi import vim

    apply(vsphere_lab)
    worker = vsphere_lab.vm("k8s-prod-worker-1")
    vsphere_lab.wait(worker.ref.PowerOffVM_Task())
    remove = vim.vm.device.VirtualDeviceSpec(operation="remove", device=worker.disks[0].device)
    reconfigure(vsphere_lab, worker, deviceChange=[remove])
    assert vsphere_lab.vm("k8s-prod-worker-1").disks == ()
    change = planned(vsphere_lab)["k8s-prod-worker-1"]
    assert (change.action, change.fields) == ("manual", ("disk missing",))
    assert "delete the VM" in change.detail
