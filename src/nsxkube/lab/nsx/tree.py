"""The hierarchical read: `GET /infra?filter=Type-<regex>` (or `type_filter=A;B`) returns the Infra
object with its descendants of the named types as `Child<Type>` wrappers, as real NSX does.

Only types that match are populated, and the walk descends only through matching objects: to get
the groups, the filter must name `Domain` as well (`filter=Type-Domain|Group`, VMware's own
example). A policy's rules come as `ChildRule` children when `Rule` matches; the policy itself
carries `rule_count` but no inline `rules`. Without a filter the answer is the bare Infra object.

`omit` names fields to leave out of every child (the fault mode `omit_derived_fields`): a
responder written from the schema alone may skip what the position in the tree already says
(`parent_path`, `relative_path`…), and a client must still read the tree right.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from nsxkube.lab.nsx.errors import field_errors
from nsxkube.lab.nsx.registry import INFRA
from nsxkube.lab.nsx.store import object_view

TypeMatch = Callable[[str], bool]


def type_matcher(query: Mapping[str, str]) -> TypeMatch | None:
    """The predicate on resource types a hierarchical GET asked for, or None (no filter)."""
    if query.get("type_filter"):
        names = {n.strip() for n in query["type_filter"].split(";") if n.strip()}
        return names.__contains__
    raw = query.get("filter")
    if not raw:
        return None
    patterns = []
    for part in raw.split(";"):
        part = part.strip()
        if not part.startswith("Type-"):
            raise field_errors([f"filter {part!r} must look like Type-<java regex>, e.g. Type-Domain|Group"])
        try:
            patterns.append(re.compile(part[len("Type-") :]))
        except re.error as err:
            raise field_errors([f"filter {part!r} is not a valid regular expression: {err}"]) from None
    return lambda name: any(p.fullmatch(name) for p in patterns)


def infra_tree(objects: Mapping[str, dict[str, Any]], infra: dict[str, Any], wanted: TypeMatch,
               omit: frozenset[str] = frozenset()) -> dict[str, Any]:
    children_of: dict[str, list[str]] = {}
    for path, obj in objects.items():
        children_of.setdefault(obj["parent_path"], []).append(path)
    return {**infra, "children": _children(objects, children_of, INFRA, wanted, omit)}


def _children(
    objects: Mapping[str, dict[str, Any]], children_of: dict[str, list[str]], parent: str, wanted: TypeMatch,
    omit: frozenset[str],
) -> list[dict[str, Any]]:
    wrappers = []
    for path in sorted(children_of.get(parent, ())):
        rtype = objects[path]["resource_type"]
        if not wanted(rtype):
            continue
        view = object_view(objects, path, with_rules=False)
        assert view is not None
        for name in omit:
            view.pop(name, None)
        below = _children(objects, children_of, path, wanted, omit)
        if below:
            view["children"] = below
        wrappers.append({"resource_type": f"Child{rtype}", rtype: view, "marked_for_delete": False,
                         "mark_for_override": False})
    return wrappers
