"""The committed object store: path → object, replaced wholesale by each successful transaction.

Objects are never mutated after commit (a write stores a new dict), so readers can use the
current mapping without holding the lock while writers work on a copy.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nsxkube.lab.nsx.transaction import Actor, Changes, Transaction

# Real NSX numbers firewall rules with integers the manager allocates; start high like it does.
FIRST_RULE_ID = 1024


class Store:
    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._rule_ids = itertools.count(FIRST_RULE_ID)

    @contextmanager
    def transaction(self, actor: Actor) -> Iterator[Transaction]:
        """Yield a transaction on a working copy; commit it only if the block and its checks pass."""
        with self._lock:
            tx = Transaction(dict(self._objects), actor, self._rule_ids)
            yield tx
            tx.finish()
            self._objects = tx.objects

    def committed(self) -> Mapping[str, dict[str, Any]]:
        """The current objects. Treat as read-only."""
        return self._objects

    def view(self, path: str) -> dict[str, Any] | None:
        """One object as GET shows it (a policy carries its rules inline)."""
        return object_view(self._objects, path)


def object_view(objects: Mapping[str, dict[str, Any]], path: str, *, with_rules: bool = True) -> dict[str, Any] | None:
    obj = objects.get(path)
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    if obj["resource_type"] == "SecurityPolicy":
        rules = rules_of(objects, path)
        out["rule_count"] = len(rules)
        if with_rules:
            out["rules"] = rules
    return out


def rules_of(objects: Mapping[str, dict[str, Any]], policy_path: str) -> list[dict[str, Any]]:
    rules = [o for o in objects.values() if o["parent_path"] == policy_path and o["resource_type"] == "Rule"]
    return [copy.deepcopy(r) for r in sorted(rules, key=lambda r: (r.get("sequence_number", 0), r["id"]))]


def collection(objects: Mapping[str, dict[str, Any]], collection_path: str, parent_path: str) -> list[dict[str, Any]]:
    """The members of one collection, sorted by path (the order pages are cut in)."""
    prefix = collection_path + "/"
    paths = sorted(p for p, o in objects.items() if o["parent_path"] == parent_path and p.startswith(prefix))
    return [object_view(objects, p, with_rules=False) for p in paths]  # type: ignore[misc]


__all__ = ["Actor", "Changes", "Store", "collection", "object_view", "rules_of"]
