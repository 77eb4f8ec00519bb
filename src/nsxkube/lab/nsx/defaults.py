"""What the server fills in: default values a GET shows though nobody sent them, and computed
read-only fields. Real NSX does the same, so a client comparing desired with live state must
ignore fields it does not manage — the emulator makes that visible."""

from __future__ import annotations

import contextlib
import copy
import ipaddress
from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "Segment": {
        "admin_state": "UP",
        "replication_mode": "MTEP",
        "advanced_config": {
            "address_pool_paths": [],
            "connectivity": "ON",
            "hybrid": False,
            "inter_router": False,
            "local_egress": False,
            "urpf_mode": "STRICT",
        },
    },
    "SegmentPort": {"admin_state": "UP"},
    "Group": {"reference": False},
    "Service": {"is_default": False, "service_type": "NON_ETHER"},
    "SecurityPolicy": {
        "category": "Application",
        "sequence_number": 0,
        "stateful": True,
        "tcp_strict": True,
        "locked": False,
        "scope": ["ANY"],
        "is_default": False,
    },
    "Rule": {
        "action": "ALLOW",
        "direction": "IN_OUT",
        "ip_protocol": "IPV4_IPV6",
        "sequence_number": 0,
        "source_groups": ["ANY"],
        "destination_groups": ["ANY"],
        "services": ["ANY"],
        "scope": ["ANY"],
        "logged": False,
        "disabled": False,
        "sources_excluded": False,
        "destinations_excluded": False,
        "is_default": False,
    },
    "SpoofGuardProfile": {"address_binding_allowlist": False},
    "IPDiscoveryProfile": {
        "ip_v4_discovery_options": {
            "arp_snooping_config": {"arp_snooping_enabled": True, "arp_binding_limit": 1},
            "dhcp_snooping_enabled": True,
            "vmtools_enabled": True,
        },
        "ip_v6_discovery_options": {
            "nd_snooping_config": {"nd_snooping_enabled": False, "nd_snooping_limit": 3},
            "dhcp_snooping_v6_enabled": False,
            "vmtools_v6_enabled": False,
        },
        "tofu_enabled": True,
        "arp_nd_binding_timeout": 10,
        "duplicate_ip_detection": {"duplicate_ip_detection_enabled": False},
    },
    "MacDiscoveryProfile": {
        "mac_change_enabled": False,
        "mac_learning_enabled": False,
        "mac_learning_aging_time": 600,
        "mac_limit": 4096,
        "mac_limit_policy": "ALLOW",
        "unknown_unicast_flooding_enabled": True,
        "remote_overlay_mac_limit": 2048,
    },
    "SegmentSecurityProfile": {
        "bpdu_filter_enable": True,
        "bpdu_filter_allow": [],
        "dhcp_client_block_enabled": False,
        "dhcp_client_block_v6_enabled": False,
        "dhcp_server_block_enabled": True,
        "dhcp_server_block_v6_enabled": True,
        "non_ip_traffic_block_enabled": False,
        "ra_guard_enabled": True,
        "rate_limits_enabled": False,
    },
    "Tier0": {
        "ha_mode": "ACTIVE_STANDBY",
        "failover_mode": "NON_PREEMPTIVE",
        "transit_subnets": ["100.64.0.0/16"],
        "internal_transit_subnets": ["169.254.0.0/24"],
        "force_whitelisting": False,
        "default_rule_logging": False,
        "disable_firewall": False,
    },
    "Tier1": {
        "failover_mode": "NON_PREEMPTIVE",
        "route_advertisement_types": [],
        "pool_allocation": "ROUTING",
        "enable_standby_relocation": False,
        "force_whitelisting": False,
        "default_rule_logging": False,
        "disable_firewall": False,
    },
    "GlobalConfig": {"mtu": 1500, "physical_uplink_mtu": 1700, "l3_forwarding_mode": "IPV4_ONLY"},
}


def _fill(target: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target[key], dict):
            _fill(target[key], value)


def complete(resource_type: str, content: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """Fill defaults and computed fields into `content` in place; `previous` is the stored object."""
    _fill(content, DEFAULTS.get(resource_type, {}))
    if resource_type == "Segment":
        content["type"] = "ROUTED" if content.get("connectivity_path") else "DISCONNECTED"
        for subnet in content.get("subnets") or []:
            # A bad gateway address is reported by the semantic checks, not here.
            with contextlib.suppress(KeyError, ValueError):
                subnet["network"] = str(ipaddress.ip_interface(subnet["gateway_address"]).network)
    if resource_type == "Rule" and previous is not None and "rule_id" in previous:
        content["rule_id"] = previous["rule_id"]
