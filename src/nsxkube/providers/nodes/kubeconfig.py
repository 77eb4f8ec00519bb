"""The operator's kubeconfig: the first control plane's admin.conf, pointed at the API endpoint."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import yaml

from nsxkube.errors import ProviderError
from nsxkube.untrusted import InputError, load_yaml

ADMIN_CONF = "/etc/kubernetes/admin.conf"
READ_ADMIN_CONF = f"cat {ADMIN_CONF}"


def render_kubeconfig(admin_conf: str, endpoint: str) -> str:
    """admin.conf with every cluster's server set to ``https://<endpoint>`` (the VIP or DNS name)."""
    try:
        config = load_yaml(admin_conf).data
        clusters = config["clusters"]
        for entry in clusters:
            entry["cluster"]["server"] = f"https://{endpoint}"
    except (InputError, KeyError, TypeError) as err:
        raise ProviderError(f"{ADMIN_CONF} on the first control plane is not a kubeconfig: {err}") from None
    return yaml.safe_dump(config, sort_keys=False)


def get_kubeconfig(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def server_of(text: str) -> str | None:
    try:
        return load_yaml(text).data["clusters"][0]["cluster"]["server"]
    except (InputError, KeyError, TypeError, IndexError):
        return None


def create_kubeconfig(path: Path, text: str) -> None:
    """Writes the file 0600 from the start (never readable by others, not even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, path)
    os.chmod(path, 0o600)

