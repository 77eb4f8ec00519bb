"""The emulator's hierarchical read, VM inventory (VMs, VIFs, segment ports, VM tags), realization of
objects realized together, and "ANY" alone on every way a rule can be written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.errors import NsxApiError
from nsxkube.lab.nsx.presets import TANZU_GROUP_IDS, TANZU_POLICY_ID
from tests.lab.conftest import client_for
from tests.lab.test_nsx_emulator import GROUPS, POLICIES, assert_error, realized_state, segment

VMS = "/infra/realized-state/enforcement-points/default/virtual-machines"


def wrapped(children: list[dict[str, Any]], type_name: str) -> list[dict[str, Any]]:
    return [c[type_name] for c in children if c["resource_type"] == f"Child{type_name}"]


# ---- hierarchical GET -----------------------------------------------------------------------------


def test_hierarchical_get_returns_the_filtered_tree(tanzu_api: httpx.Client) -> None:
    tree = tanzu_api.get("/infra", params={"filter": "Type-Domain|Group|SecurityPolicy|Rule|Segment"}).json()
    assert tree["resource_type"] == "Infra"
    domain = wrapped(tree["children"], "Domain")[0]
    groups = wrapped(domain["children"], "Group")
    assert {g["id"] for g in groups} == set(TANZU_GROUP_IDS)
    policy = next(p for p in wrapped(domain["children"], "SecurityPolicy") if p["id"] == TANZU_POLICY_ID)
    assert "rules" not in policy and policy["rule_count"] == 4 and len(wrapped(policy["children"], "Rule")) == 4
    segments = wrapped(tree["children"], "Segment")
    assert segments and all(s["path"].startswith("/infra/segments/") for s in segments)
    assert not wrapped(tree["children"], "Service")  # not asked for
    # The walk descends only through matching types, as VMware's own example says.
    assert wrapped(tanzu_api.get("/infra", params={"filter": "Type-Group"}).json()["children"], "Group") == []
    by_names = tanzu_api.get("/infra", params={"type_filter": "Domain;Group"}).json()
    assert len(wrapped(wrapped(by_names["children"], "Domain")[0]["children"], "Group")) == len(TANZU_GROUP_IDS)
    assert "children" not in tanzu_api.get("/infra").json()
    assert_error(tanzu_api.get("/infra", params={"filter": "Group"}), 400, 287)


# ---- realization of objects realized together ---------------------------------------------------


def test_a_policy_is_realized_only_with_its_groups_and_a_segment_with_its_profiles(
    nsx: NsxEmulator, api: httpx.Client
) -> None:
    api.patch(f"{GROUPS}/g", json={})
    api.patch(f"{POLICIES}/p", json={"rules": [{"id": "r", "source_groups": [f"{GROUPS}/g"]}]})
    nsx.force_realization_error(f"{GROUPS}/g", "NSGroup limit reached")
    entity = realized_state(api, f"{POLICIES}/p")["results"][0]
    assert entity["state"] == "ERROR" and f"{GROUPS}/g: NSGroup limit reached" in entity["alarms"][0]["message"]
    nsx.clear_realization_error(f"{GROUPS}/g")
    assert realized_state(api, f"{POLICIES}/p")["results"][0]["state"] == "REALIZED"

    api.patch("/infra/segments/s", json=segment())
    nsx.set_realization_delay(30)
    api.patch("/infra/spoofguard-profiles/sg", json={"address_binding_allowlist": False})
    api.patch("/infra/segments/s/segment-security-profile-binding-maps/m",
              json={"spoofguard_profile_path": "/infra/spoofguard-profiles/sg"})
    assert realized_state(api, "/infra/segments/s")["results"][0]["state"] == "UNREALIZED"


# ---- VM inventory ----------------------------------------------------------------------------------


def test_attached_vms_have_a_vif_and_a_segment_port_that_point_at_each_other(
    nsx: NsxEmulator, api: httpx.Client
) -> None:
    api.patch("/infra/segments/s", json=segment())
    first = nsx.attach_vm("node-1", "s")
    second = nsx.attach_vm("node-2", "s", mac="00:50:56:AA:BB:CC")
    assert second.mac == "00:50:56:aa:bb:cc" and first.mac.startswith("00:50:56:")
    port = api.get(first.port_path).json()
    assert port["attachment"]["id"] == first.attachment_id and port["_protection"] == "NOT_PROTECTED"
    root = nsx.url + "/api/v1/fabric/vifs"
    with client_for(nsx) as client:
        vifs = client.get(root, params={"owner_vm_id": first.external_id}).json()["results"]
    assert [(v["lport_attachment_id"], v["mac_address"]) for v in vifs] == [(first.attachment_id, first.mac)]
    page = api.get(VMS, params={"page_size": 1}).json()
    assert page["result_count"] == 2 and len(page["results"]) == 1 and page["cursor"]
    rest = api.get(VMS, params={"cursor": page["cursor"]}).json()["results"]
    assert {vm["display_name"] for vm in page["results"] + rest} == {"node-1", "node-2"}
    with pytest.raises(NsxApiError, match="does not exist"):
        nsx.attach_vm("node-3", "missing-segment")


def test_update_tags_replaces_the_vm_tags(nsx: NsxEmulator, api: httpx.Client) -> None:
    api.patch("/infra/segments/s", json=segment())
    vm = nsx.attach_vm("node-1", "s", tags=[{"scope": "team", "tag": "a"}])
    tags = [{"scope": "team", "tag": "a"}, {"scope": "nsxkube/cluster", "tag": "k8s"}]
    response = api.post(VMS, params={"action": "update_tags"}, json={"virtual_machine_id": vm.external_id, "tags": tags})
    assert response.status_code == 204 and response.content == b""
    assert nsx.vm(vm.external_id)["tags"] == tags
    assert_error(api.post(VMS, params={"action": "update_tags"}, json={"virtual_machine_id": "nope", "tags": []}),
                 404, 600)
    assert_error(api.post(VMS, params={"action": "update_tags"}, json={"vm": vm.external_id, "tags": []}), 400, 287)
    assert_error(api.post(VMS, params={"action": "power_off"}, json={}), 400, 500002)


def test_control_endpoint_attaches_vms(nsx: NsxEmulator, api: httpx.Client) -> None:
    api.patch("/infra/segments/s", json=segment())
    with client_for(nsx) as client:
        answer = client.post(nsx.url + "/_emulator/attach-vm", json={"name": "n", "segment": "s"}).json()
    assert api.get(answer["port_path"]).status_code == 200 and nsx.vm(answer["external_id"])["display_name"] == "n"


# ---- "ANY" alone, on every path a rule can take ------------------------------------------------------


def _any_mixed(group: str) -> list[str]:
    return ["ANY", group]


def test_any_mixed_with_a_group_is_refused_on_every_write_path(api: httpx.Client) -> None:
    group = f"{GROUPS}/g"
    api.patch(group, json={})
    api.patch(f"{POLICIES}/p", json={"rules": [{"id": "r"}]})
    child_rule = {"resource_type": "ChildRule", "Rule": {"resource_type": "Rule", "id": "r2",
                                                         "source_groups": _any_mixed(group)}}
    into_policy = {"resource_type": "ChildResourceReference", "id": "p", "target_type": "SecurityPolicy",
                   "children": [child_rule]}
    hierarchical = {"resource_type": "Infra", "children": [
        {"resource_type": "ChildResourceReference", "id": "default", "target_type": "Domain",
         "children": [into_policy]}]}
    assert_error(api.patch("/infra", json=hierarchical), 400, 500002)
    rule = api.get(f"{POLICIES}/p/rules/r").json()
    assert_error(api.put(f"{POLICIES}/p/rules/r", json={**rule, "destination_groups": [group, "ANY"]}), 400, 500002)
    assert_error(api.patch(f"{POLICIES}/p/rules/r", json={"source_groups": _any_mixed(group)}), 400, 500002)
    assert_error(api.patch(f"{POLICIES}/p", json={"scope": _any_mixed(group)}), 400, 500002)
    assert_error(api.patch(f"{POLICIES}/p", json={"rules": [{"id": "r", "services": ["ANY", "/infra/services/SSH"]}]}),
                 400, 500002)
    assert api.get(f"{POLICIES}/p/rules/r").json()["source_groups"] == ["ANY"]
