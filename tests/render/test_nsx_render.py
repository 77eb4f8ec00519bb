"""The NSX artifacts of `nsxkube render`: the Policy API body obeys the reference's rules, the DFW
implements exactly the port matrix, the VIP and pools get through SpoofGuard / IP discovery, and
the script passes shellcheck and never carries a secret.

The body checker below is written from ../shared/reference/nsx-policy-api.md, independently of
the render code, and is itself tested against broken bodies.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsxkube.design import Design
from nsxkube.lab.nsx import OVERLAY_TZ_PATH, TIER1_PATH, NsxEmulator
from nsxkube.render.files import to_json
from nsxkube.render.nsx import (
    NsxObject,
    desired_nsx_objects,
    infra_patch_body,
    port_address_bindings,
    render_nsx,
)
from nsxkube.render.nsx_objects import port_chunks
from tests.support.specs import example_design
from tests.support.validators import require_tool, shellcheck, write_temp

# ── the reference's rules, as a checker ──────────────────────────────────────────────────────

RULE_ACTIONS = {"ALLOW", "DROP", "REJECT", "JUMP_TO_APPLICATION"}
RULE_DIRECTIONS = {"IN", "OUT", "IN_OUT"}
IP_PROTOCOLS = {"IPV4", "IPV6", "IPV4_IPV6"}
POLICY_CATEGORIES = {"Ethernet", "Emergency", "Infrastructure", "Environment", "Application"}
EXPRESSION_TYPES = {"Condition", "IPAddressExpression", "PathExpression"}
CONJUNCTIONS = {"AND", "OR"}
SERVER_SET = {"path", "parent_path", "relative_path", "marked_for_delete"}
COLLECTION = {
    "Segment": "segments", "Group": "groups", "Service": "services", "SecurityPolicy": "security-policies",
    "SpoofGuardProfile": "spoofguard-profiles", "IPDiscoveryProfile": "ip-discovery-profiles",
    "SegmentSecurityProfileBindingMap": "segment-security-profile-binding-maps",
    "SegmentDiscoveryProfileBindingMap": "segment-discovery-profile-binding-maps", "Domain": "domains",
}
DEFAULT_PROFILES = {
    "/infra/mac-discovery-profiles/default-mac-discovery-profile",
    "/infra/segment-security-profiles/default-segment-security-profile",
    "/infra/spoofguard-profiles/default-spoofguard-profile",
    "/infra/ip-discovery-profiles/default-ip-discovery-profile",
}
PORT = re.compile(r"^\d{1,5}(-\d{1,5})?$")


class BodyCheck:
    """Walks a hierarchical body; collects findings, created paths and referenced paths."""

    def __init__(self) -> None:
        self.findings: list[str] = []
        self.created: dict[str, dict[str, Any]] = {}
        self.references: list[tuple[str, str]] = []  # (where, path)
        self.ids_by_wrapper: list[tuple[str, bool]] = []  # (object path, marked_for_delete)

    def problem(self, where: str, text: str) -> None:
        self.findings.append(f"{where}: {text}")

    def run(self, body: dict[str, Any]) -> BodyCheck:
        self.numbers(body, "body")
        if body.get("resource_type") != "Infra" or set(body) != {"resource_type", "children"}:
            self.problem("body", "top level must be exactly {resource_type: Infra, children}")
        for child in body.get("children", []):
            self.child(child, "/infra")
        return self

    def numbers(self, value: Any, where: str) -> None:
        if isinstance(value, float):
            self.problem(where, f"{value} is a float: integers must be integers")
        elif isinstance(value, dict):
            for key, item in value.items():
                self.numbers(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.numbers(item, f"{where}[{i}]")

    def child(self, wrapper: dict[str, Any], parent: str) -> None:
        kind = wrapper.get("resource_type", "")
        if kind == "ChildResourceReference":
            target = wrapper.get("target_type")
            if set(wrapper) - {"resource_type", "id", "target_type", "children"}:
                self.problem(parent, f"reference carries extra keys {sorted(wrapper)}")
            if target not in ("Domain", "Segment"):
                self.problem(parent, f"reference to unexpected target_type {target}")
            path = f"{parent}/{COLLECTION.get(target or '', '?')}/{wrapper.get('id')}"
            for child in wrapper.get("children", []):
                self.child(child, path)
            return
        if not kind.startswith("Child"):
            self.problem(parent, f"{kind!r} is not a Child wrapper")
            return
        inner_type = kind[len("Child"):]
        allowed = {"resource_type", inner_type, "marked_for_delete"}
        if set(wrapper) - allowed or inner_type not in wrapper:
            self.problem(parent, f"wrapper {kind} has keys {sorted(wrapper)}")
            return
        if "marked_for_delete" in wrapper and wrapper["marked_for_delete"] is not True:
            self.problem(parent, "marked_for_delete, when present, must be true")
        obj = wrapper[inner_type]
        if obj.get("resource_type") != inner_type:
            self.problem(parent, f"{kind} wraps a {obj.get('resource_type')}")
        path = f"{parent}/{COLLECTION.get(inner_type, '?')}/{obj.get('id')}"
        self.ids_by_wrapper.append((path, bool(wrapper.get("marked_for_delete"))))
        self.obj(obj, path)
        for child in obj.get("children", []):
            self.child(child, path)

    def obj(self, obj: dict[str, Any], path: str) -> None:
        self.created[path] = obj
        for key in obj:
            if key.startswith("_") or key in SERVER_SET:
                self.problem(path, f"server-set field {key} is sent")
        for key in ("id", "display_name", "description"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                self.problem(path, f"{key} missing")
        checker = getattr(self, f"check_{obj['resource_type']}", None)
        if checker:
            checker(obj, path)

    def ref(self, where: str, path: str) -> None:
        self.references.append((where, path))

    def any_alone(self, where: str, values: list[str]) -> None:
        if not isinstance(values, list) or not values:
            self.problem(where, "must be a non-empty list")
        elif "ANY" in values and len(values) > 1:
            self.problem(where, f"ANY must be alone, got {values}")
        else:
            for value in values:
                if value != "ANY":
                    self.ref(where, value)

    def check_Segment(self, obj: dict[str, Any], path: str) -> None:
        for subnet in obj.get("subnets", []):
            ipaddress.IPv4Interface(subnet["gateway_address"])  # raises on a bad CIDR
            if "/" not in subnet["gateway_address"]:
                self.problem(path, "gateway_address must be a CIDR")
            for rng in subnet.get("dhcp_ranges", []):
                if not re.match(r"^[\d.]+-[\d.]+$", rng):
                    self.problem(path, f"dhcp range {rng} is not A-B")
        self.ref(f"{path}.connectivity_path", obj["connectivity_path"])
        self.ref(f"{path}.transport_zone_path", obj["transport_zone_path"])

    def check_IPDiscoveryProfile(self, obj: dict[str, Any], path: str) -> None:
        arp = obj["ip_v4_discovery_options"]["arp_snooping_config"]
        limit = arp["arp_binding_limit"]
        if type(limit) is not int or not 1 <= limit <= 256:
            self.problem(path, f"arp_binding_limit {limit!r} is not an integer in 1-256")
        if obj.get("tofu_enabled") is not False or arp.get("arp_snooping_enabled") is not True:
            self.problem(path, "ARP snooping must be on and trust-on-first-use off")

    def check_SpoofGuardProfile(self, obj: dict[str, Any], path: str) -> None:
        if type(obj.get("address_binding_allowlist")) is not bool:
            self.problem(path, "address_binding_allowlist must be a boolean")

    def check_SegmentDiscoveryProfileBindingMap(self, obj: dict[str, Any], path: str) -> None:
        self.ref(path, obj["ip_discovery_profile_path"])
        self.ref(path, obj["mac_discovery_profile_path"])

    def check_SegmentSecurityProfileBindingMap(self, obj: dict[str, Any], path: str) -> None:
        self.ref(path, obj["spoofguard_profile_path"])
        self.ref(path, obj["segment_security_profile_path"])

    def check_Group(self, obj: dict[str, Any], path: str) -> None:
        expression = obj.get("expression", [])
        if not expression or len(expression) % 2 == 0:
            self.problem(path, "expression must alternate expression, conjunction, expression…")
            return
        for i, item in enumerate(expression):
            kind = item.get("resource_type")
            if i % 2:
                if kind != "ConjunctionOperator" or item.get("conjunction_operator") not in CONJUNCTIONS:
                    self.problem(path, f"expression[{i}] must be a ConjunctionOperator AND/OR")
                elif item["conjunction_operator"] == "AND" and (
                        expression[i - 1]["resource_type"] != expression[i + 1]["resource_type"]):
                    self.problem(path, f"AND joins {expression[i - 1]['resource_type']} and "
                                       f"{expression[i + 1]['resource_type']}: AND only joins one type")
            elif kind not in EXPRESSION_TYPES:
                self.problem(path, f"expression[{i}] has unknown type {kind}")
            elif kind == "IPAddressExpression":
                for address in item["ip_addresses"]:
                    for part in address.split("-"):
                        ipaddress.ip_network(part, strict=False)
            elif kind == "Condition" and (
                    item.get("member_type") != "VirtualMachine" or item.get("key") != "Tag"
                    or item.get("operator") != "EQUALS" or "|" not in item.get("value", "")):
                self.problem(path, f"condition {item} is not a VM tag condition scope|tag")

    def check_Service(self, obj: dict[str, Any], path: str) -> None:
        for entry in obj.get("service_entries", []):
            kind = entry.get("resource_type")
            if kind == "L4PortSetServiceEntry":
                ports = entry["destination_ports"]
                if entry.get("l4_protocol") not in ("TCP", "UDP"):
                    self.problem(path, f"l4_protocol {entry.get('l4_protocol')}")
                if not all(isinstance(p, str) and PORT.match(p) for p in ports):
                    self.problem(path, f"destination_ports must be port strings: {ports}")
                if sum(2 if "-" in p else 1 for p in ports) > 15:
                    self.problem(path, f"more than 15 port values (a range counts 2): {ports}")
            elif kind == "ICMPTypeServiceEntry":
                if entry.get("protocol") != "ICMPv4" or type(entry.get("icmp_type")) is not int:
                    self.problem(path, f"bad ICMP entry {entry}")
            elif kind == "IPProtocolServiceEntry":
                number = entry.get("protocol_number")
                if type(number) is not int or not 0 <= number <= 255:
                    self.problem(path, f"bad IP protocol entry {entry}")
            else:
                self.problem(path, f"unknown service entry {kind}")

    def check_SecurityPolicy(self, obj: dict[str, Any], path: str) -> None:
        if obj.get("category") not in POLICY_CATEGORIES:
            self.problem(path, f"category {obj.get('category')}")
        if type(obj.get("sequence_number")) is not int or type(obj.get("stateful")) is not bool:
            self.problem(path, "sequence_number must be an integer and stateful a boolean")
        self.any_alone(f"{path}.scope", obj.get("scope", []))
        sequences = []
        for rule in obj.get("rules", []):
            where = f"{path}/rules/{rule.get('id')}"
            self.created[where] = rule
            if rule.get("action") not in RULE_ACTIONS:
                self.problem(where, f"action {rule.get('action')}")
            if rule.get("direction") not in RULE_DIRECTIONS:
                self.problem(where, f"direction {rule.get('direction')}")
            if rule.get("ip_protocol") not in IP_PROTOCOLS:
                self.problem(where, f"ip_protocol {rule.get('ip_protocol')}")
            if type(rule.get("sequence_number")) is not int or type(rule.get("logged")) is not bool:
                self.problem(where, "sequence_number must be an integer and logged a boolean")
            if type(rule.get("sequence_number")) is int:
                sequences.append(rule["sequence_number"])
            for key in ("source_groups", "destination_groups", "services"):
                self.any_alone(f"{where}.{key}", rule.get(key, []))
        if sequences != sorted(set(sequences)):
            self.problem(path, f"rule sequence numbers must be unique and increasing: {sequences}")

    def unresolved(self, known: set[str]) -> list[str]:
        return [f"{where}: {path} is neither created in the body nor a known default or spec reference"
                for where, path in self.references if path not in self.created and path not in known]


def known_references(design: Design) -> set[str]:
    nsx = design.spec.nsx
    return DEFAULT_PROFILES | {
        f"/infra/tier-1s/{nsx.tier1}",
        f"/infra/sites/default/enforcement-points/default/transport-zones/{nsx.transport_zone}",
    }


def check(body: dict[str, Any], design: Design) -> list[str]:
    result = BodyCheck().run(body)
    return result.findings + result.unresolved(known_references(design))


# ── designs to try ───────────────────────────────────────────────────────────────────────────

VARIANTS: dict[str, dict[str, Any]] = {
    "example": {},
    "segment-profiles": {"nsx.vip_mode": "segment-profiles"},
    "existing-segment": {"nsx.segment.use_existing": True},
    "dfw-off": {"nsx.dfw.enabled": False},
    "no-default-deny": {"nsx.dfw.default_deny": False, "nsx.dfw.category": "Environment"},
    "dhcp-proxy-names": {
        "nsx.segment.dhcp_ranges": ["172.16.50.100-172.16.50.150"],
        "network.proxy": {"url": "http://10.10.0.8:3128"},
        "network.ntp_servers": ["ntp.example.com", "10.10.0.123"],
        "vsphere.server": "10.10.0.5",
    },
    "clients-and-many-ports": {
        "network.client_networks": ["192.168.0.0/16", "10.20.0.0/16"],
        "network.loadbalancer_ports": list(range(8000, 8020)),
        "addons.cilium.tunnel": "vxlan",
        "addons.cilium.hubble": False,
        "addons.monitoring.enabled": False,
    },
    "no-admin-no-pools": {
        "network.admin_networks": [],
        "network.loadbalancer_pools": [],
        "addons.loadbalancer.provider": "none",
        "nodes.workers.count": 0,
        "nodes.control_planes.count": 1,
    },
    "big-pool-segment-profiles": {
        "nsx.vip_mode": "segment-profiles",
        "network.loadbalancer_pools": [{"name": "big", "range": "172.16.50.100-172.16.50.250"},
                                       {"name": "small", "range": "172.16.50.251-172.16.50.254"}],
    },
}


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def design(request: pytest.FixtureRequest) -> Design:
    return example_design(VARIANTS[request.param])


def by_type(objects: tuple[NsxObject, ...], resource_type: str) -> list[NsxObject]:
    return [o for o in objects if o.resource_type == resource_type]


def the_policy(design: Design) -> dict[str, Any]:
    (policy,) = by_type(desired_nsx_objects(design), "SecurityPolicy")
    return policy.body


# ── the checker catches what it must ────────────────────────────────────────────────────────


def _break(body: dict[str, Any], how: str) -> dict[str, Any]:
    broken = copy.deepcopy(body)
    domain = next(c for c in broken["children"] if c["resource_type"] == "ChildResourceReference")
    policy = next(c["SecurityPolicy"] for c in domain["children"] if c["resource_type"] == "ChildSecurityPolicy")
    rule = policy["rules"][0]
    service = next(c["Service"] for c in broken["children"] if c["resource_type"] == "ChildService")
    group = next(c["Group"] for c in domain["children"] if c["resource_type"] == "ChildGroup")
    if how == "float":
        policy["sequence_number"] = 100.0
    elif how == "any-not-alone":
        rule["source_groups"] = ["ANY", *rule["source_groups"]]
    elif how == "bad-direction":
        rule["direction"] = "BOTH"
    elif how == "bad-category":
        policy["category"] = "Kubernetes"
    elif how == "too-many-ports":
        service["service_entries"] = [{"resource_type": "L4PortSetServiceEntry", "id": "x", "l4_protocol": "TCP",
                                       "destination_ports": [f"{p}-{p + 1}" for p in range(1000, 1016, 2)]}]
    elif how == "and-across-types":
        group["expression"] = [{"resource_type": "IPAddressExpression", "ip_addresses": ["10.0.0.1"]},
                               {"resource_type": "ConjunctionOperator", "conjunction_operator": "AND"},
                               {"resource_type": "PathExpression", "paths": ["/infra/segments/x"]}]
    elif how == "dangling-reference":
        rule["services"] = ["/infra/services/nobody-made-this"]
    elif how == "server-set-field":
        group["_revision"] = 3
    elif how == "integer-as-string":
        rule["sequence_number"] = "10"
    return broken


@pytest.mark.parametrize("how", ["float", "any-not-alone", "bad-direction", "bad-category", "too-many-ports",
                                 "and-across-types", "dangling-reference", "server-set-field",
                                 "integer-as-string"])
def test_the_checker_rejects_a_broken_body(how):
    design = example_design()
    body = infra_patch_body(desired_nsx_objects(design))
    assert check(body, design) == []
    assert check(_break(body, how), design), f"the checker let '{how}' through"


# ── the body ─────────────────────────────────────────────────────────────────────────────────


def test_the_body_obeys_the_reference(design):
    body = infra_patch_body(desired_nsx_objects(design))
    assert check(body, design) == []


def test_every_object_and_rule_carries_the_ownership_tag(design):
    tag = {"scope": "nsxkube/cluster", "tag": design.name}
    created = BodyCheck().run(infra_patch_body(desired_nsx_objects(design))).created
    untagged = [path for path, obj in created.items() if tag not in obj.get("tags", [])]
    assert created and untagged == []


def test_objects_come_in_dependency_order_with_paths_that_match_their_bodies(design):
    objects = desired_nsx_objects(design)
    order = ["IPDiscoveryProfile", "SpoofGuardProfile", "Segment", "SegmentDiscoveryProfileBindingMap",
             "SegmentSecurityProfileBindingMap", "Group", "Service", "SecurityPolicy"]
    ranks = [order.index(o.resource_type) for o in objects]
    assert ranks == sorted(ranks)
    for obj in objects:
        assert obj.path == f"{obj.parent_path}/{COLLECTION[obj.resource_type]}/{obj.body['id']}"
        assert obj.body["resource_type"] == obj.resource_type
    assert len({o.path for o in objects}) == len(objects)
    name = design.name
    ids = {o.body["id"] for o in objects if o.resource_type != "Segment"}
    assert all(i.startswith(f"{name}-") for i in ids)
    assert f"{name}-nodes" in ids and f"{name}-control-planes" in ids


def test_segment_points_at_the_tier1_and_transport_zone():
    design = example_design({"nsx.segment.dhcp_ranges": ["172.16.50.100-172.16.50.150"]})
    (segment,) = by_type(desired_nsx_objects(design), "Segment")
    assert segment.path == "/infra/segments/k8s-nodes-segment"
    assert segment.body["subnets"] == [{"gateway_address": "172.16.50.1/24",
                                        "dhcp_ranges": ["172.16.50.100-172.16.50.150"]}]
    assert segment.body["connectivity_path"] == "/infra/tier-1s/t1-k8s"
    assert segment.body["transport_zone_path"] == (
        "/infra/sites/default/enforcement-points/default/transport-zones/nsx-overlay-transportzone")


# ── the DFW implements exactly the port matrix ──────────────────────────────────────────────


def expected_addresses(design: Design, endpoint: str) -> set[str] | None:
    """What an endpoint must resolve to, straight from the design; None means the rule says ANY."""
    spec, plan = design.spec, design.ip_plan
    network = spec.network

    def ips_or_any(hosts: list[str]) -> set[str] | None:
        try:
            return {str(ipaddress.IPv4Address(h)) for h in hosts} or None
        except ValueError:
            return None

    table: dict[str, Any] = {
        "nodes": {str(n.address) for n in plan.nodes},
        "control-planes": {str(n.address) for n in plan.control_planes},
        "api-vip": {str(plan.api_vip)},
        "lb-pools": {f"{p.range.first}-{p.range.last}" if p.range.size > 1 else str(p.range.first)
                     for p in plan.pools},
        "admin-networks": {str(n) for n in network.admin_networks},
        "client-networks": None if any(n.prefixlen == 0 for n in network.client_networks)
        else {str(n) for n in network.client_networks},
        "dns-servers": {str(a) for a in network.dns_servers},
        "ntp-servers": ips_or_any(network.ntp_servers),
        "vcenter": ips_or_any([spec.vsphere.server]),
        "proxy": ips_or_any([network.proxy.url.split("//")[1].rsplit(":", 1)[0]] if network.proxy else []),
        "internet": None,
    }
    return table[endpoint]


def resolve(groups: dict[str, dict[str, Any]], paths: list[str], design: Design) -> set[str] | None:
    if paths == ["ANY"]:
        return None
    members: set[str] = set()
    for path in paths:
        group = groups[path]
        for expression in group["expression"]:
            if expression["resource_type"] == "IPAddressExpression":
                members |= set(expression["ip_addresses"])
            elif expression["resource_type"] == "Condition":
                assert expression["value"] == f"nsxkube/cluster|{design.name}"
    return members


def test_allow_rules_are_exactly_the_port_matrix(design):
    objects = desired_nsx_objects(design)
    if not design.spec.nsx.dfw.enabled:
        assert by_type(objects, "SecurityPolicy") == []
        return
    groups = {o.path: o.body for o in by_type(objects, "Group")}
    services = {o.path: o.body for o in by_type(objects, "Service")}
    allow = [r for r in the_policy(design)["rules"] if r["action"] == "ALLOW"]
    assert [r["id"] for r in allow] == [f.id for f in design.ports]
    for rule, flow in zip(allow, design.ports, strict=True):
        assert not (rule["source_groups"] == ["ANY"] and rule["destination_groups"] == ["ANY"]), rule["id"]
        assert resolve(groups, rule["source_groups"], design) == expected_addresses(design, flow.source), flow.id
        assert resolve(groups, rule["destination_groups"], design) == expected_addresses(
            design, flow.destination), flow.id
        (service_path,) = rule["services"]
        entries = services[service_path]["service_entries"]
        if flow.protocol == "ICMP":
            icmp_numbers = {"echo-request": 8, "destination-unreachable": 3}  # RFC 792
            assert {(e["protocol"], e["icmp_type"]) for e in entries} == {("ICMPv4", icmp_numbers[t]) for t in flow.ports}
        else:
            assert {e["l4_protocol"] for e in entries} == {flow.protocol}
            assert [p for e in entries for p in e["destination_ports"]] == list(flow.ports)
        assert rule["logged"] is False and rule["ip_protocol"] == "IPV4"


def test_rules_see_each_flow_where_it_crosses_the_node_ports():
    rules = {r["id"]: r for r in the_policy(example_design())["rules"]}
    assert rules["kubelet"]["direction"] == "IN_OUT"
    assert rules["api-vip-from-nodes"]["direction"] == "IN_OUT"
    assert rules["ssh-from-admin"]["direction"] == "IN"
    assert rules["loadbalancer-services"]["direction"] == "IN"
    assert rules["dns-udp"]["direction"] == "OUT"
    assert rules["etcd-peers"]["source_groups"] == rules["etcd-peers"]["destination_groups"] == [
        "/infra/domains/default/groups/k8s-prod-control-planes"]


def test_default_deny_closes_both_directions_and_follows_log_denied():
    for log_denied in (True, False):
        design = example_design({"nsx.dfw.log_denied": log_denied})
        policy = the_policy(design)
        assert policy["category"] == "Application" and policy["sequence_number"] == 100
        assert policy["scope"] == ["/infra/domains/default/groups/k8s-prod-nodes"] and policy["stateful"] is True
        *allow, deny_in, deny_out = policy["rules"]
        assert {r["action"] for r in allow} == {"ALLOW"}
        assert (deny_in["action"], deny_in["direction"], deny_in["source_groups"]) == ("DROP", "IN", ["ANY"])
        assert (deny_out["action"], deny_out["direction"], deny_out["destination_groups"]) == ("DROP", "OUT", ["ANY"])
        assert "/infra/domains/default/groups/k8s-prod-nodes" in deny_in["destination_groups"]
        assert deny_in["logged"] is deny_out["logged"] is log_denied
        assert [r["sequence_number"] for r in policy["rules"]] == list(range(10, 10 * len(policy["rules"]) + 1, 10))
    no_deny = the_policy(example_design({"nsx.dfw.default_deny": False}))
    assert {r["action"] for r in no_deny["rules"]} == {"ALLOW"}


def test_nodes_group_finds_vms_by_tag_or_by_address():
    groups = {o.body["id"]: o.body for o in by_type(desired_nsx_objects(example_design()), "Group")}
    condition, conjunction, addresses = groups["k8s-prod-nodes"]["expression"]
    assert condition == {"resource_type": "Condition", "member_type": "VirtualMachine", "key": "Tag",
                         "operator": "EQUALS", "value": "nsxkube/cluster|k8s-prod"}
    assert conjunction == {"resource_type": "ConjunctionOperator", "conjunction_operator": "OR"}
    assert addresses["ip_addresses"] == [f"172.16.50.{i}" for i in range(11, 16)]
    assert "k8s-prod-client-networks" not in groups  # 0.0.0.0/0 is written ANY
    assert "k8s-prod-vcenter" not in groups  # vcenter.example.com is a name


def test_dfw_disabled_means_no_policy_and_no_services():
    objects = desired_nsx_objects(example_design({"nsx.dfw.enabled": False}))
    assert not by_type(objects, "SecurityPolicy") and not by_type(objects, "Service")
    assert {o.body["id"] for o in by_type(objects, "Group")} == {
        "k8s-prod-nodes", "k8s-prod-control-planes", "k8s-prod-api-vip", "k8s-prod-lb-pools"}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 65535).map(str),
                          st.tuples(st.integers(1, 65000), st.integers(1, 500)).map(lambda t: f"{t[0]}-{t[0] + t[1]}")),
                min_size=1, max_size=60))
def test_port_chunks_keep_every_port_in_order_and_fit_fifteen_values(ports):
    chunks = port_chunks(ports)
    assert [p for chunk in chunks for p in chunk] == ports
    assert all(chunk and sum(2 if "-" in p else 1 for p in chunk) <= 15 for chunk in chunks)


# ── VIP and pools through IP discovery and SpoofGuard ───────────────────────────────────────


def test_vip_and_pools_count_in_the_arp_binding_limit(design):
    (profile,) = by_type(desired_nsx_objects(design), "IPDiscoveryProfile")
    announced = 1 + sum(p.range.size for p in design.ip_plan.pools)
    limit = profile.body["ip_v4_discovery_options"]["arp_snooping_config"]["arp_binding_limit"]
    assert limit == min(256, 1 + announced)
    assert profile.body["tofu_enabled"] is False


def test_allowlist_mode_binds_the_vip_and_every_pool_address_on_the_right_nodes():
    design = example_design()
    bindings = port_address_bindings(design)
    plan = design.ip_plan
    pool = {str(a) for p in plan.pools for a in p.range.addresses()}
    assert set(bindings) == {n.name for n in plan.nodes}
    for node in plan.nodes:
        addresses = bindings[node.name]
        assert addresses[0] == str(node.address)
        assert pool <= set(addresses)
        assert (str(plan.api_vip) in addresses) is node.is_control_plane
        assert len(addresses) == len(set(addresses))
    (spoofguard,) = by_type(desired_nsx_objects(design), "SpoofGuardProfile")
    assert spoofguard.body["address_binding_allowlist"] is True


def test_segment_profiles_mode_binds_a_spoofguard_profile_with_the_allowlist_off():
    design = example_design({"nsx.vip_mode": "segment-profiles"})
    objects = desired_nsx_objects(design)
    (spoofguard,) = by_type(objects, "SpoofGuardProfile")
    (binding,) = by_type(objects, "SegmentSecurityProfileBindingMap")
    (discovery,) = by_type(objects, "SegmentDiscoveryProfileBindingMap")
    (ip_discovery,) = by_type(objects, "IPDiscoveryProfile")
    assert spoofguard.body["address_binding_allowlist"] is False
    assert binding.parent_path == "/infra/segments/k8s-nodes-segment"
    assert binding.body["spoofguard_profile_path"] == spoofguard.path
    assert binding.body["segment_security_profile_path"] == (
        "/infra/segment-security-profiles/default-segment-security-profile")
    assert discovery.body["ip_discovery_profile_path"] == ip_discovery.path
    assert discovery.body["mac_discovery_profile_path"] == "/infra/mac-discovery-profiles/default-mac-discovery-profile"
    assert port_address_bindings(design) == {}


def test_an_existing_segment_is_never_touched_and_its_owner_gets_the_bindings_as_steps():
    design = example_design({"nsx.segment.use_existing": True})
    objects = desired_nsx_objects(design)
    assert not [o for o in objects if o.resource_type == "Segment" or o.path.startswith("/infra/segments/")]
    assert by_type(objects, "SpoofGuardProfile") and by_type(objects, "IPDiscoveryProfile")
    files = {f.path: f.content for f in render_nsx(design)}
    assert '"Segment"' not in files["nsx/infra-patch.json"]
    doc = files["nsx/spoofguard-allowlist.md"]
    assert "Manual steps for the owner of segment `k8s-nodes-segment`" in doc
    assert "segment-security-profile-binding-maps" in doc and "segment-discovery-profile-binding-maps" in doc


# ── infra_patch_body for subsets and deletion ───────────────────────────────────────────────


def test_one_group_alone_goes_under_the_domain_reference():
    design = example_design()
    group = by_type(desired_nsx_objects(design), "Group")[1]
    body = infra_patch_body([group])
    assert body == {"resource_type": "Infra", "children": [{
        "resource_type": "ChildResourceReference", "id": "default", "target_type": "Domain",
        "children": [{"resource_type": "ChildGroup", "Group": group.body}]}]}
    assert check(body, design) == []


def test_the_policy_alone_references_groups_and_services_that_already_exist():
    design = example_design()
    objects = desired_nsx_objects(design)
    policy = by_type(objects, "SecurityPolicy")
    result = BodyCheck().run(infra_patch_body(policy))
    assert result.findings == []
    others = {o.path for o in objects}
    assert {p for _, p in result.references} <= others | known_references(design)
    assert next(iter(result.created)) == policy[0].path


def test_a_binding_map_without_its_segment_descends_by_reference():
    design = example_design()
    binding = by_type(desired_nsx_objects(design), "SegmentSecurityProfileBindingMap")[0]
    body = infra_patch_body([binding])
    (reference,) = body["children"]
    assert reference == {"resource_type": "ChildResourceReference", "id": "k8s-nodes-segment",
                         "target_type": "Segment",
                         "children": [{"resource_type": "ChildSegmentSecurityProfileBindingMap",
                                       "SegmentSecurityProfileBindingMap": binding.body}]}


def test_binding_maps_nest_under_their_segment_when_both_are_sent():
    objects = desired_nsx_objects(example_design())
    body = infra_patch_body([o for o in objects if "segments" in o.path])
    (segment,) = body["children"]
    assert segment["resource_type"] == "ChildSegment"
    assert [c["resource_type"] for c in segment["Segment"]["children"]] == [
        "ChildSegmentDiscoveryProfileBindingMap", "ChildSegmentSecurityProfileBindingMap"]


@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_subset_makes_a_valid_body_that_holds_exactly_that_subset(data):
    design = example_design()
    objects = desired_nsx_objects(design)
    subset = data.draw(st.lists(st.sampled_from(objects), unique_by=lambda o: o.path, min_size=1))
    delete = data.draw(st.booleans())
    result = BodyCheck().run(infra_patch_body(subset, delete=delete))
    assert result.findings == []
    sent = {path: marked for path, marked in result.ids_by_wrapper}
    assert set(sent) == {o.path for o in subset}
    assert all(marked is delete for marked in sent.values())
    assert {p for _, p in result.references} <= {o.path for o in objects} | known_references(design)


def test_delete_marks_every_wrapper_never_the_domain_and_removes_referrers_first():
    design = example_design()
    body = infra_patch_body(desired_nsx_objects(design), delete=True)
    domain = next(c for c in body["children"] if c["resource_type"] == "ChildResourceReference")
    assert "marked_for_delete" not in domain
    assert domain["children"][0]["resource_type"] == "ChildSecurityPolicy"
    kinds = [c["resource_type"] for c in body["children"]]
    assert kinds.index("ChildResourceReference") < kinds.index("ChildService") < kinds.index("ChildSegment")
    assert kinds[-1] in ("ChildIPDiscoveryProfile", "ChildSpoofGuardProfile")
    result = BodyCheck().run(body)
    assert result.ids_by_wrapper and all(marked for _, marked in result.ids_by_wrapper)


def test_the_body_does_not_share_state_with_the_objects():
    objects = desired_nsx_objects(example_design())
    body = infra_patch_body(objects)
    body["children"][0]["IPDiscoveryProfile"]["tags"].append({"scope": "x", "tag": "y"})
    assert objects[0].body["tags"] == [{"scope": "nsxkube/cluster", "tag": "k8s-prod"}]
    with pytest.raises(ValueError, match="twice"):
        infra_patch_body([objects[0], objects[0]])


# ── the rendered files ──────────────────────────────────────────────────────────────────────

NSX_FILES = ["nsx/infra-patch.json", "nsx/apply.sh", "nsx/segment.md", "nsx/spoofguard-allowlist.md",
             "nsx/dfw-rules.md"]


def test_render_writes_the_nsx_files_and_the_body_is_the_desired_objects(design):
    files = render_nsx(design)
    assert [f.path for f in files] == NSX_FILES
    contents = {f.path: f for f in files}
    assert contents["nsx/infra-patch.json"].content == to_json(infra_patch_body(desired_nsx_objects(design)))
    assert json.loads(contents["nsx/infra-patch.json"].content)["resource_type"] == "Infra"
    assert contents["nsx/apply.sh"].mode == 0o755
    assert all(not f.executable for f in files if f.path != "nsx/apply.sh")


def test_rendering_twice_is_byte_identical(design):
    first = [(f.path, f.content, f.mode) for f in render_nsx(design)]
    again = [(f.path, f.content, f.mode) for f in render_nsx(copy.deepcopy(design))]
    assert first == again


TLS_VARIANTS: dict[str, dict[str, Any]] = {
    "system": {},
    "ca-file": {"nsx.tls.ca_file": "/etc/ssl/nsx ca.pem"},
    "thumbprint": {"nsx.tls.thumbprint": ":".join(["AB"] * 32)},
    "thumbprint-sha1": {"nsx.tls.thumbprint": ":".join(["0f"] * 20)},
    "insecure": {"nsx.tls.insecure": True},
    "existing-segment": {"nsx.segment.use_existing": True, "nsx.credentials.user_env": "OPS_NSX_LOGIN",
                         "nsx.credentials.password_env": "OPS_NSX_SECRET"},
}


def apply_script(changes: dict[str, Any]) -> str:
    return next(f.content for f in render_nsx(example_design(changes)) if f.path == "nsx/apply.sh")


@pytest.mark.parametrize("variant", sorted(TLS_VARIANTS))
def test_apply_script_passes_shellcheck_and_bash_n(variant):
    assert shellcheck(write_temp(apply_script(TLS_VARIANTS[variant]), ".sh")) == []


def test_apply_script_verifies_tls_unless_told_loudly_not_to():
    def curl_flags(script: str) -> set[str]:
        return set(re.findall(r"^tls=\((.*)\)$", script, re.M)[0].split())

    system = apply_script({})
    assert curl_flags(system) == {"--tlsv1.2"} and "WARNING" not in system
    ca = apply_script(TLS_VARIANTS["ca-file"])
    assert curl_flags(ca) == {"--tlsv1.2", "--cacert", "'/etc/ssl/nsx", "ca.pem'"}
    thumb = apply_script(TLS_VARIANTS["thumbprint"])
    assert "--pinnedpubkey" in thumb and "public key" in thumb and "-k" not in curl_flags(thumb)
    assert "expected_thumbprint=" + ":".join(["AB"] * 32) in thumb and "-fingerprint -sha256" in thumb
    assert "-fingerprint -sha1" in apply_script(TLS_VARIANTS["thumbprint-sha1"])
    insecure = apply_script(TLS_VARIANTS["insecure"])
    assert "-k" in curl_flags(insecure) and "WARNING: NSX certificate verification is OFF" in insecure
    for script in (system, ca, thumb):
        assert not re.search(r"(^|\s)(-k|--insecure)(\s|\)|$)", script, re.M)


def test_apply_script_takes_credentials_from_the_named_variables_and_polls_every_object():
    design = example_design(TLS_VARIANTS["existing-segment"])
    script = apply_script(TLS_VARIANTS["existing-segment"])
    assert '"${OPS_NSX_LOGIN:?set OPS_NSX_LOGIN' in script and '"${OPS_NSX_SECRET:?set OPS_NSX_SECRET' in script
    assert "NSX_PASSWORD" not in script
    assert "set -euo pipefail" in script and "--request PATCH" in script
    assert '"$api/infra"' in script and 'api="https://$NSX_MANAGER/policy/api/v1"' in script
    for obj in desired_nsx_objects(design):
        assert f"\n  {obj.path}\n" in script
    assert "realized-state/realized-entities" in script and "REALIZED" in script


def test_no_secret_from_the_environment_reaches_any_file(monkeypatch, design):
    sentinels = {"NSX_USER": "sentinel-user-7f3a", "NSX_PASSWORD": "sentinel-pass-9c1e",
                 "VSPHERE_PASSWORD": "sentinel-vc-44d0", "VSPHERE_USER": "sentinel-vcuser-12ab"}
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    rendered = "".join(f.content for f in render_nsx(design))
    leaked = [name for name, value in sentinels.items() if value in rendered]
    assert leaked == []


def test_dfw_rules_md_lists_every_rule_with_its_reason(design):
    doc = next(f.content for f in render_nsx(design) if f.path == "nsx/dfw-rules.md")
    if not design.spec.nsx.dfw.enabled:
        assert "nsx.dfw.enabled: false" in doc
        assert all(f"| {flow.id} |" in doc for flow in design.ports)
        return
    rules = the_policy(design)["rules"]
    assert rules
    for rule in rules:
        line = next((row for row in doc.splitlines() if f"| {rule['display_name']} |" in row), None)
        assert line is not None, rule["id"]
        assert line.startswith(f"| {rule['sequence_number']} |")
        assert f"| {rule['action']} | {rule['direction']} |" in line
        assert rule["description"] in line


def test_documents_show_the_segment_the_plan_and_the_vip_exceptions():
    design = example_design()
    files = {f.path: f.content for f in render_nsx(design)}
    segment = files["nsx/segment.md"]
    for text in ("172.16.50.1/24", "t1-k8s", "nsx-overlay-transportzone", "| 172.16.50.200-172.16.50.250 | 51 |",
                 "k8s-prod-worker-2"):
        assert text in segment
    spoofguard = files["nsx/spoofguard-allowlist.md"]
    assert "172.16.50.10" in spoofguard and "arp_binding_limit: 53" in spoofguard
    assert "| k8s-prod-cp-1 | 172.16.50.11 | 172.16.50.10, 172.16.50.200-172.16.50.250 | 53 |" in spoofguard
    names = example_design({"network.ntp_servers": ["ntp.example.com"]})
    dfw = next(f.content for f in render_nsx(names) if f.path == "nsx/dfw-rules.md")
    assert "**ntp-servers** → ANY: given by name (ntp.example.com)" in dfw


# ── against the NSX Policy API emulator ─────────────────────────────────────────────────────


def emulator_design(changes: dict[str, Any] | None = None) -> Design:
    """The example, pointed at the tier-1 and transport zone the emulator's presets hold."""
    return example_design({"nsx.tier1": TIER1_PATH.rsplit("/", 1)[1],
                           "nsx.transport_zone": OVERLAY_TZ_PATH.rsplit("/", 1)[1], **(changes or {})})


