"""Cilium Helm values: the CNI, kube-proxy replacement, Hubble, ingress, Gateway API, L2 announcements."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import has_mirror, mirrored, yaml_file
from nsxkube.render.addons.versions import HelmChart, helm_charts
from nsxkube.render.files import RenderedFile

# Cilium's images and where each one's repository is set in the chart.
CILIUM_IMAGES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("image",), "quay.io/cilium/cilium"),
    (("operator", "image"), "quay.io/cilium/operator"),
    (("envoy", "image"), "quay.io/cilium/cilium-envoy"),
    (("hubble", "relay", "image"), "quay.io/cilium/hubble-relay"),
    (("hubble", "ui", "frontend", "image"), "quay.io/cilium/hubble-ui"),
    (("hubble", "ui", "backend", "image"), "quay.io/cilium/hubble-ui-backend"),
    (("certgen", "image"), "quay.io/cilium/certgen"),
)


def cilium_device_mtu(design: Design) -> int:
    """Cilium's ``MTU`` value: the device MTU it starts from, not the pod MTU.

    In tunnel mode Cilium subtracts its VXLAN/Geneve overhead (50 bytes over IPv4) from this
    value for the routes inside every pod, so the pods' MTU is MTU − 50. Hence MTU = the
    design's pod MTU + the tunnel overhead, which is the node NIC's MTU.
    """
    return design.mtu.pod_mtu + design.mtu.tunnel_overhead


def cilium_values(design: Design) -> dict[str, Any]:
    addons = design.spec.addons
    cilium = addons.cilium
    values: dict[str, Any] = {
        "cluster": {"name": design.name},
        "kubeProxyReplacement": cilium.kube_proxy_replacement,
        # The VIP, not a node: the API must stay reachable when any one control plane is down.
        "k8sServiceHost": str(design.ip_plan.api_vip),
        "k8sServicePort": 6443,
        # Pod CIDRs come from kubeadm's podSubnet via each Node's spec.podCIDR.
        "ipam": {"mode": "kubernetes"},
        "routingMode": "tunnel",
        "tunnelProtocol": design.mtu.tunnel,
        "MTU": cilium_device_mtu(design),
        "operator": {"replicas": min(2, len(design.ip_plan.nodes))},
        "hubble": _hubble(design),
    }
    if addons.ingress.controller == "cilium":
        # shared: every Ingress gets the same LoadBalancer address, so the pool is not drained by Ingresses.
        values["ingressController"] = {"enabled": True, "default": True, "loadbalancerMode": "shared"}
    if addons.gateway_api.enabled:
        values["gatewayAPI"] = {"enabled": True}
    if addons.loadbalancer.provider != "cilium-l2":
        # LB-IPAM is on by default and would hand out addresses as soon as anyone creates a
        # CiliumLoadBalancerIPPool: with MetalLB (or no allocator) only one may ever allocate.
        values["defaultLBServiceIPAM"] = "none"
    if addons.loadbalancer.provider == "cilium-l2":
        values["l2announcements"] = {"enabled": True}
        values["externalIPs"] = {"enabled": True}
        # Each announced address holds a Lease that agents renew every few seconds: the default
        # client rate limit (10 qps) starves with a few dozen LoadBalancer services.
        values["k8sClientRateLimit"] = {"qps": 30, "burst": 60}
    for keys, image in CILIUM_IMAGES:
        if has_mirror(design, image):
            _set(values, keys, {"repository": mirrored(design, image)})
    return values


def _hubble(design: Design) -> dict[str, Any]:
    cilium = design.spec.addons.cilium
    if not cilium.hubble:
        return {"enabled": False}
    # Certificates from a CronJob, not from Helm: the chart's default (method helm) makes new ones on
    # every `helm upgrade`, so re-running the install would change the cluster each time.
    tls = {"auto": {"enabled": True, "method": "cronJob", "certValidityDuration": 1095, "schedule": "0 0 1 */4 *"}}
    return {"enabled": True, "tls": tls, "relay": {"enabled": True}, "ui": {"enabled": cilium.hubble_ui}}


def _set(values: dict[str, Any], keys: tuple[str, ...], leaf: dict[str, Any]) -> None:
    target = values
    for key in keys:
        target = target.setdefault(key, {})
    target.update(leaf)


def _cilium_chart(design: Design) -> HelmChart:
    return next(c for c in helm_charts(design) if c.release == "cilium")


def render_cilium(design: Design) -> list[RenderedFile]:
    mtu = design.mtu
    v = design.versions
    comments = [
        f"Cilium {v.cilium} values for {design.name}. Install (after the Gateway API CRDs when they are enabled):",
        "  " + " ".join(_cilium_chart(design).install_command().replace("\\\n", " ").split()),
        "Check: cilium status --wait && cilium connectivity test",
        "",
        f"MTU: Cilium's MTU value is the device MTU it starts from. In tunnel mode it takes its {mtu.tunnel}",
        f"overhead ({mtu.tunnel_overhead} bytes over IPv4) off that for the routes inside every pod, so pods send",
        f"at most {cilium_device_mtu(design)} − {mtu.tunnel_overhead} = {mtu.pod_mtu} bytes: the design's pod MTU.",
        f"Chain: NSX TEP {mtu.tep_mtu} − Geneve {mtu.nsx_overhead} → node MTU ≤ {mtu.node_mtu_max}; node NIC "
        f"{mtu.node_mtu}; pods {mtu.pod_mtu}.",
        f"Writing the pod MTU here instead would leave pods at {mtu.pod_mtu - mtu.tunnel_overhead}; leaving it "
        "unset lets Cilium guess from",
        "the NIC, which breaks silently when the NIC and the NSX overlay disagree.",
    ]
    if design.spec.network.registry_mirrors:
        comments += ["", "Image repositories point at the registry mirrors of network.registry_mirrors."]
    return [yaml_file(paths.CILIUM_VALUES, comments, cilium_values(design))]
