"""Fixtures for the NSX emulator tests: a running emulator per test and httpx clients for it."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from nsxkube.lab.nsx import NsxEmulator

POLICY = "/policy/api/v1"


def tls_context(emulator: NsxEmulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=emulator.ca_file)


def client_for(emulator: NsxEmulator, *, basic_auth: bool = True, **kwargs: object) -> httpx.Client:
    """A client on the Policy API root, trusting the emulator's certificate as CA."""
    return httpx.Client(
        base_url=emulator.url + POLICY,
        auth=(emulator.username, emulator.password) if basic_auth else None,
        verify=tls_context(emulator) if emulator.tls else False,
        timeout=5.0,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def api(nsx: NsxEmulator) -> Iterator[httpx.Client]:
    with client_for(nsx) as client:
        yield client


@pytest.fixture
def tanzu_api(tanzu: NsxEmulator) -> Iterator[httpx.Client]:
    with client_for(tanzu) as client:
        yield client
