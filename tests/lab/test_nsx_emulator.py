"""The NSX Policy API emulator, exercised as a real HTTPS server through httpx.

Each test names one behaviour of real NSX the emulator must reproduce; it fails if that
behaviour breaks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from nsxkube.lab.nsx import (
    OVERLAY_TZ_PATH,
    TANZU_OVERLAPPING_CIDR,
    TANZU_OVERLAPPING_SEGMENT_ID,
    TANZU_PRINCIPAL,
    TIER0_PATH,
    TIER1_PATH,
    VLAN_TZ_PATH,
    NsxEmulator,
)
from nsxkube.lab.nsx.presets import (
    DEFAULT_IP_DISCOVERY_PROFILE,
    DEFAULT_MAC_DISCOVERY_PROFILE,
    DEFAULT_SEGMENT_SECURITY_PROFILE,
    DEFAULT_SPOOFGUARD_PROFILE,
    TANZU_GROUP_IDS,
    TANZU_POLICY_ID,
    TANZU_SUPERVISOR_SEGMENT_ID,
    TANZU_USER_SEGMENT_ID,
    TANZU_VIP_SEGMENT_ID,
)
from tests.lab.conftest import POLICY, client_for, tls_context

GROUPS = "/infra/domains/default/groups"
POLICIES = "/infra/domains/default/security-policies"
NCP_SEGMENT = f"/infra/segments/{TANZU_OVERLAPPING_SEGMENT_ID}"


# ---- helpers ------------------------------------------------------------------------------------


def segment(gateway: str = "172.16.50.1/24", **extra: Any) -> dict[str, Any]:
    return {
        "connectivity_path": TIER1_PATH,
        "transport_zone_path": OVERLAY_TZ_PATH,
        "subnets": [{"gateway_address": gateway}],
        **extra,
    }


def child(type_name: str, obj: dict[str, Any], **wrapper: Any) -> dict[str, Any]:
    return {"resource_type": f"Child{type_name}", type_name: {"resource_type": type_name, **obj}, **wrapper}


def infra(*children: dict[str, Any]) -> dict[str, Any]:
    return {"resource_type": "Infra", "children": list(children)}


def in_default_domain(*children: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource_type": "ChildResourceReference",
        "id": "default",
        "target_type": "Domain",
        "children": list(children),
    }


def group_with(*expression: dict[str, Any]) -> dict[str, Any]:
    return {"expression": list(expression)}


def condition(member_type: str = "VirtualMachine", value: str = "k8s|nodes") -> dict[str, Any]:
    return {
        "resource_type": "Condition",
        "member_type": member_type,
        "key": "Tag",
        "operator": "EQUALS",
        "value": value,
    }


def conjunction(op: str) -> dict[str, Any]:
    return {"resource_type": "ConjunctionOperator", "conjunction_operator": op}


def l4_service(*ports: str) -> dict[str, Any]:
    entry = {
        "resource_type": "L4PortSetServiceEntry",
        "id": "e",
        "l4_protocol": "TCP",
        "destination_ports": list(ports),
    }
    return {"service_entries": [entry]}


def assert_error(response: httpx.Response, status: int, error_code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code, body
    assert {"httpStatus", "error_code", "error_message", "module_name", "related_errors"} <= set(body)
    return body


def realized_state(client: httpx.Client, path: str) -> dict[str, Any]:
    response = client.get("/infra/realized-state/realized-entities", params={"intent_path": path})
    assert response.status_code == 200
    return response.json()


# ---- presets ------------------------------------------------------------------------------------


def test_empty_preset_has_the_fresh_install_objects(nsx: NsxEmulator) -> None:
    assert nsx.get(OVERLAY_TZ_PATH)["tz_type"] == "OVERLAY_STANDARD"
    assert nsx.get(VLAN_TZ_PATH)["tz_type"] == "VLAN_BACKED"
    assert nsx.get(TIER0_PATH)["resource_type"] == "Tier0"
    assert nsx.get(TIER1_PATH)["tier0_path"] == TIER0_PATH
    for path in (
        DEFAULT_SPOOFGUARD_PROFILE,
        DEFAULT_SEGMENT_SECURITY_PROFILE,
        DEFAULT_IP_DISCOVERY_PROFILE,
        DEFAULT_MAC_DISCOVERY_PROFILE,
        "/infra/domains/default",
    ):
        assert nsx.get(path)["_system_owned"] is True, path
    config = nsx.get("/infra/global-config")
    assert config["physical_uplink_mtu"] == 1700 and config["mtu"] == 1500
    assert nsx.find("Segment") == []


def test_tanzu_preset_has_principal_identity_objects_and_an_overlapping_segment(tanzu: NsxEmulator) -> None:
    ncp_segment = tanzu.get(NCP_SEGMENT)
    assert ncp_segment["_protection"] == "REQUIRE_OVERRIDE"
    assert ncp_segment["_create_user"] == TANZU_PRINCIPAL and TANZU_PRINCIPAL.startswith("wcp-cluster-user-")
    scopes = {t["scope"] for t in ncp_segment["tags"]}
    assert {"ncp/cluster", "ncp/version", "ncp/created_for"} <= scopes
    network = ipaddress.ip_network(ncp_segment["subnets"][0]["network"])
    node_network = ipaddress.ip_network("172.16.50.0/24")
    assert str(network) == TANZU_OVERLAPPING_CIDR
    assert network.overlaps(node_network) and network != node_network
    assert tanzu.get(f"/infra/segments/{TANZU_VIP_SEGMENT_ID}")["display_name"] == "VIP-VM"
    user_segment = tanzu.get(f"/infra/segments/{TANZU_USER_SEGMENT_ID}")
    assert "tags" not in user_segment and user_segment["_protection"] == "NOT_PROTECTED"
    ncp_t1s = [t for t in tanzu.find("Tier1") if t["_protection"] == "REQUIRE_OVERRIDE"]
    assert len(ncp_t1s) == 2 and any(tag["scope"] == "nsx-op/cluster" for t in ncp_t1s for tag in t["tags"])
    policy = tanzu.get(f"{POLICIES}/{TANZU_POLICY_ID}")
    assert policy["_protection"] == "REQUIRE_OVERRIDE" and len(policy["rules"]) >= 3
    assert all(tanzu.get(f"{GROUPS}/{g}")["_protection"] == "REQUIRE_OVERRIDE" for g in TANZU_GROUP_IDS)
    assert tanzu.get(OVERLAY_TZ_PATH) is not None and tanzu.get(TIER1_PATH) is not None


# ---- objects: create, merge, replace, server-set fields -------------------------------------------


def test_patch_creates_with_server_set_fields_and_answers_empty_200(api: httpx.Client) -> None:
    response = api.patch("/infra/segments/nodes", json=segment())
    assert response.status_code == 200 and response.content == b""
    seg = api.get("/infra/segments/nodes").json()
    assert seg["_revision"] == 0 and seg["_create_user"] == "admin" and seg["_last_modified_user"] == "admin"
    assert seg["path"] == "/infra/segments/nodes" and seg["parent_path"] == "/infra"
    assert seg["relative_path"] == "nodes" and seg["id"] == "nodes" and seg["display_name"] == "nodes"
    assert seg["_protection"] == "NOT_PROTECTED" and seg["_system_owned"] is False
    assert seg["marked_for_delete"] is False and isinstance(seg["_create_time"], int)
    assert seg["subnets"][0]["network"] == "172.16.50.0/24" and seg["type"] == "ROUTED"


def test_patch_merges_and_moves_revision_only_on_change(api: httpx.Client) -> None:
    api.patch("/infra/segments/nodes", json=segment())
    api.patch("/infra/segments/nodes", json={"description": "k8s nodes"})
    seg = api.get("/infra/segments/nodes").json()
    assert seg["description"] == "k8s nodes" and seg["connectivity_path"] == TIER1_PATH
    assert seg["_revision"] == 1
    api.patch("/infra/segments/nodes", json={"description": "k8s nodes"})
    assert api.get("/infra/segments/nodes").json()["_revision"] == 1


def test_put_needs_the_current_revision(api: httpx.Client) -> None:
    api.patch("/infra/segments/nodes", json=segment())
    current = api.get("/infra/segments/nodes").json()
    current["description"] = "replaced"  # GET-modify-PUT sends server-set fields back: accepted
    response = api.put("/infra/segments/nodes", json=current)
    assert response.status_code == 200 and response.json()["_revision"] == 1
    current["description"] = "stale"
    body = assert_error(api.put("/infra/segments/nodes", json=current), 412, 604)
    assert "modified by somebody else" in body["error_message"]
    del current["_revision"]
    assert_error(api.put("/infra/segments/nodes", json=current), 412, 604)
    assert api.get("/infra/segments/nodes").json()["description"] == "replaced"


# ---- hierarchical API ---------------------------------------------------------------------------


def _full_network_body() -> dict[str, Any]:
    nodes = "/infra/segments/k8s-nodes"
    rule_src = f"{GROUPS}/k8s-nodes"
    return infra(
        child(
            "IPDiscoveryProfile",
            {
                "id": "vip-ipd",
                "tofu_enabled": False,
                "ip_v4_discovery_options": {"arp_snooping_config": {"arp_binding_limit": 4}},
            },
        ),
        child("SpoofGuardProfile", {"id": "vip-sg", "address_binding_allowlist": False}),
        child("Service", {"id": "k8s-api", **l4_service("6443")}),
        child(
            "Segment",
            {
                "id": "k8s-nodes",
                **segment(),
                "children": [
                    child(
                        "SegmentDiscoveryProfileBindingMap",
                        {
                            "id": "ipd",
                            "ip_discovery_profile_path": "/infra/ip-discovery-profiles/vip-ipd",
                            "mac_discovery_profile_path": DEFAULT_MAC_DISCOVERY_PROFILE,
                        },
                    ),
                    child(
                        "SegmentSecurityProfileBindingMap",
                        {
                            "id": "sg",
                            "spoofguard_profile_path": "/infra/spoofguard-profiles/vip-sg",
                            "segment_security_profile_path": DEFAULT_SEGMENT_SECURITY_PROFILE,
                        },
                    ),
                    child("SegmentPort", {"id": "cp-1", "address_bindings": [{"ip_address": "172.16.50.10"}]}),
                ],
            },
        ),
        in_default_domain(
            child("Group", {"id": "k8s-nodes", **group_with({"resource_type": "PathExpression", "paths": [nodes]})}),
            child(
                "SecurityPolicy",
                {
                    "id": "k8s",
                    "category": "Application",
                    "sequence_number": 5,
                    "rules": [
                        {
                            "id": "api",
                            "source_groups": ["ANY"],
                            "destination_groups": [rule_src],
                            "services": ["/infra/services/k8s-api"],
                            "action": "ALLOW",
                            "sequence_number": 10,
                        }
                    ],
                    "children": [
                        child(
                            "Rule",
                            {
                                "id": "intra",
                                "source_groups": [rule_src],
                                "destination_groups": [rule_src],
                                "sequence_number": 2,
                            },
                        )
                    ],
                },
            ),
        ),
    )


def test_hierarchical_patch_creates_nested_children_through_a_resource_reference(
    nsx: NsxEmulator, api: httpx.Client
) -> None:
    response = api.patch("/infra", json=_full_network_body())
    assert response.status_code == 200 and response.content == b"", response.text
    assert nsx.get("/infra/segments/k8s-nodes/segment-discovery-profile-binding-maps/ipd") is not None
    assert nsx.get("/infra/segments/k8s-nodes/segment-security-profile-binding-maps/sg") is not None
    assert nsx.get("/infra/segments/k8s-nodes/ports/cp-1")["address_bindings"][0]["ip_address"] == "172.16.50.10"
    assert nsx.get("/infra/ip-discovery-profiles/vip-ipd")["tofu_enabled"] is False
    assert nsx.get(f"{GROUPS}/k8s-nodes")["parent_path"] == "/infra/domains/default"
    policy = api.get(f"{POLICIES}/k8s").json()
    assert [r["id"] for r in policy["rules"]] == ["intra", "api"]  # sorted by sequence_number
    assert api.get(f"{POLICIES}/k8s/rules/api").json()["action"] == "ALLOW"
    assert nsx.get("/infra/domains/default")["_revision"] == 0  # the reference did not change it
    assert api.patch("/infra", json=_full_network_body()).status_code == 200  # re-apply is a no-op
    assert nsx.get("/infra/segments/k8s-nodes")["_revision"] == 0
    assert nsx.get(f"{POLICIES}/k8s")["_revision"] == 0 and nsx.get(f"{POLICIES}/k8s/rules/intra")["_revision"] == 0


def test_marked_for_delete_removes_the_subtree(nsx: NsxEmulator, api: httpx.Client) -> None:
    api.patch("/infra", json=_full_network_body())
    body = infra(
        in_default_domain(
            child("SecurityPolicy", {"id": "k8s"}, marked_for_delete=True),
            child("Group", {"id": "k8s-nodes"}, marked_for_delete=True),
        ),
        child("Segment", {"id": "k8s-nodes"}, marked_for_delete=True),
    )
    assert api.patch("/infra", json=body).status_code == 200
    assert nsx.paths("/infra/segments") == [] and nsx.get(f"{POLICIES}/k8s/rules/api") is None
    assert nsx.get(f"{GROUPS}/k8s-nodes") is None


def test_hierarchical_patch_is_all_or_nothing(nsx: NsxEmulator, api: httpx.Client) -> None:
    bad_child = infra(child("Segment", {"id": "good", **segment()}), child("Segment", {"id": "bad", "colour": "red"}))
    body = assert_error(api.patch("/infra", json=bad_child), 400, 287)
    assert "colour" in body["error_message"]
    dangling = infra(
        child("Segment", {"id": "good", **segment()}),
        in_default_domain(
            child("SecurityPolicy", {"id": "p", "rules": [{"id": "r", "source_groups": [f"{GROUPS}/nope"]}]})
        ),
    )
    assert_error(api.patch("/infra", json=dangling), 400, 500012)
    assert nsx.get("/infra/segments/good") is None and nsx.get(f"{POLICIES}/p") is None
    wrong_parent = infra(child("Group", {"id": "g"}))
    assert_error(api.patch("/infra", json=wrong_parent), 400, 287)
    missing_ref = infra(
        {"resource_type": "ChildResourceReference", "id": "nope", "target_type": "Domain", "children": []}
    )
    assert_error(api.patch("/infra", json=missing_ref), 400, 500012)


def test_inline_rules_replace_the_rule_set(nsx: NsxEmulator, api: httpx.Client) -> None:
    path = f"{POLICIES}/p"
    api.patch(path, json={"rules": [{"id": "a"}, {"id": "b", "action": "DROP"}]})
    rule_id = nsx.get(f"{path}/rules/a")["rule_id"]
    assert api.patch(path, json={"rules": [{"id": "b", "action": "DROP"}]}).status_code == 200
    assert [r["id"] for r in api.get(path).json()["rules"]] == ["b"]
    assert nsx.get(f"{path}/rules/a") is None and isinstance(rule_id, int)
    assert nsx.get(path)["_revision"] == 1
    assert api.patch(f"{path}/rules/c", json={"action": "REJECT"}).status_code == 200
    assert api.get(path).json()["rule_count"] == 2


def test_malformed_requests_get_nsx_errors(api: httpx.Client) -> None:
    malformed = api.patch("/infra/segments/s", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(malformed, 400, 287)
    assert_error(api.patch("/infra/segments/s"), 400, 287)  # no body
    assert_error(api.post("/infra/segments/s", json={}), 405, 405)
    assert_error(api.patch("/infra/segments", json={}), 405, 405)
    assert_error(api.get("/infra/segments/a%2Fb"), 404, 600)


# ---- schema ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/infra/segments/s", {**segment(), "mtu": 1500}, "property mtu is unrecognized"),
        ("/infra/segments/s", segment(subnets=[{"gateway_address": "10.0.0.1/24", "dhcp": True}]), "subnets[0].dhcp"),
        (f"{POLICIES}/p", {"sequence_number": "10"}, "sequence_number must be of type integer"),
        (f"{POLICIES}/p", {"category": "Apps"}, "category has invalid value"),
        (f"{POLICIES}/p/rules/r", {"action": "PERMIT"}, "action has invalid value"),
        (f"{POLICIES}/p", {"stateful": "yes"}, "stateful must be of type boolean"),
        (f"{GROUPS}/g", group_with({"resource_type": "Condition", "key": "Tag"}), "member_type is missing"),
        ("/infra/services/s", {"service_entries": [{"resource_type": "L4PortSetServiceEntry"}]}, "l4_protocol"),
    ],
)
def test_schema_violations_are_287(api: httpx.Client, path: str, body: dict[str, Any], fragment: str) -> None:
    if "/rules/" in path:
        api.patch(f"{POLICIES}/p", json={})
    result = assert_error(api.patch(path, json=body), 400, 287)
    assert fragment in result["error_message"]
    assert result["related_errors"] and result["related_errors"][0]["error_code"] == 287


def test_any_must_be_alone(api: httpx.Client) -> None:
    api.patch(f"{GROUPS}/g", json={})
    rule = {"rules": [{"id": "r", "source_groups": ["ANY", f"{GROUPS}/g"]}]}
    body = assert_error(api.patch(f"{POLICIES}/p", json=rule), 400, 500002)
    assert '"ANY" must be the only element' in body["error_message"]
    assert api.patch(f"{POLICIES}/p", json={"rules": [{"id": "r", "source_groups": ["ANY"]}]}).status_code == 200


def test_at_most_15_port_values_a_range_counting_two(api: httpx.Client) -> None:
    fifteen = [str(p) for p in range(1, 14)] + ["30000-32767"]
    assert api.patch("/infra/services/ok", json=l4_service(*fifteen)).status_code == 200
    body = assert_error(api.patch("/infra/services/too-many", json=l4_service(*fifteen, "8080")), 400, 500002)
    assert "at most 15" in body["error_message"]
    icmp = {"service_entries": [{"resource_type": "ICMPTypeServiceEntry", "protocol": "ICMPv4", "icmp_type": 8}]}
    assert api.patch("/infra/services/ping", json=icmp).status_code == 200


def test_and_joins_only_expressions_of_one_type(api: httpx.Client) -> None:
    ips = {"resource_type": "IPAddressExpression", "ip_addresses": ["172.16.50.10"]}
    mixed = group_with(condition(), conjunction("AND"), ips)
    body = assert_error(api.patch(f"{GROUPS}/mixed", json=mixed), 400, 500002)
    assert "AND only joins" in body["error_message"]
    assert api.patch(f"{GROUPS}/or", json=group_with(condition(), conjunction("OR"), ips)).status_code == 200
    same = group_with(condition(), conjunction("AND"), condition(value="k8s|cp"))
    assert api.patch(f"{GROUPS}/and", json=same).status_code == 200


# ---- references and deletes ---------------------------------------------------------------------


def test_references_must_exist(api: httpx.Client) -> None:
    body = assert_error(
        api.patch("/infra/segments/s", json=segment(connectivity_path="/infra/tier-1s/nope")), 400, 500012
    )
    assert "/infra/tier-1s/nope" in body["error_message"]
    assert_error(api.patch("/infra/segments/s", json=segment(transport_zone_path=OVERLAY_TZ_PATH + "x")), 400, 500012)
    api.patch("/infra/segments/s", json=segment())
    binding = {"spoofguard_profile_path": "/infra/spoofguard-profiles/nope"}
    assert_error(api.patch("/infra/segments/s/segment-security-profile-binding-maps/b", json=binding), 400, 500012)
    wrong_type = segment(connectivity_path=OVERLAY_TZ_PATH)
    assert_error(api.patch("/infra/segments/s2", json=wrong_type), 400, 500012)
    rule = {"rules": [{"id": "r", "services": ["/infra/services/nope"]}]}
    assert_error(api.patch(f"{POLICIES}/p", json=rule), 400, 500012)


def test_deletes_respect_references_and_children(nsx: NsxEmulator, api: httpx.Client) -> None:
    api.patch("/infra", json=_full_network_body())
    assert_error(api.delete(f"{GROUPS}/k8s-nodes"), 400, 500030)  # used by rules
    assert_error(api.delete("/infra/segments/k8s-nodes"), 400, 500030)  # has a port
    assert api.delete("/infra/segments/k8s-nodes/ports/cp-1").status_code == 200
    assert_error(api.delete("/infra/segments/k8s-nodes"), 400, 500030)  # the group's PathExpression
    assert api.delete(f"{POLICIES}/k8s").status_code == 200  # rules go with their policy
    assert nsx.paths(f"{POLICIES}/k8s") == []
    assert api.delete(f"{GROUPS}/k8s-nodes").status_code == 200
    assert api.delete("/infra/segments/k8s-nodes").status_code == 200  # binding maps go with it
    assert nsx.paths("/infra/segments") == []
    assert api.delete("/infra/segments/k8s-nodes").status_code == 200  # idempotent
    assert_error(api.delete("/infra/ip-discovery-profiles/default-ip-discovery-profile"), 400, 500002)


def test_segment_updates_cannot_take_away(api: httpx.Client) -> None:
    subnet = {"gateway_address": "172.16.50.1/24", "dhcp_ranges": ["172.16.50.100-172.16.50.150"]}
    api.patch("/infra/segments/s", json=segment(subnets=[subnet]))
    assert_error(api.patch("/infra/segments/s", json={"subnets": []}), 400, 500002)
    assert_error(api.patch("/infra/segments/s", json={"connectivity_path": None}), 400, 500002)
    shrink = [{**subnet, "dhcp_ranges": ["172.16.50.100-172.16.50.120"]}]
    assert_error(api.patch("/infra/segments/s", json={"subnets": shrink}), 400, 500002)
    grow = [{**subnet, "dhcp_ranges": ["172.16.50.90-172.16.50.160"]}]
    assert api.patch("/infra/segments/s", json={"subnets": grow}).status_code == 200
    overlapping = segment("172.16.50.129/25")
    assert_error(api.patch("/infra/segments/other", json=overlapping), 400, 500105)


def test_read_only_and_system_owned_objects(nsx: NsxEmulator, api: httpx.Client) -> None:
    assert_error(api.patch("/infra/sites/default/enforcement-points/default/transport-zones/new", json={}), 400, 500002)
    assert_error(api.patch(DEFAULT_SPOOFGUARD_PROFILE, json={"address_binding_allowlist": True}), 400, 500002)
    assert api.patch("/infra/global-config", json={"physical_uplink_mtu": 1600}).status_code == 200
    mp_view = httpx.get(
        nsx.url + "/api/v1/global-configs/SwitchingGlobalConfig",
        auth=(nsx.username, nsx.password),
        verify=tls_context(nsx),
    )
    assert mp_view.json()["physical_uplink_mtu"] == 1600


# ---- principal-identity protection --------------------------------------------------------------


def test_require_override_objects_are_refused_without_the_header(tanzu: NsxEmulator, tanzu_api: httpx.Client) -> None:
    before = tanzu.get(NCP_SEGMENT)
    assert_error(tanzu_api.patch(NCP_SEGMENT, json={"description": "mine"}), 403, 289)
    assert_error(tanzu_api.put(NCP_SEGMENT, json=before), 403, 289)
    assert_error(
        tanzu_api.delete(NCP_SEGMENT + "/segment-security-profile-binding-maps/ncp-security-binding"), 403, 289
    )
    assert_error(tanzu_api.patch(NCP_SEGMENT + "/ports/mine", json={}), 403, 289)  # a child changes its parent
    via_hierarchy = infra(child("Segment", {"id": TANZU_OVERLAPPING_SEGMENT_ID, "description": "mine"}))
    assert_error(tanzu_api.patch("/infra", json=via_hierarchy), 403, 289)
    deleting = infra(child("Segment", {"id": TANZU_SUPERVISOR_SEGMENT_ID}, marked_for_delete=True))
    body = assert_error(tanzu_api.patch("/infra", json=deleting), 403, 289)
    assert "it doesn't own" in body["error_message"]
    assert_error(
        tanzu_api.patch(f"{POLICIES}/{TANZU_POLICY_ID}/rules/allow-intra-vnet", json={"action": "DROP"}), 403, 289
    )
    assert tanzu.get(NCP_SEGMENT) == before
    descend = infra(
        {
            "resource_type": "ChildResourceReference",
            "id": TANZU_OVERLAPPING_SEGMENT_ID,
            "target_type": "Segment",
            "children": [],
        }
    )
    assert tanzu_api.patch("/infra", json=descend).status_code == 200  # descending changes nothing
    override = {"X-Allow-Overwrite": "true"}
    assert tanzu_api.patch(NCP_SEGMENT, json={"description": "forced"}, headers=override).status_code == 200
    forced = tanzu.get(NCP_SEGMENT)
    assert forced["description"] == "forced" and forced["_protection"] == "REQUIRE_OVERRIDE"


# ---- lists and search ---------------------------------------------------------------------------


def test_lists_are_paged_and_a_client_ignoring_the_cursor_loses_objects(api: httpx.Client) -> None:
    groups = [child("Group", {"id": f"g{i:02d}"}) for i in range(25)]
    api.patch("/infra", json=infra(in_default_domain(*groups)))
    first = api.get(GROUPS, params={"page_size": 10}).json()
    assert len(first["results"]) == 10 and first["result_count"] == 25 and first["cursor"]
    seen, cursor, pages = [r["id"] for r in first["results"]], first["cursor"], 1
    while cursor:
        page = api.get(GROUPS, params={"page_size": 10, "cursor": cursor}).json()
        assert "result_count" not in page  # first page only
        seen += [r["id"] for r in page["results"]]
        cursor, pages = page.get("cursor"), pages + 1
    assert pages == 3 and seen == [f"g{i:02d}" for i in range(25)]
    everything = api.get(GROUPS).json()
    assert len(everything["results"]) == 25 and "cursor" not in everything
    assert_error(api.get(GROUPS, params={"page_size": 1001}), 400, 287)
    assert_error(api.get("/infra/segments/nope/ports"), 404, 600)
    assert_error(api.get("/infra/segments/nope"), 404, 600)
    assert_error(api.get("/infra/no-such-things"), 501, 501)  # not emulated: never a 404 that says "absent"


def test_search_on_resource_type_and_tags(tanzu_api: httpx.Client) -> None:
    def search(query: str, **params: Any) -> dict[str, Any]:
        response = tanzu_api.get("/search/query", params={"query": query, **params})
        assert response.status_code == 200, response.text
        return response.json()

    ncp_segments = search(r"resource_type:Segment AND tags.scope:ncp\/cluster")
    assert {r["id"] for r in ncp_segments["results"]} == {TANZU_OVERLAPPING_SEGMENT_ID, TANZU_SUPERVISOR_SEGMENT_ID}
    assert ncp_segments["result_count"] == 2
    tagged = search("tags.tag:domain-c8")["results"]
    assert {r["resource_type"] for r in tagged} >= {"Segment", "Tier1", "Group", "SecurityPolicy", "Rule"}
    assert {r["id"] for r in search(r"tags.scope:nsx-op\/cluster AND resource_type:Segment")["results"]} == {
        TANZU_VIP_SEGMENT_ID
    }
    page = search("tags.tag:domain-c8", page_size=3)
    assert len(page["results"]) == 3 and page["cursor"]
    assert_error(tanzu_api.get("/search/query", params={"query": "a:b OR c:d"}), 400, 500002)


# ---- realization --------------------------------------------------------------------------------


def test_realized_state_goes_from_unrealized_to_realized_or_error(nsx: NsxEmulator, api: httpx.Client) -> None:
    nsx.set_realization_delay(0.2)
    api.patch("/infra/segments/s", json=segment())
    entity = realized_state(api, "/infra/segments/s")["results"][0]
    assert entity["state"] == "UNREALIZED" and entity["intent_path"] == "/infra/segments/s"
    assert entity["realization_specific_identifier"]
    status = api.get("/infra/realized-state/status", params={"intent_path": "/infra/segments/s"}).json()
    assert status["consolidated_status"]["consolidated_status"] == "IN_PROGRESS"
    time.sleep(0.25)
    assert realized_state(api, "/infra/segments/s")["results"][0]["state"] == "REALIZED"
    nsx.force_realization_error("/infra/segments/s", "no edge cluster")
    errored = realized_state(api, "/infra/segments/s")["results"][0]
    assert errored["state"] == "ERROR" and errored["alarms"][0]["message"] == "no edge cluster"
    nsx.clear_realization_error("/infra/segments/s")
    api.patch("/infra/segments/s", json={"description": "again"})
    assert realized_state(api, "/infra/segments/s")["results"][0]["state"] == "UNREALIZED"
    assert realized_state(api, TIER1_PATH)["results"][0]["state"] == "REALIZED"  # preset
    assert realized_state(api, "/infra/segments/nope")["results"] == []


# ---- auth ---------------------------------------------------------------------------------------


def test_bad_or_missing_credentials_are_403(nsx: NsxEmulator) -> None:
    with client_for(nsx, basic_auth=False) as anonymous:
        assert_error(anonymous.get("/infra/segments"), 403, 403)
        assert_error(anonymous.get("/infra/segments", auth=(nsx.username, "wrong")), 403, 403)
        assert_error(anonymous.get("/infra/segments", auth=("root", nsx.password)), 403, 403)


def test_session_auth_with_xsrf_token(nsx: NsxEmulator) -> None:
    with client_for(nsx, basic_auth=False) as client:
        root = nsx.url
        denied = client.post(root + "/api/session/create", data={"j_username": "admin", "j_password": "nope"})
        assert_error(denied, 403, 403)
        login = client.post(root + "/api/session/create", data={"j_username": nsx.username, "j_password": nsx.password})
        assert login.status_code == 200 and "JSESSIONID" in client.cookies
        xsrf = {"X-XSRF-TOKEN": login.headers["X-XSRF-TOKEN"]}
        assert client.get("/infra/segments", headers=xsrf).status_code == 200
        assert client.patch("/infra/segments/s", json=segment(), headers=xsrf).status_code == 200
        assert_error(client.get("/infra/segments"), 403, 98)
        assert_error(client.get("/infra/segments", headers={"X-XSRF-TOKEN": "stale"}), 403, 98)
        nsx.expire_sessions()
        assert_error(client.get("/infra/segments", headers=xsrf), 403, 98)
        login = client.post(root + "/api/session/create", data={"j_username": nsx.username, "j_password": nsx.password})
        xsrf = {"X-XSRF-TOKEN": login.headers["X-XSRF-TOKEN"]}
        assert client.post(root + "/api/session/destroy", headers=xsrf).status_code == 200
        assert_error(client.get("/infra/segments", headers=xsrf), 403, 98)
    assert nsx.get("/infra/segments/s")["_create_user"] == "admin"


def test_sessions_expire_after_their_ttl() -> None:
    with NsxEmulator(realization_delay=0, session_ttl=0.1) as nsx, client_for(nsx, basic_auth=False) as client:
        login = client.post(
            nsx.url + "/api/session/create", data={"j_username": nsx.username, "j_password": nsx.password}
        )
        xsrf = {"X-XSRF-TOKEN": login.headers["X-XSRF-TOKEN"]}
        assert client.get("/infra/segments", headers=xsrf).status_code == 200
        time.sleep(0.15)
        assert_error(client.get("/infra/segments", headers=xsrf), 403, 98)


# ---- faults -------------------------------------------------------------------------------------


def test_injected_failures_answer_the_next_matching_calls(nsx: NsxEmulator, api: httpx.Client) -> None:
    nsx.fail_next(429)
    assert api.get("/infra/segments").status_code == 429
    assert api.get("/infra/segments").status_code == 200
    nsx.fail_next(503, 2, method="PATCH", path_prefix=POLICY + "/infra")
    assert api.get("/infra/segments").status_code == 200  # not a PATCH
    assert api.patch("/infra/segments/s", json=segment()).status_code == 503
    assert api.patch("/infra/segments/s", json=segment()).status_code == 503
    assert nsx.get("/infra/segments/s") is None
    nsx.fail_next(500)
    assert_error(api.patch("/infra/segments/s", json=segment()), 500, 607)
    assert api.patch("/infra/segments/s", json=segment()).status_code == 200
    nsx.stale_next_put()
    current = api.get("/infra/segments/s").json()
    assert_error(api.put("/infra/segments/s", json=current), 412, 604)
    assert api.put("/infra/segments/s", json=current).status_code == 200


def test_internal_errors_become_nsx_500_bodies(
    nsx: NsxEmulator, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(nsx.api, "_list", explode)
    body = assert_error(api.get("/infra/segments"), 500, 100)
    assert "Traceback" not in json.dumps(body) and "boom" not in json.dumps(body)


def test_control_endpoint_for_other_processes(nsx: NsxEmulator) -> None:
    with client_for(nsx) as client:
        control = nsx.url + "/_emulator"
        assert client.post(control + "/fail", json={"status": 503, "count": 1}).status_code == 200
        assert client.get("/infra/segments").status_code == 503
        client.post(control + "/realization-error", json={"path": TIER1_PATH, "message": "edge down"})
        assert realized_state(client, TIER1_PATH)["results"][0]["state"] == "ERROR"
        assert client.delete(control + "/realization-error", params={"path": TIER1_PATH}).status_code == 200
        client.post(control + "/plant", json={"path": "/infra/tier-1s/pi", "body": {}, "principal": "ncp-pi"})
        assert client.get(control + "/object", params={"path": "/infra/tier-1s/pi"}).json()["_protection"] == (
            "REQUIRE_OVERRIDE"
        )
        assert httpx.post(control + "/expire-sessions", verify=tls_context(nsx)).status_code == 403
        logged = client.get(control + "/requests").json()["results"]
    assert logged and all(not entry["path"].startswith("/_emulator") for entry in logged)
    assert [e["status"] for e in logged] == [503, 200]


# ---- request log --------------------------------------------------------------------------------


def test_request_log_has_one_json_line_per_request_and_no_password(tmp_path: Path) -> None:
    log_file = tmp_path / "nsx.jsonl"
    with NsxEmulator("tanzu", realization_delay=0, log_path=log_file) as nsx, client_for(nsx) as client:
        client.patch("/infra/segments/s", json=segment(), params={"dry": "no"})
        client.get("/infra/segments", auth=(nsx.username, "wrong"))
        client.post(nsx.url + "/api/session/create", data={"j_username": nsx.username, "j_password": nsx.password})
        client.patch(NCP_SEGMENT, json={"description": "x"})
        password = nsx.password
    lines = log_file.read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 4 and password not in log_file.read_text()
    patch, bad, login, refused = entries
    assert patch["method"] == "PATCH" and patch["path"] == POLICY + "/infra/segments/s"
    assert patch["query"] == {"dry": "no"} and patch["body"]["connectivity_path"] == TIER1_PATH
    assert patch["status"] == 200 and patch["auth"] == {"kind": "basic", "user": "admin", "ok": True}
    assert bad["status"] == 403 and bad["auth"]["ok"] is False and bad["body"] is None
    assert login["body"] == {"j_username": "admin"} and login["auth"]["kind"] == "session"
    assert refused["status"] == 403 and refused["allow_overwrite"] is False
    writes_to_ncp = [e for e in entries if e["method"] != "GET" and e["path"].endswith(TANZU_OVERLAPPING_SEGMENT_ID)]
    assert [e["status"] for e in writes_to_ncp] == [403]


# ---- transport ----------------------------------------------------------------------------------


def test_tls_certificate_verifies_by_ca_file_and_by_thumbprint(nsx: NsxEmulator) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", nsx.port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    assert nsx.thumbprint == ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    assert Path(nsx.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")  # type: ignore[arg-type]
    with client_for(nsx) as client:
        assert client.get("/infra/segments").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(nsx.url + POLICY + "/infra", verify=ssl.create_default_context())


def test_plain_http_and_loopback_only() -> None:
    with NsxEmulator(tls=False, realization_delay=0) as nsx, client_for(nsx) as client:
        assert nsx.url.startswith("http://") and nsx.thumbprint is None
        assert client.get("/infra/tier-1s").json()["result_count"] == 1
    for host in ("0.0.0.0", "10.0.0.1", "nsx.example.com"):
        with pytest.raises(ValueError, match="loopback"):
            NsxEmulator(host=host)


def test_module_runs_in_the_foreground_until_sigterm(tmp_path: Path) -> None:
    log_file = tmp_path / "requests.jsonl"
    command = [
        sys.executable,
        "-m",
        "nsxkube.lab.nsx",
        "--preset",
        "tanzu",
        "--listen",
        "127.0.0.1:0",
        "--log",
        str(log_file),
        "--realization-delay",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        env = {}
        assert process.stdout is not None
        while len(env) < 5:
            line = process.stdout.readline()
            assert line, "the emulator exited before printing its address"
            if line.startswith("export "):
                name, _, value = line[len("export ") :].strip().partition("=")
                env[name] = value
        context = ssl.create_default_context(cafile=env["NSX_CA_FILE"])
        response = httpx.get(
            env["NSX_URL"] + POLICY + f"/infra/segments/{TANZU_OVERLAPPING_SEGMENT_ID}",
            auth=(env["NSX_USERNAME"], env["NSX_PASSWORD"]),
            verify=context,
        )
        assert response.status_code == 200 and response.json()["_protection"] == "REQUIRE_OVERRIDE"
        assert env["NSX_THUMBPRINT"].count(":") == 31
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    assert json.loads(log_file.read_text().splitlines()[0])["status"] == 200
