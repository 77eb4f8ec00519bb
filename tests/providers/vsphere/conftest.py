"""Fixtures of the vSphere provider tests: a lab on vcsim (the vcsim fixtures come from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.providers.vsphere.lab import VsphereLab, make_lab
from tests.support.vcsim import Vcsim


@pytest.fixture
def vsphere_lab(vcsim_factory: Callable[..., Vcsim], tmp_path: Path) -> Iterator[VsphereLab]:
    """A fresh simulator (1 datacenter, 1 cluster of 3 hosts) with the node template prepared."""
    lab = make_lab(vcsim_factory(vms=1), tmp_path)
    yield lab
    lab.session.close()
