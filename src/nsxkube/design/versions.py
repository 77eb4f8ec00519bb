"""The pinned version set per Kubernetes minor: the one place versions are written down.

Checked 2026-11-25: Kubernetes patches are the newest each minor that the Go module proxy serves for
k8s.io/kubernetes. etcd, pause and CoreDNS per minor are what that kubeadm deploys, read on
2026-11-26 from cmd/kubeadm/app/constants/constants.go of each pinned patch (SupportedEtcdVersion,
else DefaultEtcdVersion; PauseVersion; CoreDNSVersion); a slow test compares them with the real
`kubeadm config images list` of the built version. The rest from the projects' release pages.
Re-check the patch numbers whenever this file is touched.

Helm releases are pinned by their chart version (what `helm --version` takes), with the application
version that chart ships beside it for the docs; CHART_CHECKS says where each pair was read. Checked
2026-12-06 in the charts' published repository indexes (index.yaml), or the chart's release tag
where the index is not in git.
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
    """MetalLB's chart version, which is also its application version."""
    gateway_api: str
    metrics_server: str
    """The metrics-server application version, shipped by chart ``metrics_server_chart``."""
    metrics_server_chart: str
    kube_prometheus_stack: str
    """kube-prometheus-stack's chart version; it ships prometheus-operator ``prometheus_operator``."""
    prometheus_operator: str
    velero: str
    """The Velero application version, shipped by chart ``velero_chart``."""
    velero_chart: str
    velero_plugin_aws: str
    ingress_nginx: str
    """ingress-nginx's chart version; it ships controller ``ingress_nginx_controller``."""
    ingress_nginx_controller: str

    @property
    def package_repo(self) -> str:
        """The per-minor apt repository of kubeadm, kubelet and kubectl."""
        return f"https://pkgs.k8s.io/core:/stable:/v{self.kubernetes_minor}/deb/"


# Where each Helm chart pin (chart version → application version) was checked, by release name.
CHART_CHECKS: dict[str, str] = {
    "cilium": "helm.cilium.io index.yaml (github.com/cilium/charts), chart 1.20.0 published 2026-07-29",
    "metallb": "metallb.github.io/metallb index.yaml (gh-pages of metallb/metallb), 0.16.1 published 2026-05-27",
    "ingress-nginx": "kubernetes.github.io/ingress-nginx index.yaml (gh-pages), 4.13.9 published 2026-03-19, "
                     "the last of the line before the repository was archived",
    "metrics-server": "kubernetes-sigs.github.io/metrics-server index.yaml (gh-pages), 3.13.0 published 2025-07-22",
    "kube-prometheus-stack": "prometheus-community/helm-charts tag kube-prometheus-stack-88.0.0, Chart.yaml "
                             "(2026-07-31)",
    "velero": "vmware-tanzu.github.io/helm-charts index.yaml (gh-pages), 12.1.0 published 2026-06-25",
}


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
        cilium="1.20.0",
        cilium_cli="v0.19.0",
        vsphere_cpi=f"1.{minor_number}.0",
        vsphere_csi=minor.vsphere_csi,
        metallb="0.16.1",
        gateway_api="v1.6.3",
        metrics_server="0.8.0",
        metrics_server_chart="3.13.0",
        kube_prometheus_stack="88.0.0",
        prometheus_operator="v0.93.0",
        velero="1.18.1",
        velero_chart="12.1.0",
        velero_plugin_aws="1.14.3",
        ingress_nginx="4.13.9",
        ingress_nginx_controller="1.13.9",
    )
    return versions, problems


def _patch_number(version: str) -> int:
    return int(version.rsplit(".", 1)[1])
