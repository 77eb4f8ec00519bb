"""A throwaway self-signed certificate for the emulator's HTTPS, made with the openssl CLI (the
standard library cannot create certificates). Clients verify it either by its SHA-256 thumbprint,
as NSX admins usually do, or by trusting the PEM file as a CA."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    thumbprint: str  # SHA-256 of the DER certificate, colon-separated upper-case hex


def sha256_thumbprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def create_self_signed(directory: Path, common_name: str = "nsx-emulator.local") -> Certificate:
    """Write cert.pem and key.pem into `directory`: P-256, 30 days, valid for 127.0.0.1/::1/localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to create the emulator's TLS certificate")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key_file), "-out", str(cert_file), "-days", "30",
            "-subj", f"/CN={common_name}",
            "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key_file.chmod(0o600)
    der = ssl.PEM_cert_to_DER_cert(cert_file.read_text())
    return Certificate(cert_file, key_file, sha256_thumbprint(der))


def server_context(cert: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert.cert_file, cert.key_file)
    return context
