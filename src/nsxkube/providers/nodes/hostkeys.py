"""known_hosts: the host keys nsxkube trusts, and trust on first use when the spec allows it.

A node whose key is recorded must present that key (a changed key is refused). A node with no
recorded key is refused too, unless ``ssh.trust_on_first_use``: then its key is recorded and its
fingerprint reported, so the operator can compare it with the VM console.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.nodes import ssh_library
from nsxkube.providers.nodes.model import Target
from nsxkube.untrusted import InputError, read_text

KNOWN_HOSTS_LIMIT = 16 << 20  # thousands of hosts fit in a few MiB; ssh.known_hosts_file may name any file


def read_known_hosts(path: Path) -> Any:
    """The parsed file (asyncssh's ``SSHKnownHosts``; hashed entries and markers included)."""
    asyncssh = ssh_library.asyncssh()

    try:
        text = read_text(path, limit=KNOWN_HOSTS_LIMIT) if path.exists() else ""
    except InputError as err:
        raise ProviderError(f"{path}: cannot read the known_hosts file: {err}",
                            hint="point ssh.known_hosts_file at a readable known_hosts file") from None
    try:
        return asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as err:
        raise ProviderError(f"{path} is not a known_hosts file: {err}",
                            hint="fix or remove the broken line (ssh-keygen -R HOST -f FILE)") from None


def find_host_keys(known_hosts: Any, target: Target) -> bool:
    """True when known_hosts holds a key (or a CA, or a revocation) for this address and port."""
    asyncssh = ssh_library.asyncssh()

    port = None if target.port == 22 else target.port
    matched = asyncssh.match_known_hosts(known_hosts, target.address, target.address, port)
    host_keys, ca_keys, revoked = matched[0], matched[1], matched[2]
    return bool(host_keys or ca_keys or revoked)


def fingerprint(key: Any) -> str:
    """``ssh-ed25519 SHA256:…``: what ``ssh-keygen -lf`` prints for the key on the node."""
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


def create_host_key(path: Path, target: Target, key: Any) -> str:
    """Appends ``host key`` to known_hosts (0600); returns the fingerprint to report."""
    line = f"{target.known_hosts_name} {key.export_public_key('openssh').decode().strip()}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line)
    return fingerprint(key)


def changed_key_error(target: Target, path: Path) -> ProviderError:
    return ProviderError(
        f"host key of {target.where} does not match the one recorded in {path}: refusing to connect",
        hint=f"if the VM was rebuilt, check its new key on the console and remove the old line "
             f"(ssh-keygen -R '{target.known_hosts_name}' -f {path}); otherwise someone may be in between")


def unknown_key_error(target: Target, path: Path) -> ProviderError:
    return ProviderError(
        f"host key of {target.where} is not in {path}: refusing to connect",
        hint=f"check the key on the VM console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it with "
             f"ssh-keyscan -p {target.port} {target.address} >> {path}, or set ssh.trust_on_first_use: true")
