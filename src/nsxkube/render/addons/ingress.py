"""Ingress and Gateway API: a shared Gateway on Cilium's GatewayClass; ingress-nginx only as legacy."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    GATEWAY_NAMESPACE,
    INGRESS_NGINX_NAMESPACE,
    manifest_file,
    metadata,
    owned_namespace,
    yaml_file,
)
from nsxkube.render.files import RenderedFile

GATEWAY_NAME = "shared"
GATEWAY_CLASS = "cilium"


def ingress_class(design: Design) -> str | None:
    return {"cilium": "cilium", "ingress-nginx": "nginx", "none": None}[design.spec.addons.ingress.controller]


def gateway(design: Design) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata(design, GATEWAY_NAME, GATEWAY_NAMESPACE),
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}},
            ],
        },
    }


def ingress_nginx_values(design: Design) -> dict[str, Any]:
    return {
        "controller": {
            "replicaCount": 2,
            "ingressClassResource": {"name": "nginx", "default": True},
            "service": {"type": "LoadBalancer"},
        },
    }


def render_ingress(design: Design) -> list[RenderedFile]:
    addons = design.spec.addons
    files: list[RenderedFile] = []
    if addons.gateway_api.enabled:
        no_lb = addons.loadbalancer.provider == "none"
        files.append(manifest_file(paths.GATEWAY, [
            f"A shared Gateway on Cilium's GatewayClass '{GATEWAY_CLASS}' (Gateway API {design.versions.gateway_api}).",
            "HTTPRoutes in any namespace may attach to it. Its address comes from a LoadBalancer pool"
            + (" — but this cluster has no LoadBalancer provider, so it stays pending." if no_lb else "."),
            "Add an HTTPS listener with a certificateRefs Secret when TLS is needed.",
            f"  kubectl apply -f {paths.GATEWAY}",
            f"  kubectl -n {GATEWAY_NAMESPACE} wait --for=condition=Programmed gateway/{GATEWAY_NAME} --timeout=5m",
        ], [owned_namespace(design, GATEWAY_NAMESPACE, "restricted"), gateway(design)]))
    if addons.ingress.controller == "ingress-nginx":
        files.append(yaml_file(paths.INGRESS_NGINX_VALUES, [
            "!" * 100,
            "WARNING: ingress-nginx is RETIRED. Its repository was archived in March 2026 and gets no more",
            "security patches. It is here only because addons.ingress.controller asks for it, as a legacy bridge.",
            "Move to Cilium's Ingress controller (existing Ingress objects keep working with ingressClassName:",
            "cilium) or to Gateway API HTTPRoutes, then switch addons.ingress.controller to cilium.",
            "!" * 100,
            f"Chart ingress-nginx {design.versions.ingress_nginx}, namespace {INGRESS_NGINX_NAMESPACE}.",
        ], ingress_nginx_values(design)))
    return files
