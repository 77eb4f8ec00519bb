"""Where each add-on comes from and at which version, from ``design.versions``.

Helm needs a chart version. Some components are pinned in the version set by their chart
version (the chart and the app share it, or the chart is what upstream releases); others only
by their app version, and the chart that ships it is looked up at install time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    CSI_NAMESPACE,
    INGRESS_NGINX_NAMESPACE,
    METALLB_NAMESPACE,
    MONITORING_NAMESPACE,
    VELERO_NAMESPACE,
)

Pin = Literal["chart", "chart = app", "app"]


@dataclass(frozen=True)
class HelmChart:
    release: str
    namespace: str
    repo_name: str
    repo_url: str
    chart: str
    version: str
    pin: Pin
    values: str | None

    @property
    def reference(self) -> str:
        return f"{self.repo_name}/{self.chart}"

    @property
    def version_argument(self) -> str:
        """The value of ``helm --version``: the pin itself, or a lookup of the chart shipping the app."""
        if self.pin != "app":
            return self.version
        app = self.version.lstrip("v")
        return (f'"$(helm search repo {self.reference} --versions -o json | jq -r '
                f"'[.[] | select(.app_version == \"{app}\" or .app_version == \"v{app}\")][0].version')\"")

    def install_command(self) -> str:
        values = f" \\\n  -f {self.values}" if self.values else ""
        return (f"helm upgrade --install {self.release} {self.reference} --namespace {self.namespace} "
                "--create-namespace \\\n"
                f"  --version {self.version_argument}{values}")


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    url: str
    note: str


def helm_charts(design: Design) -> tuple[HelmChart, ...]:
    """The Helm releases this cluster needs, in install order."""
    v, addons = design.versions, design.spec.addons
    charts = [HelmChart("cilium", "kube-system", "cilium", "https://helm.cilium.io/", "cilium", v.cilium,
                        "chart = app", paths.CILIUM_VALUES)]
    if addons.loadbalancer.provider == "metallb":
        charts.append(HelmChart("metallb", METALLB_NAMESPACE, "metallb", "https://metallb.github.io/metallb",
                                "metallb", v.metallb, "chart = app", None))
    if addons.ingress.controller == "ingress-nginx":
        charts.append(HelmChart("ingress-nginx", INGRESS_NGINX_NAMESPACE, "ingress-nginx",
                                "https://kubernetes.github.io/ingress-nginx", "ingress-nginx", v.ingress_nginx,
                                "chart", paths.INGRESS_NGINX_VALUES))
    if addons.metrics_server.enabled:
        charts.append(HelmChart("metrics-server", "kube-system", "metrics-server",
                                "https://kubernetes-sigs.github.io/metrics-server/", "metrics-server",
                                v.metrics_server, "app", paths.METRICS_SERVER_VALUES))
    if addons.monitoring.enabled:
        charts.append(HelmChart("kube-prometheus-stack", MONITORING_NAMESPACE, "prometheus-community",
                                "https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack",
                                v.kube_prometheus_stack, "chart", paths.KUBE_PROMETHEUS_STACK_VALUES))
    if addons.backups.velero.enabled:
        charts.append(HelmChart("velero", VELERO_NAMESPACE, "vmware-tanzu", "https://vmware-tanzu.github.io/helm-charts",
                                "velero", v.velero, "app", paths.VELERO_VALUES))
    return tuple(charts)


def manifests(design: Design) -> tuple[Manifest, ...]:
    """Upstream manifests applied with kubectl, at the versions of the design."""
    v, addons = design.versions, design.spec.addons
    items = []
    if addons.gateway_api.enabled:
        items.append(Manifest("Gateway API CRDs (standard channel)", v.gateway_api,
                              f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{v.gateway_api}/"
                              "standard-install.yaml",
                              "apply server-side before Cilium so that Cilium's Gateway API controller starts"))
    items.append(Manifest("vSphere CPI", f"release line v{v.kubernetes_minor} (pin {v.vsphere_cpi})",
                          "https://raw.githubusercontent.com/kubernetes/cloud-provider-vsphere/master/releases/"
                          f"v{v.kubernetes_minor}/vsphere-cloud-controller-manager.yaml",
                          "its example Secret and ConfigMap are skipped with a label selector; ours are used"))
    if addons.storage.enabled:
        items.append(Manifest("vSphere CSI", f"v{v.vsphere_csi}",
                              "https://raw.githubusercontent.com/kubernetes-sigs/vsphere-csi-driver/"
                              f"v{v.vsphere_csi}/manifests/vanilla/vsphere-csi-driver.yaml",
                              f"namespace {CSI_NAMESPACE}; install after every node has a ProviderID"))
        if addons.backups.velero.enabled:
            items.append(Manifest("CSI snapshot controller and CRDs", f"as shipped with vSphere CSI v{v.vsphere_csi}",
                                  "https://raw.githubusercontent.com/kubernetes-sigs/vsphere-csi-driver/"
                                  f"v{v.vsphere_csi}/manifests/vanilla/deploy-csi-snapshot-components.sh",
                                  "Velero's CSI snapshots need the snapshot controller"))
    items.append(Manifest("cilium-cli", v.cilium_cli,
                          f"https://github.com/cilium/cilium-cli/releases/download/{v.cilium_cli}/"
                          "cilium-linux-amd64.tar.gz", "`cilium status` and `cilium connectivity test`"))
    return tuple(items)


def render_versions_doc(design: Design) -> str:
    """``addons/versions.md``: every chart and manifest with its version and what kind of pin it is."""
    v = design.versions
    lines = [
        f"# Add-on versions for {design.name} (Kubernetes {v.kubernetes})",
        "",
        "Generated by nsxkube from its version set; change versions there, not here.",
        "",
        "## Helm charts",
        "",
        "| release | chart | repository | version | pinned as | namespace | values |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in helm_charts(design):
        lines.append(f"| {c.release} | `{c.reference}` | {c.repo_url} | {c.version} | {_pin_text(c.pin)} "
                     f"| {c.namespace} | {f'`{c.values}`' if c.values else 'chart defaults'} |")
    lines += [
        "",
        "*chart = app*: the chart version and the application version are the same number.",
        "*chart*: the number is the chart's own version (the application version differs).",
        "*app*: nsxkube pins the application version only; install the newest chart whose appVersion",
        "is that number (the runbook's `helm` command looks it up with `helm search repo ... -o json`).",
        "",
        "## Manifests",
        "",
        "| component | version | source | note |",
        "|---|---|---|---|",
    ]
    for m in manifests(design):
        lines.append(f"| {m.name} | {m.version} | {m.url} | {m.note} |")
    lines += [
        "",
        "## Other pins",
        "",
        f"- kube-vip {v.kube_vip}, containerd {v.containerd}, kubeadm API `{v.kubeadm_api}`",
        f"- Velero AWS (S3) plugin {v.velero_plugin_aws}" if design.spec.addons.backups.velero.enabled else
        f"- Velero AWS (S3) plugin {v.velero_plugin_aws} (Velero is disabled for this cluster)",
        f"- kubeadm, kubelet, kubectl {v.kubernetes} from {v.package_repo}",
        "",
    ]
    return "\n".join(lines)


def _pin_text(pin: Pin) -> str:
    return {"chart": "chart", "chart = app": "chart = app", "app": "app only"}[pin]
