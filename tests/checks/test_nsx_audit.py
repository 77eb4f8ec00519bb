"""The NSX audit and ownership as tables: (design, live objects) → findings. No server needed."""

from __future__ import annotations

from typing import Any

import pytest

from nsxkube.checks.nsx_audit import Finding, audit, failures
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.ownership import not_ours_reason, owned_objects, ownership_of
from nsxkube.render.nsx import desired_nsx_objects
from tests.support.specs import example_design

TZ = "/infra/sites/default/enforcement-points/default/transport-zones/overlay-tz"
NCP_TAGS = [{"scope": "ncp/cluster", "tag": "domain-c8"}, {"scope": "ncp/version", "tag": "4.1"}]


def live(path: str, resource_type: str, **body: Any) -> LiveObject:
    parent = path.rsplit("/", 2)[0] if path.count("/") > 2 else "/infra"
    return LiveObject.from_body({"path": path, "parent_path": parent, "resource_type": resource_type,
                                 "id": path.rsplit("/", 1)[1], **body})


def ours(path: str, resource_type: str, cluster: str = "k8s-prod", **body: Any) -> LiveObject:
    return live(path, resource_type, tags=[{"scope": "nsxkube/cluster", "tag": cluster}], **body)


def segment(seg_id: str, gateway: str, **body: Any) -> LiveObject:
    return live(f"/infra/segments/{seg_id}", "Segment", subnets=[{"gateway_address": gateway}], **body)


def inventory(*objects: LiveObject, tep_mtu: int | None = 1700, tz_type: str = "OVERLAY_STANDARD") -> LiveInventory:
    base = [live("/infra/tier-1s/t1-gw", "Tier1", _create_user="admin"), live("/infra/domains/default", "Domain",
                                                                                _system_owned=True)]
    zones = {TZ: live(TZ, "PolicyTransportZone", tz_type=tz_type)} if tz_type else {}
    return LiveInventory({o.path: o for o in [*base, *objects]}, zones, tep_mtu)


DESIGN = example_design({"nsx.transport_zone": "overlay-tz", "nsx.tier1": "t1-gw"})


def by_check(findings: list[Finding], check: str) -> list[Finding]:
    return [f for f in findings if f.check == check]


# ---- ownership ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "owner", "label"), [
    ({"tags": [{"scope": "nsxkube/cluster", "tag": "k8s-prod"}]}, "nsxkube", "nsxkube: k8s-prod"),
    ({"tags": NCP_TAGS}, "tanzu-ncp", "Tanzu / NCP: domain-c8"),
    ({"tags": [{"scope": "pks/cluster", "tag": "pks-1"}]}, "tanzu-ncp", "Tanzu / NCP: pks-1"),
    ({"tags": [{"scope": "owner", "tag": "NCP"}]}, "tanzu-ncp", "Tanzu / NCP"),
    ({"tags": [{"scope": "nsx-op/cluster", "tag": "c8"}, {"scope": "owner", "tag": "NCP"}]}, "nsx-operator",
     "nsx-operator: c8"),
    ({"tags": [{"scope": "nsx/managed-by", "tag": "nsx-op"}]}, "nsx-operator", "nsx-operator: nsx-op"),
    ({"_protection": "REQUIRE_OVERRIDE", "_create_user": "wcp-x"}, "tanzu-ncp", "Tanzu / NCP: protected, created by wcp-x"),
    ({"_system_owned": True}, "system", "NSX (system)"),
    ({"is_default": True}, "system", "NSX (system)"),
    ({"_create_user": "admin"}, "unknown", "unknown: created by admin"),
])
def test_ownership_follows_the_reference_markers(body: dict[str, Any], owner: str, label: str) -> None:
    found = ownership_of(live("/infra/segments/s", "Segment", **body))
    assert (found.owner, found.label) == (owner, label)


def test_ours_means_tagged_for_this_cluster_and_unprotected() -> None:
    assert not_ours_reason(ours("/infra/segments/s", "Segment"), "k8s-prod") is None
    assert "cluster 'other'" in not_ours_reason(ours("/infra/segments/s", "Segment", "other"), "k8s-prod")
    assert "protected" in not_ours_reason(ours("/infra/segments/s", "Segment", _protection="REQUIRE_OVERRIDE"),
                                          "k8s-prod")
    assert "Tanzu / NCP" in not_ours_reason(live("/infra/segments/s", "Segment", tags=NCP_TAGS), "k8s-prod")
    mixed = [ours("/infra/segments/s", "Segment"), ours("/infra/tier-1s/t", "Tier1"),
             ours("/infra/services/x", "Service", "other"), live("/infra/services/y", "Service")]
    assert [o.path for o in owned_objects(mixed, "k8s-prod")] == ["/infra/segments/s"]


# ---- the audit ------------------------------------------------------------------------------------------


def test_a_clean_nsx_passes_every_check() -> None:
    findings = audit(DESIGN, inventory())
    assert failures(findings) == [] and all(f.status == "ok" for f in findings)
    assert {f.check for f in findings} == {"transport-zone", "tier-1", "domain", "segment-cidr", "addresses", "ids",
                                           "names", "tep-mtu", "dfw-order",
                                           "routed-node-segment", "routed-api-vip", "routed-lb-pools", "pod-cidr-nsx",
                                           "service-cidr-nsx"}


def test_an_overlapping_segment_and_the_addresses_inside_it_fail() -> None:
    findings = audit(DESIGN, inventory(segment("vnet", "172.16.50.129/25", tags=NCP_TAGS)))
    cidr = by_check(findings, "segment-cidr")
    assert [f.status for f in cidr] == ["fail"] and "172.16.50.128/25" in cidr[0].detail
    assert "Tanzu / NCP: domain-c8" in cidr[0].detail and cidr[0].hint.endswith("e.g. 172.16.51.0/24")
    inside = by_check(findings, "addresses")
    assert [f.status for f in inside] == ["fail"] and "pool default 172.16.50.200-172.16.50.250" in inside[0].detail


