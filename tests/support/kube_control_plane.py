"""A real Kubernetes control plane for tests: etcd + kube-apiserver as processes on loopback.

The session-scoped fixture ``kube_control_plane`` starts them once per test session (a few
seconds) with certificates made at start by the ``openssl`` command: a CA, a serving certificate
for 127.0.0.1/localhost, a service-account key pair, and an admin client certificate with
``O=system:masters``. It yields a :class:`KubeControlPlane`:

* ``url``, ``kubeconfig`` (admin, mode 0600, certificates embedded), ``ca_file``,
  ``client_cert``, ``client_key``, ``git_version`` and ``client`` (an ``httpx.Client`` that
  trusts the CA and authenticates as admin);
* ``dry_run_create(obj) -> (ok, message)``: a server-side dry-run create
  (``POST ...?dryRun=All&fieldValidation=Strict``) of one object; apiVersion/kind are mapped to
  the REST path through the server's discovery (``/api/v1``, ``/apis/GROUP/VERSION``);
* ``kubeadm_validate(path) -> (ok, output)``: ``kubeadm config validate --config PATH``
  (also a plain function, :func:`kubeadm_validate`, for tests that need no API server).

No controller-manager runs: namespaces other than ``default``, ``kube-system``, ``kube-public``
and ``kube-node-lease`` do not exist until a test creates them, and nothing reconciles objects.
Without the Go-built programs (programs/build.sh) the tests are skipped with the build's reason.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.binaries import (
    free_port,
    kubernetes_version,
    locate_binary,
    log_tail,
    require_binaries,
    require_binary,
    start_process,
    stop_process,
)

SERVICE_CIDR = "10.96.0.0/24"


# ---- certificates (openssl CLI) ----------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str | os.PathLike[str], cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(os.fspath, args)], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed: {result.stderr.strip()}")


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc")


def _signed_cert(d: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    _openssl("req", "-new", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", subject, cwd=d)
    ext.write_text(extensions)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
        "-set_serial", f"0x{secrets.token_hex(8)}", "-days", "7", "-extfile", ext, "-out", crt,
        cwd=d,
    )  # fmt: skip
    csr.unlink()
    return crt, key


def make_pki(d: Path) -> Pki:
    """A fresh CA and the certificates and keys the API server and its admin need."""
    d.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", "7",
        "-subj", "/CN=nsxkube-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        cwd=d,
    )  # fmt: skip
    leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    serving_cert, serving_key = _signed_cert(
        d,
        "apiserver",
        "/CN=kube-apiserver",
        leaf + "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n",
    )
    admin_cert, admin_key = _signed_cert(
        d, "admin", "/O=system:masters/CN=nsxkube-test-admin", leaf + "extendedKeyUsage=clientAuth\n"
    )
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return Pki(d / "ca.crt", d / "ca.key", serving_cert, serving_key, admin_cert, admin_key,
               d / "sa.key", d / "sa.pub")  # fmt: skip


def write_kubeconfig(path: Path, server: str, pki: Pki, *, user: str = "nsxkube-test-admin") -> Path:
    """An admin kubeconfig with the certificates embedded, readable by its owner only."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "nsxkube-test", "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(pki.admin_cert), "client-key-data": b64(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "nsxkube-test", "context": {"cluster": "nsxkube-test", "user": user}}],
        "current-context": "nsxkube-test",
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    path.chmod(0o600)  # also when the file existed with other bits
    return path


# ---- kubeadm -----------------------------------------------------------------------------


