"""Small wording helpers shared by every layer's messages (a leaf: imports nothing of nsxkube)."""

from __future__ import annotations

from collections.abc import Sequence


def and_more(items: Sequence[str], *, where: str = "") -> str:
    """The first item, and how many more there are: ``"x (and 2 more)"`` — one line however many.
    ``where`` says where the rest can be read (``" in logs/n.log"``)."""
    if not items:
        return ""
    return f"{items[0]} (and {len(items) - 1} more{where})" if len(items) > 1 else items[0]
