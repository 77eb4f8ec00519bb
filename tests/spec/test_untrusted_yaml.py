"""The bounded YAML reader on its own, with libyaml's parser and with PyYAML's pure-Python one (used
where libyaml is not installed): the same documents, the same refusals at the same positions."""

from __future__ import annotations

import pytest
import yaml

from nsxkube import untrusted
from nsxkube.untrusted import InputError, load_yaml


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request, monkeypatch):
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml here")
    else:
        monkeypatch.setattr(yaml, "__with_libyaml__", False)
    return request.param


@pytest.mark.parametrize(("text", "data"), [
    ("a: [1, {b: c}]\nd: 2\n", {"a": [1, {"b": "c"}], "d": 2}),
    ("", None),
    ("# only\n", None),
    ("when: 2026-01-01\nsize: 1_000\non: yes\n", {"when": "2026-01-01", "size": 1000, True: True}),
    ("a: !!str 5\n", {"a": "5"}),
    ("- 1\n- - 2\n  - 3\n", [1, [2, 3]]),
])  # fmt: skip
def test_plain_documents_load_as_with_safe_load(parser, text, data):
    assert load_yaml(text).data == data


@pytest.mark.parametrize(("text", "position", "words"), [
    ("a: &x 1\n", (1, 4), "anchor &x"),
    ("a: 1\nb: *x\n", None, "alias"),  # an undefined alias: the parser refuses it first
    ("a: !!python/object:os.system {}\n", (1, 4), "tag !!python/object:os.system"),
    ("a: " + "[" * 40 + "\n", (1, 35), "nested more than 32"),  # the mapping is the first level
    ("a: 1\n---\nb: 2\n", (2, 1), "more than one YAML document"),
    ("? [a]\n: b\n", (1, 3), "key must be a plain value"),
    ("a: " + "1" * 41 + "\n", (1, 4), "41 digits"),
    ("a: !!int abc\n", (1, 4), "cannot be read"),
    ("a: [" + ",".join(["1"] * 20_001) + "]\n", None, "more than 20000 values"),
])  # fmt: skip
def test_refusals_name_the_problem_and_where(parser, text, position, words):
    with pytest.raises(InputError) as caught:
        load_yaml(text)
    assert words in caught.value.message, caught.value.message
    if position is not None:
        assert (caught.value.line, caught.value.column) == position
    assert "\n" not in caught.value.message


def test_the_pure_python_parser_is_the_one_used_without_libyaml(monkeypatch):
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    assert isinstance(untrusted._parser("a: 1"), yaml.SafeLoader)
