"""Fixtures of the vSphere provider tests: vcsim (tests/support/vcsim.py) and a lab on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.providers.vsphere.lab import VsphereLab, make_lab
from tests.support.vcsim import Vcsim, vcsim, vcsim_factory  # noqa: F401 - fixtures for this directory


@pytest.fixture
def vsphere_lab(vcsim_factory: Callable[..., Vcsim], tmp_path: Path) -> Iterator[VsphereLab]:  # noqa: F811
    """A fresh simulator (1 datacenter, 1 cluster of 3 hosts) with the node template prepared."""
    lab = make_lab(vcsim_factory(vms=1), tmp_path)
    yield lab
    lab.session.close()
