"""A finding about a spec: where it is, what is wrong, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    severity: Severity = "error"
    hint: str | None = None
    line: int | None = None
    column: int | None = None

    def one_line(self, source: str | None = None) -> str:
        where = ""
        if source:
            where = f"{source}:{self.line}:{self.column}: " if self.line else f"{source}: "
        text = f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"
        return f"{text} — {self.hint}" if self.hint else text
