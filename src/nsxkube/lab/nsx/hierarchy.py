"""The hierarchical API: walk `children` of Child<Type> wrappers and ChildResourceReferences,
turning each into a write or a subtree delete on one transaction (so the whole body applies or
none of it does)."""

from __future__ import annotations

from typing import Any

from nsxkube.lab.nsx import schema
from nsxkube.lab.nsx.errors import MISSING_REFERENCE, NsxApiError, field_errors
from nsxkube.lab.nsx.registry import BY_RESOURCE_TYPE, INFRA, INFRA_TYPE, ObjectType, child_path, type_of_path
from nsxkube.lab.nsx.transaction import Transaction

REFERENCE = "ChildResourceReference"
WRAPPER_FIELDS = frozenset({"resource_type", "marked_for_delete", "mark_for_override", "request_parameter", "id"})
REFERENCE_FIELDS = frozenset({"resource_type", "id", "target_type", "children", "display_name"})


def patch_infra(tx: Transaction, body: Any) -> None:
    """PATCH /infra: {"resource_type": "Infra", "children": [...]}."""
    schema.validate("Infra", body)
    _walk(tx, INFRA, INFRA_TYPE, body.get("children") or [], "children")


def patch_object(tx: Transaction, path: str, body: Any, *, replace: bool, expected_revision: Any = None) -> None:
    """PATCH or PUT of one object; `children` in its body are applied like a hierarchical PATCH."""
    otype = type_of_path(path)
    children = None
    if otype is not None and isinstance(body, dict):
        body, children = _fold_child_rules(otype.resource_type, body)
    tx.write(path, body, replace=replace, expected_revision=expected_revision, check_revision=replace)
    if otype is not None and children:
        _walk(tx, path, otype, children, "children")


def _walk(tx: Transaction, parent_path: str, parent_type: ObjectType, children: Any, where: str) -> None:
    if not isinstance(children, list):
        raise field_errors([f"property {where} must be of type array"])
    for i, wrapper in enumerate(children):
        here = f"{where}[{i}]"
        if not isinstance(wrapper, dict):
            raise field_errors([f"property {here} must be of type object"])
        kind = wrapper.get("resource_type")
        if kind == REFERENCE:
            _descend(tx, parent_path, parent_type, wrapper, here)
        elif isinstance(kind, str) and kind.startswith("Child") and kind[5:] in BY_RESOURCE_TYPE:
            _apply_wrapper(tx, parent_path, parent_type, wrapper, kind[5:], here)
        else:
            raise field_errors([f"property {here}.resource_type: {kind!r} is not a Child<Type> wrapper"])


def _apply_wrapper(
    tx: Transaction, parent_path: str, parent_type: ObjectType, wrapper: dict[str, Any], type_name: str, here: str
) -> None:
    unknown = sorted(set(wrapper) - WRAPPER_FIELDS - {type_name})
    if unknown:
        raise field_errors([f"property {here}.{key} is unrecognized" for key in unknown])
    obj = wrapper.get(type_name)
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not obj["id"]:
        raise field_errors([f"property {here}.{type_name} must be an object with an id"])
    otype = BY_RESOURCE_TYPE[type_name]
    path = child_path(parent_path, parent_type, otype, obj["id"])
    if path is None:
        raise field_errors([f"{here}: a {type_name} cannot be a child of {parent_type.resource_type} {parent_path}"])
    if wrapper.get("marked_for_delete") is True:
        tx.delete(path, subtree=True)
        return
    obj, children = _fold_child_rules(type_name, obj)
    tx.write(path, obj)
    if children:
        _walk(tx, path, otype, children, f"{here}.{type_name}.children")


def _fold_child_rules(type_name: str, obj: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """A policy sent with inline `rules` AND ChildRule children: inline rules replace the rule
    set, so fold the ChildRules into that list rather than delete and re-create them."""
    children = obj.get("children")
    if type_name != "SecurityPolicy" or not isinstance(children, list) or not isinstance(obj.get("rules"), list):
        return obj, children
    folded = [c for c in children if isinstance(c, dict) and c.get("resource_type") == "ChildRule"
              and not c.get("marked_for_delete") and isinstance(c.get("Rule"), dict)]  # fmt: skip
    rest = [c for c in children if not any(c is f for f in folded)]
    return {**obj, "rules": [*obj["rules"], *(c["Rule"] for c in folded)]}, rest


def _descend(tx: Transaction, parent_path: str, parent_type: ObjectType, ref: dict[str, Any], here: str) -> None:
    unknown = sorted(set(ref) - REFERENCE_FIELDS)
    if unknown:
        raise field_errors([f"property {here}.{key} is unrecognized" for key in unknown])
    target = BY_RESOURCE_TYPE.get(ref.get("target_type"))  # type: ignore[arg-type]
    ref_id = ref.get("id")
    if target is None or not isinstance(ref_id, str) or not ref_id:
        raise field_errors([f"{here}: a ChildResourceReference needs an id and a known target_type"])
    path = child_path(parent_path, parent_type, target, ref_id)
    if path is None:
        raise field_errors([f"{here}: a {target.resource_type} cannot be a child of {parent_path}"])
    if path not in tx.objects:
        raise NsxApiError(400, MISSING_REFERENCE, f"{here}: ChildResourceReference to {path}, which does not exist")
    _walk(tx, path, target, ref.get("children") or [], f"{here}.children")
