"""What the offline commands do; the CLI module only parses arguments and calls these."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from importlib import resources
from pathlib import Path

from nsxkube.errors import UsageError
from nsxkube.spec.problems import Problem

MAX_LISTED = 10  # problems shown one per line; a file with thousands (hostile or pasted wrongly) shows a count


def example_text(name: str | None = None) -> str:
    text = resources.files("nsxkube.spec").joinpath("example-cluster.yaml").read_text(encoding="utf-8")
    if name:
        from nsxkube.spec.types import check_dns_label

        try:
            check_dns_label(name)
        except ValueError as err:
            raise UsageError(f"--name {name!r}: {err}") from None
        text = re.sub(r"(?m)^name: k8s-prod", f"name: {name}", text, count=1)
        text = re.sub(r"(?m)^  folder: k8s-prod", f"  folder: {name}", text, count=1)
    return text


def write_example(path: Path, *, name: str | None, force: bool) -> Path:
    if path.is_dir():
        path = path / "cluster.yaml"
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="use --force to overwrite it")
    text = example_text(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror}") from None
    return path


def check_spec(path: Path, *, as_json: bool) -> int:
    """Print the design (or every problem) and return the exit code."""
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
    if as_json:
        from nsxkube.design.serialize import design_to_dict

        print(json.dumps({"ok": True, "design": design_to_dict(design)}, indent=2))
    else:
        from nsxkube.cli.views import show_design

        show_design(design, source=str(path))
    return 0


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
    from nsxkube.design import derive_design
    from nsxkube.render.bundle import render_bundle, write_bundle
    from nsxkube.spec import load_spec

    files = render_bundle(derive_design(load_spec(path)))
    write_bundle(files, out)
    return len(files), out
