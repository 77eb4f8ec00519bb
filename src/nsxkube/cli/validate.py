"""`nsxkube validate`: run the checks, show them as a table (or JSON / Markdown), write JUnit."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

VERDICT_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skipped": "dim"}


def run_validate(spec_path: Path, *, only: Sequence[str], output: str, junit: Path | None, lang: str,
                 workdir: Path | None, deadline: float) -> int:
    from nsxkube.cli.output import write_file
    from nsxkube.cli.run import make_context
    from nsxkube.errors import UsageError
    from nsxkube.phases.validate import report, select_checks, validate

    if lang not in report.LANGUAGES:
        raise UsageError(f"--lang {lang}: use one of {', '.join(report.LANGUAGES)}")
    select_checks(only)  # an unknown group is a usage error before anything connects
    ctx = make_context(spec_path, workdir, yes=True, quiet=output != "table")
    started = time.monotonic()
    try:
        results = validate(ctx, only, deadline_seconds=deadline)
    finally:
        ctx.close()
    seconds = time.monotonic() - started
    name = ctx.design.name
    if junit is not None:
        write_file(junit, report.as_junit(name, results, seconds), "the JUnit file")
        print(f"wrote {junit}", file=sys.stderr)
    if output == "json":
        print(report.as_json(name, results, seconds))
    elif output == "markdown":
        print(report.as_markdown(name, results, seconds, lang), end="")
    else:
        _table(ctx.reporter, name, results, seconds, lang)
    return report.exit_code(results)


def _table(reporter: object, name: str, results: Sequence[object], seconds: float, lang: str) -> None:
    from rich.table import Table

    from nsxkube.phases.validate import report

    words = report.WORDS[lang]
    table = Table(title=f"{words['title']} {name}", show_lines=False)
    for column in (words["check"], words["verdict"], words["detail"]):
        table.add_column(column, overflow="fold")
    for r in results:
        detail = r.detail + (f"\n→ {r.hint}" if r.hint else "") + (f"\n  {words['see']} {r.doc}" if r.doc else "")
        table.add_row(r.id, f"[{VERDICT_STYLE[r.verdict]}]{words[r.verdict]}[/]", detail)
    console = reporter.console  # type: ignore[attr-defined]
    console.print(table)
    console.print(f"{report.summary_line(results, lang)} ({seconds:.1f} {words['seconds']})")