def test_the_emulator_accepts_infra_patch_json_and_holds_every_object():
    import httpx

    design = emulator_design()
    objects = desired_nsx_objects(design)
    body = next(f.content for f in render_nsx(design) if f.path == "nsx/infra-patch.json")
    with NsxEmulator("empty", realization_delay=0) as nsx, httpx.Client(
            base_url=nsx.url + "/policy/api/v1", auth=(nsx.username, nsx.password),
            verify=ssl.create_default_context(cafile=nsx.ca_file), timeout=10.0) as client:
        answer = client.patch("/infra", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        for obj in objects:
            got = client.get(obj.path)
            assert got.status_code == 200, (obj.path, got.text)
            assert {"scope": "nsxkube/cluster", "tag": design.name} in got.json()["tags"]
        rules = client.get(f"/infra/domains/default/security-policies/{design.name}-k8s/rules").json()
        assert len(rules["results"]) == len(the_policy(design)["rules"])

        # What the network phase sends for a change: a subset, binding maps without their segment.
        subset = [o for o in objects if o.resource_type in ("SegmentSecurityProfileBindingMap", "Group")][:2]
        assert client.patch("/infra", json=infra_patch_body(subset)).status_code == 200
        # What destroy sends: everything marked for delete, and nothing of ours is left.
        answer = client.patch("/infra", json=infra_patch_body(objects, delete=True))
        assert answer.status_code == 200, answer.text
        assert [o.path for o in objects if client.get(o.path).status_code != 404] == []


def run_apply_script(nsx: Any, design: Design, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    for file in render_nsx(design):
        target = tmp_path / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content, encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NSX_USER": nsx.username,
           "NSX_PASSWORD": nsx.password, "NSX_MANAGER": nsx.url.split("//", 1)[1],
           "NSX_POLL_INTERVAL": "0.1", "NSX_REALIZE_TIMEOUT": "30"}
    return subprocess.run(["bash", str(tmp_path / "nsx/apply.sh")], env=env, capture_output=True, text=True,
                          timeout=120)


def test_apply_script_sends_the_body_over_verified_tls_and_waits_for_realization(tmp_path: Path):
    require_tool("curl")
    require_tool("openssl")
    with NsxEmulator("empty", realization_delay=0.3) as nsx:
        for name, tls in (("ca", {"nsx.tls.ca_file": nsx.ca_file}), ("pin", {"nsx.tls.thumbprint": nsx.thumbprint})):
            design = emulator_design(tls)
            done = run_apply_script(nsx, design, tmp_path / name)
            assert done.returncode == 0, done.stderr
            assert f"every NSX object of cluster {design.name} is realized" in done.stdout
            assert all(nsx.get(o.path) is not None for o in desired_nsx_objects(design))
            assert nsx.password not in done.stdout + done.stderr

        policy_path = f"/infra/domains/default/security-policies/{design.name}-k8s"
        nsx.force_realization_error(policy_path)
        failed = run_apply_script(nsx, design, tmp_path / "error")
        assert failed.returncode == 1 and f"NSX could not realize {policy_path}" in failed.stderr


def test_what_the_hand_applied_bundle_builds_is_what_nsxkube_apply_would_build(tmp_path: Path):
    """The two ways to stage 0 agree: after the bundle's nsx/apply.sh (curl, by hand) on an NSX
    as Tanzu leaves it, the network phase finds every object as it wants it, and writes nothing."""
    from nsxkube.phases.network import PHASE
    from nsxkube.pipeline import runner
    from tests.providers.nsx.helpers import make_context, writes

    require_tool("curl")
    require_tool("openssl")
    with NsxEmulator("tanzu", realization_delay=0.1) as nsx:
        design = emulator_design({"nsx.manager": nsx.url.split("//", 1)[1], "nsx.tls.thumbprint": nsx.thumbprint,
                                       "nsx.segment.cidr": "172.16.51.0/24", "nsx.segment.gateway": "172.16.51.1",
                                       "network.api_vip": "172.16.51.10", "nodes.address_range": "172.16.51.11-172.16.51.99",
                                       "network.loadbalancer_pools": [{"name": "default",
                                                                       "range": "172.16.51.200-172.16.51.250"}]})
        done = run_apply_script(nsx, design, tmp_path)
        assert done.returncode == 0, done.stderr
        nsx.log.clear()
        ctx = make_context(design, nsx, tmp_path / "work")
        try:
            changes = runner.observe_and_plan(ctx, PHASE)[1]
        finally:
            ctx.close()
        assert len(changes) == len(desired_nsx_objects(design))
        assert {c.action for c in changes} == {"unchanged"}, [c.one_line() for c in changes if c.action != "unchanged"]
        assert writes(nsx) == []


def test_apply_script_stops_before_sending_credentials_to_the_wrong_certificate(tmp_path: Path):
    require_tool("openssl")
    with NsxEmulator("empty", realization_delay=0) as nsx:
        design = emulator_design({"nsx.tls.thumbprint": ":".join(["AB"] * 32)})
        refused = run_apply_script(nsx, design, tmp_path)
        assert refused.returncode == 1 and "stopping before any credential is sent" in refused.stderr
        assert nsx.requests == []  # not one API call, so no credential left the machine
