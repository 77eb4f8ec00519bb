"""plan / apply / destroy: build the context, run the pipeline, show the result."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nsxkube.cli.reporting import TerminalReporter, show_timings
from nsxkube.pipeline import runner
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context, Options, default_workdir
from nsxkube.pipeline.record import record_run, result_dict
from nsxkube.pipeline.reporter import RecordingReporter
from nsxkube.secrets import read_secret


def make_context(spec_path: Path, workdir: Path | None, *, yes: bool, quiet: bool = False) -> Context:
    from nsxkube.design import load_design

    design = load_design(spec_path)
    work = workdir or default_workdir(spec_path, design.name)
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o700)
    reporter = RecordingReporter() if quiet else TerminalReporter()
    if not quiet:
        for warning in design.warnings:
            reporter.warning("spec", warning.one_line())
    return Context(design=design, options=Options(workdir=work, assume_yes=yes), reporter=reporter,
                   secret=read_secret)


def run(verb: str, spec_path: Path, phase_names: str | None, workdir: Path | None, *, yes: bool = False,
        as_json: bool = False, force_unlock: bool = False) -> int:
    from nsxkube import phases
    from nsxkube.phases.lock import cluster_lock

    ctx = make_context(spec_path, workdir, yes=yes, quiet=as_json)
    try:
        selected = phases.select(phase_names)
        if verb == "plan":
            result = runner.plan(ctx, selected)
        elif verb == "apply":
            with cluster_lock(ctx, verb, force=force_unlock, lazy=True) as lease:
                result = runner.apply(ctx, selected, str(spec_path), before_write=lease.take)
        else:
            with cluster_lock(ctx, verb, force=force_unlock, lazy=True) as lease:
                result = runner.destroy(ctx, selected, confirm=lambda changes: _confirm(changes, yes),
                                        before_write=lease.take)
    finally:
        ctx.close()
    record_run(ctx.options.workdir, result)
    if as_json:
        print(json.dumps(result_dict(result), indent=2))
    else:
        reporter = ctx.reporter
        assert isinstance(reporter, TerminalReporter)
        show_timings(reporter.console, result)
    return 0 if result.ok else 1


def _confirm(changes: list[Change], yes: bool) -> bool:
    if yes:
        return True
    deletions = [c for c in changes if c.action == "delete"]
    if not sys.stdin or not sys.stdin.isatty():
        from nsxkube.errors import UsageError

        raise UsageError(f"destroy would delete {len(deletions)} object(s) and nobody is at the terminal to confirm",
                         hint="run it again with --yes")
    answer = input(f"Delete these {len(deletions)} object(s)? Type 'yes' to confirm: ")
    return answer.strip() == "yes"
