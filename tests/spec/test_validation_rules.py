"""Every validation rule of the spec and design: each case names the key that must be blamed."""

from __future__ import annotations

import pytest

from nsxkube.design import analyse
from nsxkube.errors import SpecError
from nsxkube.spec import parse_spec
from tests.support.specs import example_data, spec_from, with_changes


def errors_for(changes: dict) -> list:
    spec = spec_from(with_changes(example_data(), changes))
    design, problems = analyse(spec)
    errors = [p for p in problems if p.severity == "error"]
    assert design is None or not errors
    return errors


def warnings_for(changes: dict) -> list:
    spec = spec_from(with_changes(example_data(), changes))
    design, problems = analyse(spec)
    assert design is not None, [p.one_line() for p in problems]
    return list(design.warnings)


def schema_error(changes: dict) -> SpecError:
    with pytest.raises(SpecError) as caught:
        spec_from(with_changes(example_data(), changes))
    return caught.value


def test_example_is_valid_without_warnings():
    assert errors_for({}) == []
    assert warnings_for({}) == []


DESIGN_ERRORS = [
    # addresses outside the segment, network, broadcast, gateway
    ({"network.api_vip": "172.16.51.10"}, "network.api_vip", "outside the node segment"),
    ({"network.api_vip": "172.16.50.0"}, "network.api_vip", "network address"),
    ({"network.api_vip": "172.16.50.255"}, "network.api_vip", "broadcast address"),
    ({"network.api_vip": "172.16.50.1"}, "network.api_vip", "gateway"),
    ({"nsx.segment.gateway": "172.16.60.1"}, "nsx.segment.gateway", "outside"),
    ({"nodes.workers.addresses": ["172.16.50.21", "172.16.50.0"]}, "nodes.workers.addresses[1]", "network address"),
    ({"nodes.workers.addresses": ["172.16.50.21", "172.16.50.255"]}, "nodes.workers.addresses[1]", "broadcast"),
    ({"nodes.workers.addresses": ["172.16.50.21", "172.16.50.1"]}, "nodes.workers.addresses[1]", "gateway"),
    ({"nodes.workers.addresses": ["172.16.50.21", "10.1.1.1"]}, "nodes.workers.addresses[1]", "outside"),
    ({"network.loadbalancer_pools": [{"name": "x", "range": "172.16.51.1-172.16.51.9"}]},
     "network.loadbalancer_pools[0].range", "not inside"),
    ({"network.loadbalancer_pools": [{"name": "x", "range": "172.16.50.250-172.16.50.255"}]},
     "network.loadbalancer_pools[0].range", "broadcast"),
    ({"network.loadbalancer_pools": [{"name": "x", "range": "172.16.50.1-172.16.50.5"}]},
     "network.loadbalancer_pools[0].range", "gateway"),
    # overlaps between node addresses, VIP, pools and DHCP ranges
    ({"nodes.workers.addresses": ["172.16.50.10", "172.16.50.22"]}, "nodes.workers.addresses[0]", "API VIP"),
    ({"nodes.workers.addresses": ["172.16.50.210", "172.16.50.22"]}, "nodes.workers.addresses[0]", "pool default"),
    ({"nodes.workers.addresses": ["172.16.50.21", "172.16.50.21"]}, "nodes.workers.addresses[1]", "already used"),
    ({"nodes.workers.addresses": ["172.16.50.150", "172.16.50.22"], "nsx.segment.dhcp_ranges": ["172.16.50.140-172.16.50.160"]},
     "nodes.workers.addresses[0]", "DHCP"),
    ({"network.api_vip": "172.16.50.220"}, "network.loadbalancer_pools[0].range", "contains the API VIP"),
    ({"network.loadbalancer_pools": [{"name": "a", "range": "172.16.50.200-172.16.50.220"},
                                     {"name": "b", "range": "172.16.50.210-172.16.50.230"}]},
     "network.loadbalancer_pools[1].range", "overlaps pool a"),
    ({"nsx.segment.dhcp_ranges": ["172.16.50.190-172.16.50.205"]}, "nsx.segment.dhcp_ranges[0]", "overlaps LoadBalancer pool"),
    ({"nsx.segment.dhcp_ranges": ["172.16.50.5-172.16.50.12"]}, "nsx.segment.dhcp_ranges[0]", "API VIP"),
    ({"nsx.segment.dhcp_ranges": ["172.16.50.100-172.16.50.120", "172.16.50.110-172.16.50.130"]},
     "nsx.segment.dhcp_ranges[1]", "overlaps DHCP range"),
    # pod / service CIDRs
    ({"kubernetes.service_cidr": "10.244.0.0/16"}, "kubernetes.service_cidr", "overlaps the pod CIDR"),
    ({"kubernetes.pod_cidr": "172.16.0.0/16"}, "kubernetes.pod_cidr", "node segment"),
    ({"kubernetes.service_cidr": "172.16.48.0/20"}, "kubernetes.service_cidr", "node segment"),
    ({"network.admin_networks": ["10.244.5.0/24"]}, "kubernetes.pod_cidr", "admin network"),
    ({"network.admin_networks": ["10.96.0.0/24"]}, "kubernetes.service_cidr", "admin network"),
    ({"kubernetes.service_cidr": "10.0.0.0/11", "kubernetes.pod_cidr": "10.244.0.0/16"}, "kubernetes.service_cidr", "/12"),
    ({"kubernetes.pod_cidr": "10.244.0.0/30"}, "kubernetes.pod_cidr", "smaller than one node"),
    # sizes and names
    ({"nodes.address_range": "172.16.50.11-172.16.50.13"}, "nodes.address_range", "5 node addresses are needed"),
    ({"nodes.workers.count": 200}, "nodes.address_range", "needed"),
    ({"nodes.workers.addresses": ["172.16.50.21"]}, "nodes.workers.addresses", "1 addresses listed for 2 nodes"),
    ({"nodes.address_range": "172.16.60.1-172.16.60.99"}, "nodes.address_range", "not inside"),
    ({"nodes.control_planes.count": 0}, "nodes.control_planes.count", "at least one control plane"),
    ({"nodes.workers.name_prefix": "cp"}, "nodes.workers.name_prefix", "share the name prefix"),
    ({"network.loadbalancer_pools": [{"name": "a", "range": "172.16.50.200-172.16.50.210"},
                                     {"name": "a", "range": "172.16.50.220-172.16.50.230"}]},
     "network.loadbalancer_pools[1].name", "duplicate pool name"),
    ({"name": "a" * 55}, "name", "characters"),
    # MTU
    ({"network.node_mtu": 1650}, "network.node_mtu", "does not fit the NSX TEP MTU 1700"),
    ({"nsx.tep_mtu": 1600, "network.node_mtu": 1550}, "network.node_mtu", "≤ 1500"),
    # versions
    ({"kubernetes.version": "1.33"}, "kubernetes.version", "not supported"),
    ({"kubernetes.version": "1.38.1"}, "kubernetes.version", "1.34, 1.35, 1.36, 1.37"),
    # required content
    ({"network.dns_servers": []}, "network.dns_servers", "at least one DNS server"),
    ({"ssh.public_keys": []}, "ssh.public_keys", "no SSH public key"),
    ({"nsx.vip_mode": "allowlist", "nsx.segment.cidr": "172.16.48.0/22", "nsx.segment.gateway": "172.16.48.1",
      "network.loadbalancer_pools": [{"name": "big", "range": "172.16.49.0-172.16.49.255"}]},
     "network.loadbalancer_pools", "address bindings"),
    ({"addons.cilium.kube_proxy_replacement": False}, "addons.ingress.controller", "kube-proxy replacement"),
    ({"addons.cilium.kube_proxy_replacement": False, "addons.ingress.controller": "none",
      "addons.gateway_api.enabled": False, "addons.loadbalancer.provider": "cilium-l2"},
     "addons.loadbalancer.provider", "L2 announcements need kube-proxy replacement"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), DESIGN_ERRORS, ids=[c[1] + ":" + c[2] for c in DESIGN_ERRORS])
