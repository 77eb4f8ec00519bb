"""Progress goes through a reporter: phases never print, so the terminal, logs and tests
all see the same events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from nsxkube.pipeline.change import Change


class Reporter(Protocol):
    def phase_started(self, phase: str, title: str) -> None: ...

    def change(self, phase: str, change: Change) -> None: ...

    def step(self, phase: str, message: str) -> None: ...

    def progress(self, phase: str, item: str, done: int, total: int, status: str = "") -> None: ...

    def warning(self, phase: str, message: str) -> None: ...

    def phase_finished(self, phase: str, ok: bool, seconds: float, summary: str) -> None: ...


@dataclass
class Event:
    kind: str
    phase: str
    text: str


@dataclass
class RecordingReporter:
    """Keeps every event; for tests and for JSON output."""

    events: list[Event] = field(default_factory=list)

    def phase_started(self, phase: str, title: str) -> None:
        self.events.append(Event("started", phase, title))

    def change(self, phase: str, change: Change) -> None:
        self.events.append(Event("change", phase, change.one_line()))

    def step(self, phase: str, message: str) -> None:
        self.events.append(Event("step", phase, message))

    def progress(self, phase: str, item: str, done: int, total: int, status: str = "") -> None:
        self.events.append(Event("progress", phase, f"{item} {done}/{total} {status}".strip()))

    def warning(self, phase: str, message: str) -> None:
        self.events.append(Event("warning", phase, message))

    def phase_finished(self, phase: str, ok: bool, seconds: float, summary: str) -> None:
        self.events.append(Event("finished" if ok else "failed", phase, summary))

    def texts(self, kind: str) -> list[str]:
        return [e.text for e in self.events if e.kind == kind]
