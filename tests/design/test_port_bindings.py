"""NSX's per-port bound on address bindings (allowlist mode binds the VIP and every pool address to
each control plane's port): a pool beyond it is refused by check, with the alternatives."""

from __future__ import annotations

import pytest

from nsxkube.design import analyse
from nsxkube.design.model import PORT_BINDING_LIMIT
from nsxkube.render.nsx import port_address_bindings
from tests.support.specs import example_data, spec_from, with_changes

WIDE = {"nsx.segment.cidr": "172.16.48.0/21", "nsx.segment.gateway": "172.16.48.1", "network.api_vip": "172.16.48.10",
        "nodes.address_range": "172.16.48.11-172.16.48.99"}


def analysed(pool_size: int, mode: str = "allowlist"):
    first = 172 << 24 | 16 << 16 | 52 << 8  # 172.16.52.0, inside the /21
    last = first + pool_size - 1
    pool = f"172.16.{first >> 8 & 255}.{first & 255}-172.16.{last >> 8 & 255}.{last & 255}"
    spec = spec_from(with_changes(example_data(), {**WIDE, "nsx.vip_mode": mode,
                                                   "network.loadbalancer_pools": [{"name": "big", "range": pool}]}))
    design, problems = analyse(spec)
    return design, [p for p in problems if p.severity == "error"]


def test_the_limit_is_the_documented_per_port_bound():
    assert PORT_BINDING_LIMIT == 256  # ArpSnoopingConfig.arp_binding_limit: minimum 1, maximum 256 per port


def test_a_pool_that_fills_a_control_planes_port_exactly_is_accepted():
    design, errors = analysed(PORT_BINDING_LIMIT - 2)
    assert errors == [] and design is not None
    bindings = port_address_bindings(design)
    assert max(len(addresses) for addresses in bindings.values()) == PORT_BINDING_LIMIT
    assert len(bindings[design.ip_plan.control_planes[0].name]) == PORT_BINDING_LIMIT


@pytest.mark.parametrize("size", [PORT_BINDING_LIMIT - 1, 1000])
def test_a_pool_beyond_the_limit_is_refused_with_the_alternatives(size):
    design, errors = analysed(size)
    assert design is None and [e.key for e in errors] == ["network.loadbalancer_pools"]
    line = errors[0].one_line()
    assert f"{size} pool addresses would give each control plane's segment port {size + 2} address bindings" in line
    assert "more than the 256 NSX keeps per port" in line
    assert "shrink the pools to at most 254 addresses in total" in line
    assert "nsx.vip_mode: segment-profiles" in line


def test_segment_profiles_mode_binds_no_address_and_takes_a_large_pool():
    design, errors = analysed(1000, mode="segment-profiles")
    assert errors == [] and design is not None
    assert port_address_bindings(design) == {}
