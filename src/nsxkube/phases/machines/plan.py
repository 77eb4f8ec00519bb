"""machines, the pure half: the node VMs the design wants and the changes that take vCenter there."""

from __future__ import annotations

from dataclasses import dataclass

from nsxkube.design import Design
from nsxkube.pipeline.change import Change
from nsxkube.providers.vsphere import diff as vdiff
from nsxkube.providers.vsphere.model import MIB_PER_GIB, AntiAffinityRule, LiveRule, LiveVm, Machine, NodeVm, Placement
from nsxkube.providers.vsphere.observe import LiveState


@dataclass
class MachinesSnapshot:
    state: LiveState
    machines: list[Machine]
    placement: Placement
    rules: list[AntiAffinityRule]  # as the design wants them on the live cluster's hosts


def desired_machines(design: Design) -> list[Machine]:
    """The node VMs of the design, each with exactly the guestinfo that `nsxkube render` writes."""
    from nsxkube.render.cloud_init import render_node_cloud_init

    return [Machine(n.name, n.role, str(n.address), n.cpus, n.memory_gib * MIB_PER_GIB, n.disk_gib,
                    render_node_cloud_init(design, n).guestinfo) for n in design.ip_plan.nodes]


def plan_machines(design: Design, snapshot: MachinesSnapshot) -> list[Change]:
    """Pure: the folder and ownership field when VMs are to be made, one change per VM (subject: the
    Machine), leftovers of this cluster as manual steps, and the DRS rules (subject: the desired
    rule, or the live one to delete)."""
    from nsxkube.providers.vsphere.observe import observed_network

    state, machines, placement, cluster = snapshot.state, snapshot.machines, snapshot.placement, design.name
    vm_diffs = vdiff.diff_machines(machines, state.vms, cluster, observed_network(state, design.spec.vsphere))
    creating = any(d.action == "create" for d in vm_diffs)
    owned = {vm.name for vm in state.owned} | {m.name for m in machines if m.name not in state.vms}
    diffs: list[vdiff.Diff] = []
    if placement.folder.missing:
        if creating:
            diffs.append(vdiff.Diff("create", "vm-folder", placement.folder.display,
                                    f"in datacenter {placement.datacenter.name}"))
    elif placement.folder.path:  # nsxkube made it (or was told to use it); the datacenter's root is not ours
        diffs.append(vdiff.Diff("unchanged", "vm-folder", placement.folder.display))
    if state.inventory.owner_field_key is not None:
        diffs.append(vdiff.Diff("unchanged", "custom-attribute", vdiff.OWNER_FIELD))
    elif any(d.action in ("create", "update") for d in vm_diffs):
        diffs.append(vdiff.Diff("create", "custom-attribute", vdiff.OWNER_FIELD, "the VM ownership marker"))
    live_rules = state.cluster.rules if state.cluster else ()
    diffs += vm_diffs + vdiff.diff_leftovers(machines, state.owned) + vdiff.diff_rules(
        snapshot.rules, live_rules, cluster, owned)
    subjects: dict[tuple[str, str], object] = {("vm", m.name): m for m in machines}
    subjects |= {("drs-rule", r.name): r for r in live_rules} | {("drs-rule", r.name): r for r in snapshot.rules}
    return [_change(d, subjects.get((d.kind, d.name))) for d in diffs]


def plan_teardown(design: Design, state: LiveState) -> list[Change]:
    """Pure: every VM and DRS rule of this cluster, to delete (subject: the live VM or rule)."""
    rules: tuple[LiveRule, ...] = tuple(state.cluster.rules) if state.cluster else ()
    subjects: dict[tuple[str, str], object] = {("vm", vm.name): vm for vm in state.owned}
    subjects |= {("drs-rule", r.name): r for r in rules}
    return [_change(d, subjects.get((d.kind, d.name))) for d in vdiff.diff_teardown(state.owned, rules, design.name)]


def node_vm(vm: LiveVm, machine: Machine) -> NodeVm:
    """What later phases learn of a node's VM."""
    return NodeVm(vm.name, vm.moref, vm.instance_uuid, vm.bios_uuid, vm.nics[0].mac if vm.nics else None,
                  machine.address)


def _change(d: vdiff.Diff, subject: object) -> Change:
    return Change(d.action, d.kind, d.name, d.detail, d.fields, subject=subject)  # type: ignore[arg-type]
