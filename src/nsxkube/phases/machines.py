"""machines: the node VMs cloned from the template in parallel, each with its size, its NIC on
the node port group, cloud-init via guestinfo, disk.EnableUUID and the ownership marker; DRS
anti-affinity rules; powered on and waited for until VMware Tools report the node's address.

Order of apply: folder and marker field → clone/resize in parallel → DRS rules (before power-on,
so DRS places the VMs apart) → power on in parallel → wait for every guest. A VM that fails is
reported with vCenter's error while the others finish; the phase then fails naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from nsxkube.design import Design
from nsxkube.errors import ConflictError, ProviderError
from nsxkube.pipeline import facts
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.waiting import backoff
from nsxkube.providers.vsphere import diff as vdiff
from nsxkube.providers.vsphere.model import MIB_PER_GIB, LiveVm, Machine, MachineFacts, Placement

FACTS = facts.MACHINES
_OBSERVED = "machines.observed"  # plan's snapshot, used by the apply of the same run
STEPS = 5  # cloned, configured, powered on, VMware Tools running, address up


def desired_machines(design: Design) -> list[Machine]:
    """The node VMs of the design, each with exactly the guestinfo that `nsxkube render` writes."""
    from nsxkube.render.machines import render_node_cloud_init

    return [Machine(n.name, n.role, str(n.address), n.cpus, n.memory_gib * MIB_PER_GIB, n.disk_gib,
                    render_node_cloud_init(design, n).guestinfo) for n in design.ip_plan.nodes]


def session_of(ctx: Context) -> Any:
    """The run's one vCenter session (shared with any other phase that asks for "vsphere")."""
    from nsxkube.providers.vsphere.connection import open_session

    return ctx.client("vsphere", lambda c: open_session(
        c.design.spec.vsphere, c.secret, warn=lambda m: c.reporter.warning(PHASE.name, m),
        pool_size=c.options.concurrency + 2), close=lambda s: s.close())


def to_change(d: vdiff.Diff) -> Change:
    return Change(d.action, d.kind, d.name, d.detail, d.fields)  # type: ignore[arg-type]


@dataclass
class Observed:
    state: Any  # providers.vsphere.observe.LiveState
    machines: list[Machine]
    placement: Placement
    rules: list[Any]  # desired AntiAffinityRule


