"""Reading NSX against the emulator: the manager's version (shown, and refused when unknown), rules
read back without `parent_path`, transport zones by display name, the TEP MTU from uplink
profiles, and the reads of a plan going out together on one session (issues 20 and 22)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nsxkube.checks.nsx_audit import audit
from nsxkube.errors import ProviderError
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.presets import OVERLAY_TZ_PATH, TANZU_POLICY_ID
from nsxkube.phases.network import PHASE as NETWORK
from nsxkube.pipeline import runner
from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.connect import client_config
from nsxkube.providers.nsx.inventory import get_full_inventory, get_plan_inventory, tep_mtu_of
from nsxkube.providers.nsx.version import parse_version
from tests.providers.nsx.helpers import FAST, emulator_design, env_of, make_context, writes
from tests.support.specs import example_data, with_changes

# Clear of the tanzu preset's 172.16.50.128/25, which the default node network overlaps.
FREE_CIDR = {"nsx.segment.cidr": "172.16.60.0/24", "nsx.segment.gateway": "172.16.60.1",
             "network.api_vip": "172.16.60.10", "nodes.address_range": "172.16.60.11-172.16.60.99",
             "network.loadbalancer_pools": [{"name": "default", "range": "172.16.60.200-172.16.60.250"}]}
TZ_BASE = OVERLAY_TZ_PATH.rsplit("/", 1)[0]
POLICY = f"/infra/domains/default/security-policies/{TANZU_POLICY_ID}"


def client_of(nsx: NsxEmulator, **changes: object) -> NsxClient:
    design = emulator_design(nsx, dict(changes))
    messages: list[str] = []
    client = NsxClient(client_config(design.spec.nsx, lambda name, what: env_of(nsx)[name], backoff=FAST),
                       notify=messages.append, sleep=lambda s: None)
    client.messages = messages  # type: ignore[attr-defined]
    return client


def apply_network(nsx: NsxEmulator, workdir: Path, changes: dict | None = None) -> runner.RunResult:
    ctx = make_context(emulator_design(nsx, {**FREE_CIDR, **(changes or {})}), nsx, workdir)
    try:
        return runner.apply(ctx, [NETWORK], "cluster.yaml")
    finally:
        ctx.close()


# ---- children by their place in the tree (issue 20) ---------------------------------------------------


def test_rules_read_back_without_parent_path_stay_with_their_policy(tanzu: NsxEmulator) -> None:
    tanzu.omit_derived_fields()
    client = client_of(tanzu)
    try:
        inventory = get_plan_inventory(client, "overlay-tz")
    finally:
        client.close()
    assert [r["id"] for r in inventory.objects[POLICY].body["rules"]] == [
        "allow-supervisor-to-vnet", "allow-intra-vnet", "allow-https-to-ingress", "drop-other-to-vnet"]
    maps = inventory.of_type("SegmentDiscoveryProfileBindingMap")
    assert maps and all(m.parent_path.startswith("/infra/segments/") for m in maps)


def test_re_apply_against_a_sparse_responder_writes_nothing(tanzu: NsxEmulator, tmp_path: Path) -> None:
    """Before the fix, rules without parent_path were dropped and every re-apply PATCHed the policy."""
    tanzu.omit_derived_fields()
    assert apply_network(tanzu, tmp_path).ok
    tanzu.log.clear()
    again = apply_network(tanzu, tmp_path)
    assert again.ok and writes(tanzu) == []
    assert {c.action for c in again.phases[0].changes} == {"unchanged"}


# ---- the manager's version (issue 22) -------------------------------------------------------------------


def test_the_plan_reads_and_reports_the_nsx_version(tanzu: NsxEmulator) -> None:
    client = client_of(tanzu)
    try:
        inventory = get_plan_inventory(client, "overlay-tz")
    finally:
        client.close()
    assert inventory.nsx_version == "4.2.1.0.0.24304122"
    assert client.messages == [f"NSX 4.2.1 (4.2.1.0.0.24304122) at {client.config.endpoint.display}"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", ["9.0.0.0.24733063", "3.1.3.0.0.17904581", "4.3.0.0.0.1"])
def test_a_version_nsxkube_never_described_is_refused_in_one_line(tanzu: NsxEmulator, tmp_path: Path,
                                                                  version: str) -> None:
    tanzu.set_version(version)
    result = apply_network(tanzu, tmp_path)
    assert not result.ok and writes(tanzu) == []
    error = result.phases[0].error
    assert f"runs version {version}, which nsxkube does not support" in error
    assert "supported: NSX-T 3.2 and NSX 4.0 to 4.2" in error and "\n" not in error


def test_parse_version_reads_the_release_and_refuses_nonsense() -> None:
    parsed = parse_version({"node_version": "4.1.2.0.0.22589037", "product_version": "4.1.2.0.0.22589037"}, "m")
    assert (parsed.major, parsed.minor, parsed.patch, parsed.release, parsed.supported) == (4, 1, 2, "4.1.2", True)
    with pytest.raises(ProviderError, match="did not say its version"):
        parse_version({"node_version": "unknown"}, "m")


def write_spec(tmp_path: Path, nsx: NsxEmulator) -> Path:
    import yaml

    data = with_changes(example_data(), {"nsx.manager": nsx.url.split("://", 1)[1], "nsx.transport_zone": "overlay-tz",
                                         "nsx.tier1": "t1-gw", "nsx.tls.thumbprint": nsx.thumbprint, **FREE_CIDR,
                                         "kubernetes.pod_cidr": "10.245.0.0/16"})  # clear of the Supervisor's
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def discover(tmp_path: Path, nsx: NsxEmulator, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsxkube", "nsx", "discover", str(write_spec(tmp_path, nsx)), *args],
                          capture_output=True, text=True, env={**os.environ, **env_of(nsx)}, timeout=60, cwd=tmp_path)


def test_discover_names_the_version_and_the_tep_mtu_source(tanzu: NsxEmulator, tmp_path: Path) -> None:
    done = discover(tmp_path, tanzu)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"NSX {tanzu.url.split('://', 1)[1]} (NSX 4.2.1.0.0.24304122)" in done.stdout
    assert "MTU: TEP 1700 (uplink profile esxi-host-uplink-profile, the smallest of 3 uplink profiles)," in done.stdout
    report = tmp_path / "nsx-report.md"
    data = json.loads(discover(tmp_path, tanzu, "--output", "json", "--report", str(report)).stdout)
    text = report.read_text(encoding="utf-8")
    assert "(NSX 4.2.1.0.0.24304122), read by `nsxkube nsx discover`" in text
    assert "- TEP / uplink MTU: 1700 (uplink profile esxi-host-uplink-profile, the smallest of 3 uplink profiles)" in text
    assert data["nsx_version"] == "4.2.1.0.0.24304122"
    assert data["mtu"]["tep"] == 1700 and data["mtu"]["tep_source"].startswith("uplink profile esxi-host-uplink-profile")
    tanzu.set_version("9.0.0.0.24733063")
    refused = discover(tmp_path, tanzu)
    assert refused.returncode == 4 and refused.stdout == "" and refused.stderr.count("\n") == 1
    assert refused.stderr.startswith("error: NSX at") and "version 9.0.0.0.24733063" in refused.stderr


# ---- transport zones by display name (issue 20) ----------------------------------------------------------


def zone_finding(nsx: NsxEmulator, name: str) -> str:
    design = emulator_design(nsx, {**FREE_CIDR, "nsx.transport_zone": name})
    client = client_of(nsx)
    try:
        plan = next(f for f in audit(design, get_plan_inventory(client, name)) if f.check == "transport-zone")
        full = next(f for f in audit(design, get_full_inventory(client)) if f.check == "transport-zone")
    finally:
        client.close()
    assert (plan.status, plan.detail, plan.hint) == (full.status, full.detail, full.hint)
    return f"{full.status}: {full.detail} | {full.hint}"


def test_a_zone_named_by_display_name_is_found_and_its_id_given(tanzu: NsxEmulator) -> None:
    zone_id = "1b3a2f36-bfd1-443e-a0f6-4de01abc963e"
    tanzu.plant(f"{TZ_BASE}/{zone_id}", {"display_name": "nsx-overlay-transportzone", "tz_type": "OVERLAY_STANDARD"})
    assert zone_finding(tanzu, "nsx-overlay-transportzone") == (
        f"fail: transport zone 'nsx-overlay-transportzone' is the display name of zone {zone_id} (OVERLAY_STANDARD); "
        f"the segment names its zone by id | set nsx.transport_zone: {zone_id}")
    assert zone_finding(tanzu, "overlay-tz").startswith("ok: transport zone overlay-tz")  # by id first


def test_a_display_name_two_zones_carry_is_an_error_naming_both(tanzu: NsxEmulator) -> None:
    for zone_id in ("tz-a", "tz-b"):
        tanzu.plant(f"{TZ_BASE}/{zone_id}", {"display_name": "overlay", "tz_type": "OVERLAY_STANDARD"})
    assert zone_finding(tanzu, "overlay") == ("fail: transport zone name 'overlay' is ambiguous: 2 zones carry it "
                                              "(tz-a, tz-b) | set nsx.transport_zone to the id of the one the nodes use")


# ---- TEP MTU from the uplink profiles (issue 20) ----------------------------------------------------------


def test_the_smallest_uplink_profile_mtu_wins_and_is_named(tanzu: NsxEmulator) -> None:
    tanzu.plant("/infra/host-switch-profiles/small-hosts", {"mtu": 1600, "transport_vlan": 0})
    client = client_of(tanzu)
    try:
        inventory = get_full_inventory(client)
    finally:
        client.close()
    assert inventory.tep_mtu == 1600
    assert inventory.tep_mtu_source == "uplink profile small-hosts, the smallest of 4 uplink profiles"
    finding = next(f for f in audit(emulator_design(tanzu, FREE_CIDR), inventory) if f.check == "tep-mtu")
    assert finding.status == "warn" and "from uplink profile small-hosts" in finding.detail


def test_a_3x_manager_without_policy_profiles_is_read_through_the_manager_api(tanzu: NsxEmulator) -> None:
    tanzu.fail_next(404, 5, method="GET", path_prefix="/policy/api/v1/infra/host-switch-profiles")
    tanzu.plant("/infra/host-switch-profiles/small-hosts", {"mtu": 1650})
    client = client_of(tanzu)
    try:
        inventory = get_plan_inventory(client, "overlay-tz")
    finally:
        client.close()
    assert (inventory.tep_mtu, inventory.tep_mtu_source) == (
        1650, "uplink profile small-hosts, the smallest of 4 uplink profiles, manager API")


@pytest.mark.parametrize(("config", "profiles", "expected"), [
    ({"physical_uplink_mtu": 1700}, [], (1700, "SwitchingGlobalConfig physical_uplink_mtu")),
    ({"physical_uplink_mtu": 1700}, [{"id": "a", "mtu": 9000}],
     (9000, "uplink profile a, the smallest of 1 uplink profiles")),
    ({"physical_uplink_mtu": 1600}, [{"id": "a", "mtu": 9000}, {"id": "b"}],  # b has no MTU: the global one applies
     (1600, "SwitchingGlobalConfig physical_uplink_mtu, the smallest of 2 uplink profiles")),
    ({}, [], (None, "neither the uplink profiles nor SwitchingGlobalConfig could be read")),
])
def test_tep_mtu_table(config: dict, profiles: list, expected: tuple) -> None:
    found = tep_mtu_of(config, profiles, "policy")
    assert (found.value, found.source) == expected


# ---- one session, reads together (issue 22) ----------------------------------------------------------------


def test_a_plan_logs_in_once_and_sends_its_reads_together(tanzu: NsxEmulator) -> None:
    tanzu.log.clear()
    client = client_of(tanzu, **{"nsx.auth": "session"})
    try:
        get_plan_inventory(client, "overlay-tz")
    finally:
        client.close()
    calls = [(r["method"], r["path"]) for r in tanzu.requests]
    assert calls[0] == ("POST", "/api/session/create") and calls[-1] == ("POST", "/api/session/destroy")
    assert sorted(p for m, p in calls[1:-1]) == sorted([
        "/api/v1/node/version", "/policy/api/v1/infra", f"/policy/api/v1{OVERLAY_TZ_PATH}",
        "/api/v1/global-configs/SwitchingGlobalConfig", "/policy/api/v1/infra/host-switch-profiles"])
    assert all(r["auth"]["kind"] == "session" for r in tanzu.requests[1:-1])


# ---- the overlap summary (issue 20) --------------------------------------------------------------------------


def test_the_refusal_line_does_not_call_overlaps_objects_that_are_not_ours(tanzu: NsxEmulator, tmp_path: Path) -> None:
    ctx = make_context(emulator_design(tanzu), tanzu, tmp_path)  # the default 172.16.50.0/24 overlaps Tanzu's /25
    try:
        result = runner.apply(ctx, [NETWORK], "cluster.yaml")
    finally:
        ctx.close()
    error = result.phases[0].error
    assert not result.ok and "not ours" not in error
    assert error.startswith("network: nothing was written, 2 preflight check(s) fail: conflict: preflight check "
                            "segment-cidr: segment vnet-")


def test_a_realization_round_asks_about_every_pending_path_at_once() -> None:
    """Two paths, one round trip: each read waits until the other is in flight too (a barrier that
    times out if the reads went one after the other)."""
    import threading

    from nsxkube.providers.nsx.realization import wait_until_realized

    barrier = threading.Barrier(2, timeout=5)
    asked: list[str] = []

    class TwoAtOnce:
        def request(self, method: str, path: str, *, params: dict) -> dict:
            asked.append(params["intent_path"])
            barrier.wait()  # BrokenBarrierError unless both reads of the round are in flight together
            return {"results": [{"state": "REALIZED"}]}

    wait_until_realized(TwoAtOnce(), ["/infra/segments/a", "/infra/domains/default/security-policies/p"],  # type: ignore[arg-type]
                        timeout=5, sleep=lambda s: None)
    assert sorted(asked) == ["/infra/domains/default/security-policies/p", "/infra/segments/a"]


def test_the_reads_of_a_plan_are_in_flight_together(tanzu: NsxEmulator) -> None:
    """Five independent reads, one round trip: each waits until all five are in flight (a barrier
    that breaks if they went one after the other), then goes to the emulator."""
    import threading

    barrier = threading.Barrier(5, timeout=5)

    class Together(NsxClient):
        def request(self, method: str, path: str, **kwargs: object) -> object:
            barrier.wait()
            return super().request(method, path, **kwargs)  # type: ignore[arg-type]

    design = emulator_design(tanzu)
    client = Together(client_config(design.spec.nsx, lambda name, what: env_of(tanzu)[name], backoff=FAST))
    try:
        inventory = get_plan_inventory(client, "overlay-tz")
    finally:
        client.close()
    assert inventory.nsx_version and inventory.tep_mtu == 1700 and OVERLAY_TZ_PATH in inventory.transport_zones
