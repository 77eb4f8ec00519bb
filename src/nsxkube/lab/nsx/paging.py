"""List pages the NSX way: `results`, `cursor` while more remain, `result_count` on the first page.

The cursor names the last path returned, so a page boundary survives objects being added or
removed between calls. A client that ignores the cursor sees only the first page."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from nsxkube.lab.nsx.errors import field_errors, invalid

MAX_PAGE_SIZE = 1000


def _encode(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid(f"invalid cursor {cursor!r}") from None


def page_size_of(query: Mapping[str, str]) -> int:
    raw = query.get("page_size", str(MAX_PAGE_SIZE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise field_errors([f"page_size must be an integer between 1 and {MAX_PAGE_SIZE}, got {raw!r}"])
    return int(raw)


def paginate(items: list[dict[str, Any]], query: Mapping[str, str], key: str = "path") -> dict[str, Any]:
    """One page of `items`, sorted by their unique `key` (the policy `path`; inventory lists use
    `external_id`, which real NSX sorts its inventory by)."""
    size = page_size_of(query)
    cursor = query.get("cursor")
    start = 0
    if cursor:
        after = _decode(cursor)
        start = next((i for i, item in enumerate(items) if item[key] > after), len(items))
    page = items[start : start + size]
    body: dict[str, Any] = {"results": page, "sort_by": key, "sort_ascending": True}
    if start + size < len(items):
        body["cursor"] = _encode(page[-1][key])
    if not cursor:
        body["result_count"] = len(items)
    return body
