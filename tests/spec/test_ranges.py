"""Address ranges in cluster.yaml: written A-B or as a CIDR, of any size, read without listing them."""

from __future__ import annotations

import ipaddress
import resource
import subprocess
import sys

import pytest

from nsxkube.spec.types import parse_ip_range


@pytest.mark.parametrize(("text", "first", "last"), [
    ("172.16.50.200-172.16.50.250", "172.16.50.200", "172.16.50.250"),
    ("172.16.50.7", "172.16.50.7", "172.16.50.7"),
    ("172.16.50.192/26", "172.16.50.193", "172.16.50.254"),  # network and broadcast left out
    ("172.16.50.8/31", "172.16.50.8", "172.16.50.9"),  # point-to-point: both addresses
    ("172.16.50.9/32", "172.16.50.9", "172.16.50.9"),
    ("10.0.0.0/8", "10.0.0.1", "10.255.255.254"),
])
def test_a_range_is_its_first_and_last_address(text: str, first: str, last: str) -> None:
    rng = parse_ip_range(text)
    assert (rng.first, rng.last) == (ipaddress.IPv4Address(first), ipaddress.IPv4Address(last))


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_huge_range_in_cluster_yaml_is_a_one_line_problem_not_an_out_of_memory() -> None:
    """A typo such as `address_range: 0.0.0.0/0` once had the design list four billion addresses
    (the machine's memory, then the OOM killer). Checked in a child limited to 1 GiB."""
    program = (
        "from nsxkube.spec.types import parse_ip_range\n"
        "whole = parse_ip_range('0.0.0.0/0')\n"
        "print('whole', whole.first, whole.last)\n"
        "from tests.support.specs import example_data, with_changes, spec_from\n"
        "from nsxkube.design import analyse\n"
        "for key in ('nodes.address_range', 'network.loadbalancer_pools', 'nsx.segment.dhcp_ranges'):\n"
        "    value = {'nodes.address_range': '0.0.0.0/0', 'nsx.segment.dhcp_ranges': ['0.0.0.0/0'],\n"
        "             'network.loadbalancer_pools': [{'name': 'x', 'range': '0.0.0.0/0'}]}[key]\n"
        "    design, problems = analyse(spec_from(with_changes(example_data(), {key: value})))\n"
        "    print(key, design is None, [p.message for p in problems if p.severity == 'error'][0])\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                            preexec_fn=_limit_memory)
    assert result.returncode == 0, result.stderr[-2000:]
    whole, *lines = result.stdout.splitlines()
    assert whole == "whole 0.0.0.1 255.255.255.254"
    assert [line.split(" ", 2)[:2] for line in lines] == [
        ["nodes.address_range", "True"], ["network.loadbalancer_pools", "True"], ["nsx.segment.dhcp_ranges", "True"]]
    assert all("0.0.0.1-255.255.255.254 is not inside the node segment" in line for line in lines)
