"""A group's effective members, as `GET /infra/domains/{d}/groups/{g}/members/{kind}` lists them.

Real NSX computes membership on the enforcement point. The emulator evaluates what it can from its
own store and inventory: `PathExpression` paths, `IPAddressExpression` addresses, and `Condition`s
on tags (`key: Tag`, `operator: EQUALS`, `value: scope|tag`) of segments, segment ports and the
inventory's VMs. Expressions of one member type joined by AND intersect; everything else adds up
(OR, or different types). Kinds it cannot compute (VIFs, IP groups, physical servers) list empty.
Member lists carry `id`, `display_name` and `path` (VMs: the inventory entry; IPs: strings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

MemberKey = str  # a policy path, a VM's external id or an IP literal
KIND_TYPES = {"segments": "Segment", "segment-ports": "SegmentPort", "virtual-machines": "VirtualMachine"}


def _tag_matches(tags: list[dict[str, Any]] | None, value: str) -> bool:
    scope, _, tag = value.partition("|")
    return any((t.get("scope") or "") == scope and (t.get("tag") or "") == tag for t in tags or ())


def _expression_members(expr: Mapping[str, Any], kind: str, objects: Mapping[str, dict[str, Any]],
                        vms: list[dict[str, Any]]) -> set[MemberKey] | None:
    """The members of `kind` one expression selects; None when it selects no members of that kind."""
    rtype = expr.get("resource_type")
    if rtype == "IPAddressExpression":
        return set(expr.get("ip_addresses") or ()) if kind == "ip-addresses" else None
    if rtype == "PathExpression" and kind in KIND_TYPES:
        wanted = KIND_TYPES[kind]
        return {p for p in expr.get("paths") or () if (objects.get(p) or {}).get("resource_type") == wanted}
    if rtype == "Condition" and KIND_TYPES.get(kind) == expr.get("member_type"):
        if expr.get("key") != "Tag" or expr.get("operator", "EQUALS") != "EQUALS":
            return set()
        value = str(expr.get("value") or "")
        if kind == "virtual-machines":
            return {vm["external_id"] for vm in vms if _tag_matches(vm.get("tags"), value)}
        return {p for p, o in objects.items() if o["resource_type"] == KIND_TYPES[kind] and
                _tag_matches(o.get("tags"), value)}
    return None


def group_members(group: Mapping[str, Any], kind: str, objects: Mapping[str, dict[str, Any]],
                  vms: list[dict[str, Any]]) -> list[Any]:
    """The member list for one kind (see the module doc), sorted."""
    result: set[MemberKey] = set()
    previous_type, conjunction = None, "OR"
    for expr in group.get("expression") or ():
        if expr.get("resource_type") == "ConjunctionOperator":
            conjunction = str(expr.get("conjunction_operator") or "OR")
            continue
        found = _expression_members(expr, kind, objects, vms)
        if found is not None:
            same = previous_type == (expr.get("resource_type"), expr.get("member_type"))
            result = result & found if conjunction == "AND" and same else result | found
        previous_type = (expr.get("resource_type"), expr.get("member_type"))
    if kind == "ip-addresses":
        return sorted(result)
    by_vm: dict[str, dict[str, Any]] = {vm["external_id"]: vm for vm in vms}
    describe: Callable[[str], dict[str, Any]] = (
        (lambda key: {"id": key, "display_name": by_vm[key].get("display_name", key), "external_id": key,
                      "resource_type": "VirtualMachine"})
        if kind == "virtual-machines" else
        (lambda key: {"id": key.rsplit("/", 1)[1], "display_name": objects[key].get("display_name", ""),
                      "path": key})
    )
    return [describe(key) for key in sorted(result)]
