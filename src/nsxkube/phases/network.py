"""network: the node segment, its IP discovery and SpoofGuard profiles, the groups, services and
DFW policy of the port matrix — in ONE hierarchical PATCH of exactly the bodies `nsxkube render`
writes to nsx/infra-patch.json, then a wait until NSX has realized them.

observe reads NSX (four calls) and audits it against the spec (`checks.nsx_audit`); plan diffs
each object and turns every failed audit check into a conflict, so the runner refuses to write
while any check fails or any object with our id is not ours; apply sends exactly the planned
objects and waits. Destroy deletes, in one PATCH, only
objects tagged `nsxkube/cluster=<name>` — never one that is protected or someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nsxkube.design import Design
from nsxkube.errors import ProviderError
from nsxkube.phases.clients import nsx_client
from nsxkube.pipeline.change import PREFLIGHT, Change, mutating
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.waiting import backoff

if TYPE_CHECKING:  # the provider imports httpx: loaded only when the phase runs
    from nsxkube.findings import Finding
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.model import LiveInventory, LiveObject


@dataclass
class NetworkSnapshot:
    inventory: LiveInventory
    findings: list[Finding] = field(default_factory=list)  # the preflight audit of that inventory


@dataclass
class NetworkTeardown:
    owned: list[LiveObject]  # every object tagged nsxkube/cluster=<name>


def plan_network(design: Design, snapshot: NetworkSnapshot) -> list[Change]:
    """Pure: one change per desired object; a failed audit check is a conflict (the object
    conflicts are listed one by one, so the audit's own "ids" check is not repeated)."""
    from nsxkube.phases.network_existing import missing_on_existing_segment
    from nsxkube.providers.nsx.diff import diff_objects
    from nsxkube.render.nsx import desired_nsx_objects

    changes = [Change(c.action, c.kind, c.obj.id, c.detail, c.fields, subject=c.obj)
               for c in diff_objects(desired_nsx_objects(design), snapshot.inventory, design.name)]
    changes += [Change("conflict", PREFLIGHT, f.check, f.detail) for f in snapshot.findings
                if f.status == "fail" and f.check != "ids"]
    if design.spec.nsx.segment.use_existing:
        changes += missing_on_existing_segment(design, snapshot.inventory)
    return changes


def plan_network_teardown(design: Design, snapshot: NetworkTeardown) -> list[Change]:
    from nsxkube.providers.nsx.diff import kind_of

    return [Change("delete", kind_of(o.resource_type), o.id, f"tagged nsxkube/cluster={design.name}", subject=o)
            for o in snapshot.owned]


class NetworkPhase:
    name = "network"
    title = "Create the node network in NSX"
    conflict_hint = "`nsxkube nsx discover` lists every finding; nsxkube never adopts or overwrites"

    def observe(self, ctx: Context) -> NetworkSnapshot:
        from nsxkube.checks.nsx_audit import audit
        from nsxkube.providers.nsx.inventory import get_plan_inventory

        inventory = get_plan_inventory(nsx_client(ctx, self.name), ctx.design.spec.nsx.transport_zone)
        findings = audit(ctx.design, inventory)
        for finding in findings:
            if finding.status == "warn":
                ctx.reporter.warning(self.name, finding.one_line())
        return NetworkSnapshot(inventory, findings)

    def plan(self, design: Design, snapshot: NetworkSnapshot) -> list[Change]:
        return plan_network(design, snapshot)

    def apply(self, ctx: Context, snapshot: NetworkSnapshot, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.nsx.realization import realization_targets, wait_until_realized
        from nsxkube.render.nsx import infra_patch_body

        todo = mutating(changes)
        manual = [c for c in changes if c.action == "manual"]  # still to do by hand: keep them in the result
        if not todo:
            return manual
        client = nsx_client(ctx, self.name)
        objects = [c.subject for c in todo]
        ctx.reporter.step(self.name, f"PATCH /infra with {len(objects)} object(s) in one hierarchical call")
        client.patch_infra(infra_patch_body(objects))
        targets = realization_targets(objects)
        ctx.reporter.step(self.name, f"waiting for NSX to realize {len(objects)} object(s) ({len(targets)} polled)")
        wait_until_realized(client, targets, timeout=ctx.options.realization_timeout_seconds,
                            progress=lambda done, total, status: ctx.reporter.progress(
                                self.name, "realized", done, total, status))
        return todo + manual

    # ---- destroy ----------------------------------------------------------------------------

    def observe_teardown(self, ctx: Context) -> NetworkTeardown:
        from nsxkube.providers.nsx.inventory import get_plan_inventory
        from nsxkube.providers.nsx.ownership import owned_objects

        client = nsx_client(ctx, self.name)
        inventory = get_plan_inventory(client, ctx.design.spec.nsx.transport_zone)
        owned = owned_objects(inventory.objects.values(), ctx.design.name)
        _refuse_attached_ports(client, owned, ctx.handoff.doomed_vms)
        return NetworkTeardown(owned)

    def plan_teardown(self, design: Design, snapshot: NetworkTeardown) -> list[Change]:
        return plan_network_teardown(design, snapshot)

    def destroy(self, ctx: Context, snapshot: NetworkTeardown, changes: list[Change]) -> list[Change]:
        from nsxkube.render.nsx import NsxObject, infra_patch_body

        todo = mutating(changes)
        if not todo:
            return []
        doomed = [NsxObject(o.path, o.resource_type, {"resource_type": o.resource_type, "id": o.id}, o.parent_path)
                  for o in (c.subject for c in todo)]
        client = nsx_client(ctx, self.name)
        _wait_for_ports_to_go(ctx, client, snapshot.owned)
        ctx.reporter.step(self.name, f"PATCH /infra marking {len(doomed)} object(s) for deletion")
        client.patch_infra(infra_patch_body(doomed, delete=True))
        return todo


def _segment_ports(client: NsxClient, owned: list[LiveObject]) -> list[dict[str, Any]]:
    return [p for segment in owned if segment.resource_type == "Segment"
            for p in client.list_objects(f"{segment.path}/ports")]


def _port_names(ports: list[dict[str, Any]]) -> str:
    names = ", ".join(str(p.get("display_name", p.get("id"))).split("/")[0] for p in ports[:3])
    return names + (", …" if len(ports) > 3 else "")


def _refuse_attached_ports(client: NsxClient, owned: list[LiveObject], doomed_vms: set[str]) -> None:
    """A segment with ports cannot go — unless each port's VM is one this destroy deletes (the
    machines phase runs first, and NSX removes a deleted VM's port itself)."""
    from nsxkube.providers.nsx.vms import attachment_owners

    ports = _segment_ports(client, owned)
    if ports and doomed_vms:
        owners = attachment_owners(client)
        ports = [p for p in ports if owners.get(str((p.get("attachment") or {}).get("id"))) not in doomed_vms]
    if ports:
        segment = str(ports[0].get("parent_path", "")).rsplit("/", 1)[-1] or "the node segment"
        raise ProviderError(f"segment {segment} still has {len(ports)} port(s) ({_port_names(ports)}): "
                            "VMs are attached that this destroy does not delete",
                            hint="destroy the machines first (`nsxkube destroy` without --phase does)")


def _wait_for_ports_to_go(ctx: Context, client: NsxClient, owned: list[LiveObject]) -> None:
    """NSX drops a deleted VM's segment port a little after vCenter deleted the VM: wait for it."""
    timeout = ctx.options.realization_timeout_seconds
    for _ in backoff(timeout):
        ports = _segment_ports(client, owned)
        if not ports:
            return
        ctx.reporter.progress(PHASE.name, "ports of deleted VMs gone", 0, len(ports), _port_names(ports))
    raise ProviderError(f"{len(ports)} port(s) still on the node segment after {timeout:.0f} s ({_port_names(ports)})",
                        hint="check in vCenter that the node VMs are deleted, then run destroy again")


PHASE = NetworkPhase()
