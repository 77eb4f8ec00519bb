"""The phase contract: a title, a read-only ``plan`` and an ``apply`` that makes the plan true."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context


@runtime_checkable
class Phase(Protocol):
    name: str
    title: str

    def plan(self, ctx: Context) -> list[Change]:
        """Observe the live system (reads only) and return what apply would change."""
        ...

    def apply(self, ctx: Context, changes: list[Change]) -> list[Change]:
        """Make the planned changes; return what was done. Running it again changes nothing."""
        ...


@runtime_checkable
class Destroyable(Protocol):
    def plan_destroy(self, ctx: Context) -> list[Change]: ...

    def destroy(self, ctx: Context, changes: list[Change]) -> list[Change]: ...
