"""A small Kubernetes API client: one kubeconfig (its first context), httpx, GET of JSON.

The client certificate and key of the kubeconfig are embedded data; the TLS stack wants files, so
they are written to a private temporary directory (0700, files 0600) that is removed on close —
never left beside the workdir. The server can be overridden (`server=`) to ask one API server
directly, or the API through the VIP, with the same credentials and CA.
"""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx

from nsxkube.errors import ProviderError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class KubeError(ProviderError):
    """The API answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class KubeClient:
    def __init__(self, kubeconfig: Path, *, server: str | None = None) -> None:
        config = _read_kubeconfig(kubeconfig)
        cluster, user = _first_context(config, kubeconfig)
        self.server = server or str(cluster.get("server", ""))
        self._dir = Path(tempfile.mkdtemp(prefix="nsxkube-kube-"))
        try:
            context = ssl.create_default_context()
            ca = cluster.get("certificate-authority-data")
            if ca:
                context.load_verify_locations(cadata=base64.b64decode(ca).decode())
            elif cluster.get("certificate-authority"):
                context.load_verify_locations(cafile=str(cluster["certificate-authority"]))
            headers = {}
            if user.get("client-certificate-data") and user.get("client-key-data"):
                cert, key = self._private("client.crt", user["client-certificate-data"]), self._private(
                    "client.key", user["client-key-data"])
                context.load_cert_chain(str(cert), str(key))
            elif user.get("token"):
                headers["Authorization"] = f"Bearer {user['token']}"
            self._http = httpx.Client(base_url=self.server, verify=context, timeout=TIMEOUT, headers=headers)
        except (ssl.SSLError, ValueError, OSError) as err:
            self.close()
            raise KubeError(f"{kubeconfig}: cannot use its certificates ({err})") from None

    def _private(self, name: str, data: str) -> Path:
        path = self._dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(data))
        return path

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` (``/api/v1/nodes``); the parsed JSON, or KubeError naming the status."""
        try:
            response = self._http.get(path, params=params or None)
        except httpx.HTTPError as err:
            raise KubeError(f"cannot reach the Kubernetes API at {self.server}: {_reason(err)}") from None
        if response.status_code >= 400:
            raise KubeError(f"the Kubernetes API at {self.server} answered {response.status_code} to GET {path}",
                            status=response.status_code)
        try:
            return response.json()
        except ValueError:
            return response.text

    def get_text(self, path: str) -> str:
        """GET of a plain-text endpoint (``/readyz``)."""
        try:
            response = self._http.get(path)
        except httpx.HTTPError as err:
            raise KubeError(f"cannot reach the Kubernetes API at {self.server}: {_reason(err)}") from None
        if response.status_code >= 400:
            raise KubeError(f"{self.server}{path} answered {response.status_code}: {response.text.strip()[:200]}",
                            status=response.status_code)
        return response.text

    def close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    """Read with the bounded reader: a kubeconfig is a file of the operator's that nsxkube did not write."""
    from nsxkube.untrusted import InputError, read_yaml

    if not path.exists():
        raise KubeError(f"cannot read the kubeconfig {path}: No such file or directory",
                        hint="the bootstrap phase writes it; run nsxkube apply")
    try:
        config = read_yaml(path)
    except InputError as err:
        raise KubeError(f"cannot read the kubeconfig {path}: {err}") from None
    except OSError as err:
        raise KubeError(f"cannot read the kubeconfig {path}: {err.strerror}") from None
    if not isinstance(config, dict):
        raise KubeError(f"{path} is not a kubeconfig")
    return config


def _first_context(config: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        context_name = config.get("current-context") or config["contexts"][0]["name"]
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    except (KeyError, TypeError, IndexError, StopIteration):
        raise KubeError(f"{path}: its context, cluster or user is missing") from None
    return cluster, user


def _reason(err: BaseException) -> str:
    return " ".join((str(err) or type(err).__name__).split())
