"""What a phase would do (plan) or did (apply), one record per object."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nsxkube.errors import ConflictError
from nsxkube.wording import and_more

Action = Literal["create", "update", "delete", "unchanged", "conflict", "manual"]

# Actions that change an outside system; a plan with none of these is a no-op.
MUTATING: frozenset[str] = frozenset({"create", "update", "delete"})


@dataclass(frozen=True)
class Change:
    """One object's fate: ``create segment k8s-nodes-segment``, ``update group x (expression)``.

    ``subject`` is what the plan decided to act on (the desired object, the live one to delete, the
    node to join): apply works from it, so what it does is exactly what the plan said. It is never
    shown, recorded or compared."""

    action: Action
    kind: str
    name: str
    detail: str = ""
    fields: tuple[str, ...] = field(default=())
    subject: Any = field(default=None, compare=False, repr=False)

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


def summarize(changes: Sequence[Change]) -> str:
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    order = ("create", "update", "delete", "unchanged", "conflict", "manual")
    return ", ".join(f"{counts[a]} {'to ' if a in MUTATING else ''}{a}" for a in order if a in counts) or "nothing"


def mutating(changes: Iterable[Change], *kinds: str) -> list[Change]:
    """The changes that act, optionally only those of ``kinds``, in plan order."""
    return [c for c in changes if c.mutating and (not kinds or c.kind in kinds)]


PREFLIGHT = "preflight check"  # the kind of a conflict that is a failed check, not an object


def refuse_conflicts(phase: str, changes: Sequence[Change], hint: str) -> None:
    """The one refusal: while a plan holds a conflict (an object with our name that is not ours, a
    failed preflight check), its phase writes nothing. Objects and checks are counted apart: an
    overlap is no object of someone else's."""
    conflicts = [c for c in changes if c.action == "conflict"]
    if not conflicts:
        return
    checks = sum(1 for c in conflicts if c.kind == PREFLIGHT)
    counted = [f"{len(conflicts) - checks} object(s) not ours"] if len(conflicts) > checks else []
    counted += [f"{checks} preflight check(s) fail"] if checks else []
    raise ConflictError(f"{phase}: nothing was written, {' and '.join(counted)}: "
                        f"{and_more([c.one_line() for c in conflicts])}", hint=hint)
