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
    conflict_hint: str = "remove theirs"

    def observe(self, ctx):
        self.calls.append("observe")
        return f"snapshot of {self.name}"

    def plan(self, design, snapshot):
        assert snapshot == f"snapshot of {self.name}"
        self.calls.append("plan")
        return self.planned

    def apply(self, ctx, snapshot, changes):
        assert snapshot == f"snapshot of {self.name}"  # apply acts on the snapshot its plan was made from
        self.calls.append("apply")
        if self.fail_on_apply:
            raise ProviderError(f"{self.name} broke")
        return changes

    def observe_teardown(self, ctx):
        self.calls.append("observe_teardown")
        return f"teardown of {self.name}"

    def plan_teardown(self, design, snapshot):
        assert snapshot == f"teardown of {self.name}"
        self.calls.append("plan_teardown")
        return [Change("delete", "thing", self.name)]

    def destroy(self, ctx, snapshot, changes):
        assert snapshot == f"teardown of {self.name}"
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
    assert first.calls == ["observe", "plan", "apply"] and second.calls == ["observe", "plan"]
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
    assert not result.ok and phase.calls == ["observe", "plan"]
    assert result.phases[0].error == ("network: nothing was written, 1 object(s) not ours: conflict: segment s: "
                                      "owned by NCP (remove theirs)")
    checks = ScriptedPhase("network", [Change("conflict", "preflight check", "tep-mtu", "TEP MTU 1500 is too small"),
                                       Change("conflict", "group", "g", "owned by NCP")])
    assert runner.apply(ctx, [checks], "c.yaml").phases[0].error.startswith(
        "network: nothing was written, 1 object(s) not ours and 1 preflight check(s) fail: ")


def test_destroy_runs_backwards_and_asks(ctx):
    first, second = ScriptedPhase("network", []), ScriptedPhase("machines", [])
    asked: list[int] = []
    result = runner.destroy(ctx, [first, second], confirm=lambda changes: asked.append(len(changes)) or True)
    assert asked == [2]
    assert [p.name for p in result.phases] == ["machines", "network"]
    assert first.calls == ["observe_teardown", "plan_teardown", "destroy"]


def test_destroy_refused_deletes_nothing(ctx):
    phase = ScriptedPhase("network", [])
    with pytest.raises(Aborted):
        runner.destroy(ctx, [phase], confirm=lambda changes: False)
    assert phase.calls == ["observe_teardown", "plan_teardown"]


def test_change_lines_follow_the_naming_rules():
    assert Change("create", "segment", "k8s-nodes-segment").one_line() == "create segment k8s-nodes-segment"
    assert Change("unchanged", "segment", "x").one_line() == "segment x is up to date"
    assert Change("update", "group", "g", fields=("expression",)).one_line() == "update group g (expression)"
    assert summarize([Change("create", "a", "1"), Change("create", "a", "2"), Change("unchanged", "a", "3")]) == \
        "2 to create, 1 unchanged"


def test_the_phases_follow_the_contract():
    """Every phase of apply has observe / pure plan / apply, a conflict hint, and a teardown when it
    can be destroyed: the runner relies on these names."""
    from nsxkube import phases
    from nsxkube.pipeline.phase import Destroyable, Phase

    built = phases.select(None)
    assert [p.name for p in built] == ["network", "machines", "network-bindings", "bootstrap"]
    for phase in built:
        assert isinstance(phase, Phase), phase.name
        assert phase.conflict_hint and phase.title
    assert {p.name for p in built if isinstance(p, Destroyable)} == {"network", "machines"}


def test_and_more_says_how_many_were_left_out():
    from nsxkube.wording import and_more

    assert and_more(["a"]) == "a"
    assert and_more(["a", "b", "c"]) == "a (and 2 more)"
    assert and_more(["a", "b"], where=" in the log") == "a (and 1 more in the log)"
    assert and_more([]) == ""
