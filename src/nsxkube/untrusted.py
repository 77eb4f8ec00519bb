"""Reading files that someone else may have written: cluster.yaml, image bundle indexes, the run
and lab records in a work directory, kubeconfigs.

Every read is bounded before the content is parsed, so that a hostile or broken file is one
clear line and never a hang, an exhausted memory or an internal error:

* size: a file is read up to a limit (1 MiB for YAML, far above any real cluster.yaml) and
  refused past it, without reading the rest;
* YAML: parsed event by event (libyaml when installed) into nodes by an iterative composer that
  refuses anchors and aliases (a "billion laughs" needs them; nsxkube's files never do), tags
  other than YAML's plain ones (``!!python/object`` and friends), nesting deeper than
  :data:`MAX_DEPTH` and more than :data:`MAX_NODES` values — each with the line and column;
* JSON: size-bounded, and nesting too deep for the parser is reported, not raised.

:class:`InputError` is a ``ValueError``; callers turn it into their own error (``SpecError`` for
cluster.yaml, a problem or a "cannot read" for the others).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_BYTES = 1 << 20
"""1 MiB: a real cluster.yaml is a few KiB; the full 500 + 500 node spec with every key is < 100 KiB."""
MAX_DEPTH = 32
"""cluster.yaml nests at most five levels (addons.backups.etcd.keep); 32 leaves room for any real file."""
MAX_NODES = 20_000
"""Values (scalars, lists, mappings) in one document: 1 000 nodes with addresses is ~3 000."""

_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map"))
_INT_TAG = "tag:yaml.org,2002:int"
_MAX_DIGITS = 40  # far beyond any count, size or port; Python refuses to convert past 4 300 digits


class _PlainResolver(Resolver):
    """YAML 1.1's implicit types less timestamps: ``2026-01-01`` stays text (no field is a date)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[Any]]] = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


class InputError(ValueError):
    """A file is too large, unreadable or not the YAML/JSON nsxkube accepts; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def where(self, source: str) -> str:
        return f"{source}:{self.line}:{self.column}" if self.line else source


def read_bytes(path: Path, *, limit: int = MAX_BYTES) -> bytes:
    """At most ``limit`` bytes of a regular file; InputError (naming why) otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise InputError("no such file") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file") from None
    except PermissionError:
        raise InputError("permission denied (check the file's owner and mode)") from None
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror or err}") from None
    if len(data) > limit:
        raise InputError(f"larger than {_size(limit)}: not a file nsxkube reads (a real one is a few KiB)")
    return data


def read_text(path: Path, *, limit: int = MAX_BYTES) -> str:
    """A UTF-8 text file of at most ``limit`` bytes; InputError otherwise (the offset of a bad byte)."""
    data = read_bytes(path, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); save it as UTF-8",
                         line, column) from None


