"""machines, the acting half: each function makes one planned thing true in vCenter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from nsxkube.errors import NsxkubeError, ProviderError
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.waiting import backoff
from nsxkube.providers.vsphere.model import AntiAffinityRule, LiveRule, LiveVm, Machine, Placement
from nsxkube.providers.vsphere.observe import LiveState

PHASE = "machines"
STEPS = 5  # cloned, configured, powered on, VMware Tools running, address up


def reason(err: BaseException) -> str:
    """vCenter's own words for a failed VM (a fault, a task error), as one line."""
    from nsxkube.providers.vsphere.faults import describe_fault

    return err.one_line() if isinstance(err, NsxkubeError) else describe_fault(err)


def ensure_network_published(ctx: Context, session: Any, placement: Placement) -> Placement:
    """Waits until NSX has published the node segment as a port group (seconds after the network
    phase created it), re-reading the bulk inventory with a backoff; ProviderError on timeout."""
    from nsxkube.providers.vsphere.observe import read_node_network

    spec, timeout = ctx.design.spec, ctx.options.realization_timeout_seconds
    item = f"port group {spec.vsphere.network}"
    ctx.reporter.progress(PHASE, item, 0, 1, "waiting for NSX to publish it")
    for _ in backoff(timeout):
        if (network := read_node_network(session, spec.vsphere)) is not None:
            break
    else:
        raise ProviderError(
            f"port group {spec.vsphere.network} did not appear in vCenter within {timeout:g} s; no VM was "
            "created", hint=f"check that the network phase ran and created segment {spec.nsx.segment.name}, "
            f"and that its transport zone {spec.nsx.transport_zone} is attached to the VDS of cluster "
            f"{spec.vsphere.cluster}")
    ctx.reporter.progress(PHASE, item, 1, 1, "in vCenter")
    return replace(placement, network=network)


def ensure_folder(session: Any, placement: Placement) -> Any:
    from nsxkube.providers.vsphere.machines import create_folder

    folder = placement.folder.existing.ref
    for name in placement.folder.missing:
        folder = create_folder(session, folder, name)
    return folder


def ensure_owner_field(session: Any, state: LiveState) -> int:
    from nsxkube.providers.vsphere.ownership import create_owner_field

    if state.inventory.owner_field_key is None:
        state.inventory.owner_field_key = create_owner_field(session)
    return int(state.inventory.owner_field_key)


def ensure_vm(ctx: Context, session: Any, waiter: Any, placement: Placement, state: LiveState, machine: Machine,
              change: Change, folder: Any, owner_key: int | None) -> LiveVm:
    """Clone (or take the existing VM), correct its size, set the marker: everything but power."""
    from nsxkube.providers.vsphere.machines import create_vm, read_vm, size_spec, update_vm
    from nsxkube.providers.vsphere.ownership import update_marker

    timeout, report = ctx.options.timeout_seconds, ctx.reporter.progress
    if change.action == "create":
        report(PHASE, machine.name, 0, STEPS, "cloning")
        ref = create_vm(session, waiter, placement, folder, machine, ctx.design.name, timeout)
        report(PHASE, machine.name, 1, STEPS, "cloned")
        vm = read_vm(session, ref, owner_key)
    else:
        vm = state.vms[machine.name]
    # The disk grows here, after the clone (see clone_spec); CPUs/memory that an old simulator ignored in
    # the clone, and an update's NIC and guestinfo, are corrected in the same reconfigure.
    spec = size_spec(vm, machine, placement.network)
    if spec is not None:
        update_vm(session, waiter, vm, spec, timeout)
    if vm.owner != ctx.design.name and owner_key is not None:
        update_marker(session, vm.ref, owner_key, ctx.design.name)
    report(PHASE, machine.name, 2, STEPS, "configured")
    return read_vm(session, vm.ref, owner_key) if spec is not None else replace(vm, owner=ctx.design.name)


def power_on(ctx: Context, session: Any, waiter: Any, vm: LiveVm) -> LiveVm:
    from nsxkube.providers.vsphere.machines import power_on_vm

    power_on_vm(session, waiter, vm, ctx.options.timeout_seconds)
    ctx.reporter.progress(PHASE, vm.name, 3, STEPS, "powered on")
    return vm


def ensure_rules(ctx: Context, session: Any, waiter: Any, state: LiveState, changes: Sequence[Change],
                 vms: dict[str, LiveVm]) -> None:
    """The planned DRS rule changes in one reconfigure of the cluster."""
    from nsxkube.providers.vsphere.machines import update_rules

    add: list[tuple[str, list[Any]]] = []
    edit: list[tuple[LiveRule, list[Any]]] = []
    remove: list[LiveRule] = []
    live = {r.name: r for r in state.cluster.rules} if state.cluster else {}
    for change in (c for c in changes if c.kind == "drs-rule" and c.mutating):
        if change.action == "delete":
            remove.append(change.subject)
            continue
        wanted: AntiAffinityRule = change.subject
        refs = [vms[n].ref for n in wanted.members if n in vms]
        if len(refs) < 2:
            ctx.reporter.warning(PHASE, f"DRS rule {change.name} skipped: fewer than two of its VMs exist")
        elif change.action == "create":
            add.append((change.name, refs))
        else:
            edit.append((live[change.name], refs))
    if add or edit or remove:
        update_rules(session, waiter, state.cluster, add=add, edit=edit, remove=remove,
                     timeout=ctx.options.timeout_seconds)


def ensure_guests_up(ctx: Context, session: Any, machines: Sequence[Machine], started: Sequence[LiveVm],
                     errors: dict[str, str]) -> None:
    """Waits until VMware Tools report each started VM's designed address; failures go to ``errors``."""
    from nsxkube.providers.vsphere.machines import wait_for_guests

    addresses = {m.name: m.address for m in machines}
    steps = {"VMware Tools running": 4}
    failed = wait_for_guests(session, {vm.name: (vm.ref, addresses[vm.name]) for vm in started if vm.name not in errors},
                             ctx.options.timeout_seconds, lambda name, status: ctx.reporter.progress(
                                 PHASE, name, steps.get(status, STEPS), STEPS, status))
    errors.update(failed)