def test_the_vip_and_nodes_inside_another_segment_are_named_in_one_finding_per_segment() -> None:
    findings = by_check(audit(DESIGN, inventory(segment("small", "172.16.50.9/30"))), "addresses")  # .8-.11
    assert len(findings) == 1 and findings[0].status == "fail"
    assert findings[0].detail.startswith("API VIP 172.16.50.10, node k8s-prod-cp-1 172.16.50.11 are inside segment "
                                         "small 172.16.50.8/30")
    assert findings[0].detail.endswith(": 2 of the cluster's 7 addresses and ranges")


def test_overlap_lines_say_what_was_inspected_and_what_collides() -> None:
    """Issue 20: "7 objects … not ours" read as if seven objects conflicted; each line now names the
    one colliding segment and what of ours is in it, and the clean case says how much was looked at."""
    crowded = segment("vnet", "172.16.50.129/25", tags=NCP_TAGS)
    findings = audit(DESIGN, inventory(crowded, segment("far", "10.9.0.1/24")))
    cidr, addresses = by_check(findings, "segment-cidr"), by_check(findings, "addresses")
    assert len(cidr) == 1 and cidr[0].detail.endswith("(2 other segment(s) with subnets inspected)")
    assert len(addresses) == 1 and "inside segment vnet 172.16.50.128/25" in addresses[0].detail
    clean = audit(DESIGN, inventory(segment("far", "10.9.0.1/24")))
    assert by_check(clean, "segment-cidr")[0].detail == ("no other segment overlaps 172.16.50.0/24 "
                                                         "(1 other segment(s) with subnets inspected)")
    assert by_check(clean, "addresses")[0].detail == ("none of the cluster's 7 addresses and ranges is in another "
                                                      "segment (1 other segment(s) with subnets inspected)")


def test_our_own_segment_is_no_overlap() -> None:
    mine = ours("/infra/segments/k8s-nodes-segment", "Segment", subnets=[{"gateway_address": "172.16.50.1/24"}])
    assert failures(audit(DESIGN, inventory(mine))) == []


def test_missing_or_wrong_transport_zone_tier1_and_domain_fail() -> None:
    empty = LiveInventory({}, {}, 1700)
    failed = {f.check for f in failures(audit(DESIGN, empty))}
    assert failed == {"transport-zone", "tier-1", "domain"}
    vlan = by_check(audit(DESIGN, inventory(tz_type="VLAN_BACKED")), "transport-zone")[0]
    assert vlan.status == "fail" and "VLAN_BACKED" in vlan.detail


def test_a_tanzu_tier1_is_a_warning() -> None:
    ncp_t1 = live("/infra/tier-1s/t1-gw", "Tier1", tags=NCP_TAGS)
    objects = {**inventory().objects, ncp_t1.path: ncp_t1}
    tier1 = by_check(audit(DESIGN, LiveInventory(objects, inventory().transport_zones, 1700)), "tier-1")[0]
    assert tier1.status == "warn" and "Tanzu / NCP" in tier1.detail


def test_ids_taken_by_others_fail_and_ours_pass() -> None:
    group = next(o for o in desired_nsx_objects(DESIGN) if o.resource_type == "Group")
    theirs = audit(DESIGN, inventory(live(group.path, "Group", tags=NCP_TAGS)))
    assert [f.status for f in by_check(theirs, "ids")] == ["fail"] and group.path in by_check(theirs, "ids")[0].detail
    mine = audit(DESIGN, inventory(ours(group.path, "Group")))
    assert [f.status for f in by_check(mine, "ids")] == ["ok"]


def test_display_name_collisions_warn() -> None:
    twin = live("/infra/domains/default/groups/other", "Group", display_name="k8s-prod-nodes")
    names = by_check(audit(DESIGN, inventory(twin)), "names")
    assert [f.status for f in names] == ["warn"] and "other" in names[0].detail


@pytest.mark.parametrize(("tep", "status", "fragment"), [
    (1700, "ok", "carries node MTU 1500"), (1600, "warn", "nsx.tep_mtu 1700"), (1550, "fail", "too small"),
    (None, "warn", "could not read")])
def test_tep_mtu(tep: int | None, status: str, fragment: str) -> None:
    finding = by_check(audit(DESIGN, inventory(tep_mtu=tep)), "tep-mtu")[0]
    assert finding.status == status and fragment in finding.detail


def test_a_policy_with_our_category_and_sequence_warns() -> None:
    rival = live("/infra/domains/default/security-policies/x", "SecurityPolicy", category="Application",
                 sequence_number=100)
    assert [f.status for f in by_check(audit(DESIGN, inventory(rival)), "dfw-order")] == ["warn"]


def test_an_existing_segment_must_exist_with_the_spec_cidr() -> None:
    design = example_design({"nsx.transport_zone": "overlay-tz", "nsx.tier1": "t1-gw",
                             "nsx.segment.use_existing": True})
    missing = by_check(audit(design, inventory()), "existing-segment")
    assert [f.status for f in missing] == ["fail"]
    wrong = by_check(audit(design, inventory(segment("k8s-nodes-segment", "10.0.0.1/24"))), "existing-segment")
    assert [f.status for f in wrong] == ["fail"] and "10.0.0.0/24" in wrong[0].detail
    fine = audit(design, inventory(segment("k8s-nodes-segment", "172.16.50.1/24",
                                           connectivity_path="/infra/tier-1s/t1-gw")))
    assert [f.status for f in by_check(fine, "existing-segment")] == ["ok"] and failures(fine) == []