def one_line(text: str, longest: int = 200) -> str:
    """The first line of a message, cut to ``longest`` characters: values in messages may be huge."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= longest else first[:longest] + "…"


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"


# ---- YAML --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YamlDocument:
    root: yaml.Node | None
    data: Any


def _parser(text: str) -> Any:
    if getattr(yaml, "__with_libyaml__", False):
        from yaml._yaml import CParser  # type: ignore[import-not-found]

        return CParser(text)
    return yaml.SafeLoader(text)  # pure-Python: the same events, slower


def _error(message: str, mark: Any) -> InputError:
    message = one_line(message, 300)
    return InputError(message, mark.line + 1, mark.column + 1) if mark is not None else InputError(message)


def compose_yaml(text: str, *, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> yaml.Node | None:
    """The one document of ``text`` as nodes; InputError for what nsxkube refuses (see the module)."""
    if len(text) > MAX_BYTES:
        raise InputError(f"larger than {_size(MAX_BYTES)}: not a file nsxkube reads")
    resolver = _PlainResolver()
    try:
        parser = _parser(text)
        events = iter(parser.get_event, None)
        root: yaml.Node | None = None
        stack: list[tuple[yaml.Node, list[Any]]] = []  # open collections and their items
        count = documents = 0
        for event in events:
            if isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _error("more than one YAML document ('---'): the file holds exactly one", event.start_mark)
                continue
            if isinstance(event, (yaml.StreamStartEvent, yaml.DocumentEndEvent)):
                continue
            if isinstance(event, yaml.AliasEvent):
                raise _error(f"YAML alias *{event.anchor} is not accepted: write the value out in full",
                             event.start_mark)
            if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                node, items = stack.pop()
                node.value = items if isinstance(node, yaml.SequenceNode) else list(zip(items[::2], items[1::2],
                                                                                        strict=True))
                node.end_mark = event.end_mark
                root = _attach(node, stack, root)
                continue
            if event.anchor is not None:
                raise _error(f"YAML anchor &{event.anchor} is not accepted: write each value out in full",
                             event.start_mark)
            count += 1
            if count > max_nodes:
                raise _error(f"more than {max_nodes} values: not a file nsxkube reads", event.start_mark)
            if len(stack) >= max_depth and isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                raise _error(f"nested more than {max_depth} levels deep", event.start_mark)
            if stack and isinstance(stack[-1][0], yaml.MappingNode) and len(stack[-1][1]) % 2 == 0 \
                    and not isinstance(event, yaml.ScalarEvent):
                raise _error("a key must be a plain value, not a list or a mapping", event.start_mark)
            node = _node(event, resolver)
            if isinstance(node, yaml.ScalarNode):
                root = _attach(node, stack, root)
            else:
                stack.append((node, []))
        return root
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise _error(f"YAML syntax error: {err.problem or err.context}", mark) from None
    except yaml.reader.ReaderError as err:  # a character YAML does not allow (NUL, most control characters)
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        raise InputError(f"YAML syntax error: character {err.character!r} is not allowed in YAML", line, column) from None
    except yaml.YAMLError as err:
        raise InputError(f"YAML syntax error: {one_line(str(err))}") from None


def _attach(node: yaml.Node, stack: list[tuple[yaml.Node, list[Any]]], root: yaml.Node | None) -> yaml.Node | None:
    """Adds a finished node to the open collection; with none open it is the document's root."""
    if stack:
        stack[-1][1].append(node)
        return root
    return node


def _node(event: Any, resolver: Resolver) -> yaml.Node:
    tag = event.tag
    if tag is not None and tag != "!" and tag not in _PLAIN_TAGS:
        raise _error(f"YAML tag {tag.replace('tag:yaml.org,2002:', '!!')} is not accepted: only plain values "
                     "(text, numbers, true/false, lists, mappings)", event.start_mark)
    if isinstance(event, yaml.ScalarEvent):
        if tag is None or tag == "!":
            tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _INT_TAG and len(event.value) > _MAX_DIGITS:
            raise _error(f"a number of {len(event.value)} digits is not a value nsxkube reads", event.start_mark)
        return yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
    if isinstance(event, yaml.SequenceStartEvent):
        tag = tag if tag not in (None, "!") else resolver.DEFAULT_SEQUENCE_TAG
        return yaml.SequenceNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
    tag = tag if tag not in (None, "!") else resolver.DEFAULT_MAPPING_TAG
    return yaml.MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)


def construct_yaml(root: yaml.Node | None) -> Any:
    """Python values of a composed document (plain values only: see :func:`compose_yaml`)."""
    if root is None:
        return None
    constructor = _Constructor()
    try:
        return constructor.construct_document(root)
    except InputError:
        raise
    except yaml.MarkedYAMLError as err:
        raise _error(f"YAML error: {err.problem or err.context}", err.problem_mark or err.context_mark) from None
    except (ValueError, OverflowError, TypeError) as err:
        raise InputError(f"a value cannot be read: {one_line(str(err), 120)}") from None


class _Constructor(SafeConstructor):
    """SafeConstructor whose failures on one value (``!!int abc``) name that value's position."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as err:
            if isinstance(err, InputError):
                raise
            raise _error(f"a value cannot be read: {one_line(str(err), 120)}", node.start_mark) from None


def load_yaml(text: str) -> YamlDocument:
    root = compose_yaml(text)
    return YamlDocument(root, construct_yaml(root))


def read_yaml(path: Path, *, limit: int = MAX_BYTES) -> Any:
    """The data of a YAML file, bounded as the module says; InputError otherwise."""
    return load_yaml(read_text(path, limit=limit)).data


# ---- JSON --------------------------------------------------------------------------------------


def load_json(text: str | bytes) -> Any:
    """``json.loads`` whose failures (syntax, nesting too deep to parse) are InputError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON: {err.msg}", err.lineno, err.colno) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"not valid JSON: {str(err)[:120]}") from None


def read_json(path: Path, *, limit: int = MAX_BYTES) -> Any:
    return load_json(read_text(path, limit=limit))
