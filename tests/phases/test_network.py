"""The network phase against the NSX emulator as a real HTTPS server. The emulator's request log is
the judge: what was sent, how often, and that nothing touched an object nsxkube does not own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nsxkube.errors import ConflictError
from nsxkube.lab.nsx import TANZU_OVERLAPPING_SEGMENT_ID, TANZU_PRINCIPAL, NsxEmulator
from nsxkube.phases.network import PHASE
from nsxkube.pipeline import runner
from nsxkube.pipeline.context import Context
from nsxkube.render.nsx import desired_nsx_objects, infra_patch_body
from tests.providers.nsx.helpers import api_calls, emulator_design, make_context, patches, writes, written_paths

FREE_CIDR = {"nsx.segment.cidr": "172.16.60.0/24", "nsx.segment.gateway": "172.16.60.1",
             "network.api_vip": "172.16.60.10", "nodes.address_range": "172.16.60.11-172.16.60.99",
             "network.loadbalancer_pools": [{"name": "default", "range": "172.16.60.200-172.16.60.250"}]}


def run(verb: str, ctx: Context) -> runner.RunResult:
    try:
        if verb == "plan":
            return runner.plan(ctx, [PHASE])
        if verb == "destroy":
            return runner.destroy(ctx, [PHASE], confirm=lambda changes: True)
        return runner.apply(ctx, [PHASE], "cluster.yaml")
    finally:
        ctx.close()


def actions(result: runner.RunResult) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for change in result.phases[0].changes:
        found.setdefault(change.action, []).append(f"{change.kind} {change.name}")
    return found


def reported(ctx: Context) -> list[str]:
    """The change lines the phase reported (apply reports its plan this way)."""
    return ctx.reporter.texts("change")  # type: ignore[attr-defined]


def snapshot(nsx: NsxEmulator) -> dict[str, Any]:
    return {path: nsx.get(path)["_revision"] for path in nsx.paths("/infra")}


# ---- create, re-apply, change ------------------------------------------------------------------------


def test_apply_creates_everything_in_one_patch_of_the_rendered_body(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    result = run("apply", make_context(design, nsx, tmp_path))
    assert result.ok, result.phases[0].error
    desired = desired_nsx_objects(design)
    assert len(actions(result)["create"]) == len(desired)
    [patch] = patches(nsx)
    assert patch["path"] == "/policy/api/v1/infra" and patch["body"] == infra_patch_body(desired)
    assert len(nsx.requests) <= 10 and not any(r["allow_overwrite"] for r in nsx.requests)
    for obj in desired:
        assert {"scope": "nsxkube/cluster", "tag": design.name} in nsx.get(obj.path)["tags"]


def test_a_second_apply_sends_no_patch(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    run("apply", make_context(design, nsx, tmp_path))
    nsx.log.clear()
    result = run("apply", make_context(design, nsx, tmp_path))
    assert result.ok and set(actions(result)) == {"unchanged"}
    assert writes(nsx) == [] and len(api_calls(nsx)) <= 10


def test_adding_an_admin_network_updates_only_that_group(nsx: NsxEmulator, tmp_path: Path) -> None:
    run("apply", make_context(emulator_design(nsx), nsx, tmp_path))
    nsx.log.clear()
    changed = emulator_design(nsx, {"network.admin_networks": ["10.10.0.0/24", "192.168.77.0/24"]})
    result = run("apply", make_context(changed, nsx, tmp_path))
    assert actions(result)["update"] == ["group k8s-prod-admin-networks"]
    assert result.phases[0].changes[[c.action for c in result.phases[0].changes].index("update")].fields == (
        "expression",)
    [patch] = patches(nsx)
    assert [p for p, _ in written_paths(patch["body"])] == ["/infra/domains/default/groups/k8s-prod-admin-networks"]
    assert "192.168.77.0/24" in nsx.get("/infra/domains/default/groups/k8s-prod-admin-networks")["expression"][0][
        "ip_addresses"]


def test_plan_only_reads(nsx: NsxEmulator, tmp_path: Path) -> None:
    result = run("plan", make_context(emulator_design(nsx), nsx, tmp_path))
    assert result.ok and len(actions(result)["create"]) == len(desired_nsx_objects(emulator_design(nsx)))
    assert writes(nsx) == [] and {r["method"] for r in api_calls(nsx)} == {"GET"}


# ---- never touch what is not ours ----------------------------------------------------------------------


def test_apply_on_tanzu_writes_only_to_objects_it_owns(tanzu: NsxEmulator, tmp_path: Path) -> None:
    before = snapshot(tanzu)
    design = emulator_design(tanzu, FREE_CIDR)
    result = run("apply", make_context(design, tanzu, tmp_path))
    assert result.ok, result.phases[0].error
    ours = {o.path for o in desired_nsx_objects(design)}
    assert writes(tanzu), "apply sent nothing"
    for write in writes(tanzu):
        assert write["path"] == "/policy/api/v1/infra" and not write["allow_overwrite"]
        assert {path for path, _ in written_paths(write["body"])} <= ours
    assert {p: r for p, r in snapshot(tanzu).items() if p in before} == before


def test_an_object_with_our_id_that_is_not_ours_is_a_conflict(tanzu: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(tanzu, FREE_CIDR)
    group = "/infra/domains/default/groups/k8s-prod-nodes"
    tanzu.plant(group, {"expression": [{"resource_type": "IPAddressExpression", "ip_addresses": ["10.0.0.1"]}]},
                principal=TANZU_PRINCIPAL)
    tanzu.log.clear()
    result = run("apply", ctx := make_context(design, tanzu, tmp_path))
    assert not result.ok and "k8s-prod-nodes" in result.phases[0].error
    assert result.phases[0].error.startswith("network: nothing was written, 1 object(s) not ours")
    assert any(line.startswith("conflict: group k8s-prod-nodes: exists and it is protected") for line in reported(ctx))
    assert writes(tanzu) == []
    with pytest.raises(ConflictError, match="nothing was written"):
        runner.apply_phase(make_context(design, tanzu, tmp_path), PHASE)
    assert writes(tanzu) == [] and tanzu.get(group)["_revision"] == 0


def test_an_untagged_object_with_our_id_is_never_adopted(nsx: NsxEmulator, tmp_path: Path) -> None:
    nsx.plant("/infra/services/k8s-prod-kubelet", {"service_entries": []})
    result = run("apply", ctx := make_context(emulator_design(nsx), nsx, tmp_path))
    assert not result.ok
    assert [line for line in reported(ctx) if line.startswith("conflict")] == [
        "conflict: service k8s-prod-kubelet: exists and it belongs to unknown: created by admin, not to nsxkube"]
    assert patches(nsx) == []


def test_preflight_stops_on_the_overlapping_tanzu_segment(tanzu: NsxEmulator, tmp_path: Path) -> None:
    result = run("apply", ctx := make_context(emulator_design(tanzu), tanzu, tmp_path))
    assert not result.ok and writes(tanzu) == []
    conflicts = [line for line in reported(ctx) if line.startswith("conflict")]
    assert any(c.startswith("conflict: preflight check segment-cidr: segment vnet-") for c in conflicts)
    assert any(c.startswith("conflict: preflight check addresses: LoadBalancer pool default") for c in conflicts)
    assert TANZU_OVERLAPPING_SEGMENT_ID in result.phases[0].error


# ---- destroy -------------------------------------------------------------------------------------------


def test_destroy_removes_only_our_objects_and_leaves_tanzu_intact(tanzu: NsxEmulator, tmp_path: Path) -> None:
    before = snapshot(tanzu)
    design = emulator_design(tanzu, FREE_CIDR)
    run("apply", make_context(design, tanzu, tmp_path))
    tanzu.log.clear()
    result = run("destroy", make_context(design, tanzu, tmp_path))
    assert result.ok and len(actions(result)["delete"]) == len(desired_nsx_objects(design))
    [patch] = patches(tanzu)
    written = list(written_paths(patch["body"]))
    assert written and all(deleted for _, deleted in written)
    assert snapshot(tanzu) == before
    again = run("destroy", make_context(design, tanzu, tmp_path))
    assert again.ok and again.phases[0].changes == []


def test_destroy_refuses_while_vms_are_attached(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    run("apply", make_context(design, nsx, tmp_path))
    nsx.attach_vm("k8s-prod-cp-1", "k8s-nodes-segment")
    nsx.log.clear()
    result = run("destroy", make_context(design, nsx, tmp_path))
    assert not result.ok and "still has 1 port(s) (k8s-prod-cp-1)" in result.phases[0].error
    assert writes(nsx) == []


def test_destroy_with_the_machines_phase_waits_for_nsx_to_drop_the_ports_of_the_vms_it_deleted(
        nsx: NsxEmulator, tmp_path: Path) -> None:
    """`nsxkube destroy`: machines (destroyed first) deletes the VMs; NSX removes their ports a
    little later. A port of a VM this destroy does not delete still blocks, before any write."""
    import threading

    design = emulator_design(nsx)
    run("apply", make_context(design, nsx, tmp_path))
    ours = [nsx.attach_vm(f"k8s-prod-cp-{i}", "k8s-nodes-segment") for i in (1, 2)]
    stranger = nsx.attach_vm("someone-elses-vm", "k8s-nodes-segment")
    ctx = make_context(design, nsx, tmp_path)
    ctx.handoff.doomed_vms = frozenset(vm.external_id for vm in ours)
    blocked = run("destroy", ctx)
    assert not blocked.ok and "still has 1 port(s) (someone-elses-vm)" in blocked.phases[0].error
    nsx.detach_vm(stranger.external_id)
    nsx.log.clear()
    timer = threading.Timer(0.6, lambda: [nsx.detach_vm(vm.external_id) for vm in ours])
    timer.start()
    ctx = make_context(design, nsx, tmp_path)
    ctx.handoff.doomed_vms = frozenset(vm.external_id for vm in ours)
    try:
        result = run("destroy", ctx)
    finally:
        timer.join()
    assert result.ok, result.phases[0].error
    assert nsx.get("/infra/segments/k8s-nodes-segment") is None
    assert any(t.startswith("ports of deleted VMs gone 0/2") for t in ctx.reporter.texts("progress"))
    [patch] = patches(nsx)  # the one deleting PATCH came after the ports were gone
    assert patch["time"] > min(r["time"] for r in api_calls(nsx) if r["path"].endswith("/ports"))


# ---- realization ---------------------------------------------------------------------------------------


def test_apply_waits_for_realization_with_progress(nsx: NsxEmulator, tmp_path: Path) -> None:
    nsx.set_realization_delay(0.05)
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    result = run("apply", ctx)
    assert result.ok
    polls = [r for r in api_calls(nsx) if r["path"].endswith("/realized-entities")]
    assert len(polls) > 2  # UNREALIZED first, then polled again
    assert ctx.reporter.texts("progress")[-1].startswith("realized 2/2")


def test_a_realization_error_is_reported_with_its_detail(nsx: NsxEmulator, tmp_path: Path) -> None:
    group = "/infra/domains/default/groups/k8s-prod-dns-servers"
    nsx.force_realization_error(group, "NSGroup k8s-prod-dns-servers exceeds the member limit")
    result = run("apply", make_context(emulator_design(nsx), nsx, tmp_path))
    error = result.phases[0].error
    assert not result.ok and "could not realize" in error and f"{group}: NSGroup k8s-prod-dns-servers exceeds" in error
    assert "\n" not in error


def test_realization_times_out_with_the_pending_objects(nsx: NsxEmulator, tmp_path: Path) -> None:
    nsx.set_realization_delay(30)
    result = run("apply", make_context(emulator_design(nsx), nsx, tmp_path, realization_timeout=0.2))
    assert not result.ok and "not realized after 0 s" in result.phases[0].error
    assert "/infra/segments/k8s-nodes-segment (UNREALIZED)" in result.phases[0].error


# ---- faults, sessions, TLS -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "method"), [(429, None, "PATCH"), (503, None, "GET"), (500, 607, "PATCH")])
def test_injected_faults_are_survived(nsx: NsxEmulator, tmp_path: Path, status: int, code: int | None,
                                      method: str) -> None:
    nsx.fail_next(status, 2, error_code=code, method=method, path_prefix="/policy/api/v1/infra")
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    result = run("apply", ctx)
    assert result.ok, result.phases[0].error
    assert [r["status"] for r in patches(nsx)][-1] == 200 and nsx.get("/infra/segments/k8s-nodes-segment")
    assert sum(f"NSX answered {status}" in t for t in ctx.reporter.texts("step")) == 2


def test_a_fault_that_does_not_stop_is_one_clean_line(nsx: NsxEmulator, tmp_path: Path) -> None:
    nsx.fail_next(503, 50, method="PATCH")
    result = run("apply", make_context(emulator_design(nsx), nsx, tmp_path))
    assert not result.ok and result.phases[0].error.startswith("NSX refused PATCH /policy/api/v1/infra: 503")


def test_an_expired_session_is_renewed_between_plan_and_apply(nsx: NsxEmulator, tmp_path: Path) -> None:
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    snapshot = PHASE.observe(ctx)
    nsx.expire_sessions()
    PHASE.apply(ctx, snapshot, PHASE.plan(ctx.design, snapshot))
    ctx.close()
    # the PATCH met the expired session (403 as NSX answers it, nothing written); the client logged in again
    # and resent it
    assert [p["status"] for p in patches(nsx)] == [403, 200]
    assert [r["path"] for r in nsx.requests].count("/api/session/create") == 2


def test_insecure_tls_warns_on_every_run(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx, trust="insecure")
    for _ in range(2):
        ctx = make_context(design, nsx, tmp_path, fast_client=False)
        assert run("plan", ctx).ok
        assert any("verification is OFF" in w for w in ctx.reporter.texts("warning"))


def test_basic_auth_and_a_ca_file_work_too(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx, {"nsx.auth": "basic"}, trust="ca_file")
    assert run("apply", make_context(design, nsx, tmp_path, fast_client=False)).ok
    assert {r["auth"]["kind"] for r in nsx.requests} == {"basic"}


# ---- someone else's segment ------------------------------------------------------------------------------


def test_an_existing_segment_is_only_read_and_what_it_lacks_is_manual(nsx: NsxEmulator, tmp_path: Path) -> None:
    segment = "/infra/segments/k8s-nodes-segment"
    nsx.plant(segment, {"connectivity_path": "/infra/tier-1s/t1-gw", "subnets": [{"gateway_address": "172.16.50.1/24"}],
                        "transport_zone_path": "/infra/sites/default/enforcement-points/default/transport-zones/"
                                               "overlay-tz"})
    design = emulator_design(nsx, {"nsx.segment.use_existing": True})
    result = run("apply", make_context(design, nsx, tmp_path))
    assert result.ok, result.phases[0].error
    assert sorted(actions(result)["manual"]) == ["discovery profile binding k8s-nodes-segment",
                                                 "security profile binding k8s-nodes-segment"]
    [patch] = patches(nsx)
    written = [path for path, _ in written_paths(patch["body"])]
    assert written and not any(path.startswith(segment) for path in written)
    assert nsx.get(segment)["_revision"] == 0
