"""Shell quoting for rendered scripts: every design value reaches a script as one quoted word,
so no value is ever parsed as shell code."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


def shell_word(value: object) -> str:
    """One shell word, quoted so that the shell reads exactly ``value``."""
    return shlex.quote(str(value))


def shell_assign(name: str, value: object) -> str:
    return f"{name}={shell_word(value)}"


def shell_array(name: str, values: Iterable[object]) -> str:
    """A bash array; one element per line once it would make a long line (200 nodes, long lists)."""
    return shell_list(f"{name}=(", [shell_word(v) for v in values], ")")


def shell_list(opening: str, words: list[str], closing: str) -> str:
    line = f"{opening}{' '.join(words)}{closing}"
    if len(line) <= 100:
        return line
    return opening + "\n" + "".join(f"  {word}\n" for word in words) + closing


def shell_write_file(path: str, content: str, mode: str = "0644") -> str:
    """Lines that write ``content`` to ``path`` verbatim (a quoted heredoc: nothing is expanded)."""
    delimiter = "NSXKUBE_EOF"
    if f"\n{delimiter}\n" in f"\n{content}":
        raise ValueError(f"{path}: content contains the heredoc delimiter")
    directory = path.rsplit("/", 1)[0]
    return (
        f"  install -d -m 0755 {shell_word(directory)}\n"
        f"  cat >{shell_word(path)} <<'{delimiter}'\n{content}{delimiter}\n"
        f"  chmod {mode} {shell_word(path)}\n"
    )
