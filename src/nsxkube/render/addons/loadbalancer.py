"""LoadBalancer addresses from the design's pools: MetalLB or Cilium LB-IPAM, never both."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import METALLB_NAMESPACE, manifest_file, metadata, owned_namespace
from nsxkube.render.files import RenderedFile

L2_POLICY = "announce-pools"


def metallb_objects(design: Design) -> list[dict[str, Any]]:
    pools = design.ip_plan.pools
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": metadata(design, pool.name, METALLB_NAMESPACE),
            "spec": {"addresses": [f"{pool.range.first}-{pool.range.last}"]},
        }
        for pool in pools
    ]
    objects.append({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": metadata(design, L2_POLICY, METALLB_NAMESPACE),
        "spec": {"ipAddressPools": [pool.name for pool in pools]},
    })
    return objects


def cilium_lb_objects(design: Design) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": metadata(design, pool.name),
            "spec": {"blocks": [{"start": str(pool.range.first), "stop": str(pool.range.last)}]},
        }
        for pool in design.ip_plan.pools
    ]
    objects.append({
        "apiVersion": "cilium.io/v2alpha1",
        "kind": "CiliumL2AnnouncementPolicy",
        "metadata": metadata(design, L2_POLICY),
        # No interface list: the node has one NIC on the segment, and the NIC's name depends on the
        # VM hardware. No nodeSelector: any node may answer ARP, which is what NSX was told to allow.
        "spec": {"loadBalancerIPs": True, "externalIPs": False},
    })
    return objects


def _pool_lines(design: Design) -> list[str]:
    plan = design.ip_plan
    lines = [f"  {p.name}: {p.range} ({p.range.size} addresses)" for p in plan.pools]
    return [*lines, f"The API VIP {plan.api_vip} is outside every pool (kube-vip announces it, not the pools)."]


def render_loadbalancer(design: Design) -> list[RenderedFile]:
    provider = design.spec.addons.loadbalancer.provider
    if provider == "metallb":
        return [
            manifest_file(paths.METALLB_NAMESPACE, [
                "MetalLB's speaker runs with host networking and NET_RAW: its namespace must be privileged.",
            ], [owned_namespace(design, METALLB_NAMESPACE, "privileged")]),
            manifest_file(paths.METALLB_POOLS, [
                f"MetalLB {design.versions.metallb} address pools and L2 announcement for {design.name}:",
                *_pool_lines(design),
                "Apply after the MetalLB chart is ready (its webhook validates these):",
                f"  kubectl -n {METALLB_NAMESPACE} wait --for=condition=Available deployment --all --timeout=5m",
                f"  kubectl apply -f {paths.METALLB_POOLS}",
                "Cilium's own LB-IPAM stays dormant: it wakes only when a CiliumLoadBalancerIPPool exists.",
            ], metallb_objects(design)),
        ]
    if provider == "cilium-l2":
        return [
            manifest_file(paths.CILIUM_LB_POOLS, [
                f"Cilium LB-IPAM pools and L2 announcement policy for {design.name} (no MetalLB in this cluster):",
                *_pool_lines(design),
                f"  kubectl apply -f {paths.CILIUM_LB_POOLS}",
            ], cilium_lb_objects(design)),
        ]
    return []
