"""The terminal reporter: phase headers, changes, progress and the timing summary."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from nsxkube.pipeline.change import Change
from nsxkube.pipeline.runner import RunResult

MARK = {"create": "+", "update": "~", "delete": "-", "unchanged": "=", "conflict": "!", "manual": "?"}
STYLE = {"create": "green", "update": "yellow", "delete": "red", "conflict": "bold red", "manual": "cyan"}


class TerminalReporter:
    """Prints events as they come. Progress lines are throttled so logs stay readable."""

    def __init__(self, console: Console | None = None, verbose: bool = False) -> None:
        self.console = console or Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 150)
        self.verbose = verbose
        self._last_progress: dict[tuple[str, str], tuple[float, str]] = {}  # (phase, item) → (when, line)

    def phase_started(self, phase: str, title: str) -> None:
        self.console.print(f"[bold]▶ {phase}[/]: {title}")

    def change(self, phase: str, change: Change) -> None:
        if change.action == "unchanged" and not self.verbose:
            return
        style = STYLE.get(change.action, "")
        line = f"  {MARK[change.action]} {change.one_line()}"
        self.console.print(f"[{style}]{line}[/]" if style else line, markup=bool(style))

    def step(self, phase: str, message: str) -> None:
        self.console.print(f"  · {message}", markup=False)

    def progress(self, phase: str, item: str, done: int, total: int, status: str = "") -> None:
        key, line = (phase, item), f"  … {item}: {done}/{total} {status}".rstrip()
        now = time.monotonic()
        last_time, last_line = self._last_progress.get(key, (0.0, ""))
        # at most one line per item every 2 s, and the same line again only as a 30 s heartbeat
        if done < total and (now - last_time < 2.0 or (line == last_line and now - last_time < 30.0)):
            return
        self._last_progress[key] = (now, line)
        self.console.print(line, markup=False)

    def warning(self, phase: str, message: str) -> None:
        self.console.print(f"[yellow]  warning:[/] {message}")

    def phase_finished(self, phase: str, ok: bool, seconds: float, summary: str) -> None:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.console.print(f"{mark} {phase} ({seconds:.1f} s): ", end="")
        self.console.print(summary, markup=False)


def show_timings(console: Console, result: RunResult) -> None:
    table = Table(title=f"{result.verb}: per-phase timing", title_justify="left")
    table.add_column("phase")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    total = 0.0
    for phase in result.phases:
        total += phase.seconds
        table.add_row(phase.name, "ok" if phase.ok else "FAILED", f"{phase.seconds:.2f}")
    table.add_row("total", "ok" if result.ok else "FAILED", f"{total:.2f}")
    console.print(table)
    if result.next_step:
        console.print(f"next: {result.next_step}", markup=False)
