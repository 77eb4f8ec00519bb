"""The cluster's ranges against what NSX routes: the emulator's tanzu preset carries the Supervisor's
networks (namespace blocks behind SNAT and routed, ingress/egress pools, a TEP pool)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from nsxkube.checks.nsx_audit import audit
from nsxkube.checks.nsx_ranges import nsx_ranges, range_findings
from nsxkube.design.free_ranges import PRIVATE_SPACES, TANZU_DEFAULTS, free_network, free_range_in
from nsxkube.findings import Finding
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.presets import (
    TANZU_EGRESS_CIDR,
    TANZU_EGRESS_POOL_ID,
    TANZU_INGRESS_POOL_ID,
    TANZU_NAMESPACE_BLOCK_ID,
    TANZU_NAMESPACE_NETWORK,
    TANZU_ROUTED_BLOCK_ID,
    TEP_POOL_ID,
)
from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.connect import client_config
from nsxkube.providers.nsx.inventory import get_full_inventory
from nsxkube.providers.nsx.model import LiveInventory
from nsxkube.spec.types import IpRange
from tests.providers.nsx.helpers import emulator_design, env_of, manager_of
from tests.support.specs import example_data, with_changes

Net = ipaddress.IPv4Network


@pytest.fixture(scope="module")
def tanzu() -> Iterator[NsxEmulator]:
    with NsxEmulator("tanzu", realization_delay=0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def inventory(tanzu: NsxEmulator) -> LiveInventory:
    design = emulator_design(tanzu)
    client = NsxClient(client_config(design.spec.nsx, lambda name, what: env_of(tanzu)[name]))
    try:
        return get_full_inventory(client)
    finally:
        client.close()


def by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.check, []).append(finding)
    return grouped


def findings_for(tanzu: NsxEmulator, inventory: LiveInventory, changes: dict[str, Any]) -> dict[str, list[Finding]]:
    return by_check(range_findings(emulator_design(tanzu, changes), inventory))


def test_discover_reads_the_supervisor_blocks_and_pools_and_knows_which_are_routed(inventory):
    ranges = {(r.kind, r.label.split()[2 if r.kind != "segment" else 1]): r for r in nsx_ranges(inventory)}
    assert ranges[("IP block", TANZU_NAMESPACE_BLOCK_ID)].routed is False  # the default namespace network: SNAT
    assert ranges[("IP block", TANZU_ROUTED_BLOCK_ID)].routed is True  # ncp/no_snat: a namespace with NAT off
    for pool in (TANZU_INGRESS_POOL_ID, TANZU_EGRESS_POOL_ID, TEP_POOL_ID):
        assert ranges[("IP pool", pool)].routed is True
    # Tanzu's /28 segments are carved from the namespace block: behind SNAT like it.
    assert ranges[("segment", "vm-domain-c8-5a0c6b2e-0")].routed is False
    assert ranges[("segment", "legacy-vms")].routed is True
    assert str(ranges[("IP block", TANZU_NAMESPACE_BLOCK_ID)].network) == TANZU_NAMESPACE_NETWORK


def test_the_default_pod_range_fails_on_a_routed_namespace_and_names_every_colliding_object(tanzu, inventory):
    (pods,) = findings_for(tanzu, inventory, {})["pod-cidr-nsx"]
    assert pods.status == "fail"
    for name in (TANZU_NAMESPACE_BLOCK_ID, TANZU_ROUTED_BLOCK_ID, "vm-domain-c8-5a0c6b2e-0"):
        assert name in pods.detail
    suggested = Net(pods.hint.rsplit("e.g. ", 1)[1])
    assert not any(suggested.overlaps(r.network) for r in nsx_ranges(inventory))
    assert not any(suggested.overlaps(d) for d in TANZU_DEFAULTS)


def test_a_pod_range_over_the_namespace_network_behind_snat_only_warns(tanzu, inventory):
    (pods,) = findings_for(tanzu, inventory, {"kubernetes.pod_cidr": "10.244.0.0/20"})["pod-cidr-nsx"]
    assert pods.status == "warn"
    assert TANZU_NAMESPACE_BLOCK_ID in pods.detail and TANZU_ROUTED_BLOCK_ID not in pods.detail
    assert "behind SNAT" in pods.detail


def test_a_free_pod_range_is_ok(tanzu, inventory):
    (pods,) = findings_for(tanzu, inventory, {"kubernetes.pod_cidr": "10.245.0.0/16"})["pod-cidr-nsx"]
    assert pods.status == "ok"


def test_a_service_range_over_the_ingress_and_egress_pools_is_a_note(tanzu, inventory):
    (services,) = findings_for(tanzu, inventory, {"kubernetes.service_cidr": "10.30.0.0/16"})["service-cidr-nsx"]
    assert services.status == "ok" and services.detail.startswith("note: ")
    assert TANZU_INGRESS_POOL_ID in services.detail and TANZU_EGRESS_POOL_ID in services.detail
    suggested = Net(services.hint.rsplit("e.g. ", 1)[1])
    assert suggested.prefixlen == 16 and not any(suggested.overlaps(r.network) for r in nsx_ranges(inventory))


ON_THE_EGRESS_POOL = {
    "nsx.segment.cidr": TANZU_EGRESS_CIDR, "nsx.segment.gateway": "10.30.20.1", "network.api_vip": "10.30.20.10",
    "network.loadbalancer_pools": [{"name": "default", "range": "10.30.20.200-10.30.20.250"}],
    "nodes.address_range": "10.30.20.11-10.30.20.99",
}


def test_node_segment_vip_and_pools_on_a_routed_pool_fail(tanzu, inventory):
    found = findings_for(tanzu, inventory, ON_THE_EGRESS_POOL)
    for check in ("routed-node-segment", "routed-api-vip", "routed-lb-pools"):
        (finding,) = found[check]
        assert finding.status == "fail", finding
        assert f"IP pool {TANZU_EGRESS_POOL_ID} {TANZU_EGRESS_CIDR}" in finding.detail
        assert "e.g. " in finding.hint or "move nsx.segment.cidr first" in finding.hint
    suggested = Net(found["routed-node-segment"][0].hint.rsplit("e.g. ", 1)[1])
    assert suggested.prefixlen == 24 and not any(suggested.overlaps(r.network) for r in nsx_ranges(inventory))


def test_node_segment_inside_the_namespace_block_behind_snat_warns(tanzu, inventory):
    changes = {"nsx.segment.cidr": "10.244.8.0/24", "nsx.segment.gateway": "10.244.8.1",
               "network.api_vip": "10.244.8.10", "nodes.address_range": "10.244.8.11-10.244.8.99",
               "network.loadbalancer_pools": [{"name": "default", "range": "10.244.8.200-10.244.8.250"}],
               "kubernetes.pod_cidr": "10.200.0.0/16"}
    found = findings_for(tanzu, inventory, changes)
    assert [f.status for f in found["routed-node-segment"]] == ["warn"]
    assert [f.status for f in found["routed-api-vip"]] == ["warn"]
    assert "move nsx.segment.cidr first" in found["routed-api-vip"][0].hint  # the whole segment is in the block


def test_a_vip_and_pool_on_routed_pools_inside_a_wide_segment_get_free_addresses_of_the_segment(tanzu, inventory):
    changes = {"nsx.segment.cidr": "10.30.0.0/16", "nsx.segment.gateway": "10.30.0.1",
               "network.api_vip": "10.30.10.5", "nodes.address_range": "10.30.0.11-10.30.0.99",
               "network.loadbalancer_pools": [{"name": "default", "range": "10.30.20.200-10.30.20.250"}]}
    found = findings_for(tanzu, inventory, changes)
    (vip,) = found["routed-api-vip"]
    (pool,) = found["routed-lb-pools"]
    assert vip.status == pool.status == "fail"
    assert TANZU_INGRESS_POOL_ID in vip.detail and TANZU_EGRESS_POOL_ID in pool.detail
    first, _, last = pool.hint.rsplit("e.g. ", 1)[1].partition("-")
    suggested = IpRange(ipaddress.IPv4Address(first), ipaddress.IPv4Address(last))
    assert suggested.size == 51 and suggested.inside(Net("10.30.0.0/16"))
    taken = [r.network for r in nsx_ranges(inventory)]
    assert not any(suggested.first in n or suggested.last in n for n in taken)
    design = emulator_design(tanzu, changes)
    new_vip = ipaddress.IPv4Address(vip.hint.rsplit("e.g. ", 1)[1])
    assert new_vip != design.ip_plan.gateway and new_vip not in {n.address for n in design.ip_plan.nodes}
    assert not any(new_vip in n for n in taken)


def test_the_audit_carries_the_range_checks(tanzu, inventory):
    checks = {f.check for f in audit(emulator_design(tanzu), inventory)}
    assert {"routed-node-segment", "routed-api-vip", "routed-lb-pools", "pod-cidr-nsx", "service-cidr-nsx"} <= checks


def test_nsx_discover_fails_on_the_routed_pod_range_and_reads_blocks_and_pools_with_gets(tanzu, tmp_path):
    data = with_changes(example_data(), {"nsx.manager": manager_of(tanzu), "nsx.transport_zone": "overlay-tz",
                                         "nsx.tier1": "t1-gw", "nsx.tls.thumbprint": tanzu.thumbprint})
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    before = len(tanzu.requests)
    done = subprocess.run([sys.executable, "-m", "nsxkube", "nsx", "discover", str(spec), "-o", "json"],
                          capture_output=True, text=True, env={**os.environ, **env_of(tanzu)}, timeout=60)
    assert done.returncode == 1, done.stderr
    pods = next(f for f in json.loads(done.stdout)["findings"] if f["check"] == "pod-cidr-nsx")
    assert pods["status"] == "fail" and TANZU_ROUTED_BLOCK_ID in pods["detail"]
    read = [r for r in tanzu.requests[before:] if r["path"].startswith("/policy/api/v1/infra/ip-")]
    assert {r["method"] for r in read} == {"GET"}
    assert any(r["path"].endswith("/ip-subnets") for r in read)


# ---- the arithmetic -----------------------------------------------------------------------------


def test_free_network_steps_past_what_is_taken_from_the_start():
    taken = [Net("10.244.0.0/20"), Net("10.245.0.0/16")]
    assert free_network(16, taken, start=Net("10.244.0.0/16")) == Net("10.246.0.0/16")
    assert free_network(12, [Net("10.96.0.0/23")], start=Net("10.96.0.0/12")) == Net("10.112.0.0/12")
    assert free_network(8, [Net("10.0.0.0/8")]) is None  # no other private /8


def test_free_range_in_finds_the_first_gap_of_the_size():
    segment = Net("10.0.0.0/24")
    taken = [IpRange(ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.20")),
             IpRange(ipaddress.IPv4Address("10.0.0.25"), ipaddress.IPv4Address("10.0.0.30"))]
    assert str(free_range_in(segment, 4, taken)) == "10.0.0.21-10.0.0.24"
    assert str(free_range_in(segment, 5, taken)) == "10.0.0.31-10.0.0.35"
    assert free_range_in(segment, 300, taken) is None


networks = st.builds(lambda address, prefix: Net((address, prefix), strict=False),
                     st.integers(0, 2**32 - 1), st.integers(8, 28))


@given(st.lists(networks, max_size=30), st.integers(12, 28), networks)
def test_free_network_never_overlaps_what_is_taken(taken, prefixlen, start):
    found = free_network(prefixlen, taken, start=start)
    if found is not None:
        assert found.prefixlen == prefixlen
        assert any(found.subnet_of(space) for space in PRIVATE_SPACES)
        assert not any(found.overlaps(t) for t in taken)
