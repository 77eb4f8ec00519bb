"""A check's result: ok / warn / fail, what was seen, and how to fix it. Used by every check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def one_line(self) -> str:
        return f"{self.check}: {self.detail}" + (f" — {self.hint}" if self.hint else "")


def passed_or_failed(check: str, passed: bool, detail: str, hint: str = "") -> Finding:
    return Finding(check, "ok" if passed else "fail", detail, hint if not passed else "")


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "fail"]
