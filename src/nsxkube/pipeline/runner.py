"""Runs phases in order, times them, stops at the first failure with what to do next."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nsxkube.errors import Aborted, ConflictError, NsxkubeError
from nsxkube.pipeline.change import Change, summarize
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


def plan(ctx: Context, phases: Sequence[Phase]) -> RunResult:
    result = RunResult("plan")
    for phase in phases:
        result.phases.append(_timed(ctx, phase, lambda p=phase: p.plan(ctx), report_changes=True))
        if not result.phases[-1].ok:
            break
    return result


def apply(ctx: Context, phases: Sequence[Phase], spec_path: str) -> RunResult:
    result = RunResult("apply")
    for phase in phases:

        def run(p: Phase = phase) -> list[Change]:
            changes = p.plan(ctx)
            for change in changes:
                ctx.reporter.change(p.name, change)
            conflicts = [c for c in changes if c.action == "conflict"]
            if conflicts:
                # a failing preflight check (an overlap…) is no object: count the two apart
                checks = sum(1 for c in conflicts if c.kind == "preflight check")
                counted = [f"{checks} preflight check(s) fail"] if checks else []
                if len(conflicts) > checks:
                    counted.insert(0, f"{len(conflicts) - checks} object(s) nsxkube would own already exist and "
                                      "are not ours")
                raise ConflictError(
                    " and ".join(counted) + ": " + "; ".join(c.one_line() for c in conflicts),
                    hint="rename ours in cluster.yaml or remove theirs by hand; nsxkube never adopts or overwrites",
                )
            if not any(c.mutating for c in changes):
                return changes
            return p.apply(ctx, changes)

        outcome = _timed(ctx, phase, run, report_changes=False)
        result.phases.append(outcome)
        if not outcome.ok:
            result.next_step = (
                f"fix the cause above, then run `nsxkube apply {spec_path} --phase {phase.name}` again "
                "(what is done stays done)"
            )
            break
    return result


def destroy(
    ctx: Context, phases: Sequence[Phase], confirm: Callable[[list[Change]], bool]
) -> RunResult:
    """Plan every phase's teardown (last phase first), ask once, then delete only what we own."""
    result = RunResult("destroy")
    ordered = [p for p in reversed(phases) if isinstance(p, Destroyable)]
    planned: list[tuple[Phase, list[Change]]] = []
    for phase in ordered:
        outcome = _timed(ctx, phase, lambda p=phase: p.plan_destroy(ctx), report_changes=True,
                         title=_destroy_title(phase))
        if not outcome.ok:
            result.phases.append(outcome)
            return result
        planned.append((phase, outcome.changes))
    everything = [c for _, changes in planned for c in changes]
    if not any(c.mutating for c in everything):
        result.phases = [PhaseResult(p.name, p.title, changes) for p, changes in planned]
        return result
    if not confirm(everything):
        raise Aborted("nothing was deleted")
    for phase, changes in planned:
        result.phases.append(_timed(ctx, phase, lambda p=phase, c=changes: p.destroy(ctx, c), report_changes=False,
                                    title=_destroy_title(phase)))
        if not result.phases[-1].ok:
            break
    return result


def _destroy_title(phase: Phase) -> str:
    return f"Delete what the {phase.name} phase created (only objects this cluster owns)"


def _timed(ctx: Context, phase: Phase, action: Callable[[], list[Change]], *, report_changes: bool,
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
    except NsxkubeError as err:
        outcome.ok = False
        outcome.error = err.one_line()
    outcome.seconds = time.monotonic() - start
    summary = outcome.error or summarize(outcome.changes)
    reporter.phase_finished(phase.name, outcome.ok, outcome.seconds, summary)
    return outcome
