"""Property tests of loading cluster.yaml: whatever the bytes, `check` ends in success or a one-line
SpecError — never another exception (the CLI's internal error, exit 70)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nsxkube.design import analyse
from nsxkube.errors import SpecError
from nsxkube.spec import parse_spec
from nsxkube.spec.example import example_text
from nsxkube.spec.load import locate
from tests.support.specs import example_data

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXAMPLE = example_text()
EXAMPLE_DATA = example_data()


def check_offline(text: str) -> None:
    """What `nsxkube check` does in process: load, then derive the design; only SpecError may escape."""
    try:
        spec = parse_spec(text)
    except SpecError as err:
        line = err.one_line()
        assert line and "\n" not in line, line
        assert len(line) < 1000, line[:300]
        return
    _, problems = analyse(spec)
    for problem in problems:  # check places each design problem in the file, as the CLI does
        locate(text, problem.key)
        assert "\n" not in problem.one_line("cluster.yaml")


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 60), max_value=10 ** 60),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", " ", "\t", "0", "-1", "1e9", "~", "null", "yes", "on", "2026-13-45", "300.1.2.3",
                     "172.16.50.0/24", "0.0.0.0/0", "172.16.50.1-172.16.50.0", "a\nb", "é", "../../etc/passwd"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12) | st.sampled_from(list(EXAMPLE_DATA)), inner, max_size=4), max_leaves=20)


def leaf_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    paths = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths += leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += leaf_paths(value, (*prefix, index))
    return paths


PATHS = leaf_paths(EXAMPLE_DATA)


def replaced(data: Any, path: tuple, value: Any, delete: bool) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy = dict(data)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = replaced(data[head], rest, value, delete)
        return copy
    copy = list(data)
    if delete and not rest:
        del copy[head]
    else:
        copy[head] = replaced(data[head], rest, value, delete)
    return copy


def test_the_mutations_reach_every_part_of_the_example():
    assert len(PATHS) > 80 and {p[0] for p in PATHS} >= {"name", "vsphere", "nsx", "network", "nodes", "addons"}


@SETTINGS
@given(st.text(alphabet=st.sampled_from([*list("abc:-[]{}&*!|>'\"#%@`?,.0123456789 \n\t\\"), "\x00", "é", "\ufeff"]),
               max_size=200))
def test_any_yamlish_text_is_a_spec_or_one_line(text):
    check_offline(text)


@SETTINGS
@given(values)
def test_any_yaml_document_is_a_spec_or_one_line(data):
    check_offline(yaml.safe_dump(data, allow_unicode=True))


@SETTINGS
@given(st.sampled_from(PATHS), values, st.booleans())
def test_a_mutated_example_is_a_spec_or_one_line(path, value, delete):
    check_offline(yaml.safe_dump(replaced(EXAMPLE_DATA, path, value, delete), sort_keys=False, allow_unicode=True))


@SETTINGS
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=len(EXAMPLE)), st.integers(min_value=0, max_value=8),
                          st.text(max_size=6)), min_size=1, max_size=4))
def test_an_edited_example_text_is_a_spec_or_one_line(edits):
    text = EXAMPLE
    for at, cut, insert in edits:
        text = text[:at] + insert + text[at + cut:]
    check_offline(text)