def kubeadm_validate(config_path: str | os.PathLike[str], *, timeout: float = 60.0) -> tuple[bool, str]:
    """``kubeadm config validate --config PATH``: (accepted, kubeadm's output).

    Set ``kubernetesVersion`` in the ClusterConfiguration: without it kubeadm asks the internet
    for the "stable" version, which these machines cannot reach.
    """
    kubeadm = require_binary("kubeadm")
    result = subprocess.run(
        [os.fspath(kubeadm), "config", "validate", "--config", os.fspath(config_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")},
    )
    return result.returncode == 0, (result.stdout + result.stderr).strip()


# ---- the control plane -------------------------------------------------------------------


@dataclass
class KubeControlPlane:
    url: str
    kubeconfig: Path
    ca_file: Path
    client_cert: Path
    client_key: Path
    git_version: str  # the version the binaries were built at, e.g. v1.35.8
    etcd_url: str
    workdir: Path
    client: httpx.Client = field(repr=False)
    startup_seconds: float = 0.0
    etcd_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    apiserver_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _resources: dict[str, list[dict[str, Any]] | None] = field(default_factory=dict, repr=False)

    # -- REST mapping through discovery

    def _group_version_resources(self, api_version: str) -> list[dict[str, Any]] | None:
        if api_version not in self._resources:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            response = self.client.get(path)
            if response.status_code == 404:
                self._resources[api_version] = None
            else:
                response.raise_for_status()
                self._resources[api_version] = response.json().get("resources", [])
        return self._resources[api_version]

    def resource_path(self, api_version: str, kind: str, namespace: str | None = None) -> str | None:
        """The collection path of ``kind`` in ``api_version`` (None when the server has no such kind)."""
        resources = self._group_version_resources(api_version)
        for res in resources or []:
            if res.get("kind") == kind and "/" not in res["name"]:  # not a subresource
                prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
                if res.get("namespaced"):
                    return f"{prefix}/namespaces/{namespace or 'default'}/{res['name']}"
                return f"{prefix}/{res['name']}"
        return None

    def dry_run_create(self, obj: dict[str, Any], *, strict: bool = True) -> tuple[bool, str]:
        """Asks the API server to validate ``obj`` as a create without storing it.

        Returns (True, "<kind> <name>: accepted") or (False, the server's message). ``strict``
        makes unknown or duplicate fields an error (``fieldValidation=Strict``), as they
        should be in rendered manifests.
        """
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not api_version or not kind:
            return False, "object has no apiVersion or kind"
        namespace = (obj.get("metadata") or {}).get("namespace")
        path = self.resource_path(api_version, kind, namespace)
        if path is None:
            return False, f'no matches for kind "{kind}" in version "{api_version}"'
        params = {"dryRun": "All"}
        if strict:
            params["fieldValidation"] = "Strict"
        response = self.client.post(path, params=params, json=obj)
        if response.status_code in (200, 201):
            name = (response.json().get("metadata") or {}).get("name", "")
            return True, f"{kind} {name}: accepted"
        try:
            message = response.json().get("message") or response.text
        except ValueError:
            message = response.text
        return False, f"HTTP {response.status_code}: {message}"

    def kubeadm_validate(self, config_path: str | os.PathLike[str]) -> tuple[bool, str]:
        """``kubeadm config validate --config PATH`` with the kubeadm of the same version."""
        return kubeadm_validate(config_path)

    def stop(self) -> None:
        self.client.close()
        for proc in (self.apiserver_process, self.etcd_process):
            if proc is not None:
                stop_process(proc, timeout=15)


def start_control_plane(workdir: Path, *, timeout: float = 90.0) -> KubeControlPlane:
    """Starts etcd and kube-apiserver on free loopback ports and waits for ``/readyz``."""
    programs = require_binaries("etcd", "kube-apiserver")
    etcd, apiserver = programs["etcd"], programs["kube-apiserver"]
    started = time.monotonic()
    pki = make_pki(workdir / "pki")

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd_log = workdir / "etcd.log"
    etcd_proc = start_process(
        [
            etcd,
            "--name=test",
            f"--data-dir={workdir / 'etcd-data'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            "--unsafe-no-fsync",  # a throw-away store: start and write fast
            "--log-level=warn",
        ],
        log_path=etcd_log,
    )
    api_proc: subprocess.Popen[bytes] | None = None
    client: httpx.Client | None = None
    try:
        _wait_for_etcd(etcd_proc, etcd_url, etcd_log, started + timeout)
        api_log = workdir / "kube-apiserver.log"
        api_proc = start_process(
            [
                apiserver,
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                # no controller-manager makes the "default" ServiceAccounts, which this plugin needs
                "--disable-admission-plugins=ServiceAccount",
                "--profiling=false",
                "--v=1",
            ],
            log_path=api_log,
        )
        ctx = ssl.create_default_context(cafile=pki.ca_cert)
        ctx.load_cert_chain(pki.admin_cert, pki.admin_key)
        url = f"https://127.0.0.1:{api_port}"
        client = httpx.Client(base_url=url, verify=ctx, timeout=30)
        _wait_for_readyz(api_proc, client, api_log, started + timeout)
    except BaseException:
        if client is not None:
            client.close()
        for proc in (api_proc, etcd_proc):
            if proc is not None:
                stop_process(proc)
        raise

    return KubeControlPlane(
        url=url,
        kubeconfig=write_kubeconfig(workdir / "admin.kubeconfig", url, pki),
        ca_file=pki.ca_cert,
        client_cert=pki.admin_cert,
        client_key=pki.admin_key,
        git_version=kubernetes_version(),
        etcd_url=etcd_url,
        workdir=workdir,
        client=client,
        startup_seconds=time.monotonic() - started,
        etcd_process=etcd_proc,
        apiserver_process=api_proc,
    )


def _wait_for_etcd(proc: subprocess.Popen[bytes], url: str, log: Path, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {proc.returncode}:\n{log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{url}/health", timeout=2)
            last = response.text
            if response.status_code == 200 and response.json().get("health") == "true":
                return
        time.sleep(0.05)
    raise RuntimeError(f"etcd at {url} not healthy in time (last answer {last!r}):\n{log_tail(log)}")


def _wait_for_readyz(proc: subprocess.Popen[bytes], client: httpx.Client, log: Path, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kube-apiserver exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = client.get("/readyz", params={"verbose": "1"}, timeout=5)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.1)
    raise RuntimeError(f"kube-apiserver not ready in time; last /readyz:\n{last}\nlog:\n{log_tail(log)}")


@pytest.fixture(scope="session")
def kube_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    """etcd + kube-apiserver for the whole session (see the module docstring)."""
    cp = start_control_plane(tmp_path_factory.mktemp("kube-control-plane"))
    origin = locate_binary("kube-apiserver").origin
    print(f"kube control plane {cp.git_version} ({origin}) at {cp.url}, up in {cp.startup_seconds:.1f} s")
    yield cp
    cp.stop()
