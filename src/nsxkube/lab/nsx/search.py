"""The subset of NSX's Lucene-style search the emulator understands: `field:value` terms joined
by AND, dotted fields reaching into lists (`tags.scope:ncp\\/cluster`), backslash escapes and `*`
wildcards, case-insensitive. Anything else (OR, NOT, parentheses) is refused with a 400 rather
than answered wrongly. As in Lucene, `tags.scope:a AND tags.tag:b` matches an object with a tag
scoped `a` and some (maybe other) tag `b`."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nsxkube.lab.nsx.errors import invalid

_AND = re.compile(r"\s+AND\s+")
_UNSUPPORTED = re.compile(r"(^|\s)(OR|NOT)(\s|$)|(?<!\\)[()]")


@dataclass(frozen=True)
class Term:
    field: str | None  # None: match the value anywhere (free text)
    pattern: str


def parse_query(query: str) -> list[Term]:
    query = query.strip()
    if not query:
        raise invalid("search query is empty")
    if _UNSUPPORTED.search(query):
        raise invalid(f"the emulator's search supports only field:value terms joined by AND: {query!r}")
    return [_parse_term(text) for text in _AND.split(query)]


def _parse_term(text: str) -> Term:
    field, value = None, text
    match = re.match(r"^([A-Za-z_][\w.]*)(?<!\\):(.*)$", text)
    if match:
        field, value = match.group(1), match.group(2)
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return Term(field, re.sub(r"\\(.)", r"\1", value).lower())


def _values(obj: Any, dotted: list[str]) -> Iterator[Any]:
    if isinstance(obj, list):
        for item in obj:
            yield from _values(item, dotted)
        return
    if not dotted:
        yield obj
        return
    if isinstance(obj, dict) and dotted[0] in obj:
        yield from _values(obj[dotted[0]], dotted[1:])


def _leaves(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _leaves(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _leaves(value)
    else:
        yield obj


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def matches(obj: dict[str, Any], terms: list[Term]) -> bool:
    for term in terms:
        candidates = _leaves(obj) if term.field is None else _values(obj, term.field.split("."))
        if not any(fnmatch.fnmatchcase(_text(v), term.pattern) for v in candidates if not isinstance(v, dict)):
            return False
    return True
