"""The product lab's nodes (nsxkube.lab.nodes.runtime) for the slow tests: the same implementation,
started through a context manager that skips the test, with the reason, where this machine cannot run them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from nsxkube.lab.nodes import runtime
from nsxkube.lab.nodes.runtime import (  # noqa: F401  (re-exported for the tests)
    KEEPALIVED,
    KUBELET_UNIT,
    Node,
    NodeNetwork,
    cgroup_pids,
    containerd_config,
    leftovers,
)


@contextlib.contextmanager
def node_network(*args, **kwargs) -> Iterator[NodeNetwork]:
    reason = runtime.missing_node_tools()
    if reason:
        pytest.skip(f"test {reason}")
    with runtime.node_network(*args, **kwargs) as net:
        yield net
