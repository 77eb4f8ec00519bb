"""The pinned version set per Kubernetes minor: the one place versions are written down.

Checked 2026-11-25: Kubernetes patches are the newest each minor that the Go module proxy serves for
k8s.io/kubernetes. etcd, pause and CoreDNS per minor are what that kubeadm deploys, read on
2026-11-26 from cmd/kubeadm/app/constants/constants.go of each pinned patch (SupportedEtcdVersion,
else DefaultEtcdVersion; PauseVersion; CoreDNSVersion); a slow test compares them with the real
`kubeadm config images list` of the built version. The rest from the projects' release pages.
Re-check the patch numbers whenever this file is touched.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from nsxkube.spec.problems import Problem


@dataclass(frozen=True)
class Minor:
    minor: str
    newest_patch: str
    end_of_life: dt.date
    vsphere_csi: str
    etcd: str
    """The etcd kubeadm deploys for this minor (image tag without its "-0"): etcdctl/etcdutl match it."""
    pause: str
    coredns: str
    csi_tested: bool
    cilium_tested: bool


# Newest first is not required; lookups are by minor.
MINORS: dict[str, Minor] = {
    "1.34": Minor("1.34", "1.34.12", dt.date(2026, 10, 27), "3.7.0", "v3.6.5", "3.10.1", "v1.12.1",
                   csi_tested=True, cilium_tested=True),
    "1.35": Minor("1.35", "1.35.8", dt.date(2027, 2, 28), "3.7.0", "v3.6.6", "3.10.1", "v1.13.1",
                   csi_tested=True, cilium_tested=True),
    "1.36": Minor("1.36", "1.36.5", dt.date(2027, 6, 28), "3.7.0", "v3.6.8", "3.10.2", "v1.14.2",
                   csi_tested=False, cilium_tested=True),
    "1.37": Minor("1.37", "1.37.2", dt.date(2027, 10, 28), "3.7.0", "v3.7.0", "3.10.2", "v1.14.6",
                   csi_tested=False, cilium_tested=False),
}
DEFAULT_MINOR = "1.35"
# The day the support table above was checked: the design never reads the clock.
CATALOGUE_DATE = dt.date(2026, 11, 25)


@dataclass(frozen=True)
class VersionSet:
    """Everything nsxkube installs, pinned for one Kubernetes version."""

    kubernetes: str
    kubernetes_minor: str
    kubeadm_api: str
    etcd: str
    pause: str
    coredns: str
    containerd: str
    kube_vip: str
    cilium: str
    cilium_cli: str
    vsphere_cpi: str
    vsphere_csi: str
    metallb: str
    gateway_api: str
    metrics_server: str
    kube_prometheus_stack: str
    velero: str
    velero_plugin_aws: str
    ingress_nginx: str

    @property
    def package_repo(self) -> str:
        """The per-minor apt repository of kubeadm, kubelet and kubectl."""
        return f"https://pkgs.k8s.io/core:/stable:/v{self.kubernetes_minor}/deb/"


def resolve_versions(requested: str) -> tuple[VersionSet | None, list[Problem]]:
    """Turn ``kubernetes.version`` (``1.35`` or ``1.35.2``) into a pinned set, with findings."""
    text = requested.lstrip("v")
    match = re.fullmatch(r"1\.(\d+)(?:\.(\d+))?", text)
    supported = ", ".join(sorted(MINORS))
    if not match:
        return None, [Problem("kubernetes.version", f"{requested!r} is not a version", hint=f"use one of {supported}")]
    minor_key = f"1.{match.group(1)}"
    minor = MINORS.get(minor_key)
    if minor is None:
        return None, [
            Problem(
                "kubernetes.version",
                f"Kubernetes {minor_key} is not supported",
                hint=f"supported minors: {supported} (default {DEFAULT_MINOR})",
            )
        ]
    patch = text if match.group(2) is not None else minor.newest_patch
    problems: list[Problem] = []
    if _patch_number(patch) > _patch_number(minor.newest_patch):
        problems.append(
            Problem(
                "kubernetes.version",
                f"{patch} is newer than the newest patch nsxkube knows for {minor_key} ({minor.newest_patch})",
                severity="warning",
                hint="it will be installed as asked; nsxkube's add-on pins were checked against the known patch",
            )
        )
    if minor.end_of_life <= CATALOGUE_DATE:
        problems.append(
            Problem(
                "kubernetes.version",
                f"Kubernetes {minor_key} reached end of life on {minor.end_of_life.isoformat()}",
                severity="warning",
                hint=f"prefer {DEFAULT_MINOR} or newer; no security patches come for {minor_key}",
            )
        )
    if not minor.csi_tested:
        problems.append(
            Problem(
                "kubernetes.version",
                f"vSphere CSI {minor.vsphere_csi} is not tested upstream on Kubernetes {minor_key}",
                severity="warning",
                hint=f"{DEFAULT_MINOR} is the newest minor the CSI driver supports",
            )
        )
    if not minor.cilium_tested:
        problems.append(
            Problem(
                "kubernetes.version",
                f"Cilium 1.20 is not tested upstream on Kubernetes {minor_key}",
                severity="warning",
            )
        )
    minor_number = int(match.group(1))
    versions = VersionSet(
        kubernetes=patch,
        kubernetes_minor=minor_key,
        kubeadm_api="kubeadm.k8s.io/v1beta4",
        etcd=minor.etcd,
        pause=minor.pause,
        coredns=minor.coredns,
        containerd="2.4.2",
        kube_vip="v1.2.3",
        cilium="1.20.2",
        cilium_cli="v0.19.0",
        vsphere_cpi=f"1.{minor_number}.0",
        vsphere_csi=minor.vsphere_csi,
        metallb="0.16.2",
        gateway_api="v1.6.3",
        metrics_server="0.9.0",
        kube_prometheus_stack="88.0.0",
        velero="1.18.3",
        velero_plugin_aws="1.14.3",
        ingress_nginx="4.13.3",
    )
    return versions, problems


def _patch_number(version: str) -> int:
    return int(version.rsplit(".", 1)[1])
