"""machines: the node VMs cloned from the template in parallel, each with its size, its NIC on
the node port group, cloud-init via guestinfo, disk.EnableUUID and the ownership marker; DRS
anti-affinity rules; powered on and waited for until VMware Tools report the node's address.

Order of apply: folder and marker field → clone/resize in parallel → DRS rules (before power-on,
so DRS places the VMs apart) → power on in parallel → wait for every guest. A VM that fails is
reported with vCenter's error while the others finish; the phase then fails naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nsxkube.design import Design
from nsxkube.errors import ProviderError
from nsxkube.phases.clients import vsphere_session
from nsxkube.phases.machines import steps
from nsxkube.phases.machines.plan import MachinesSnapshot, desired_machines, node_vm, plan_machines, plan_teardown
from nsxkube.pipeline.change import Change, mutating
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.parallel import each
from nsxkube.providers.vsphere import diff as vdiff
from nsxkube.providers.vsphere.model import LiveVm, Machine
from nsxkube.providers.vsphere.observe import LiveState
from nsxkube.wording import and_more

__all__ = ["PHASE", "MachinesSnapshot", "desired_machines", "plan_machines"]


class MachinesPhase:
    name = "machines"
    title = "Create the node VMs"
    conflict_hint = "nsxkube never adopts or overwrites a VM or DRS rule that is not this cluster's"

    def observe(self, ctx: Context) -> MachinesSnapshot:
        from nsxkube.providers.vsphere.observe import network_is_segment_to_come, observe, resolve_placement

        spec, cluster = ctx.design.spec, ctx.design.name
        machines = desired_machines(ctx.design)
        state = observe(vsphere_session(ctx, self.name), spec.vsphere, cluster, [m.name for m in machines])
        creating = any(m.name not in state.vms for m in machines)
        placement = resolve_placement(state, spec.vsphere, with_template=creating,
                                      network_may_be_unpublished=network_is_segment_to_come(spec))
        if placement.network is None and creating:
            ctx.reporter.warning(self.name, f"port group {spec.vsphere.network} is not in vCenter yet: NSX publishes "
                                 f"it once the network phase has created segment {spec.nsx.segment.name}; "
                                 "apply waits for it")
        if creating and state.template is not None:
            _refuse_unready_template(state.template, min(m.disk_gib for m in machines))
        assert state.cluster is not None  # observe() found the cluster or raised
        rules = vdiff.desired_rules(cluster, machines, state.cluster.hosts, spec.vsphere.anti_affinity)
        for warning in vdiff.placement_warnings(state.cluster, len(ctx.design.ip_plan.control_planes),
                                                spec.vsphere.anti_affinity):
            ctx.reporter.warning(self.name, warning)
        ctx.handoff.node_vms = {m.name: node_vm(vm, m) for m in machines
                                if (vm := state.vms.get(m.name)) and vm.owned_by(cluster)}
        return MachinesSnapshot(state, machines, placement, rules)

    def plan(self, design: Design, snapshot: MachinesSnapshot) -> list[Change]:
        return plan_machines(design, snapshot)

    def apply(self, ctx: Context, snapshot: MachinesSnapshot, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.vsphere.tasks import TaskWaiter

        session, cluster, state = vsphere_session(ctx, self.name), ctx.design.name, snapshot.state
        waiter, placement = TaskWaiter(session), snapshot.placement
        todo = {c.name: c for c in mutating(changes, "vm") if c.action in ("create", "update")}
        creating = any(c.action == "create" for c in todo.values())
        errors: dict[str, str] = {}
        if placement.network is None and creating:
            placement = steps.ensure_network_published(ctx, session, placement)  # before anything changes
        folder = steps.ensure_folder(session, placement) if creating else None
        owner_key = steps.ensure_owner_field(session, state) if todo else None

        def build(machine: Machine) -> LiveVm:
            return steps.ensure_vm(ctx, session, waiter, placement, state, machine, todo[machine.name], folder,
                                   owner_key)

        built = self._each(ctx, [c.subject for c in todo.values()], build, errors)
        vms = {vm.name: vm for vm in state.vms.values() if vm.owned_by(cluster)} | built
        problems: list[str] = []
        try:  # VMs are started even when their rules could not be set (the error is reported below)
            steps.ensure_rules(ctx, session, waiter, state, changes, vms)
        except ProviderError as err:
            problems.append(f"DRS rules: {err.one_line()}")
            ctx.reporter.warning(self.name, problems[-1])
        to_start = [vms[m.name] for m in snapshot.machines if m.name in vms and m.name in todo and m.name not in errors
                    and not vms[m.name].powered_on]
        self._each(ctx, to_start, lambda vm: steps.power_on(ctx, session, waiter, vm), errors)
        steps.ensure_guests_up(ctx, session, snapshot.machines, to_start, errors)
        by_name = {m.name: m for m in snapshot.machines}
        ctx.handoff.node_vms = {name: node_vm(vm, by_name[name]) for name, vm in vms.items() if name in by_name}
        if errors:
            problems.insert(0, f"{len(errors)} of {len(todo)} VM(s) failed: "
                            + "; ".join(f"{name}: {why}" for name, why in sorted(errors.items())))
        if problems:
            raise ProviderError("; ".join(problems), hint="the rest is done; fix the cause and run apply again")
        return mutating(changes)

    # ---- destroy ----------------------------------------------------------------------------

    def observe_teardown(self, ctx: Context) -> LiveState:
        from nsxkube.providers.vsphere.observe import observe

        cluster = ctx.design.name
        names = [n.name for n in ctx.design.ip_plan.nodes]
        state = observe(vsphere_session(ctx, self.name), ctx.design.spec.vsphere, cluster, names, need_cluster=False)
        for vm in state.vms.values():
            if not vm.owned_by(cluster):
                ctx.reporter.warning(self.name, f"vm {vm.name} has a node's name but is not {cluster}'s "
                                     f"({vm.owner_text}): left alone")
        ctx.handoff.doomed_vms = frozenset(vm.instance_uuid for vm in state.owned if vm.instance_uuid)
        return state

    def plan_teardown(self, design: Design, snapshot: LiveState) -> list[Change]:
        return plan_teardown(design, snapshot)

    def destroy(self, ctx: Context, snapshot: LiveState, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.vsphere.machines import delete_vm, update_rules
        from nsxkube.providers.vsphere.tasks import TaskWaiter

        session = vsphere_session(ctx, self.name)
        waiter, timeout = TaskWaiter(session), ctx.options.timeout_seconds
        doomed_rules = [c.subject for c in mutating(changes, "drs-rule")]
        if snapshot.cluster is not None and doomed_rules:
            update_rules(session, waiter, snapshot.cluster, remove=doomed_rules, timeout=timeout)
        errors: dict[str, str] = {}

        def delete(vm: LiveVm) -> LiveVm:
            delete_vm(session, waiter, vm, timeout)
            ctx.reporter.progress(self.name, vm.name, 1, 1, "deleted")
            return vm

        self._each(ctx, [c.subject for c in mutating(changes, "vm")], delete, errors)
        ctx.handoff.node_vms = None
        if errors:
            raise ProviderError(f"{len(errors)} VM(s) could not be deleted: "
                                + "; ".join(f"{n}: {why}" for n, why in sorted(errors.items())),
                                hint="fix the cause and run destroy again")
        return mutating(changes)

    def _each(self, ctx: Context, items: Sequence[Any], work: Callable[[Any], LiveVm],
              errors: dict[str, str]) -> dict[str, LiveVm]:
        """``work`` on every VM in parallel; a VM that fails is warned about and recorded, not raised."""
        outcomes = each(items, work, key=lambda item: item.name, concurrency=ctx.options.concurrency, name="vsphere")
        for name, err in outcomes.failed.items():
            errors[str(name)] = steps.reason(err)
            ctx.reporter.warning(self.name, f"{name}: {errors[str(name)]}")
        return {str(k): v for k, v in outcomes.done.items()}


def _refuse_unready_template(template: LiveVm, min_disk_gib: int) -> None:
    """The preflight of the template: its first failed check, and how many more, as one line."""
    from nsxkube.providers.vsphere.template import check_template, failures

    problems = failures(check_template(template, min_disk_gib=min_disk_gib))
    if problems:
        raise ProviderError(f"template {template.name} is not ready: {and_more([p.one_line() for p in problems])}",
                            hint="`nsxkube template check` lists every finding with its fix")


PHASE = MachinesPhase()
