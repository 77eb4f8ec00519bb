"""Properties of the design for any valid spec, and robustness against random mutations."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsxkube.design import analyse
from nsxkube.errors import SpecError
from tests.support.specs import example_data, spec_from, with_changes


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    prefix = draw(st.integers(min_value=20, max_value=26))
    third = draw(st.integers(min_value=0, max_value=255))
    segment = ipaddress.IPv4Network(f"172.16.{third}.0/{prefix}", strict=False)
    hosts = segment.num_addresses - 2
    base = int(segment.network_address)
    vip_offset = draw(st.integers(min_value=2, max_value=min(20, hosts)))
    pool_size = draw(st.integers(min_value=1, max_value=min(40, hosts // 4)))
    pool_first = base + hosts - pool_size + 1  # the top of the segment
    control_planes = draw(st.sampled_from([1, 3, 5]))
    room = pool_first - (base + vip_offset) - 1
    workers = draw(st.integers(min_value=0, max_value=max(0, min(room - control_planes, 60))))
    node_mtu = draw(st.integers(min_value=1280, max_value=1600))
    return with_changes(example_data(), {
        "nsx.segment.cidr": str(segment),
        "nsx.segment.gateway": str(ipaddress.IPv4Address(base + 1)),
        "network.api_vip": str(ipaddress.IPv4Address(base + vip_offset)),
        "network.loadbalancer_pools": [{"name": "pool", "range": f"{ipaddress.IPv4Address(pool_first)}-"
                                        f"{ipaddress.IPv4Address(pool_first + pool_size - 1)}"}],
        "nodes.address_range": None,
        "nodes.control_planes.count": control_planes,
        "nodes.workers.count": workers,
        "network.node_mtu": node_mtu,
        "addons.cilium.tunnel": draw(st.sampled_from(["geneve", "vxlan"])),
    })


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_plans())
def test_addresses_are_unique_inside_the_segment_and_the_mtu_chain_holds(data):
    design, problems = analyse(spec_from(data))
    assert design is not None, [p.one_line() for p in problems]
    plan = design.ip_plan
    used = [plan.gateway, plan.api_vip, *(n.address for n in plan.nodes)]
    for pool in plan.pools:
        used += pool.range.addresses()
    assert len(used) == len(set(used)), "an address is used twice"
    usable = set(plan.segment.hosts())
    assert all(address in usable for address in used)
    assert len(plan.nodes) == data["nodes"]["control_planes"]["count"] + data["nodes"]["workers"]["count"]
    assert len({n.name for n in plan.nodes}) == len(plan.nodes)
    mtu = design.mtu
    assert mtu.pod_mtu + mtu.tunnel_overhead == mtu.node_mtu <= mtu.node_mtu_max == mtu.tep_mtu - mtu.nsx_overhead
    assert mtu.probe_payload + 28 == mtu.node_mtu


MUTATION_KEYS = [
    "name", "kubernetes.version", "kubernetes.pod_cidr", "kubernetes.service_cidr", "nsx.segment.cidr",
    "nsx.segment.gateway", "nsx.segment.dhcp_ranges", "nsx.tep_mtu", "nsx.vip_mode", "network.api_vip",
    "network.loadbalancer_pools", "network.node_mtu", "network.dns_servers", "network.admin_networks",
    "nodes.address_range", "nodes.control_planes.count", "nodes.workers.count", "nodes.workers.addresses",
    "nodes.workers.name_prefix", "ssh.public_keys", "addons.cilium.tunnel", "addons.loadbalancer.provider",
    "vsphere.tls", "nsx.tls.thumbprint", "addons.backups.velero.enabled", "network.proxy",
]
junk = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=20)
    | st.sampled_from(["172.16.50.300", "172.16.50.7", "10.0.0.0/8", "172.16.50.0/25", "1.35", "0.0.0.0/0",
                       "172.16.50.20-172.16.50.30", "ssh-ed25519 AAAA x", "vxlan", "metallb"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(MUTATION_KEYS), junk, min_size=1, max_size=4))
def test_random_mutations_give_a_design_or_a_clean_error(mutations):
    data = with_changes(example_data(), mutations)
    try:
        spec = spec_from(data)
    except SpecError as err:
        assert err.problems and all(p.key or p.message for p in err.problems)
        assert "\n" not in str(err)
        return
    design, problems = analyse(spec)
    if design is None:
        assert any(p.severity == "error" for p in problems)
        assert all(p.key and "\n" not in p.one_line() for p in problems)
