"""network-bindings: the NSX half of the nodes that exists only once their VMs do, so it runs after
`machines`. Each node VM gets the tag `nsxkube/cluster=<name>` (the nodes group selects VMs by it),
and in `vip_mode: allowlist` each node's segment port gets manual address bindings for its own
address, the API VIP (control planes) and the LoadBalancer pools, with the NIC's MAC — so
SpoofGuard lets a VIP move between nodes. Bindings are only ever added: NSX cannot remove a
realized one, and a VM's other tags are always sent back with ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nsxkube.errors import ConflictError, ProviderError
from nsxkube.pipeline import facts
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.waiting import backoff

if TYPE_CHECKING:  # the provider imports httpx: loaded only when the phase runs
    from nsxkube.providers.nsx.node_bindings import NodePlan

OBSERVED = "network-bindings.observed"
MACHINE_FACTS = facts.MACHINES
VM_KIND = "node VM tags"
PORT_KIND = "node port bindings"


def changes_of(plan: NodePlan, cluster: str) -> list[Change]:
    if plan.conflict:
        return [Change("conflict", "node VM", plan.node, plan.conflict)]
    tag = f"nsxkube/cluster={cluster}"
    changes = []
    if plan.vm is None:
        changes.append(Change("create", VM_KIND, plan.node, f"{tag}, once NSX knows the VM"))
    elif plan.tags is not None:
        changes.append(Change("update", VM_KIND, plan.node, f"add {tag}", ("tags",)))
    else:
        changes.append(Change("unchanged", VM_KIND, plan.node))
    if plan.port is None and plan.waiting:
        changes.append(Change("create", PORT_KIND, plan.node, "the VIP and pools, once the VM's port exists"))
    elif plan.missing_bindings:
        mac = plan.missing_bindings[0][1]
        changes.append(Change("update", PORT_KIND, plan.node, f"add {len(plan.missing_bindings)} address "
                              f"binding(s) with MAC {mac}", ("address_bindings",)))
    elif plan.port is not None:
        changes.append(Change("unchanged", PORT_KIND, plan.node))
    return changes


class NetworkBindingsPhase:
    name = "network-bindings"
    title = "Tag the node VMs and bind the VIP and pools to their NSX ports"

    def _observe(self, ctx: Context) -> list[NodePlan]:
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.node_bindings import NodePlan, find_vm, plan_node, targets
        from nsxkube.providers.nsx.vms import list_ports, list_vifs, list_vms
        from nsxkube.render.nsx import port_address_bindings
        from nsxkube.render.nsx_objects import segment_path

        design, client = ctx.design, nsx_client(ctx, self.name)
        wanted = targets([n.name for n in design.ip_plan.nodes], port_address_bindings(design),
                         ctx.facts.get(MACHINE_FACTS) or {})
        vms = list_vms(client)
        found = {t.name: find_vm(t, vms) for t in wanted}
        needs_ports = any(t.addresses and found[t.name][0] for t in wanted)
        ports = {p.attachment_id: p for p in list_ports(client, segment_path(design))} if needs_ports else {}
        plans = []
        for target in wanted:
            vm, conflict = found[target.name]
            if conflict:
                plans.append(NodePlan(target.name, conflict=conflict))
                continue
            vifs = list_vifs(client, vm.external_id) if vm and target.addresses else []
            plans.append(plan_node(target, vm, vifs, ports, design.name))
        return plans

    def plan(self, ctx: Context) -> list[Change]:
        plans = self._observe(ctx)
        ctx.facts[OBSERVED] = plans
        return [c for plan in plans for c in changes_of(plan, ctx.design.name)]

    def apply(self, ctx: Context, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.vms import update_port_bindings, update_vm_tags

        plans = self._wait_for_vms(ctx, ctx.facts.pop(OBSERVED, None) or self._observe(ctx))
        conflicts = [f"{p.node}: {p.conflict}" for p in plans if p.conflict]
        if conflicts:
            raise ConflictError(f"node VMs nsxkube cannot bind, nothing was written: {'; '.join(conflicts)}",
                                hint="nsxkube never changes a VM or port that is not this cluster's")
        asked = {c.name for c in changes if c.mutating}
        client, done = nsx_client(ctx, self.name), []
        for plan in (p for p in plans if p.node in asked):
            if plan.missing_bindings:
                update_port_bindings(client, plan.port.path, plan.missing_bindings)
            if plan.tags is not None:
                update_vm_tags(client, plan.vm, plan.tags)
            done += [c for c in changes_of(plan, ctx.design.name) if c.mutating]
            ctx.reporter.progress(self.name, "nodes bound", len({c.name for c in done}), len(asked))
        return done

    def _wait_for_vms(self, ctx: Context, plans: list[NodePlan]) -> list[NodePlan]:
        """NSX learns new VMs and ports from vCenter a little after they power on: wait for them."""
        timeout = ctx.options.realization_timeout_seconds
        for attempt in backoff(timeout):
            if attempt:
                plans = self._observe(ctx)
            waiting = [p for p in plans if p.waiting]
            if not waiting or any(p.conflict for p in plans):
                return plans
            ctx.reporter.progress(self.name, "node VMs known to NSX", len(plans) - len(waiting), len(plans),
                                  waiting[0].waiting or "")
        raise ProviderError(f"{len(waiting)} node(s) not ready in NSX after {timeout:.0f} s: "
                            + "; ".join(str(p.waiting) for p in waiting),
                            hint="check that the VMs run and their NIC is on the node segment's port group")


PHASE = NetworkBindingsPhase()
