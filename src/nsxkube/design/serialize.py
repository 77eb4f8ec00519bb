"""The design as plain JSON-able data, for `check --output json` and for scripts."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from nsxkube.design.model import Design
from nsxkube.spec.types import IpRange


def design_to_dict(design: Design) -> dict[str, Any]:
    plan = design.ip_plan
    return {
        "name": design.name,
        "ownership": {"scope": design.ownership.scope, "tag": design.ownership.tag},
        "api_endpoint": design.api_endpoint,
        "api_vip_provider": design.api_vip_provider,
        "versions": _plain(dataclasses.asdict(design.versions)) | {"package_repo": design.versions.package_repo},
        "ip_plan": {
            "segment": str(plan.segment),
            "gateway": str(plan.gateway),
            "api_vip": str(plan.api_vip),
            "pools": [{"name": p.name, "range": str(p.range), "size": p.range.size} for p in plan.pools],
            "dhcp_ranges": [str(r) for r in plan.dhcp_ranges],
            "nodes": [_plain(dataclasses.asdict(n)) for n in plan.nodes],
            "reservations": [{"purpose": r.purpose, "range": str(r.range)} for r in plan.reservations()],
        },
        "mtu": _plain(dataclasses.asdict(design.mtu))
        | {"probe_payload": design.mtu.probe_payload, "probe_payload_over": design.mtu.probe_payload_over},
        "ports": [_plain(dataclasses.asdict(f)) for f in design.ports],
        "node_images": list(design.node_images),
        "no_proxy": list(design.no_proxy),
        "warnings": [{"key": w.key, "message": w.message, "hint": w.hint} for w in design.warnings],
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv4Network | IpRange):
        return str(value)
    return value
