"""Small Markdown builders: the runbook's text is data until the last moment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """One runbook step: why, which bundle files, the exact commands, and what proves it worked."""

    title: str
    why: str
    files: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    check_commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def bash(lines: Iterable[str]) -> str:
    return "```bash\n" + "\n".join(lines) + "\n```"


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def render_step(number: int, step: Step) -> str:
    parts = [f"### {number}. {step.title}", "", step.why]
    if step.files:
        parts += ["", "Files: " + ", ".join(f"`{f}`" for f in step.files)]
    if step.commands:
        parts += ["", bash(step.commands)]
    if step.notes:
        parts += ["", bullets(step.notes)]
    if step.checks or step.check_commands:
        parts += ["", "**Check:**"]
        if step.checks:
            parts += ["", bullets(step.checks)]
        if step.check_commands:
            parts += ["", bash(step.check_commands)]
    return "\n".join(parts)


def render_steps(steps: Sequence[Step], first: int = 1) -> str:
    return "\n\n".join(render_step(first + i, step) for i, step in enumerate(steps))


def document(*sections: str) -> str:
    return "\n\n".join(s.strip("\n") for s in sections if s) + "\n"
