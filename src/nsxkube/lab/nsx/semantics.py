"""Rules real NSX enforces beyond JSON types: "ANY" alone, 15 ports per list, how group
expressions may be joined, valid gateway and DHCP addresses, and what a segment update may not
take away. Pure functions over one object; references to other objects are checked in the store."""

from __future__ import annotations

import ipaddress
from typing import Any

from nsxkube.lab.nsx.errors import invalid_all
from nsxkube.lab.nsx.schema import GROUP_LISTS

MAX_PORT_VALUES = 15  # per list; a range "a-b" counts as two
ARP_BINDING_LIMIT = (1, 256)


def check(resource_type: str, content: dict[str, Any]) -> None:
    """Raise 400/500002 listing every semantic problem of `content` (a complete object)."""
    problems = _PROBLEM_FINDERS.get(resource_type, lambda _c: [])(content)
    if problems:
        raise invalid_all(problems)


def check_segment_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A segment keeps its gateway connection and subnets; DHCP ranges may only grow."""
    problems: list[str] = []
    if old.get("connectivity_path") and not new.get("connectivity_path"):
        problems.append(f"connectivity_path of segment {old['id']} cannot be removed")
    new_subnets = {s.get("gateway_address"): s for s in new.get("subnets") or []}
    for subnet in old.get("subnets") or []:
        gateway = subnet.get("gateway_address")
        if gateway not in new_subnets:
            problems.append(f"subnet {gateway} of segment {old['id']} cannot be removed")
            continue
        old_ranges = subnet.get("dhcp_ranges") or []
        new_ranges = new_subnets[gateway].get("dhcp_ranges") or []
        if not _covers(_intervals(new_ranges), _intervals(old_ranges)):
            problems.append(f"dhcp_ranges of subnet {gateway} can only grow: {old_ranges} is not within {new_ranges}")
    if problems:
        raise invalid_all(problems)


def address_interval(text: str) -> tuple[int, int]:
    """An address, CIDR or range "a-b" as the (first, last) integer address it covers."""
    if "-" in text:
        first, last = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
        if first.version != last.version or int(first) > int(last):
            raise ValueError(text)
        return int(first), int(last)
    network = ipaddress.ip_network(text, strict=False)
    return int(network.network_address), int(network.broadcast_address)


def _intervals(texts: list[str]) -> list[tuple[int, int]]:
    out = []
    for text in texts:
        try:
            out.append(address_interval(text))
        except ValueError:
            continue
    return out


def _covers(outer: list[tuple[int, int]], inner: list[tuple[int, int]]) -> bool:
    merged: list[list[int]] = []
    for first, last in sorted(outer):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return all(any(m[0] <= first and last <= m[1] for m in merged) for first, last in inner)


def _any_alone(content: dict[str, Any], fields: tuple[str, ...], where: str = "") -> list[str]:
    problems = []
    for field in fields:
        values = content.get(field) or []
        if "ANY" in values and len(values) > 1:
            problems.append(f'{where}{field}: "ANY" must be the only element, got {values}')
    return problems


def _is_address_literal(text: str) -> bool:
    try:
        address_interval(text)
    except ValueError:
        return False
    return True


def _port_problems(entry: dict[str, Any], where: str) -> list[str]:
    problems = []
    for field in ("destination_ports", "source_ports"):
        ports = entry.get(field) or []
        weight = 0
        for port in ports:
            bounds = port.split("-", 1)
            if not all(b.strip().isdigit() and 1 <= int(b) <= 65535 for b in bounds) or (
                len(bounds) == 2 and int(bounds[0]) > int(bounds[1])
            ):
                problems.append(f"{where}{field}: {port!r} is not a port or port range (1-65535)")
            weight += len(bounds)
        if weight > MAX_PORT_VALUES:
            problems.append(
                f"{where}{field}: at most {MAX_PORT_VALUES} port values are allowed (a range counts as 2), got {weight}"
            )
    return problems


def _service_entry_problems(entries: list[dict[str, Any]], where: str) -> list[str]:
    problems = []
    for i, entry in enumerate(entries):
        if entry.get("resource_type") in ("L4PortSetServiceEntry", "ALGTypeServiceEntry"):
            problems += _port_problems(entry, f"{where}service_entries[{i}].")
    return problems


def _expression_problems(expressions: list[dict[str, Any]], where: str) -> list[str]:
    problems = []
    for i, expr in enumerate(expressions):
        is_operator = expr.get("resource_type") == "ConjunctionOperator"
        if is_operator != (i % 2 == 1):
            problems.append(
                f"{where}expression[{i}]: expressions must alternate with ConjunctionOperator, "
                "starting and ending with an expression"
            )
            return problems
        kind = expr.get("resource_type")
        if kind == "IPAddressExpression":
            bad = [a for a in expr.get("ip_addresses") or [] if not _is_address_literal(a)]
            if bad:
                problems.append(f"{where}expression[{i}]: invalid IP addresses {bad}")
        if kind == "NestedExpression":
            problems += _expression_problems(expr.get("expressions") or [], f"{where}expression[{i}].")
    if expressions and expressions[-1].get("resource_type") == "ConjunctionOperator":
        problems.append(f"{where}expression: must not end with a ConjunctionOperator")
    for i in range(1, len(expressions) - 1, 2):
        if expressions[i].get("conjunction_operator") != "AND":
            continue
        left, right = expressions[i - 1], expressions[i + 1]
        if left.get("resource_type") != right.get("resource_type"):
            problems.append(
                f"{where}expression[{i}]: AND only joins expressions of the same type, "
                f"not {left.get('resource_type')} AND {right.get('resource_type')}"
            )
        elif left.get("resource_type") == "Condition" and left.get("member_type") != right.get("member_type"):
            problems.append(
                f"{where}expression[{i}]: AND only joins Conditions of the same member_type, "
                f"not {left.get('member_type')} AND {right.get('member_type')}"
            )
    return problems


def _rule_problems(rule: dict[str, Any], where: str = "") -> list[str]:
    problems = _any_alone(rule, GROUP_LISTS, where)
    for field in ("source_groups", "destination_groups"):
        for value in rule.get(field) or []:
            if value != "ANY" and not value.startswith("/") and not _is_address_literal(value):
                problems.append(f"{where}{field}: {value!r} is neither a group path nor an IP address")
    for value in rule.get("services") or []:
        if value != "ANY" and not value.startswith("/"):
            problems.append(f"{where}services: {value!r} is not a service path")
    return problems + _service_entry_problems(rule.get("service_entries") or [], where)


def _segment_problems(segment: dict[str, Any]) -> list[str]:
    problems = []
    for subnet in segment.get("subnets") or []:
        gateway = subnet.get("gateway_address")
        if gateway is None:
            continue
        try:
            interface = ipaddress.ip_interface(gateway)
        except ValueError:
            problems.append(f"subnets: gateway_address {gateway!r} must be an address with prefix, e.g. 10.0.0.1/24")
            continue
        network = interface.network
        if "/" not in gateway or (network.num_addresses > 2 and interface.ip == network.network_address):
            problems.append(f"subnets: gateway_address {gateway!r} must be a host address with prefix length")
            continue
        for text in subnet.get("dhcp_ranges") or []:
            try:
                first, last = address_interval(text)
            except ValueError:
                problems.append(f"subnets: dhcp range {text!r} is not an address, CIDR or range")
                continue
            if first < int(network.network_address) or last > int(network.broadcast_address):
                problems.append(f"subnets: dhcp range {text!r} is outside subnet {network}")
            elif first <= int(interface.ip) <= last:
                problems.append(f"subnets: dhcp range {text!r} contains the gateway {interface.ip}")
    return problems


def _ip_discovery_problems(profile: dict[str, Any]) -> list[str]:
    arp = (profile.get("ip_v4_discovery_options") or {}).get("arp_snooping_config") or {}
    limit = arp.get("arp_binding_limit")
    low, high = ARP_BINDING_LIMIT
    if limit is not None and not low <= limit <= high:
        return [f"arp_binding_limit must be between {low} and {high}, got {limit}"]
    return []


_PROBLEM_FINDERS = {
    "Rule": _rule_problems,
    "SecurityPolicy": lambda policy: _any_alone(policy, ("scope",)),
    "Service": lambda service: _service_entry_problems(service.get("service_entries") or [], ""),
    "Group": lambda group: _expression_problems(group.get("expression") or [], ""),
    "Segment": _segment_problems,
    "IPDiscoveryProfile": _ip_discovery_problems,
}
