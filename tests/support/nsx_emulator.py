"""The NSX emulator as pytest fixtures: a fresh real HTTPS server per test, no realization delay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nsxkube.lab.nsx import NsxEmulator


@pytest.fixture
def nsx() -> Iterator[NsxEmulator]:
    with NsxEmulator("empty", realization_delay=0) as emulator:
        yield emulator


@pytest.fixture
def tanzu() -> Iterator[NsxEmulator]:
    with NsxEmulator("tanzu", realization_delay=0) as emulator:
        yield emulator
