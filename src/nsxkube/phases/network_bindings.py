"""network-bindings: the NSX half of the nodes that exists only once their VMs do, so it runs after
`machines`. Each node VM gets the tag `nsxkube/cluster=<name>` (the nodes group selects VMs by it),
and in `vip_mode: allowlist` each node's segment port gets manual address bindings for its own
address, the API VIP (control planes) and the LoadBalancer pools, with the NIC's MAC — so
SpoofGuard lets a VIP move between nodes. Bindings are only ever added: NSX cannot remove a
realized one, and a VM's other tags are always sent back with ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nsxkube.design import Design
from nsxkube.errors import ProviderError
from nsxkube.phases.clients import nsx_client
from nsxkube.pipeline.change import Change, mutating
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.waiting import backoff

if TYPE_CHECKING:  # the provider imports httpx: loaded only when the phase runs
    from nsxkube.providers.nsx.model import LivePort, LiveVif, LiveVm
    from nsxkube.providers.nsx.node_bindings import NodePlan, NodeTarget

VM_KIND = "node VM tags"
PORT_KIND = "node port bindings"


@dataclass
class BindingsSnapshot:
    """What NSX knows of the node VMs: each node's target, its VM (or why it cannot tell which), the
    VM's VIFs and the node segment's ports by attachment."""

    targets: list[NodeTarget]
    vms: dict[str, tuple[LiveVm | None, str | None]] = field(default_factory=dict)
    vifs: dict[str, list[LiveVif]] = field(default_factory=dict)
    ports: dict[str, LivePort] = field(default_factory=dict)


def node_plans(design: Design, snapshot: BindingsSnapshot) -> list[NodePlan]:
    """Pure: per node, the tags and address bindings NSX lacks."""
    from nsxkube.providers.nsx.node_bindings import NodePlan, plan_node

    plans = []
    for target in snapshot.targets:
        vm, conflict = snapshot.vms.get(target.name, (None, None))
        if conflict:
            plans.append(NodePlan(target.name, conflict=conflict))
        else:
            plans.append(plan_node(target, vm, snapshot.vifs.get(target.name, []), snapshot.ports, design.name))
    return plans


def changes_of(plan: NodePlan, cluster: str) -> list[Change]:
    if plan.conflict:
        return [Change("conflict", "node VM", plan.node, plan.conflict)]
    tag = f"nsxkube/cluster={cluster}"
    changes = []
    if plan.vm is None:
        changes.append(Change("create", VM_KIND, plan.node, f"{tag}, once NSX knows the VM", subject=plan))
    elif plan.tags is not None:
        changes.append(Change("update", VM_KIND, plan.node, f"add {tag}", ("tags",), subject=plan))
    else:
        changes.append(Change("unchanged", VM_KIND, plan.node))
    if plan.port is None and plan.waiting:
        changes.append(Change("create", PORT_KIND, plan.node, "the VIP and pools, once the VM's port exists",
                              subject=plan))
    elif plan.missing_bindings:
        mac = plan.missing_bindings[0][1]
        changes.append(Change("update", PORT_KIND, plan.node, f"add {len(plan.missing_bindings)} address "
                              f"binding(s) with MAC {mac}", ("address_bindings",), subject=plan))
    elif plan.port is not None:
        changes.append(Change("unchanged", PORT_KIND, plan.node))
    return changes


def plan_bindings(design: Design, snapshot: BindingsSnapshot) -> list[Change]:
    return [c for plan in node_plans(design, snapshot) for c in changes_of(plan, design.name)]


class NetworkBindingsPhase:
    name = "network-bindings"
    title = "Tag the node VMs and bind the VIP and pools to their NSX ports"
    conflict_hint = "nsxkube never changes a VM or port that is not this cluster's"

    def observe(self, ctx: Context) -> BindingsSnapshot:
        from nsxkube.providers.nsx.node_bindings import find_vm, targets
        from nsxkube.providers.nsx.vms import list_ports, list_vifs, list_vms
        from nsxkube.render.nsx import port_address_bindings
        from nsxkube.render.nsx_objects import segment_path

        design, client = ctx.design, nsx_client(ctx, self.name)
        known = {name: (vm.instance_uuid, vm.mac) for name, vm in (ctx.handoff.node_vms or {}).items()}
        wanted = targets([n.name for n in design.ip_plan.nodes], port_address_bindings(design), known)
        vms = list_vms(client)
        snapshot = BindingsSnapshot(wanted, {t.name: find_vm(t, vms) for t in wanted})
        if any(t.addresses and snapshot.vms[t.name][0] for t in wanted):
            snapshot.ports = {p.attachment_id: p for p in list_ports(client, segment_path(design))}
        for target in wanted:
            vm, conflict = snapshot.vms[target.name]
            if vm is not None and not conflict and target.addresses:
                snapshot.vifs[target.name] = list_vifs(client, vm.external_id)
        return snapshot

    def plan(self, design: Design, snapshot: BindingsSnapshot) -> list[Change]:
        return plan_bindings(design, snapshot)

    def apply(self, ctx: Context, snapshot: BindingsSnapshot, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.nsx.vms import update_port_bindings, update_vm_tags

        asked = {c.name for c in mutating(changes)}
        plans = [p for p in self._wait_for_vms(ctx, [c.subject for c in mutating(changes)]) if p.node in asked]
        client, done = nsx_client(ctx, self.name), []
        for plan in plans:
            if plan.missing_bindings:
                assert plan.port is not None
                update_port_bindings(client, plan.port.path, plan.missing_bindings)
            if plan.tags is not None:
                assert plan.vm is not None
                update_vm_tags(client, plan.vm, plan.tags)
            done += [c for c in changes_of(plan, ctx.design.name) if c.mutating]
            ctx.reporter.progress(self.name, "nodes bound", len({c.name for c in done}), len(asked))
        return done

    def _wait_for_vms(self, ctx: Context, planned: Sequence[NodePlan]) -> list[NodePlan]:
        """NSX learns new VMs and ports from vCenter a little after they power on: a plan made before
        that is completed here, by reading NSX again until every node's VM and port are known."""
        from nsxkube.errors import ConflictError

        plans, timeout = list({p.node: p for p in planned}.values()), ctx.options.realization_timeout_seconds
        for attempt in backoff(timeout):
            if attempt:
                names = {p.node for p in plans}
                plans = [p for p in node_plans(ctx.design, self.observe(ctx)) if p.node in names]
            conflicts = [f"{p.node}: {p.conflict}" for p in plans if p.conflict]
            if conflicts:
                raise ConflictError(f"node VMs nsxkube cannot bind, nothing more was written: {'; '.join(conflicts)}",
                                    hint=self.conflict_hint)
            waiting = [p for p in plans if p.waiting]
            if not waiting:
                return plans
            ctx.reporter.progress(self.name, "node VMs known to NSX", len(plans) - len(waiting), len(plans),
                                  waiting[0].waiting or "")
        raise ProviderError(f"{len(waiting)} node(s) not ready in NSX after {timeout:.0f} s: "
                            + "; ".join(str(p.waiting) for p in waiting),
                            hint="check that the VMs run and their NIC is on the node segment's port group")


PHASE = NetworkBindingsPhase()
