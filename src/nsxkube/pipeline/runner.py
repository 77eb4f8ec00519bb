"""Runs phases in order, times them, stops at the first failure with what to do next."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nsxkube.errors import Aborted, ClusterLocked, NsxkubeError
from nsxkube.pipeline.change import Change, refuse_conflicts, summarize
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.phase import Destroyable, Phase


@dataclass
class PhaseResult:
    name: str
    title: str
    changes: list[Change] = field(default_factory=list)
    seconds: float = 0.0
    ok: bool = True
    error: str | None = None


@dataclass
class RunResult:
    verb: str
    phases: list[PhaseResult] = field(default_factory=list)
    next_step: str | None = None

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.phases)

    @property
    def changed(self) -> bool:
        return any(c.mutating for p in self.phases for c in p.changes)


def observe_and_plan(ctx: Context, phase: Phase[Any]) -> tuple[Any, list[Change]]:
    """The read half of a phase: its snapshot and the pure plan of it."""
    snapshot = phase.observe(ctx)
    return snapshot, phase.plan(ctx.design, snapshot)


def plan(ctx: Context, phases: Sequence[Phase[Any]]) -> RunResult:
    result = RunResult("plan")
    for phase in phases:
        result.phases.append(_timed(ctx, phase, lambda p=phase: observe_and_plan(ctx, p)[1], report_changes=True))
        if not result.phases[-1].ok:
            break
    return result


def apply_phase(ctx: Context, phase: Phase[Any], before_write: Callable[[], None] | None = None) -> list[Change]:
    """observe → plan → (refuse conflicts) → apply the mutating changes; a no-op plan applies nothing.
    ``before_write`` runs once a plan holds something to do, before apply (the cluster lease)."""
    snapshot, changes = observe_and_plan(ctx, phase)
    for change in changes:
        ctx.reporter.change(phase.name, change)
    refuse_conflicts(phase.name, changes, phase.conflict_hint)
    if not any(c.mutating for c in changes):
        return changes
    if before_write is not None:
        before_write()
    return phase.apply(ctx, snapshot, changes)


def apply(ctx: Context, phases: Sequence[Phase[Any]], spec_path: str,
          before_write: Callable[[], None] | None = None) -> RunResult:
    result = RunResult("apply")
    for phase in phases:
        outcome = _timed(ctx, phase, lambda p=phase: apply_phase(ctx, p, before_write), report_changes=False)
        result.phases.append(outcome)
        if not outcome.ok:
            result.next_step = (
                f"fix the cause above, then run `nsxkube apply {spec_path} --phase {phase.name}` again "
                "(what is done stays done)"
            )
            break
    return result


def destroy(
    ctx: Context, phases: Sequence[Phase[Any]], confirm: Callable[[list[Change]], bool],
    before_write: Callable[[], None] | None = None,
) -> RunResult:
    """Plan every phase's teardown (last phase first), ask once, then delete only what we own."""
    result = RunResult("destroy")
    ordered = [p for p in reversed(phases) if isinstance(p, Destroyable)]
    planned: list[tuple[Phase[Any], Any, list[Change]]] = []
    for phase in ordered:
        snapshots: list[Any] = []

        def teardown(p: Any = phase, keep: list[Any] = snapshots) -> list[Change]:
            keep.append(p.observe_teardown(ctx))
            return p.plan_teardown(ctx.design, keep[0])

        outcome = _timed(ctx, phase, teardown, report_changes=True, title=_destroy_title(phase))
        if not outcome.ok:
            result.phases.append(outcome)
            return result
        planned.append((phase, snapshots[0], outcome.changes))
    everything = [c for _, _, changes in planned for c in changes]
    if not any(c.mutating for c in everything):
        result.phases = [PhaseResult(p.name, p.title, changes) for p, _, changes in planned]
        return result
    if not confirm(everything):
        raise Aborted("nothing was deleted")
    if before_write is not None:
        before_write()
    for phase, snapshot, changes in planned:
        result.phases.append(_timed(ctx, phase, lambda p=phase, s=snapshot, c=changes: p.destroy(ctx, s, c),
                                    report_changes=False, title=_destroy_title(phase)))
        if not result.phases[-1].ok:
            break
    return result


def _destroy_title(phase: Phase[Any]) -> str:
    return f"Delete what the {phase.name} phase created (only objects this cluster owns)"


def _timed(ctx: Context, phase: Phase[Any], action: Callable[[], list[Change]], *, report_changes: bool,
           title: str | None = None) -> PhaseResult:
    reporter, title = ctx.reporter, title or phase.title
    reporter.phase_started(phase.name, title)
    start = time.monotonic()
    outcome = PhaseResult(phase.name, title)
    try:
        outcome.changes = list(action())
        if report_changes:
            for change in outcome.changes:
                reporter.change(phase.name, change)
    except ClusterLocked:
        raise  # another run holds the cluster: the whole command stops, not just this phase
    except NsxkubeError as err:
        outcome.ok = False
        outcome.error = err.one_line()
    outcome.seconds = time.monotonic() - start
    summary = outcome.error or summarize(outcome.changes)
    reporter.phase_finished(phase.name, outcome.ok, outcome.seconds, summary)
    return outcome
