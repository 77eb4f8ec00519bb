"""network: the node segment, its IP discovery and SpoofGuard profiles, the groups, services and
DFW policy of the port matrix — in ONE hierarchical PATCH of exactly the bodies `nsxkube render`
writes to nsx/infra-patch.json, then a wait until NSX has realized them.

plan reads NSX (four calls), audits it against the spec (`checks.nsx_audit`) and diffs each
object; apply refuses to write while any audit check fails or any object with our id is not
ours, sends only what is created or updated, and waits. Destroy deletes, in one PATCH, only
objects tagged `nsxkube/cluster=<name>` — never one that is protected or someone else's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nsxkube.errors import ConflictError, ProviderError
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.facts import DOOMED_VMS
from nsxkube.pipeline.waiting import backoff

if TYPE_CHECKING:  # the provider imports httpx: loaded only when the phase runs
    from nsxkube.checks.nsx_audit import Finding
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.diff import ObjectChange
    from nsxkube.providers.nsx.model import LiveObject

OBSERVED = "network.observed"  # plan's snapshot, used by the apply of the same run
DESTROY_OBSERVED = "network.destroy-observed"


@dataclass
class Observed:
    changes: list[ObjectChange]
    findings: list[Finding]
    manual: list[Change]


class NetworkPhase:
    name = "network"
    title = "Create the node network in NSX"

    # ---- plan -------------------------------------------------------------------------------

    def _observe(self, ctx: Context) -> Observed:
        from nsxkube.checks.nsx_audit import audit
        from nsxkube.phases.network_existing import missing_on_existing_segment
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.diff import diff_objects
        from nsxkube.providers.nsx.inventory import get_plan_inventory
        from nsxkube.render.nsx import desired_nsx_objects

        design = ctx.design
        inventory = get_plan_inventory(nsx_client(ctx, self.name), design.spec.nsx.transport_zone)
        manual = missing_on_existing_segment(design, inventory) if design.spec.nsx.segment.use_existing else []
        return Observed(diff_objects(desired_nsx_objects(design), inventory, design.name), audit(design, inventory),
                        manual)

    def plan(self, ctx: Context) -> list[Change]:
        observed = self._observe(ctx)
        ctx.facts[OBSERVED] = observed
        for finding in observed.findings:
            if finding.status == "warn":
                ctx.reporter.warning(self.name, finding.one_line())
        changes = [Change(c.action, c.kind, c.obj.id, c.detail, c.fields) for c in observed.changes]
        # Object conflicts are listed above one by one; the audit's "ids" check says the same.
        changes += [Change("conflict", "preflight check", f.check, f.detail) for f in observed.findings
                    if f.status == "fail" and f.check != "ids"]
        return changes + observed.manual

    # ---- apply ------------------------------------------------------------------------------

    def apply(self, ctx: Context, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.realization import realization_targets, wait_until_realized
        from nsxkube.render.nsx import infra_patch_body

        observed = ctx.facts.pop(OBSERVED, None) or self._observe(ctx)
        _refuse_conflicts(observed)
        asked = {(c.kind, c.name) for c in changes if c.mutating}
        todo = [c for c in observed.changes if c.action in ("create", "update") and (c.kind, c.obj.id) in asked]
        manual = [c for c in changes if c.action == "manual"]  # still to do by hand: keep them in the result
        if not todo:
            return manual
        client = nsx_client(ctx, self.name)
        objects = [c.obj for c in todo]
        ctx.reporter.step(self.name, f"PATCH /infra with {len(objects)} object(s) in one hierarchical call")
        client.patch_infra(infra_patch_body(objects))
        targets = realization_targets(objects)
        ctx.reporter.step(self.name, f"waiting for NSX to realize {len(objects)} object(s) ({len(targets)} polled)")
        wait_until_realized(client, targets, timeout=ctx.options.realization_timeout_seconds,
                            progress=lambda done, total, status: ctx.reporter.progress(
                                self.name, "realized", done, total, status))
        return [Change(c.action, c.kind, c.obj.id, c.detail, c.fields) for c in todo] + manual

    # ---- destroy ----------------------------------------------------------------------------

    def plan_destroy(self, ctx: Context) -> list[Change]:
        from nsxkube.checks.nsx_ownership import owned_objects
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.diff import kind_of
        from nsxkube.providers.nsx.inventory import get_plan_inventory

        client = nsx_client(ctx, self.name)
        inventory = get_plan_inventory(client, ctx.design.spec.nsx.transport_zone)
        owned = owned_objects(inventory.objects.values(), ctx.design.name)
        _refuse_attached_ports(client, owned, ctx.facts.get(DOOMED_VMS) or set())
        ctx.facts[DESTROY_OBSERVED] = owned
        return [Change("delete", kind_of(o.resource_type), o.id, f"tagged nsxkube/cluster={ctx.design.name}")
                for o in owned]

    def destroy(self, ctx: Context, changes: list[Change]) -> list[Change]:
        from nsxkube.providers.nsx.connect import nsx_client
        from nsxkube.providers.nsx.diff import kind_of
        from nsxkube.render.nsx import NsxObject, infra_patch_body

        owned = ctx.facts.pop(DESTROY_OBSERVED, None)
        if owned is None:
            self.plan_destroy(ctx)
            owned = ctx.facts.pop(DESTROY_OBSERVED)
        asked = {(c.kind, c.name) for c in changes if c.action == "delete"}
        doomed = [NsxObject(o.path, o.resource_type, {"resource_type": o.resource_type, "id": o.id}, o.parent_path)
                  for o in owned if (kind_of(o.resource_type), o.id) in asked]
        if not doomed:
            return []
        _wait_for_ports_to_go(ctx, nsx_client(ctx, self.name), owned)
        ctx.reporter.step(self.name, f"PATCH /infra marking {len(doomed)} object(s) for deletion")
        nsx_client(ctx, self.name).patch_infra(infra_patch_body(doomed, delete=True))
        return [c for c in changes if c.action == "delete"]


def _refuse_conflicts(observed: Observed) -> None:
    """Preflight: nothing is written while the audit fails or an object with our id is not ours."""
    blocking = [f"{c.kind} {c.obj.id} {c.detail}" for c in observed.changes if c.action == "conflict"]
    blocking += [f.one_line() for f in observed.findings if f.status == "fail" and f.check != "ids"]
    if blocking:
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        raise ConflictError(f"NSX preflight failed, nothing was written: {blocking[0]}{more}",
                            hint="`nsxkube nsx discover` lists every finding; nsxkube never adopts or overwrites")


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
