"""The runner's contract with phases: order, stop on failure, conflicts, no-op, destroy asks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from nsxkube.errors import Aborted, ProviderError
from nsxkube.pipeline import runner
from nsxkube.pipeline.change import Change, summarize
from nsxkube.pipeline.context import Context, Options
from nsxkube.pipeline.reporter import RecordingReporter
from tests.support.specs import example_design


@dataclass
class ScriptedPhase:
    """A phase whose plan is given and whose apply records the call (the runner's peer in these tests)."""

    name: str
    planned: list[Change]
    fail_on_apply: bool = False
    calls: list[str] = field(default_factory=list)
    title: str = "scripted"

    def plan(self, ctx):
        self.calls.append("plan")
        return self.planned

    def apply(self, ctx, changes):
        self.calls.append("apply")
        if self.fail_on_apply:
            raise ProviderError(f"{self.name} broke")
        return changes

    def plan_destroy(self, ctx):
        self.calls.append("plan_destroy")
        return [Change("delete", "thing", self.name)]

    def destroy(self, ctx, changes):
        self.calls.append("destroy")
        return changes


@pytest.fixture
def ctx(tmp_path):
    return Context(design=example_design(), options=Options(workdir=tmp_path), reporter=RecordingReporter(),
                   secret=lambda name, what: "x")


def test_apply_runs_in_order_and_skips_apply_when_nothing_changes(ctx):
    first = ScriptedPhase("network", [Change("create", "segment", "s")])
    second = ScriptedPhase("machines", [Change("unchanged", "vm", "v")])
    result = runner.apply(ctx, [first, second], "c.yaml")
    assert result.ok and result.changed
    assert first.calls == ["plan", "apply"] and second.calls == ["plan"]
    assert [p.name for p in result.phases] == ["network", "machines"]
    assert ctx.reporter.texts("started") == ["scripted", "scripted"]


def test_apply_stops_at_the_first_failure_and_says_how_to_resume(ctx):
    first = ScriptedPhase("network", [Change("create", "segment", "s")], fail_on_apply=True)
    second = ScriptedPhase("machines", [Change("create", "vm", "v")])
    result = runner.apply(ctx, [first, second], "c.yaml")
    assert not result.ok
    assert second.calls == []
    assert result.phases[0].error == "network broke"
    assert result.next_step and "--phase network" in result.next_step and "c.yaml" in result.next_step


def test_a_conflict_stops_before_any_change(ctx):
    phase = ScriptedPhase("network", [Change("create", "group", "g"), Change("conflict", "segment", "s", "owned by NCP")])
    result = runner.apply(ctx, [phase], "c.yaml")
    assert not result.ok and phase.calls == ["plan"]
    assert "not ours" in result.phases[0].error and "segment s" in result.phases[0].error


def test_destroy_runs_backwards_and_asks(ctx):
    first, second = ScriptedPhase("network", []), ScriptedPhase("machines", [])
    asked: list[int] = []
    result = runner.destroy(ctx, [first, second], confirm=lambda changes: asked.append(len(changes)) or True)
    assert asked == [2]
    assert [p.name for p in result.phases] == ["machines", "network"]
    assert first.calls == ["plan_destroy", "destroy"]


def test_destroy_refused_deletes_nothing(ctx):
    phase = ScriptedPhase("network", [])
    with pytest.raises(Aborted):
        runner.destroy(ctx, [phase], confirm=lambda changes: False)
    assert phase.calls == ["plan_destroy"]


def test_change_lines_follow_the_naming_rules():
    assert Change("create", "segment", "k8s-nodes-segment").one_line() == "create segment k8s-nodes-segment"
    assert Change("unchanged", "segment", "x").one_line() == "segment x is up to date"
    assert Change("update", "group", "g", fields=("expression",)).one_line() == "update group g (expression)"
    assert summarize([Change("create", "a", "1"), Change("create", "a", "2"), Change("unchanged", "a", "3")]) == \
        "2 to create, 1 unchanged"
