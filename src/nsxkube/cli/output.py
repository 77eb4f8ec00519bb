"""Files the CLI writes for the operator (reports, JUnit): one line naming the file when it cannot."""

from __future__ import annotations

from pathlib import Path


def write_file(target: Path, text: str, what: str = "the file") -> None:
    from nsxkube.errors import UsageError

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {what} {target}: {err.strerror}") from None
