"""Reads a real manager answers, as a table: the collections under each object type the emulator
holds (from the Policy API reference's list operations), `/api/v1/node/version`, the uplink
host-switch profiles — 200 with a real list envelope when the parent exists (empty when nothing is
there), 404 only when the parent does not, and 501 with an NSX error body for what the emulator
does not implement. Found by pointing VMware's Terraform provider at the emulator (issue 22)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.presets import (
    TANZU_GROUP_IDS,
    TANZU_OVERLAPPING_CIDR,
    TANZU_OVERLAPPING_SEGMENT_ID,
    TANZU_POLICY_ID,
    TANZU_PORT_ID,
    TANZU_SUPERVISOR_SEGMENT_ID,
    TIER0_PATH,
    TIER1_PATH,
)
from tests.lab.conftest import client_for

VNET = f"/infra/segments/{TANZU_OVERLAPPING_SEGMENT_ID}"
SUPERVISOR = f"/infra/segments/{TANZU_SUPERVISOR_SEGMENT_ID}"
PORT = f"{SUPERVISOR}/ports/{TANZU_PORT_ID}"
POLICY = f"/infra/domains/default/security-policies/{TANZU_POLICY_ID}"
SUPERVISOR_GROUP, _, INGRESS_GROUP = (f"/infra/domains/default/groups/{g}" for g in TANZU_GROUP_IDS)
MISSING_SEGMENT = "/infra/segments/no-such-segment"
MISSING_PORT = f"{SUPERVISOR}/ports/no-such-port"

# (path, how many results when the parent exists)
COLLECTIONS = [
    (f"{VNET}/ports", 0),
    (f"{SUPERVISOR}/ports", 1),
    (f"{VNET}/segment-discovery-profile-binding-maps", 1),
    (f"{VNET}/segment-security-profile-binding-maps", 1),
    (f"{VNET}/segment-qos-profile-binding-maps", 0),
    (f"{VNET}/segment-monitoring-profile-binding-maps", 0),
    (f"{SUPERVISOR}/segment-discovery-profile-binding-maps", 0),
    (f"{VNET}/dhcp-static-binding-configs", 0),
    (f"{PORT}/port-discovery-profile-binding-maps", 0),
    (f"{PORT}/port-security-profile-binding-maps", 0),
    (f"{PORT}/port-qos-profile-binding-maps", 0),
    (f"{PORT}/port-monitoring-profile-binding-maps", 0),
    (f"{POLICY}/rules", 4),
    (f"{SUPERVISOR_GROUP}/members/segments", 1),
    (f"{SUPERVISOR_GROUP}/members/virtual-machines", 0),
    (f"{SUPERVISOR_GROUP}/members/segment-ports", 0),
    (f"{SUPERVISOR_GROUP}/members/vifs", 0),
    (f"{INGRESS_GROUP}/members/ip-addresses", 2),
    (f"{TIER1_PATH}/locale-services", 0),
    (f"{TIER1_PATH}/segments", 0),
    (f"{TIER1_PATH}/static-routes", 0),
    (f"{TIER0_PATH}/locale-services", 0),
    (f"{TIER0_PATH}/static-routes", 0),
    (f"{TIER0_PATH}/prefix-lists", 0),
    (f"{TIER0_PATH}/route-maps", 0),
    ("/infra/domains/default/gateway-policies", 0),
    ("/infra/host-switch-profiles", 3),
]

# The same collections under a parent that does not exist: 404, naming the parent.
UNDER_A_MISSING_PARENT = [
    (f"{MISSING_SEGMENT}/ports", MISSING_SEGMENT),
    (f"{MISSING_SEGMENT}/segment-qos-profile-binding-maps", MISSING_SEGMENT),
    (f"{MISSING_SEGMENT}/segment-monitoring-profile-binding-maps", MISSING_SEGMENT),
    (f"{MISSING_SEGMENT}/segment-discovery-profile-binding-maps", MISSING_SEGMENT),
    (f"{MISSING_PORT}/port-qos-profile-binding-maps", MISSING_PORT),
    ("/infra/domains/default/security-policies/nope/rules", "/infra/domains/default/security-policies/nope"),
    ("/infra/domains/default/groups/nope/members/segments", "/infra/domains/default/groups/nope"),
    ("/infra/tier-1s/nope/static-routes", "/infra/tier-1s/nope"),
    ("/infra/tier-0s/nope/locale-services", "/infra/tier-0s/nope"),
    ("/infra/domains/nope/gateway-policies", "/infra/domains/nope"),
]

# Plausible calls the emulator does not implement: 501, never a 404 that would claim "absent".
NOT_EMULATED = [
    ("GET", "/policy/api/v1/infra/dhcp-relay-configs"),
    ("GET", f"/policy/api/v1{TIER1_PATH}/ipsec-vpn-services"),
    ("GET", f"/policy/api/v1{TIER1_PATH}/nat/USER/nat-rules"),
    ("GET", "/api/v1/transport-nodes"),
    ("GET", "/api/v1/edge-clusters"),
    ("PATCH", f"/policy/api/v1{VNET}/segment-qos-profile-binding-maps/qos"),
]


@pytest.fixture(scope="module")
def emulator() -> Iterator[NsxEmulator]:
    with NsxEmulator("tanzu", realization_delay=0) as nsx:
        yield nsx


@pytest.fixture(scope="module")
def api(emulator: NsxEmulator) -> Iterator[httpx.Client]:
    with client_for(emulator) as client:
        yield client


@pytest.fixture(scope="module")
def root(emulator: NsxEmulator) -> Iterator[httpx.Client]:
    """A client on the manager's root, for /api/v1 paths and full /policy paths."""
    with client_for(emulator) as client:
        client.base_url = httpx.URL(emulator.url)
        yield client


