"""metrics-server and kube-prometheus-stack values."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    MONITORING_NAMESPACE,
    has_mirror,
    manifest_file,
    mirrored,
    owned_namespace,
    yaml_file,
)
from nsxkube.render.files import RenderedFile

METRICS_SERVER_IMAGE = "registry.k8s.io/metrics-server/metrics-server"
GRAFANA_ADMIN_SECRET = "grafana-admin"
# Where kubeadm's control-plane components serve metrics (bind addresses set in kubeadm/init.yaml).
ETCD_METRICS_PORT = 2381
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259


def metrics_server_values(design: Design) -> dict[str, Any]:
    values: dict[str, Any] = {
        "replicas": 2 if len(design.ip_plan.nodes) > 1 else 1,
        "podDisruptionBudget": {"enabled": len(design.ip_plan.nodes) > 1, "minAvailable": 1},
    }
    if has_mirror(design, METRICS_SERVER_IMAGE):
        values["image"] = {"repository": mirrored(design, METRICS_SERVER_IMAGE)}
    return values


def _control_plane_component(design: Design, port: int, https: bool) -> dict[str, Any]:
    component: dict[str, Any] = {
        "enabled": True,
        # Static pods on the control planes: scrape them by node address.
        "endpoints": [str(n.address) for n in design.ip_plan.control_planes],
        "service": {"enabled": True, "port": port, "targetPort": port},
    }
    if https:
        # kubeadm's controller-manager and scheduler serve a self-signed certificate made at start-up;
        # the scrape still authenticates with Prometheus' service account token.
        component["serviceMonitor"] = {"https": True, "insecureSkipVerify": True}
    else:
        component["serviceMonitor"] = {"scheme": "http"}
    return component


def kube_prometheus_stack_values(design: Design) -> dict[str, Any]:
    addons = design.spec.addons
    monitoring = addons.monitoring
    prometheus_spec: dict[str, Any] = {
        "retention": monitoring.retention,
        # Pick up ServiceMonitors and PodMonitors of every release, not only this chart's.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
    }
    if addons.storage.enabled:
        prometheus_spec["storageSpec"] = {"volumeClaimTemplate": {"spec": {
            "storageClassName": addons.storage.class_name,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{monitoring.storage_gib}Gi"}},
        }}}
    values: dict[str, Any] = {
        # No kube-proxy runs when Cilium replaces it: its target would only ever be down.
        "kubeProxy": {"enabled": not addons.cilium.kube_proxy_replacement},
        "kubeEtcd": _control_plane_component(design, ETCD_METRICS_PORT, https=False),
        "kubeControllerManager": _control_plane_component(design, CONTROLLER_MANAGER_PORT, https=True),
        "kubeScheduler": _control_plane_component(design, SCHEDULER_PORT, https=True),
        "prometheus": {"prometheusSpec": prometheus_spec},
        "grafana": _grafana(design),
    }
    return values


def _grafana(design: Design) -> dict[str, Any]:
    if not design.spec.addons.monitoring.grafana:
        return {"enabled": False}
    # The chart's built-in admin password is public knowledge: use a Secret made by the secrets script.
    return {
        "enabled": True,
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
    }


def render_observability(design: Design) -> list[RenderedFile]:
    addons = design.spec.addons
    files: list[RenderedFile] = []
    if addons.metrics_server.enabled:
        files.append(yaml_file(paths.METRICS_SERVER_VALUES, [
            f"metrics-server {design.versions.metrics_server} for {design.name}.",
            "No --kubelet-insecure-tls: kubelets use serving certificates signed by the cluster CA",
            "(serverTLSBootstrap), once their CSRs are approved as the runbook shows.",
            "Check: kubectl top nodes",
        ], metrics_server_values(design)))
    if addons.monitoring.enabled:
        cps = ", ".join(str(n.address) for n in design.ip_plan.control_planes)
        storage = (f"Prometheus keeps {addons.monitoring.retention} on a {addons.monitoring.storage_gib} GiB volume "
                   f"of class {addons.storage.class_name}." if addons.storage.enabled else
                   f"Prometheus keeps {addons.monitoring.retention} on an emptyDir (no StorageClass in this cluster): "
                   "data is lost when its pod moves.")
        files += [
            manifest_file(paths.MONITORING_NAMESPACE, [
                "node-exporter reads the host (hostNetwork, hostPID, hostPath): the namespace must be privileged.",
            ], [owned_namespace(design, MONITORING_NAMESPACE, "privileged")]),
            yaml_file(paths.KUBE_PROMETHEUS_STACK_VALUES, [
                f"kube-prometheus-stack {design.versions.kube_prometheus_stack} for {design.name}.",
                f"Scrapes etcd on :{ETCD_METRICS_PORT} (http), controller-manager on :{CONTROLLER_MANAGER_PORT} and "
                f"scheduler on :{SCHEDULER_PORT} (https) of {cps}.",
                storage,
                "Grafana's admin login is the Secret grafana-admin made by the secrets script."
                if addons.monitoring.grafana else "Grafana is off (addons.monitoring.grafana).",
            ], kube_prometheus_stack_values(design)),
        ]
    return files