def test_design_rule(changes, key, fragment):
    errors = errors_for(changes)
    matching = [e for e in errors if e.key == key and fragment in e.one_line()]
    assert matching, f"expected {key!r} with {fragment!r}, got {[e.one_line() for e in errors]}"


DESIGN_WARNINGS = [
    ({"nodes.control_planes.count": 2}, "nodes.control_planes.count", "quorum"),
    ({"nodes.workers.count": 0}, "nodes.workers.count", "no workers"),
    ({"kubernetes.version": "1.34"}, "kubernetes.version", "end of life"),
    ({"kubernetes.version": "1.37"}, "kubernetes.version", "not tested"),
    ({"kubernetes.version": "1.35.99"}, "kubernetes.version", "newer than the newest patch"),
    ({"addons.ingress.controller": "ingress-nginx"}, "addons.ingress.controller", "retired"),
    ({"addons.cilium.tunnel": "vxlan"}, "addons.cilium.tunnel", "8472"),
    ({"network.ntp_servers": []}, "network.ntp_servers", "NTP"),
    ({"network.admin_networks": []}, "network.admin_networks", "no admin networks"),
    ({"vsphere.tls.insecure": True}, "vsphere.tls.insecure", "verification is OFF"),
    ({"nsx.tls.insecure": True}, "nsx.tls.insecure", "verification is OFF"),
    ({"nsx.tep_mtu": 1550, "network.node_mtu": 1450}, "nsx.tep_mtu", "1600"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), DESIGN_WARNINGS, ids=[c[1] + ":" + c[2] for c in DESIGN_WARNINGS])
def test_design_warning(changes, key, fragment):
    warnings = warnings_for(changes)
    assert any(w.key == key and fragment in w.one_line() for w in warnings), [w.one_line() for w in warnings]


