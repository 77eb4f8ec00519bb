"""What the offline commands do; the CLI module only parses arguments and calls these."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from nsxkube.errors import UsageError
from nsxkube.spec.example import example_text
from nsxkube.spec.problems import Problem

MAX_LISTED = 10  # problems shown one per line; a file with thousands (hostile or pasted wrongly) shows a count


def write_example(path: Path, *, name: str | None, force: bool, from_nsx: str | None = None,
                  trust: Any = None) -> tuple[Path, list[str]]:
    """Write the example; with `from_nsx`, its ranges are chosen from what that NSX uses (see init_nsx)."""
    if path.is_dir():
        path = path / "cluster.yaml"
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="use --force to overwrite it")
    text, notes = example_text(name), []
    if from_nsx:
        from nsxkube.cli.init_nsx import NsxTrust, example_from_nsx

        text, notes = example_from_nsx(text, from_nsx, trust or NsxTrust())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    return path, notes


def check_spec(path: Path, *, as_json: bool, charts: bool = True) -> int:
    """Print the design (or every problem) and the chart lookups, and return the exit code."""
    from nsxkube.design import analyse
    from nsxkube.errors import SpecError
    from nsxkube.spec import load_spec

    try:
        spec = load_spec(path)
    except SpecError as err:
        if not err.problems:
            raise
        errors = list(err.problems)
    else:
        design, problems = analyse(spec)
        if design is not None and spec.kubernetes.image_bundle is not None:
            from nsxkube.images import bundle_problems

            problems += bundle_problems(spec.kubernetes.image_bundle, design.node_images)
        errors = [_with_position(p, path) for p in problems if p.severity == "error"]
    if errors:
        if as_json:
            print(json.dumps({"ok": False, "errors": [_problem_dict(p) for p in errors]}, indent=2))
        else:
            for problem in errors[:MAX_LISTED]:
                print(f"error: {problem.one_line(str(path))}", file=sys.stderr)
            if len(errors) > MAX_LISTED:
                print(f"error: … and {len(errors) - MAX_LISTED} more problems (fix these first)", file=sys.stderr)
        return SpecError.exit_code
    found = _chart_findings(design) if charts else []
    missing = [f for f in found if f.status == "fail"]
    if as_json:
        from nsxkube.design.serialize import design_to_dict

        print(json.dumps({"ok": not missing, "design": design_to_dict(design),
                          "charts": [dataclasses.asdict(f) for f in found]}, indent=2))
    else:
        from nsxkube.cli.views import show_design

        show_design(design, source=str(path))
        for finding in found:
            label = {"ok": "ok", "warn": "warning", "fail": "error"}[finding.status]
            print(f"{label}: {finding.one_line()}", file=sys.stderr if finding.status == "fail" else sys.stdout)
    return 1 if missing else 0


def _chart_findings(design: Any) -> list[Any]:
    from nsxkube.checks.charts import check_charts
    from nsxkube.render.addons.versions import helm_charts

    return check_charts(helm_charts(design))


def _with_position(problem: Problem, path: Path) -> Problem:
    from nsxkube.spec.load import locate
    from nsxkube.untrusted import InputError, read_text

    try:
        text = read_text(path)
    except InputError:  # read a moment ago: changed since; the problem is shown without its position
        return problem
    line, column = locate(text, problem.key)
    return dataclasses.replace(problem, line=line, column=column) if line else problem


def _problem_dict(problem: Problem) -> dict[str, object]:
    return {"key": problem.key, "message": problem.message, "hint": problem.hint, "line": problem.line}


def render_to(path: Path, out: Path) -> tuple[int, Path]:
    from nsxkube.design import load_design
    from nsxkube.render.bundle import render_bundle, write_bundle

    files = render_bundle(load_design(path))
    write_bundle(files, out)
    return len(files), out
