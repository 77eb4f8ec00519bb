"""Where each add-on comes from and at which version, from ``design.versions``.

Every Helm release is pinned by its chart version, the number ``helm --version`` takes; the
application version that chart ships is written beside it for people. Nothing is looked up at
install time: the runbook installs exactly the charts listed here, from where ``addons.charts``
says charts come from (the projects' public repositories, a directory of chart archives, or an
OCI registry).
"""

from __future__ import annotations

from dataclasses import dataclass

from nsxkube.design import Design
from nsxkube.design.versions import CHART_CHECKS
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    CSI_NAMESPACE,
    INGRESS_NGINX_NAMESPACE,
    METALLB_NAMESPACE,
    MONITORING_NAMESPACE,
    VELERO_NAMESPACE,
)


@dataclass(frozen=True)
class ChartSource:
    """Where charts come from: ``public`` (each chart's own repository), ``directory`` or ``oci``."""

    kind: str
    location: str = ""

    @classmethod
    def of(cls, design: Design) -> ChartSource:
        charts = design.spec.addons.charts
        if charts.directory is not None:
            return cls("directory", str(charts.directory).rstrip("/") or "/")
        if charts.oci is not None:
            return cls("oci", charts.oci.rstrip("/"))
        return cls("public")


@dataclass(frozen=True)
class HelmChart:
    release: str
    namespace: str
    repo_name: str
    repo_url: str
    chart: str
    version: str
    """The chart version: what ``helm --version`` takes."""
    app_version: str
    """The application version the chart ships (docs only)."""
    values: str | None
    source: ChartSource = ChartSource("public")

    @property
    def archive(self) -> str:
        """The file name ``helm pull`` writes for this chart and version."""
        return f"{self.chart}-{self.version}.tgz"

    @property
    def reference(self) -> str:
        """What ``helm upgrade --install`` installs: repo/chart, a chart archive, or an OCI reference."""
        if self.source.kind == "directory":
            return f"{self.source.location}/{self.archive}"
        if self.source.kind == "oci":
            return f"{self.source.location}/{self.chart}"
        return f"{self.repo_name}/{self.chart}"

    @property
    def where(self) -> str:
        """Where this chart is read from, for the docs."""
        return {"directory": f"directory {self.source.location}", "oci": self.source.location}.get(
            self.source.kind, self.repo_url)

    def repo_command(self) -> str | None:
        """The ``helm repo add`` a public repository needs first; None for archives and OCI."""
        if self.source.kind != "public":
            return None
        return f"helm repo add {self.repo_name} {self.repo_url} && helm repo update {self.repo_name}"

    def install_command(self) -> str:
        values = f" \\\n  -f {self.values}" if self.values else ""
        # An archive is one version already (its file name says which); helm applies --version to repositories.
        version = "" if self.source.kind == "directory" else f" \\\n  --version {self.version}"
        return (f"helm upgrade --install {self.release} {self.reference} --namespace {self.namespace} "
                f"--create-namespace{version}{values}")


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    url: str
    note: str


def helm_charts(design: Design) -> tuple[HelmChart, ...]:
    """The Helm releases this cluster needs, in install order."""
    return tuple(chart for enabled, chart in _catalogue(design) if enabled)


