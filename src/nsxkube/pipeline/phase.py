"""The phase contract: observe → plan → apply.

- ``observe(ctx) -> Snapshot`` does every read a phase needs and nothing else (it may note in
  ``ctx.handoff`` what it learned for later phases);
- ``plan(design, snapshot) -> list[Change]`` is pure: the same design and snapshot give the same
  changes, so it is tested from tables with no outside system;
- ``apply(ctx, snapshot, changes)`` acts only on the mutating changes it is handed, through each
  change's ``subject`` (what the plan decided to act on), and returns what it did.

The runner calls them in that order (``pipeline.runner``); a phase never re-plans by itself.
Destroy follows the same shape with ``observe_teardown`` / ``plan_teardown`` / ``destroy``.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, runtime_checkable

from nsxkube.design import Design
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context

Snapshot = TypeVar("Snapshot")


@runtime_checkable
class Phase(Protocol[Snapshot]):
    name: str
    title: str
    conflict_hint: str
    """What the operator can do when the plan holds a conflict (the runner refuses to apply then)."""

    def observe(self, ctx: Context) -> Snapshot:
        """Read the live systems; no change anywhere."""
        ...

    def plan(self, design: Design, snapshot: Snapshot) -> list[Change]:
        """Pure: what apply would change, one Change per object."""
        ...

    def apply(self, ctx: Context, snapshot: Snapshot, changes: list[Change]) -> list[Change]:
        """Make the mutating changes true; return what was done. Running it again changes nothing."""
        ...


@runtime_checkable
class Destroyable(Protocol):
    def observe_teardown(self, ctx: Context) -> Any: ...

    def plan_teardown(self, design: Design, snapshot: Any) -> list[Change]: ...

    def destroy(self, ctx: Context, snapshot: Any, changes: list[Change]) -> list[Change]: ...