@pytest.mark.parametrize(("path", "count"), COLLECTIONS, ids=[p for p, _ in COLLECTIONS])
def test_a_collection_under_an_existing_parent_is_a_list(api: httpx.Client, path: str, count: int) -> None:
    response = api.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["results"], list) and len(body["results"]) == count
    assert body["result_count"] == count and "cursor" not in body  # one page: no cursor at all


@pytest.mark.parametrize(("path", "parent"), UNDER_A_MISSING_PARENT, ids=[p for p, _ in UNDER_A_MISSING_PARENT])
def test_a_collection_under_a_missing_parent_is_404(api: httpx.Client, path: str, parent: str) -> None:
    response = api.get(path)
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error_code"] == 600 and parent in body["error_message"]


@pytest.mark.parametrize(("method", "path"), NOT_EMULATED, ids=[f"{m} {p}" for m, p in NOT_EMULATED])
def test_what_the_emulator_does_not_implement_is_501_with_an_nsx_body(root: httpx.Client, method: str,
                                                                     path: str) -> None:
    response = root.request(method, path, json={} if method == "PATCH" else None)
    assert response.status_code == 501, response.text
    body = response.json()
    assert body["httpStatus"] == "NOT_IMPLEMENTED" and body["error_code"] == 501
    assert path in body["error_message"] and body["related_errors"] == []


def test_an_item_of_an_empty_collection_is_404_and_deleting_it_is_idempotent(api: httpx.Client) -> None:
    assert api.get(f"{VNET}/segment-qos-profile-binding-maps/qos").status_code == 404
    assert api.delete(f"{VNET}/segment-qos-profile-binding-maps/qos").status_code == 200


def test_node_version_answers_like_a_manager(root: httpx.Client, emulator: NsxEmulator) -> None:
    body = root.get("/api/v1/node/version").json()
    assert set(body) == {"node_version", "product_version"}
    assert body["node_version"].startswith("4.2.") and body["node_version"].count(".") == 5
    emulator.set_version("3.1.3.0.0.17904581")
    try:
        assert root.get("/api/v1/node/version").json()["product_version"] == "3.1.3.0.0.17904581"
    finally:
        emulator.set_version(body["node_version"])


def test_group_members_are_computed_from_the_expressions(api: httpx.Client) -> None:
    segments = api.get(f"{SUPERVISOR_GROUP}/members/segments").json()["results"]
    assert [m["path"] for m in segments] == [SUPERVISOR]
    addresses = api.get(f"{INGRESS_GROUP}/members/ip-addresses").json()["results"]
    assert addresses == sorted([TANZU_OVERLAPPING_CIDR, "10.244.1.0/28"])


def test_uplink_profiles_are_served_by_both_apis_with_their_mtu(api: httpx.Client, root: httpx.Client) -> None:
    policy = api.get("/infra/host-switch-profiles",
                     params={"hostswitch_profile_type": "PolicyUplinkHostSwitchProfile"}).json()["results"]
    assert {p["id"]: p.get("mtu") for p in policy} == {
        "edge-uplink-profile": 9000, "esxi-host-uplink-profile": 1700, "nsx-default-uplink-hostswitch-profile": None}
    manager = root.get("/api/v1/host-switch-profiles",
                       params={"hostswitch_profile_type": "UplinkHostSwitchProfile"}).json()["results"]
    assert {p["resource_type"] for p in manager} == {"UplinkHostSwitchProfile"} and len(manager) == 3
    lldp = root.get("/api/v1/host-switch-profiles", params={"hostswitch_profile_type": "LldpHostSwitchProfile"})
    assert lldp.json()["results"] == []


def test_the_omit_derived_fields_fault_leaves_parent_paths_out_of_the_tree(api: httpx.Client,
                                                                           emulator: NsxEmulator) -> None:
    def rules_of_tree() -> list[dict]:
        tree = api.get("/infra", params={"filter": "Type-Domain|SecurityPolicy|Rule"}).json()
        domain = next(c["Domain"] for c in tree["children"] if c["Domain"]["id"] == "default")
        policy = next(c["SecurityPolicy"] for c in domain["children"] if c["SecurityPolicy"]["id"] == TANZU_POLICY_ID)
        return [c["Rule"] for c in policy["children"]]

    assert all(r["parent_path"] == POLICY for r in rules_of_tree())
    emulator.omit_derived_fields()
    try:
        rules = rules_of_tree()
        assert len(rules) == 4 and not any("parent_path" in r or "relative_path" in r for r in rules)
        assert all(r["path"].startswith(POLICY + "/rules/") for r in rules)
    finally:
        emulator.omit_derived_fields(False)