class MachinesPhase:
    name = "machines"
    title = "Create the node VMs"

    # ---- plan -------------------------------------------------------------------------------

    def plan(self, ctx: Context) -> list[Change]:
        from nsxkube.providers.vsphere.observe import (
            network_is_segment_to_come,
            observe,
            observed_network,
            resolve_placement,
        )

        spec, cluster = ctx.design.spec, ctx.design.name
        machines = desired_machines(ctx.design)
        state = observe(session_of(ctx), spec.vsphere, cluster, [m.name for m in machines])
        vm_diffs = vdiff.diff_machines(machines, state.vms, cluster, observed_network(state, spec.vsphere))
        creating = any(d.action == "create" for d in vm_diffs)
        placement = resolve_placement(state, spec.vsphere, with_template=creating,
                                      network_may_be_unpublished=network_is_segment_to_come(spec))
        if placement.network is None and creating:
            ctx.reporter.warning(self.name, f"port group {spec.vsphere.network} is not in vCenter yet: NSX publishes "
                                 f"it once the network phase has created segment {spec.nsx.segment.name}; "
                                 "apply waits for it")
        if creating and state.template is not None:
            self.ensure_template_ready(state.template, min(m.disk_gib for m in machines))
        live = state.cluster
        rules = vdiff.desired_rules(cluster, machines, live.hosts, spec.vsphere.anti_affinity)
        for warning in vdiff.placement_warnings(live, len(ctx.design.ip_plan.control_planes), spec.vsphere.anti_affinity):
            ctx.reporter.warning(self.name, warning)
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
        diffs += vm_diffs + vdiff.diff_leftovers(machines, state.owned) + vdiff.diff_rules(rules, live.rules, cluster, owned)
        ctx.facts[FACTS] = {vm.name: _facts(vm, m) for m in machines if (vm := state.vms.get(m.name))
                            and vm.owned_by(cluster)}
        ctx.facts[_OBSERVED] = Observed(state, machines, placement, rules)
        return [to_change(d) for d in diffs]

    def ensure_template_ready(self, template: LiveVm, min_disk_gib: int) -> None:
        """The preflight of the template: its first failed check, and how many more, as one line."""
        from nsxkube.providers.vsphere.template import check_template, failures

        problems = failures(check_template(template, min_disk_gib=min_disk_gib))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ProviderError(f"template {template.name} is not ready: {problems[0].one_line()}{more}",
                                hint="`nsxkube template check` lists every finding with its fix")

    # ---- apply ------------------------------------------------------------------------------

    def apply(self, ctx: Context, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.vsphere.tasks import TaskWaiter

        conflicts = [c for c in changes if c.action == "conflict"]
        if conflicts:
            raise ConflictError(f"{len(conflicts)} object(s) with nsxkube's names are not ours: "
                                + "; ".join(c.one_line() for c in conflicts),
                                hint="nsxkube never adopts or overwrites them")
        observed = ctx.facts.pop(_OBSERVED, None)
        if observed is None:
            self.plan(ctx)
            observed = ctx.facts.pop(_OBSERVED)
        session, cluster = session_of(ctx), ctx.design.name
        waiter = TaskWaiter(session)
        todo = {c.name: c for c in changes if c.kind == "vm" and c.action in ("create", "update")}
        errors: dict[str, str] = {}
        if observed.placement.network is None and any(c.action == "create" for c in todo.values()):
            self.ensure_network_published(ctx, session, observed)  # before anything changes
        folder = self.ensure_folder(session, observed.placement) if any(
            c.action == "create" for c in todo.values()) else None
        owner_key = self.ensure_owner_field(session, observed.state.inventory) if todo else None

        def build(machine: Machine) -> LiveVm:
            return self.ensure_vm(ctx, session, waiter, observed, machine, todo[machine.name], folder, owner_key)

        built = self._parallel(ctx, [m for m in observed.machines if m.name in todo], build, errors)
        vms = {vm.name: vm for vm in observed.state.vms.values() if vm.owned_by(cluster)} | built
        problems: list[str] = []
        try:  # VMs are started even when their rules could not be set (the error is reported below)
            self.ensure_rules(ctx, session, waiter, observed, changes, vms)
        except ProviderError as err:
            problems.append(f"DRS rules: {err.one_line()}")
            ctx.reporter.warning(self.name, problems[-1])
        to_start = [vms[m.name] for m in observed.machines if m.name in vms and m.name in todo and m.name not in errors
                    and not vms[m.name].powered_on]
        self._parallel(ctx, to_start, lambda vm: self._power_on(ctx, session, waiter, vm), errors)
        self.ensure_guests_up(ctx, session, observed.machines, vms, to_start, errors)
        by_name = {m.name: m for m in observed.machines}
        ctx.facts[FACTS] = {name: _facts(vm, by_name[name]) for name, vm in vms.items() if name in by_name}
        if errors:
            problems.insert(0, f"{len(errors)} of {len(todo)} VM(s) failed: "
                            + "; ".join(f"{name}: {why}" for name, why in sorted(errors.items())))
        if problems:
            raise ProviderError("; ".join(problems), hint="the rest is done; fix the cause and run apply again")
        return [c for c in changes if c.mutating]

    def ensure_network_published(self, ctx: Context, session: Any, observed: Observed) -> None:
        """Waits until NSX has published the node segment as a port group (seconds after the network
        phase created it), re-reading the bulk inventory with a backoff; ProviderError on timeout."""
        from nsxkube.providers.vsphere.observe import read_node_network

        spec, timeout = ctx.design.spec, ctx.options.realization_timeout_seconds
        item = f"port group {spec.vsphere.network}"
        ctx.reporter.progress(self.name, item, 0, 1, "waiting for NSX to publish it")
        for _ in backoff(timeout):
            if (network := read_node_network(session, spec.vsphere)) is not None:
                break
        else:
            raise ProviderError(
                f"port group {spec.vsphere.network} did not appear in vCenter within {timeout:g} s; no VM was "
                "created", hint=f"check that the network phase ran and created segment {spec.nsx.segment.name}, "
                f"and that its transport zone {spec.nsx.transport_zone} is attached to the VDS of cluster "
                f"{spec.vsphere.cluster}")
        observed.placement = replace(observed.placement, network=network)
        ctx.reporter.progress(self.name, item, 1, 1, "in vCenter")

    def ensure_folder(self, session: Any, placement: Placement) -> Any:
        from nsxkube.providers.vsphere.machines import create_folder

        folder = placement.folder.existing.ref
        for name in placement.folder.missing:
            folder = create_folder(session, folder, name)
        return folder

    def ensure_owner_field(self, session: Any, inventory: Any) -> int:
        from nsxkube.providers.vsphere.ownership import create_owner_field

        if inventory.owner_field_key is None:
            inventory.owner_field_key = create_owner_field(session)
        return int(inventory.owner_field_key)

    def ensure_vm(self, ctx: Context, session: Any, waiter: Any, observed: Observed, machine: Machine,
                  change: Change, folder: Any, owner_key: int | None) -> LiveVm:
        """Clone (or take the existing VM), correct its size, set the marker: everything but power."""
        from nsxkube.providers.vsphere.machines import create_vm, read_vm, size_spec, update_vm
        from nsxkube.providers.vsphere.ownership import update_marker

        timeout, report = ctx.options.timeout_seconds, ctx.reporter.progress
        if change.action == "create":
            report(self.name, machine.name, 0, STEPS, "cloning")
            ref = create_vm(session, waiter, observed.placement, folder, machine, ctx.design.name, timeout)
            report(self.name, machine.name, 1, STEPS, "cloned")
            vm = read_vm(session, ref, owner_key)
        else:
            vm = observed.state.vms[machine.name]
        # The disk grows here, after the clone (see clone_spec); CPUs/memory that an old simulator ignored in
        # the clone, and an update's NIC and guestinfo, are corrected in the same reconfigure.
        spec = size_spec(vm, machine, observed.placement.network)
        if spec is not None:
            update_vm(session, waiter, vm, spec, timeout)
        if vm.owner != ctx.design.name and owner_key is not None:
            update_marker(session, vm.ref, owner_key, ctx.design.name)
        report(self.name, machine.name, 2, STEPS, "configured")
        return read_vm(session, vm.ref, owner_key) if spec is not None else replace(vm, owner=ctx.design.name)

    def _power_on(self, ctx: Context, session: Any, waiter: Any, vm: LiveVm) -> LiveVm:
        from nsxkube.providers.vsphere.machines import power_on_vm

        power_on_vm(session, waiter, vm, ctx.options.timeout_seconds)
        ctx.reporter.progress(self.name, vm.name, 3, STEPS, "powered on")
        return vm

    def ensure_rules(self, ctx: Context, session: Any, waiter: Any, observed: Observed, changes: list[Change],
                     vms: dict[str, LiveVm]) -> None:
        from nsxkube.providers.vsphere.machines import update_rules

        live = {r.name: r for r in observed.state.cluster.rules}
        wanted = {r.name: r for r in observed.rules}
        add, edit, remove = [], [], []
        for change in (c for c in changes if c.kind == "drs-rule" and c.mutating):
            if change.action == "delete":
                remove.append(live[change.name])
                continue
            refs = [vms[n].ref for n in wanted[change.name].members if n in vms]
            if len(refs) < 2:
                ctx.reporter.warning(self.name, f"DRS rule {change.name} skipped: fewer than two of its VMs exist")
            elif change.action == "create":
                add.append((change.name, refs))
            else:
                edit.append((live[change.name], refs))
        update_rules(session, waiter, observed.state.cluster, add=add, edit=edit, remove=remove,
                     timeout=ctx.options.timeout_seconds)

    def ensure_guests_up(self, ctx: Context, session: Any, machines: Sequence[Machine], vms: dict[str, LiveVm],
                         started: Sequence[LiveVm], errors: dict[str, str]) -> None:
        from nsxkube.providers.vsphere.machines import wait_for_guests

        addresses = {m.name: m.address for m in machines}
        steps = {"VMware Tools running": 4}
        failed = wait_for_guests(session, {vm.name: (vm.ref, addresses[vm.name]) for vm in started if vm.name not in errors},
                                 ctx.options.timeout_seconds, lambda name, status: ctx.reporter.progress(
                                     self.name, name, steps.get(status, STEPS), STEPS, status))
        errors.update(failed)

    def _parallel(self, ctx: Context, items: Sequence[Any], work: Callable[[Any], LiveVm],
                  errors: dict[str, str]) -> dict[str, LiveVm]:
        """Runs ``work`` on each item, at most ``concurrency`` at once; a failure is recorded, not raised."""
        done: dict[str, LiveVm] = {}
        if not items:
            return done
        with ThreadPoolExecutor(max_workers=max(1, ctx.options.concurrency), thread_name_prefix="vsphere") as pool:
            futures = {item.name: pool.submit(work, item) for item in items}
            for name, future in futures.items():
                try:
                    done[name] = future.result()
                except Exception as err:
                    errors[name] = _reason(err)
                    ctx.reporter.warning(self.name, f"{name}: {errors[name]}")
        return done

    # ---- destroy ----------------------------------------------------------------------------

    def plan_destroy(self, ctx: Context) -> list[Change]:
        from nsxkube.providers.vsphere.observe import observe

        cluster = ctx.design.name
        names = [n.name for n in ctx.design.ip_plan.nodes]
        state = observe(session_of(ctx), ctx.design.spec.vsphere, cluster, names, need_cluster=False)
        for vm in state.vms.values():
            if not vm.owned_by(cluster):
                ctx.reporter.warning(self.name, f"vm {vm.name} has a node's name but is not {cluster}'s "
                                     f"({vm.owner_text}): left alone")
        rules = state.cluster.rules if state.cluster else ()
        ctx.facts[_OBSERVED] = state
        ctx.facts[facts.DOOMED_VMS] = {vm.instance_uuid for vm in state.owned if vm.instance_uuid}
        return [to_change(d) for d in vdiff.diff_teardown(state.owned, rules, cluster)]

    def destroy(self, ctx: Context, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.vsphere.machines import delete_vm, update_rules
        from nsxkube.providers.vsphere.tasks import TaskWaiter

        state = ctx.facts.pop(_OBSERVED, None)
        if state is None:
            self.plan_destroy(ctx)
            state = ctx.facts.pop(_OBSERVED)
        session = session_of(ctx)
        waiter, timeout = TaskWaiter(session), ctx.options.timeout_seconds
        doomed_rules = {c.name for c in changes if c.kind == "drs-rule" and c.action == "delete"}
        if state.cluster is not None and doomed_rules:
            update_rules(session, waiter, state.cluster, remove=[r for r in state.cluster.rules if r.name in doomed_rules],
                         timeout=timeout)
        doomed = {c.name for c in changes if c.kind == "vm" and c.action == "delete"}
        errors: dict[str, str] = {}

        def delete(vm: LiveVm) -> LiveVm:
            delete_vm(session, waiter, vm, timeout)
            ctx.reporter.progress(self.name, vm.name, 1, 1, "deleted")
            return vm

        self._parallel(ctx, [vm for vm in state.owned if vm.name in doomed], delete, errors)
        ctx.facts.pop(FACTS, None)
        if errors:
            raise ProviderError(f"{len(errors)} VM(s) could not be deleted: "
                                + "; ".join(f"{n}: {why}" for n, why in sorted(errors.items())),
                                hint="fix the cause and run destroy again")
        return [c for c in changes if c.mutating]


def _reason(err: BaseException) -> str:
    from nsxkube.errors import NsxkubeError
    from nsxkube.providers.vsphere.faults import describe_fault

    return err.one_line() if isinstance(err, NsxkubeError) else describe_fault(err)


def _facts(vm: LiveVm, machine: Machine) -> MachineFacts:
    return MachineFacts(vm.name, vm.moref, vm.instance_uuid, vm.bios_uuid, vm.nics[0].mac if vm.nics else None,
                        machine.address)


PHASE = MachinesPhase()
