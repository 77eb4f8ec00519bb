"""Validation of what NSX and vCenter hold: the same observe and plan as `apply`, so "valid" means
exactly "apply would change nothing", plus what a plan does not judge (the TEP MTU, rules off)."""

from __future__ import annotations

from nsxkube.phases.validate.model import Check, Outcome, Probe, fail, ok, skipped, warn
from nsxkube.pipeline.change import Change
from nsxkube.wording import and_more

DOC_DFW = "docs/troubleshooting.md: One kind of traffic is blocked (the DFW)"
DOC_VIP = "docs/troubleshooting.md: The API VIP (or a LoadBalancer address) does not answer"
DOC_MTU = "docs/troubleshooting.md: Large packets hang"


def _drift(changes: list[Change]) -> list[str]:
    return [c.one_line() for c in changes if c.action != "unchanged"]


def nsx_objects(probe: Probe) -> Outcome:
    from nsxkube.phases.network import PHASE

    changes = probe.plan(PHASE)
    drift = _drift(changes)
    if drift:
        return fail(f"{len(drift)} of {len(changes)} NSX objects differ from the design: {and_more(drift)}",
                    "nsxkube plan --phase network shows each; nsxkube apply --phase network puts them back")
    kinds = sorted({c.kind for c in changes})
    return ok(f"{len(changes)} objects as designed ({', '.join(kinds)})")


def nsx_tep_mtu(probe: Probe) -> Outcome:
    from nsxkube.phases.network import PHASE

    ctx = probe.ctx
    snapshot, _ = probe.observed(PHASE)
    findings = [f for f in snapshot.findings if f.check == "tep-mtu"]
    if not findings:
        return skipped("the NSX audit did not judge the TEP MTU")
    finding = findings[0]
    mtu = ctx.design.mtu
    chain = f"TEP → node {mtu.node_mtu} → pod {mtu.pod_mtu}"
    if finding.status == "ok":
        return ok(f"{finding.detail}; {chain}")
    return Outcome(finding.status, f"{finding.detail}; {chain}", finding.hint)


def nsx_bindings(probe: Probe) -> Outcome:
    from nsxkube.phases.network_bindings import PHASE, PORT_KIND

    ctx, changes = probe.ctx, probe.plan(PHASE)
    drift = _drift(changes)
    ports = sum(1 for c in changes if c.kind == PORT_KIND)
    if drift:
        return fail(f"{len(drift)} node VM tag or port binding change(s) pending: {and_more(drift)}",
                    "nsxkube apply --phase network-bindings binds the VIP and pools to the node ports")
    what = (f"the VIP and LoadBalancer pools bound on {ports} node ports" if ctx.design.spec.nsx.vip_mode == "allowlist"
            else "segment profiles carry the VIP and pools (vip_mode segment-profiles)")
    return ok(f"{what}; every node VM tagged nsxkube/cluster={ctx.design.name}")


def vsphere_vms(probe: Probe) -> Outcome:
    from nsxkube.phases.machines import PHASE

    ctx, changes = probe.ctx, probe.plan(PHASE)
    vms = [c for c in changes if c.kind == "vm"]
    drift = _drift(vms)
    if drift:
        return fail(f"{len(drift)} of {len(vms)} node VMs differ from the design: {and_more(drift)}",
                    "nsxkube plan --phase machines shows each change")
    return ok(f"{len(vms)} node VMs powered on with their designed size, NIC on {ctx.design.spec.vsphere.network} "
              "and cloud-init")


def vsphere_anti_affinity(probe: Probe) -> Outcome:
    from nsxkube.phases.machines import PHASE

    if not probe.ctx.design.spec.vsphere.anti_affinity:
        return skipped("vsphere.anti_affinity is false in cluster.yaml")
    changes = probe.plan(PHASE)
    rules = [c for c in changes if c.kind == "drs-rule"]
    drift = _drift(rules)
    if drift:
        return warn(f"DRS rules differ: {and_more(drift)}",
                    "nsxkube apply --phase machines sets them; two control planes on one host lose quorum together")
    return ok(f"{len(rules)} DRS anti-affinity rule(s) in place: {', '.join(c.name for c in rules)}")


CHECKS = (
    Check("nsx.objects", "NSX segment, groups, services and DFW policy as designed", nsx_objects, DOC_DFW),
    Check("nsx.tep-mtu", "NSX TEP MTU carries the node MTU", nsx_tep_mtu, DOC_MTU),
    Check("nsx.bindings", "API VIP and LoadBalancer pools allowed on the node ports", nsx_bindings, DOC_VIP),
    Check("vsphere.vms", "node VMs powered on as designed", vsphere_vms),
    Check("vsphere.anti-affinity", "DRS anti-affinity rules", vsphere_anti_affinity),
)
