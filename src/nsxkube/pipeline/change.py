"""What a phase would do (plan) or did (apply), one record per object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Action = Literal["create", "update", "delete", "unchanged", "conflict", "manual"]

# Actions that change an outside system; a plan with none of these is a no-op.
MUTATING: frozenset[str] = frozenset({"create", "update", "delete"})


@dataclass(frozen=True)
class Change:
    """One object's fate: ``create segment k8s-nodes-segment``, ``update group x (expression)``."""

    action: Action
    kind: str
    name: str
    detail: str = ""
    fields: tuple[str, ...] = field(default=())

    @property
    def mutating(self) -> bool:
        return self.action in MUTATING

    def one_line(self) -> str:
        if self.action == "unchanged":
            text = f"{self.kind} {self.name} is up to date"
        elif self.action == "conflict":
            text = f"conflict: {self.kind} {self.name}"
        elif self.action == "manual":
            text = f"manual step: {self.kind} {self.name}"
        else:
            text = f"{self.action} {self.kind} {self.name}"
        if self.fields:
            text += f" ({', '.join(self.fields)})"
        return f"{text}: {self.detail}" if self.detail else text


def summarize(changes: list[Change] | tuple[Change, ...]) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    order = ("create", "update", "delete", "unchanged", "conflict", "manual")
    return ", ".join(f"{counts[a]} {'to ' if a in MUTATING else ''}{a}" for a in order if a in counts) or "nothing"
