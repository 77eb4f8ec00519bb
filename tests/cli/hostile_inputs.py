"""Files built to hang, crash or exhaust `nsxkube check`, each with the words its one-line refusal
must hold. Shared by the CLI tests (tests/cli/test_hostile_input.py) and the benchmark
(benchmarks/bench.py hostile), which measures time and memory on each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nsxkube.spec.example import example_text


@dataclass(frozen=True)
class Hostile:
    label: str
    make: Callable[[Path], None]  # writes the input at the given path
    words: str  # what the (first) line of the refusal must say
    lines: int = 1  # lines it may take: a file with several real problems lists them (at most 10, then a count)
    positioned: bool = True  # the line names line:column (not for what concerns the whole file)


def _text(content: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(content, encoding="utf-8")


def _bytes(content: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(content)


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def _sparse(size: int) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.write(b"name: big\n# ")
            handle.truncate(size)  # a hole: the disk holds almost nothing
    return make


def _directory(path: Path) -> None:
    path.mkdir()


def _example_with(old: str, new: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        text = example_text()
        assert old in text, old
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return make


def _nested_blocks(depth: int) -> str:
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(depth)) + f"{'  ' * depth}x: 1\n"


HOSTILE: list[Hostile] = [
    Hostile("billion laughs (342 bytes of nested aliases)", _text(billion_laughs()), "anchor &a is not accepted"),
    Hostile("self-referencing alias", _text("name: &a [*a]\n"), "anchor &a"),
    Hostile("alias of a scalar", _text("name: &n lab\nvsphere: {datacenter: *n}\n"), "anchor &n"),
    Hostile("merge key from an alias", _text("base: &b {cpus: 2}\nnodes: {workers: {<<: *b}}\n"), "anchor &b"),
    Hostile("100 000 nested [", _text("name: " + "[" * 100_000 + "\n"), "nest"),
    Hostile("100 000 nested {", _text("name: " + "{a: " * 100_000 + "\n"), "nest"),
    Hostile("1 000 nested block sequences", _text("name:\n" + "".join(f"{' ' * i}- \n" for i in range(1_000))),
            "nested more than"),
    Hostile("40 nested block mappings", _text(_nested_blocks(40)), "nested more than 32 levels"),
    Hostile("!!python/object tag", _text("name: !!python/object:os.system {}\n"), "tag !!python/object"),
    Hostile("!!python/name tag", _text("name: !!python/name:os.system\n"), "tag !!python/name"),
    Hostile("!!python/object/apply tag", _text("name: !!python/object/apply:os.system ['true']\n"),
            "tag !!python/object/apply"),
    Hostile("custom local tag", _text("name: !vault secret\n"), "tag !vault"),
    Hostile("!!binary tag", _text("name: !!binary aGk=\n"), "tag !!binary"),
    Hostile("!!set tag", _text("name: !!set {a, b}\n"), "tag !!set"),
    Hostile("54 MB file", _sparse(54 << 20), "larger than 1 MiB", positioned=False),
    Hostile("2 MiB of comment", _text("name: lab\n# " + "x" * (2 << 20) + "\n"), "larger than 1 MiB", positioned=False),
    Hostile("30 000 values in a list", _text("name: [" + ",".join(["1"] * 30_000) + "]\n"), "more than 20000 values"),
    Hostile("5 000-digit integer", _text("name: lab\nnodes: {workers: {count: " + "9" * 5000 + "}}\n"),
            "5000 digits"),
    Hostile("!!int that is not a number", _text("name: !!int abc\n"), "cannot be read"),
    Hostile("two YAML documents", _text("name: a\n---\nname: b\n"), "more than one YAML document"),
    Hostile("a list as a mapping key", _text("? [a, b]\n: c\n"), "key must be a plain value"),
    Hostile("not UTF-8 (Latin-1)", _bytes("name: café\n".encode("latin-1")), "not UTF-8"),
    Hostile("UTF-16 with BOM", _bytes("name: lab\n".encode("utf-16")), "not UTF-8"),
    Hostile("NUL bytes", _bytes(b"name: lab\x00\x00\n"), "YAML syntax error"),
    Hostile("a directory", _directory, "is a directory", positioned=False),
    Hostile("unclosed flow mapping", _text("name: {a: 1\n"), "YAML syntax error"),
    Hostile("tab indentation", _text("name: lab\nvsphere:\n\tserver: x\n"), "YAML syntax error"),
    Hostile("empty file", _text(""), "the file is empty", positioned=False),
    Hostile("only a comment", _text("# nothing\n"), "the file is empty", positioned=False),
    Hostile("a top-level list", _text("- name: lab\n"), "top level must be a mapping", positioned=False),
    Hostile("a top-level scalar", _text("hello\n"), "top level must be a mapping", positioned=False),
    Hostile("a 500 000-character simple key", _text("k" * 500_000 + ": 1\n"), "YAML syntax error"),
    Hostile("a 500 000-character explicit key", _text("? " + "k" * 500_000 + "\n: 1\nname: lab\n"), "unknown key",
            lines=3),
    Hostile("5 000 unknown keys", _text("".join(f"key{i}: {i}\n" for i in range(5000))), "unknown key", lines=11),
    Hostile("a 900 000-digit value", _example_with("api_vip: 172.16.50.10", "api_vip: " + "9" * 900_000),
            "900000 digits"),
    Hostile("a 900 000-character address", _example_with("api_vip: 172.16.50.10", "api_vip: " + "x" * 900_000),
            "network.api_vip"),
    Hostile("a 900 000-character name", _example_with("name: k8s-prod", "name: " + "n" * 900_000), "name:"),
    Hostile("ntp server 300.1.2.3", _example_with("ntp_servers: [10.10.0.123]", "ntp_servers: [300.1.2.3]"),
            "neither an IPv4 address nor a host name"),
    Hostile("empty datastore", _example_with("datastore: vsanDatastore", "datastore: ''"),
            "vsphere.datastore"),
    Hostile("0.0.0.0/0 as the node range", _example_with("cidr: 172.16.50.0/24", "cidr: 0.0.0.0/0"),
            "overlaps the node segment 0.0.0.0/0", lines=3),
]