SCHEMA_ERRORS = [
    ({"name": "K8s_Prod"}, "name", "DNS-1123"),
    ({"name": None}, "name", "required key is missing"),
    ({"nodez": {}}, "nodez", "did you mean 'nodes'"),
    ({"network.api_vipp": "172.16.50.10"}, "network.api_vipp", "did you mean 'api_vip'"),
    ({"nodes.workers.cpu": 4}, "nodes.workers.cpu", "did you mean 'cpus'"),
    ({"network.api_vip": "172.16.50.300"}, "network.api_vip", "IPv4"),
    ({"nsx.segment.cidr": "172.16.50.1/24"}, "nsx.segment.cidr", "host bits"),
    ({"network.loadbalancer_pools": [{"name": "a", "range": "172.16.50.250-172.16.50.200"}]},
     "network.loadbalancer_pools[0].range", "ends before it starts"),
    ({"network.node_mtu": 900}, "network.node_mtu", "greater than or equal to 1280"),
    ({"nodes.workers.count": -1}, "nodes.workers.count", "greater than or equal to 0"),
    ({"vsphere.credentials.password_env": "s3cr3t pass!"}, "vsphere.credentials.password_env", "NAME of an environment"),
    ({"vsphere.tls.thumbprint": "not-a-thumbprint"}, "vsphere.tls.thumbprint", "fingerprint"),
    ({"nsx.tls.insecure": True, "nsx.tls.thumbprint": "AB:" * 31 + "CD"}, "nsx.tls", "choose one"),
    ({"ssh.public_keys": ["-----BEGIN OPENSSH PRIVATE KEY-----"]}, "ssh.public_keys", "not an OpenSSH public key"),
    ({"addons.cilium.tunnel": "wireguard"}, "addons.cilium.tunnel", "'geneve' or 'vxlan'"),
    ({"addons.backups.velero.enabled": True}, "addons.backups.velero", "s3_url and bucket"),
    ({"addons.storage.storage_policy": "gold", "addons.storage.datastore_url": "ds:///x/"}, "addons.storage", "not both"),
    ({"network.proxy": {"url": "http://user:pw@proxy:3128"}}, "network.proxy.url", "credentials"),
    ({"addons.backups.etcd.schedule": "hourly"}, "addons.backups.etcd.schedule", "cron"),
    ({"kubernetes.version": "latest"}, "kubernetes.version", "pattern"),
    ({"network.loadbalancer_ports": [80, 70000]}, "network.loadbalancer_ports", "70000"),
    ({"network.registry_mirrors": {"https://registry.k8s.io": "https://m.local"}}, "network.registry_mirrors", "host[:port]"),
    ({"network.registry_mirrors": {"docker.io": "https://u:p@m.local"}}, "network.registry_mirrors", "without credentials"),
]


@pytest.mark.parametrize(("changes", "key", "fragment"), SCHEMA_ERRORS, ids=[c[1] + ":" + c[2] for c in SCHEMA_ERRORS])
def test_schema_rule(changes, key, fragment):
    err = schema_error(changes)
    lines = [p.one_line() for p in err.problems]
    assert any(p.key == key and fragment in p.one_line() for p in err.problems), lines
    assert "\n" not in str(err)


def test_unknown_key_reports_line_and_column():
    text = "name: c1\nvsphere:\n  server: v\n  datacenter: d\n  cluster: c\n  datastore: s\n  foldr: x\n" \
           "nsx:\n  manager: m\n  transport_zone: t\n  tier1: t1\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, source="c.yaml")
    assert str(caught.value).startswith("c.yaml:7:3: vsphere.foldr: unknown key 'foldr'")
    assert "did you mean 'folder'" in str(caught.value)


def test_yaml_syntax_error_has_line_and_column():
    with pytest.raises(SpecError) as caught:
        parse_spec("name: c1\nvsphere: [unclosed\n", source="c.yaml")
    assert str(caught.value).startswith("c.yaml:3:1: YAML syntax error")


def test_duplicate_key_is_an_error():
    with pytest.raises(SpecError) as caught:
        parse_spec("name: a\nname: b\n", source="c.yaml")
    assert "c.yaml:2:1: name: key appears twice" in str(caught.value)


def test_top_level_must_be_a_mapping_and_not_empty():
    with pytest.raises(SpecError, match="empty"):
        parse_spec("", source="c.yaml")
    with pytest.raises(SpecError, match="top level must be a mapping"):
        parse_spec("- a\n- b\n", source="c.yaml")


def test_secrets_are_names_not_values():
    spec = spec_from(example_data())
    assert spec.vsphere.credentials.password_env == "VSPHERE_PASSWORD"
    assert "password" not in type(spec.vsphere).model_fields
    with pytest.raises(SpecError, match="unknown key 'password'"):
        spec_from(with_changes(example_data(), {"vsphere.password": "hunter2"}))
