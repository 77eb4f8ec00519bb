"""Fixtures of the phase tests: the vSphere lab on vcsim (see tests/providers/vsphere/lab.py)."""

from tests.providers.vsphere.conftest import vsphere_lab  # noqa: F401 - the fixture, for this directory
