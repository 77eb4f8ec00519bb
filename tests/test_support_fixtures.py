"""The test fixtures that run real programs: vcsim, etcd + kube-apiserver, kubeadm.

They need the Go-built programs of programs/build.sh and skip with the build's reason without
them. The fast tests at the top check the lookup and certificate helpers themselves.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import binaries
from tests.support.binaries import locate_binary, require_binary, versions
from tests.support.kube_control_plane import KubeControlPlane, kubeadm_validate, make_pki, write_kubeconfig
from tests.support.vcsim import Vcsim

# Registers the fixtures for this module when tests/conftest.py does not list them yet;
# registering the same plugin module twice is a no-op.
pytest_plugins = ["tests.support.binaries", "tests.support.vcsim", "tests.support.kube_control_plane"]


# ---- fast: the lookup of programs --------------------------------------------------------


def test_versions_file_pins_kubernetes_1_35_and_etcd_3_6() -> None:
    pinned = versions()
    assert pinned["KUBERNETES_VERSION"].startswith("v1.35.")
    assert pinned["ETCD_VERSION"].startswith("v3.6.")
    assert pinned["GOVMOMI_VERSION"].startswith("v0.")


def test_a_recorded_build_failure_is_the_skip_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(tmp_path))
    monkeypatch.delenv("NSXKUBE_REQUIRE_TEST_BIN", raising=False)
    kube_dir = tmp_path / f"kubernetes-{versions()['KUBERNETES_VERSION']}"
    kube_dir.mkdir()
    (kube_dir / "kube-apiserver.failed").write_text("go: k8s.io/api@v0.35.8: 403 Forbidden (log: x)\n")

    program = locate_binary("kube-apiserver")
    assert program.path is None
    assert program.reason == "kube-apiserver not built: go: k8s.io/api@v0.35.8: 403 Forbidden (log: x)"
    with pytest.raises(pytest.skip.Exception, match=r"kube-apiserver not built: go: k8s.io/api"):
        require_binary("kube-apiserver")

    # nothing recorded at all: the reason says how to build it
    assert "run programs/build.sh kubeadm" in (locate_binary("kubeadm").reason or "")

    monkeypatch.setenv("NSXKUBE_REQUIRE_TEST_BIN", "1")
    with pytest.raises(pytest.fail.Exception, match="kube-apiserver not built"):
        require_binary("kube-apiserver")


def test_vcsim_skip_reason_names_both_failed_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(tmp_path))
    module_dir = tmp_path / f"govmomi-{versions()['GOVMOMI_VERSION']}"
    debian_dir = tmp_path / f"govmomi-{versions()['GOVMOMI_DEBIAN_VERSION']}-debian"
    module_dir.mkdir()
    debian_dir.mkdir()
    (module_dir / "vcsim.failed").write_text("proxy: 403\n")
    (debian_dir / "vcsim.failed").write_text("package not installed\n")
    assert locate_binary("vcsim").reason == "vcsim not built: proxy: 403; fallback: package not installed"


def test_prebuilt_program_at_the_top_wins_over_a_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(tmp_path))
    built_dir = tmp_path / f"govmomi-{versions()['GOVMOMI_VERSION']}"
    built_dir.mkdir()
    for path in (built_dir / "vcsim", tmp_path / "vcsim"):
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (built_dir / "vcsim.source").write_text("govmomi v9 (Go module)\nbuilt ...\n")
    assert require_binary("vcsim") == tmp_path / "vcsim"
    assert locate_binary("vcsim").origin == f"prebuilt in {tmp_path}"

    (tmp_path / "vcsim").unlink()
    program = locate_binary("vcsim")
    assert (program.path, program.origin) == (built_dir / "vcsim", "govmomi v9 (Go module)")

    # the Debian fallback is used when the module build is missing
    (built_dir / "vcsim").unlink()
    debian_dir = tmp_path / f"govmomi-{versions()['GOVMOMI_DEBIAN_VERSION']}-debian"
    debian_dir.mkdir()
    (debian_dir / "vcsim").write_text("#!/bin/sh\n")
    (debian_dir / "vcsim").chmod(0o755)
    (debian_dir / "vcsim.source").write_text("govmomi 0.24.2 (Debian fallback)\n")
    assert locate_binary("vcsim").origin == "govmomi 0.24.2 (Debian fallback)"


def test_unknown_program_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown program"):
        locate_binary("kube-router")


def test_gen_replace_lists_every_staging_module(tmp_path: Path) -> None:
    gomod = tmp_path / "go.mod"
    gomod.write_text(
        textwrap.dedent(
            """\
            module k8s.io/kubernetes

            go 1.25.0

            require k8s.io/api v0.0.0

            replace k8s.io/single => ./staging/src/k8s.io/single

            replace (
            \tk8s.io/api => ./staging/src/k8s.io/api
            \tk8s.io/client-go => ./staging/src/k8s.io/client-go
            \tgithub.com/other/mod => github.com/fork/mod v1.2.3
            )
            """
        )
    )
    result = subprocess.run(
        [binaries.REPO_ROOT / "programs/gen-replace.sh", gomod, "v0.35.8"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.splitlines() == [
        "replace k8s.io/single => k8s.io/single v0.35.8",
        "replace k8s.io/api => k8s.io/api v0.35.8",
        "replace k8s.io/client-go => k8s.io/client-go v0.35.8",
    ]


def test_pki_and_kubeconfig(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    admin = subprocess.run(
        ["openssl", "x509", "-in", pki.admin_cert, "-noout", "-subject", "-ext", "extendedKeyUsage"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "O = system:masters" in admin and "TLS Web Client Authentication" in admin
    serving = subprocess.run(
        ["openssl", "x509", "-in", pki.serving_cert, "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "IP Address:127.0.0.1" in serving
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", pki.ca_cert, pki.serving_cert, pki.admin_cert],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr

    kubeconfig = write_kubeconfig(tmp_path / "admin.kubeconfig", "https://127.0.0.1:1", pki)
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"
    assert config["current-context"] == "nsxkube-test"


# ---- slow: vcsim -------------------------------------------------------------------------


@pytest.mark.slow
def test_vcsim_login_lists_hosts_and_rejects_a_wrong_password(vcsim: Vcsim) -> None:
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    print(f"vcsim: {vcsim.origin}, up in {vcsim.startup_seconds:.2f} s")
    # the simulator's certificate is self-signed: only this test skips verification
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password + "x",
                     disableSslCertValidation=True)  # fmt: skip

    si = SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password,
                      disableSslCertValidation=True)  # fmt: skip
    try:
        content = si.RetrieveContent()
        assert content.about.apiType == "VirtualCenter"
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
        clusters = list(view.view)
        view.Destroy()
        assert [len(c.host) for c in clusters] == [3]
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        hosts = sorted(h.name for h in view.view)
        view.Destroy()
        assert len(hosts) == 3, hosts  # no standalone host
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        assert list(view.view) == []
        view.Destroy()
    finally:
        Disconnect(si)


@pytest.mark.slow
def test_vcsim_thumbprints_are_those_of_the_served_certificate(vcsim: Vcsim) -> None:
    import hashlib

    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate((vcsim.host, vcsim.port)))
    expected = hashlib.sha256(der).hexdigest().upper()
    assert vcsim.thumbprint_sha256.replace(":", "") == expected
    assert len(vcsim.thumbprint_sha256.split(":")) == 32
    assert vcsim.thumbprint_sha1.replace(":", "") == hashlib.sha1(der).hexdigest().upper()


@pytest.mark.slow
def test_vcsim_factory_sizes_and_stops(vcsim_factory) -> None:  # type: ignore[no-untyped-def]
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    sim = vcsim_factory(clusters=2, hosts_per_cluster=2, vms=1)
    si = SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password,
                      disableSslCertValidation=True)  # fmt: skip
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
        assert len(view.view) == 4
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        assert len(view.view) == 2  # one per cluster's resource pool
    finally:
        Disconnect(si)

    assert sim.stop() is not None
    assert sim.process.poll() is not None
    with pytest.raises(OSError), socket.create_connection((sim.host, sim.port), timeout=2):
        pass


# ---- slow: the Kubernetes control plane --------------------------------------------------


@pytest.mark.slow
def test_api_server_reports_the_built_version(kube_control_plane: KubeControlPlane) -> None:
    version = kube_control_plane.client.get("/version").json()
    assert version["gitVersion"] == kube_control_plane.git_version == versions()["KUBERNETES_VERSION"]
    assert (version["major"], version["minor"]) == ("1", "35")
    # the admin kubeconfig points at the same server with a working admin identity
    config = yaml.safe_load(kube_control_plane.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube_control_plane.url
    assert stat.S_IMODE(kube_control_plane.kubeconfig.stat().st_mode) == 0o600
    review = kube_control_plane.client.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    user = review.json()["status"]["userInfo"]
    assert user["username"] == "nsxkube-test-admin"
    assert "system:masters" in user["groups"]
    # without the client certificate the server refuses
    trust_only = ssl.create_default_context(cafile=kube_control_plane.ca_file)
    anonymous = httpx.get(f"{kube_control_plane.url}/api/v1/namespaces", verify=trust_only)
    assert anonymous.status_code in (401, 403)


@pytest.mark.slow
def test_dry_run_create_accepts_a_valid_configmap_and_stores_nothing(
    kube_control_plane: KubeControlPlane,
) -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "vsphere-cloud-config", "namespace": "kube-system"},
        "data": {"vsphere.conf": "global:\n  port: 443\n"},
    }
    ok, message = kube_control_plane.dry_run_create(cm)
    assert ok, message
    assert message == "ConfigMap vsphere-cloud-config: accepted"
    stored = kube_control_plane.client.get("/api/v1/namespaces/kube-system/configmaps/vsphere-cloud-config")
    assert stored.status_code == 404  # dry run: nothing was written


@pytest.mark.slow
def test_dry_run_create_returns_the_servers_validation_message(kube_control_plane: KubeControlPlane) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "no-selector", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "registry.example/x:1"}]},
            },
        },
    }
    ok, message = kube_control_plane.dry_run_create(deployment)
    assert not ok
    assert "spec.selector: Required value" in message, message

    typo = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t"}, "dta": {"a": "b"}}
    ok, message = kube_control_plane.dry_run_create(typo)
    assert not ok
    assert 'unknown field "dta"' in message, message

    ok, message = kube_control_plane.dry_run_create({"apiVersion": "example.com/v1", "kind": "Nope"})
    assert (ok, message) == (False, 'no matches for kind "Nope" in version "example.com/v1"')


def _kubeadm_config(tmp_path: Path, pod_subnet: str) -> Path:
    docs = [
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "InitConfiguration",
            "localAPIEndpoint": {"advertiseAddress": "10.0.0.10", "bindPort": 6443},
            "nodeRegistration": {
                "name": "cp-1",
                "kubeletExtraArgs": [{"name": "cloud-provider", "value": "external"}],
            },
        },
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "ClusterConfiguration",
            "kubernetesVersion": versions()["KUBERNETES_VERSION"],
            "controlPlaneEndpoint": "10.0.0.5:6443",
            "networking": {"podSubnet": pod_subnet, "serviceSubnet": "10.96.0.0/12"},
        },
    ]
    path = tmp_path / "kubeadm.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


@pytest.mark.slow
def test_kubeadm_config_validate_accepts_a_valid_config_and_rejects_a_bad_one(tmp_path: Path) -> None:
    ok, output = kubeadm_validate(_kubeadm_config(tmp_path, "10.244.0.0/16"))
    assert ok, output

    ok, output = kubeadm_validate(_kubeadm_config(tmp_path, "10.244.0.0/33"))
    assert not ok
    assert "podSubnet" in output, output


@pytest.mark.slow
def test_kubeadm_validate_through_the_control_plane_object(
    kube_control_plane: KubeControlPlane, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                               "kubernetesVersion": versions()["KUBERNETES_VERSION"], "networkin": {}}))  # fmt: skip
    ok, output = kube_control_plane.kubeadm_validate(bad)
    assert not ok
    assert "networkin" in output, output


def test_processes_do_not_outlive_the_test_process(tmp_path: Path) -> None:
    """start_process ties a server to the test process: killing that one ends the server."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            import os, sys, time
            sys.path.insert(0, {str(binaries.REPO_ROOT)!r})
            from pathlib import Path
            from tests.support.binaries import start_process
            p = start_process(["sleep", "60"], log_path=Path({str(tmp_path / "log")!r}))
            print(p.pid, flush=True)
            time.sleep(60)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        # the child may linger as a zombie of init for a moment
        with open(f"/proc/{child_pid}/stat") as f:
            if f.read().split()[2] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"child {child_pid} still runs after its parent was killed")
