"""Strict property tables per object type, like the real API's schema.

Real NSX rejects a body with a property it does not know (400, error_code 287). The tables list
the properties of each type with their JSON type; read-only ones (server-set) are accepted and
then dropped, so a client may send back what it read. Nested structures are tables too, and the
polymorphic lists (group expressions, service entries) pick their table by `resource_type`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from nsxkube.lab.nsx.errors import NsxApiError, field_errors


@dataclass(frozen=True)
class Prop:
    kind: str  # string | integer | number | boolean | object | array | enum | struct | poly
    item: Prop | None = None
    ref: str = ""  # struct table name, or poly family name
    values: tuple[str, ...] = ()
    read_only: bool = False
    required: bool = False


STR = Prop("string")
INT = Prop("integer")
NUM = Prop("number")
BOOL = Prop("boolean")
FREE = Prop("object")  # a JSON object the emulator does not model further


def enum(*values: str) -> Prop:
    return Prop("enum", values=values)


def arr(item: Prop) -> Prop:
    return Prop("array", item=item)


def struct(name: str) -> Prop:
    return Prop("struct", ref=name)


def poly(family: str) -> Prop:
    return Prop("poly", ref=family)


def ro(prop: Prop) -> Prop:
    return replace(prop, read_only=True)


def req(prop: Prop) -> Prop:
    return replace(prop, required=True)


# Fields every policy object carries; the underscore ones and the paths are server-set.
MANAGED: dict[str, Prop] = {
    "resource_type": STR,
    "id": STR,
    "display_name": STR,
    "description": STR,
    "tags": arr(struct("Tag")),
    "children": arr(FREE),
    "_revision": ro(INT),
    "_create_time": ro(INT),
    "_create_user": ro(STR),
    "_last_modified_time": ro(INT),
    "_last_modified_user": ro(STR),
    "_system_owned": ro(BOOL),
    "_protection": ro(STR),
    "_links": ro(arr(FREE)),
    "_schema": ro(STR),
    "_self": ro(FREE),
    "path": ro(STR),
    "parent_path": ro(STR),
    "relative_path": ro(STR),
    "unique_id": ro(STR),
    "marked_for_delete": ro(BOOL),
    "overridden": ro(BOOL),
    "origin_site_id": ro(STR),
    "owner_id": ro(STR),
    "realization_id": ro(STR),
    "remote_path": ro(STR),
}

TIER1_ADVERTISEMENTS = enum(
    "TIER1_CONNECTED",
    "TIER1_STATIC_ROUTES",
    "TIER1_NAT",
    "TIER1_LB_VIP",
    "TIER1_LB_SNAT",
    "TIER1_DNS_FORWARDER_IP",
    "TIER1_IPSEC_LOCAL_ENDPOINT",
)
GROUP_LISTS = ("source_groups", "destination_groups", "services", "scope", "profiles")

OBJECTS: dict[str, dict[str, Prop]] = {
    "Infra": {"connectivity_strategy": STR},
    "Domain": {},
    "Segment": {
        "subnets": arr(struct("SegmentSubnet")),
        "connectivity_path": STR,
        "transport_zone_path": STR,
        "advanced_config": struct("SegmentAdvancedConfig"),
        "vlan_ids": arr(STR),
        "domain_name": STR,
        "address_bindings": arr(struct("PortAddressBindingEntry")),
        "admin_state": enum("UP", "DOWN"),
        "replication_mode": enum("MTEP", "SOURCE"),
        "type": ro(enum("ROUTED", "EXTENDED", "ROUTED_AND_EXTENDED", "DISCONNECTED")),
        "dhcp_config_path": STR,
        "metadata_proxy_paths": arr(STR),
        "overlay_id": INT,
        "extra_configs": arr(FREE),
        "l2_extension": FREE,
        "ls_id": STR,
        "mac_pool_id": STR,
        "bridge_profiles": arr(FREE),
        "federation_config": FREE,
    },
    "SegmentPort": {
        "address_bindings": arr(struct("PortAddressBindingEntry")),
        "ignored_address_bindings": arr(struct("PortAddressBindingEntry")),
        "attachment": FREE,
        "admin_state": enum("UP", "DOWN"),
        "extra_configs": arr(FREE),
        "init_state": enum("UNBLOCKED_VLAN", "RESTORE_VIF"),
        "source_site_id": ro(STR),
    },
    "SegmentSecurityProfileBindingMap": {
        "spoofguard_profile_path": STR,
        "segment_security_profile_path": STR,
    },
    "SegmentDiscoveryProfileBindingMap": {
        "ip_discovery_profile_path": STR,
        "mac_discovery_profile_path": STR,
    },
    "Group": {
        "expression": arr(poly("Expression")),
        "extended_expression": arr(FREE),
        "group_type": arr(enum("IPAddress", "ANTREA", "Generic")),
        "reference": BOOL,
        "state": ro(STR),
    },
    "Service": {
        "service_entries": arr(poly("ServiceEntry")),
        "service_type": ro(enum("ETHER", "NON_ETHER")),
        "is_default": ro(BOOL),
    },
    "SecurityPolicy": {
        "category": enum("Ethernet", "Emergency", "Infrastructure", "Environment", "Application"),
        "sequence_number": INT,
        "scope": arr(STR),
        "stateful": BOOL,
        "tcp_strict": BOOL,
        "locked": BOOL,
        "comments": STR,
        "logging_enabled": BOOL,
        "scheduler_path": STR,
        "connectivity_strategy": enum(
            "WHITELIST", "BLACKLIST", "WHITELIST_ENABLE_LOGGING", "BLACKLIST_ENABLE_LOGGING", "NONE"
        ),
        "application_connectivity_strategy": arr(FREE),
        "rules": arr(struct("Rule")),
        "rule_count": ro(INT),
        "internal_sequence_number": ro(INT),
        "is_default": ro(BOOL),
        "lock_modified_by": ro(STR),
        "lock_modified_time": ro(INT),
    },
    "Rule": {
        "action": enum("ALLOW", "DROP", "REJECT", "JUMP_TO_APPLICATION"),
        "direction": enum("IN", "OUT", "IN_OUT"),
        "ip_protocol": enum("IPV4", "IPV6", "IPV4_IPV6"),
        "sequence_number": INT,
        "source_groups": arr(STR),
        "destination_groups": arr(STR),
        "services": arr(STR),
        "service_entries": arr(poly("ServiceEntry")),
        "scope": arr(STR),
        "profiles": arr(STR),
        "logged": BOOL,
        "disabled": BOOL,
        "notes": STR,
        "tag": STR,
        "sources_excluded": BOOL,
        "destinations_excluded": BOOL,
        "rule_id": ro(INT),
        "is_default": ro(BOOL),
    },
    "SpoofGuardProfile": {"address_binding_allowlist": BOOL, "address_binding_whitelist": BOOL},
    "IPDiscoveryProfile": {
        "ip_v4_discovery_options": struct("IPv4DiscoveryOptions"),
        "ip_v6_discovery_options": struct("IPv6DiscoveryOptions"),
        "tofu_enabled": BOOL,
        "arp_nd_binding_timeout": INT,
        "duplicate_ip_detection": struct("DuplicateIPDetectionOptions"),
    },
    "MacDiscoveryProfile": {
        "mac_change_enabled": BOOL,
        "mac_learning_enabled": BOOL,
        "mac_learning_aging_time": INT,
        "mac_limit": INT,
        "mac_limit_policy": enum("ALLOW", "DROP"),
        "unknown_unicast_flooding_enabled": BOOL,
        "remote_overlay_mac_limit": INT,
    },
    "SegmentSecurityProfile": {
        "bpdu_filter_enable": BOOL,
        "bpdu_filter_allow": arr(STR),
        "dhcp_client_block_enabled": BOOL,
        "dhcp_client_block_v6_enabled": BOOL,
        "dhcp_server_block_enabled": BOOL,
        "dhcp_server_block_v6_enabled": BOOL,
        "non_ip_traffic_block_enabled": BOOL,
        "ra_guard_enabled": BOOL,
        "rate_limits": FREE,
        "rate_limits_enabled": BOOL,
    },
    "Tier0": {
        "ha_mode": enum("ACTIVE_ACTIVE", "ACTIVE_STANDBY"),
        "failover_mode": enum("PREEMPTIVE", "NON_PREEMPTIVE"),
        "transit_subnets": arr(STR),
        "internal_transit_subnets": arr(STR),
        "ipv6_profile_paths": arr(STR),
        "dhcp_config_paths": arr(STR),
        "force_whitelisting": BOOL,
        "default_rule_logging": BOOL,
        "disable_firewall": BOOL,
        "rd_admin_field": STR,
        "advanced_config": FREE,
        "arp_limit": INT,
        "intersite_config": FREE,
        "federation_config": FREE,
        "vrf_config": FREE,
    },
    "Tier1": {
        "tier0_path": STR,
        "failover_mode": enum("PREEMPTIVE", "NON_PREEMPTIVE"),
        "route_advertisement_types": arr(TIER1_ADVERTISEMENTS),
        "route_advertisement_rules": arr(FREE),
        "enable_standby_relocation": BOOL,
        "force_whitelisting": BOOL,
        "default_rule_logging": BOOL,
        "disable_firewall": BOOL,
        "ipv6_profile_paths": arr(STR),
        "dhcp_config_paths": arr(STR),
        "pool_allocation": enum("ROUTING", "LB_SMALL", "LB_MEDIUM", "LB_LARGE", "LB_XLARGE"),
        "type": enum("ROUTED", "ISOLATED", "NATTED"),
        "ha_mode": enum("ACTIVE_ACTIVE", "ACTIVE_STANDBY", "NONE"),
        "arp_limit": INT,
        "qos_profile": FREE,
        "intersite_config": FREE,
        "federation_config": FREE,
    },
    "IpAddressBlock": {
        "cidr": STR,
        "cidr_list": arr(STR),
        "visibility": enum("EXTERNAL", "PRIVATE"),
        "is_subnet_exclusive": BOOL,
    },
    "IpAddressPool": {"ip_address_type": enum("IPV4", "IPV6")},
    "IpAddressPoolStaticSubnet": {
        "cidr": req(STR),
        "allocation_ranges": arr(struct("IpPoolRange")),
        "gateway_ip": STR,
        "dns_nameservers": arr(STR),
        "dns_suffix": STR,
    },
    "Site": {},
    "EnforcementPoint": {"connection_info": FREE, "auto_enforce": BOOL},
    "PolicyTransportZone": {
        "tz_type": enum("OVERLAY_STANDARD", "OVERLAY_ENS", "OVERLAY_BACKED", "VLAN_BACKED", "UNKNOWN"),
        "is_default": BOOL,
        "nsx_id": STR,
        "uplink_teaming_policy_names": arr(STR),
    },
    "PolicyUplinkHostSwitchProfile": {
        "mtu": INT,  # the TEP MTU of the host switches using it; unset: SwitchingGlobalConfig's
        "transport_vlan": INT,
        "overlay_encap": enum("GENEVE", "VXLAN"),
        "teaming": FREE,
        "named_teamings": arr(FREE),
        "lags": arr(FREE),
        "required_capabilities": ro(arr(STR)),
        "realization_id": ro(STR),
    },
    # `mtu` is the gateway interface MTU (real Policy GlobalConfig). `physical_uplink_mtu` is the
    # TEP MTU, which real NSX keeps in the manager's SwitchingGlobalConfig; the emulator serves it
    # here as well so one read gives the whole MTU picture.
    "GlobalConfig": {
        "mtu": INT,
        "physical_uplink_mtu": INT,
        "l3_forwarding_mode": enum("IPV4_ONLY", "IPV4_AND_IPV6"),
        "allow_changing_vdr_mac_in_use": BOOL,
        "vdr_mac": STR,
        "vdr_mac_nested": STR,
        "uplink_mtu_threshold": INT,
        "arp_limit_per_gateway": INT,
        "remote_tunnel_physical_mtu": INT,
    },
}

STRUCTS: dict[str, dict[str, Prop]] = {
    "Tag": {"scope": STR, "tag": STR},
    "IpPoolRange": {"start": STR, "end": STR},
    "SegmentSubnet": {
        "gateway_address": STR,
        "dhcp_ranges": arr(STR),
        "dhcp_config": FREE,
        "network": ro(STR),
    },
    "SegmentAdvancedConfig": {
        "address_pool_paths": arr(STR),
        "connectivity": enum("ON", "OFF"),
        "hybrid": BOOL,
        "inter_router": BOOL,
        "local_egress": BOOL,
        "local_egress_routing_policies": arr(FREE),
        "multicast": BOOL,
        "uplink_teaming_policy_name": STR,
        "urpf_mode": enum("NONE", "STRICT"),
        "ndra_profile_path": STR,
    },
    "PortAddressBindingEntry": {"ip_address": STR, "mac_address": STR, "vlan_id": INT},
    "IPv4DiscoveryOptions": {
        "arp_snooping_config": struct("ArpSnoopingConfig"),
        "dhcp_snooping_enabled": BOOL,
        "vmtools_enabled": BOOL,
    },
    "ArpSnoopingConfig": {"arp_snooping_enabled": BOOL, "arp_binding_limit": INT},
    "IPv6DiscoveryOptions": {
        "nd_snooping_config": struct("NdSnoopingConfig"),
        "dhcp_snooping_v6_enabled": BOOL,
        "vmtools_v6_enabled": BOOL,
    },
    "NdSnoopingConfig": {"nd_snooping_enabled": BOOL, "nd_snooping_limit": INT},
    "DuplicateIPDetectionOptions": {"duplicate_ip_detection_enabled": BOOL},
}

CONDITION_MEMBER_TYPES = (
    "VirtualMachine", "Segment", "SegmentPort", "Group", "IPSet", "LogicalPort", "LogicalSwitch",
    "DVPG", "DVPort", "IPAddress", "TransportNode", "Pod", "Service", "Namespace", "Cluster",
    "KubernetesCluster", "KubernetesNamespace", "KubernetesService", "KubernetesIngress",
    "KubernetesGateway", "KubernetesNode", "AntreaEgress", "AntreaIPPool", "VpnSession",
)  # fmt: skip

FAMILIES: dict[str, dict[str, dict[str, Prop]]] = {
    "Expression": {
        "Condition": {
            "member_type": req(enum(*CONDITION_MEMBER_TYPES)),
            "key": req(
                enum(
                    "Tag",
                    "Name",
                    "OSName",
                    "ComputerName",
                    "NodeType",
                    "GroupType",
                    "ALL",
                    "IPAddress",
                    "PodCidr",
                    "Namespace",
                    "ClusterName",
                )
            ),
            "operator": req(
                enum("EQUALS", "NOTEQUALS", "CONTAINS", "STARTSWITH", "ENDSWITH", "IN", "NOTIN", "MATCHES")
            ),
            "scope_operator": enum("EQUALS", "NOTEQUALS"),
            "value": req(STR),
        },
        "IPAddressExpression": {"ip_addresses": req(arr(STR))},
        "PathExpression": {"paths": req(arr(STR))},
        "MACAddressExpression": {"mac_addresses": req(arr(STR))},
        "ExternalIDExpression": {"member_type": req(STR), "external_ids": req(arr(STR))},
        "ConjunctionOperator": {"conjunction_operator": req(enum("AND", "OR"))},
        "NestedExpression": {"expressions": req(arr(poly("Expression")))},
    },
    "ServiceEntry": {
        "L4PortSetServiceEntry": {
            "l4_protocol": req(enum("TCP", "UDP")),
            "destination_ports": arr(STR),
            "source_ports": arr(STR),
        },
        "ICMPTypeServiceEntry": {
            "protocol": req(enum("ICMPv4", "ICMPv6")),
            "icmp_type": INT,
            "icmp_code": INT,
        },
        "IPProtocolServiceEntry": {"protocol_number": req(INT)},
        "IGMPTypeServiceEntry": {},
        "EtherTypeServiceEntry": {"ether_type": req(INT)},
        "ALGTypeServiceEntry": {
            "alg": req(
                enum(
                    "ORACLE_TNS",
                    "FTP",
                    "SUN_RPC_TCP",
                    "SUN_RPC_UDP",
                    "MS_RPC_TCP",
                    "MS_RPC_UDP",
                    "NBNS_BROADCAST",
                    "NBDG_BROADCAST",
                    "TFTP",
                )
            ),
            "destination_ports": req(arr(STR)),
            "source_ports": arr(STR),
        },
        "NestedServiceServiceEntry": {"nested_service_path": req(STR)},
    },
}

_JSON_TYPE = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def object_props(resource_type: str) -> dict[str, Prop]:
    return {**MANAGED, **OBJECTS[resource_type]}


def _table(prop: Prop, value: dict[str, Any]) -> dict[str, Prop] | None:
    if prop.kind == "struct":
        if prop.ref in STRUCTS:
            return STRUCTS[prop.ref]
        return object_props(prop.ref)
    members = FAMILIES[prop.ref]
    member = members.get(value.get("resource_type"))  # type: ignore[arg-type]
    return {**MANAGED, **member} if member is not None else None


def _json_name(value: Any) -> str:
    for name, types in (("boolean", (bool,)), ("integer", (int,)), ("number", (float,)),
                        ("string", (str,)), ("array", (list,)), ("object", (dict,))):  # fmt: skip
        if isinstance(value, types):
            return name
    return "null"


def _value_problems(prop: Prop, value: Any, where: str) -> list[str]:
    kind = prop.kind
    if kind == "enum":
        if not isinstance(value, str) or value not in prop.values:
            return [f"property {where} has invalid value {value!r}, expected one of {list(prop.values)}"]
        return []
    if kind in ("struct", "poly"):
        if not isinstance(value, dict):
            return [f"property {where} must be an object, got {_json_name(value)}"]
        table = _table(prop, value)
        if table is None:
            allowed = sorted(FAMILIES[prop.ref])
            return [f"property {where}.resource_type must be one of {allowed}, got {value.get('resource_type')!r}"]
        return _struct_problems(table, value, where)
    wanted = _JSON_TYPE[kind]
    # bool is an int in Python but not in JSON: `true` is no integer.
    if not isinstance(value, wanted) or (isinstance(value, bool) and kind != "boolean"):
        return [f"property {where} must be of type {kind}, got {_json_name(value)}"]
    if kind == "array" and prop.item is not None:
        problems: list[str] = []
        for i, item in enumerate(value):
            if item is None:
                problems.append(f"property {where}[{i}] must not be null")
            else:
                problems.extend(_value_problems(prop.item, item, f"{where}[{i}]"))
        return problems
    return []


def _struct_problems(table: dict[str, Prop], value: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    for key, item in value.items():
        name = f"{where}.{key}" if where else key
        prop = table.get(key)
        if prop is None:
            problems.append(f"property {name} is unrecognized")
        elif item is not None:
            problems.extend(_value_problems(prop, item, name))
    for key, prop in table.items():
        if prop.required and value.get(key) is None:
            problems.append(f"required property {where + '.' if where else ''}{key} is missing")
    return problems


def struct_problems(table: dict[str, Prop], value: dict[str, Any], where: str = "") -> list[str]:
    """Every unknown property, wrong JSON type or missing required field of `value` per `table`."""
    return _struct_problems(table, value, where)


def validate(resource_type: str, body: Any) -> None:
    """Raise 400/287 listing every unknown property, wrong JSON type or bad enum value."""
    if not isinstance(body, dict):
        raise field_errors([f"the body of a {resource_type} must be a JSON object"])
    problems = _struct_problems(object_props(resource_type), body, "")
    declared = body.get("resource_type")
    if isinstance(declared, str) and declared != resource_type:
        problems.append(f"resource_type {declared} does not match the path, which holds a {resource_type}")
    if problems:
        raise field_errors(problems)


def _strip(table: dict[str, Prop], value: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, item in value.items():
        prop = table.get(key)
        if prop is None or prop.read_only:
            continue
        kept[key] = _strip_value(prop, item)
    return kept


def _strip_value(prop: Prop, value: Any) -> Any:
    if value is None:
        return None
    if prop.kind == "array" and prop.item is not None:
        return [_strip_value(prop.item, item) for item in value]
    if prop.kind in ("struct", "poly"):
        table = _table(prop, value)
        return _strip(table, value) if table is not None else value
    return value


def writable_part(resource_type: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body without read-only (server-set) properties, at every depth. Call after validate()."""
    return _strip(object_props(resource_type), body)


def require_valid(resource_type: str, body: Any) -> dict[str, Any]:
    validate(resource_type, body)
    return writable_part(resource_type, body)


__all__ = ["GROUP_LISTS", "NsxApiError", "require_valid", "struct_problems", "validate", "writable_part"]
