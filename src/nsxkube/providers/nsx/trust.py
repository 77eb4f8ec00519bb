"""How nsxkube trusts NSX Manager's certificate — decided before any credential leaves the machine.

* `ca_file`: the certificate must chain to that CA and name the manager (normal TLS).
* `thumbprint`: the certificate is fetched first, without sending anything, and its SHA-256 (or
  SHA-1) fingerprint compared with cluster.yaml; a mismatch stops here. Every later connection
  then trusts exactly that certificate: a different one fails the TLS handshake, so a server
  swapped after the check gets nothing either. The host name is not checked: the pin names the
  certificate itself, which is stronger (NSX's self-signed certificates often name no usable host).
* nothing: the system trust store.
* `insecure`: no verification at all; the caller warns on every run.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass

from nsxkube.errors import ProviderError
from nsxkube.spec.model import Tls

CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def display(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def fingerprint(der: bytes, *, sha1: bool = False) -> str:
    """AA:BB:… of the DER certificate (SHA-256 unless `sha1`)."""
    digest = (hashlib.sha1(der, usedforsecurity=False) if sha1 else hashlib.sha256(der)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fetch_certificate(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT) -> bytes:
    """The server's certificate (DER), read in a handshake that sends no request at all."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # only to read the certificate; it is judged by its fingerprint
    probe.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as raw, \
                probe.wrap_socket(raw, server_hostname=endpoint.host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as err:
        raise ProviderError(f"cannot reach NSX at {endpoint.display} to check its certificate: {err}") from None
    if not der:
        raise ProviderError(f"NSX at {endpoint.display} presented no certificate")
    return der


def pinned_context(der: bytes) -> ssl.SSLContext:
    """A client context that trusts this one certificate and nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    # The pinned certificate is the trust anchor even when a CA signed it.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(der))
    return context


def verify_context(tls: Tls, endpoint: Endpoint) -> ssl.SSLContext | bool:
    """What httpx should verify with; for a thumbprint, checks the live certificate first."""
    if tls.insecure:
        return False
    if tls.thumbprint:
        expected = tls.thumbprint.upper()
        der = fetch_certificate(endpoint)
        actual = fingerprint(der, sha1=len(expected.split(":")) == 20)
        if actual != expected:
            raise ProviderError(
                f"NSX at {endpoint.display} presents certificate {actual}, not {expected} from nsx.tls.thumbprint: "
                "stopping before any credential is sent",
                hint="if NSX's certificate was replaced on purpose, put the new thumbprint in cluster.yaml",
            )
        return pinned_context(der)
    if tls.ca_file:
        path = tls.ca_file.expanduser()
        try:
            return ssl.create_default_context(cafile=str(path))
        except (OSError, ssl.SSLError) as err:
            raise ProviderError(f"cannot use nsx.tls.ca_file {path}: {err}") from None
    return ssl.create_default_context()