def _catalogue(design: Design) -> list[tuple[bool, HelmChart]]:
    """Every Helm release nsxkube can install, pinned, and whether this cluster needs it."""
    v, addons = design.versions, design.spec.addons
    source = ChartSource.of(design)
    return [
        (True, HelmChart("cilium", "kube-system", "cilium", "https://helm.cilium.io/", "cilium", v.cilium, v.cilium,
                         paths.CILIUM_VALUES, source)),
        (addons.loadbalancer.provider == "metallb",
         HelmChart("metallb", METALLB_NAMESPACE, "metallb", "https://metallb.github.io/metallb", "metallb", v.metallb,
                   f"v{v.metallb}", None, source)),
        (addons.ingress.controller == "ingress-nginx",
         HelmChart("ingress-nginx", INGRESS_NGINX_NAMESPACE, "ingress-nginx", "https://kubernetes.github.io/ingress-nginx",
                   "ingress-nginx", v.ingress_nginx, v.ingress_nginx_controller, paths.INGRESS_NGINX_VALUES, source)),
        (addons.metrics_server.enabled,
         HelmChart("metrics-server", "kube-system", "metrics-server", "https://kubernetes-sigs.github.io/metrics-server/",
                   "metrics-server", v.metrics_server_chart, v.metrics_server, paths.METRICS_SERVER_VALUES, source)),
        (addons.monitoring.enabled,
         HelmChart("kube-prometheus-stack", MONITORING_NAMESPACE, "prometheus-community",
                   "https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack",
                   v.kube_prometheus_stack, v.prometheus_operator, paths.KUBE_PROMETHEUS_STACK_VALUES, source)),
        (addons.backups.velero.enabled,
         HelmChart("velero", VELERO_NAMESPACE, "vmware-tanzu", "https://vmware-tanzu.github.io/helm-charts", "velero",
                   v.velero_chart, v.velero, paths.VELERO_VALUES, source)),
    ]


def manifests(design: Design) -> tuple[Manifest, ...]:
    """Upstream manifests applied with kubectl, at the versions of the design."""
    v, addons = design.versions, design.spec.addons
    items = []
    if addons.gateway_api.enabled:
        items.append(Manifest("Gateway API CRDs (standard channel)", v.gateway_api,
                              f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{v.gateway_api}/"
                              "standard-install.yaml",
                              "apply server-side before Cilium so that Cilium's Gateway API controller starts"))
    # The tag, not master: master's copy can move to another image at any time.
    items.append(Manifest("vSphere CPI", f"v{v.vsphere_cpi}",
                          f"https://raw.githubusercontent.com/kubernetes/cloud-provider-vsphere/v{v.vsphere_cpi}/"
                          f"releases/v{v.kubernetes_minor}/vsphere-cloud-controller-manager.yaml",
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
        "| release | chart | from | chart version | app version | namespace | values |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in helm_charts(design):
        lines.append(f"| {c.release} | `{c.reference}` | {c.where} | {c.version} | {c.app_version} "
                     f"| {c.namespace} | {f'`{c.values}`' if c.values else 'chart defaults'} |")
    lines += [
        "",
        "Every release is pinned by its chart version, the number `helm --version` takes; the application",
        "version is the one that chart ships. Nothing is looked up when installing.",
        "",
        *_not_installed(design),
        "| chart | chart version | app version | where the pin was checked |",
        "|---|---|---|---|",
        *(f"| {c.chart} | {c.version} | {c.app_version} | {CHART_CHECKS[c.release]} |" for _, c in _catalogue(design)),
        "",
        *_mirror_instructions(design),
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


def _not_installed(design: Design) -> list[str]:
    off = [c for enabled, c in _catalogue(design) if not enabled]
    if not off:
        return []
    return [f"Not installed in this cluster (switched off in `addons`): {', '.join(c.release for c in off)}; "
            "their pins are listed below all the same.", ""]


def _mirror_instructions(design: Design) -> list[str]:
    """How to fill the chart directory or OCI registry of ``addons.charts`` from a connected machine."""
    source = ChartSource.of(design)
    if source.kind == "public":
        return []
    charts = helm_charts(design)
    public = [HelmChart(c.release, c.namespace, c.repo_name, c.repo_url, c.chart, c.version, c.app_version, None)
              for c in charts]
    lines = [f"Charts come from {charts[0].where} (`addons.charts`). Fill it on a machine with internet access:", "",
             "```bash"]
    for c in public:
        lines.append(f"{c.repo_command()} && helm pull {c.reference} --version {c.version}")
        if source.kind == "directory":
            lines.append(f"  # then copy {c.archive} into {source.location}/")
        else:
            lines.append(f"helm push {c.archive} {source.location}")
    return [*lines, "```", "", "`nsxkube check` verifies that every chart above is there when it can reach the source.", ""]
