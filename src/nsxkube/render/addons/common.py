"""What every add-on file shares: bundle paths, object metadata, comments, registry mirrors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from nsxkube.design import OWNERSHIP_SCOPE, Design
from nsxkube.render.files import RenderedFile, to_yaml, to_yaml_documents

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]

# Namespaces the add-ons live in; the runbook and the secrets script use the same names.
CSI_NAMESPACE = "vmware-system-csi"
METALLB_NAMESPACE = "metallb-system"
MONITORING_NAMESPACE = "monitoring"
VELERO_NAMESPACE = "velero"
GATEWAY_NAMESPACE = "gateway"
TESTS_NAMESPACE = "nsxkube-tests"
INGRESS_NGINX_NAMESPACE = "ingress-nginx"
# Never given a baseline or a default-deny policy: the control plane and CNI live there.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})


def owned_labels(design: Design) -> dict[str, str]:
    """Ownership markers: nsxkube may change or delete only objects carrying them."""
    return {"app.kubernetes.io/managed-by": "nsxkube", OWNERSHIP_SCOPE: design.name}


def metadata(
    design: Design,
    name: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**owned_labels(design), **(labels or {})}
    if annotations:
        meta["annotations"] = annotations
    return meta


def pod_security_labels(level: PodSecurityLevel, minor: str, warn: PodSecurityLevel | None = None) -> dict[str, str]:
    """Pod Security Admission labels; ``warn`` (and audit) may be stricter than what is enforced."""
    version = f"v{minor}"
    labels = {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": version,
    }
    if warn is not None:
        labels |= {
            "pod-security.kubernetes.io/warn": warn,
            "pod-security.kubernetes.io/warn-version": version,
            "pod-security.kubernetes.io/audit": warn,
            "pod-security.kubernetes.io/audit-version": version,
        }
    return labels


def owned_namespace(design: Design, name: str, level: PodSecurityLevel) -> dict[str, Any]:
    """A namespace nsxkube creates for an add-on, so it carries the ownership labels."""
    labels = pod_security_labels(level, design.versions.kubernetes_minor)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(design, name, labels=labels)}


def comment_block(lines: Iterable[str]) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def yaml_file(path: str, comments: Iterable[str], data: Any) -> RenderedFile:
    """A Helm values file: the explanation on top, then the data as YAML."""
    return RenderedFile(path, comment_block(comments) + to_yaml(data))


def manifest_file(path: str, comments: Iterable[str], objects: list[dict[str, Any]]) -> RenderedFile:
    """Kubernetes objects for `kubectl apply -f`, one document each."""
    return RenderedFile(path, comment_block(comments) + to_yaml_documents(objects))


def mirrored(design: Design, image: str) -> str:
    """The image repository through the registry mirror the spec names for its registry, if any.

    ``network.registry_mirrors`` maps a registry host to a mirror URL such as
    ``https://registry.example.com/quay.io``; the image then becomes
    ``registry.example.com/quay.io/<path>``, which pull-through caches (Harbor, Artifactory,
    Nexus) serve with the same digests.
    """
    host, _, path = image.partition("/")
    mirror = design.spec.network.registry_mirrors.get(host)
    if mirror is None:
        return image
    base = mirror.split("://", 1)[-1].rstrip("/")
    return f"{base}/{path}"


def has_mirror(design: Design, image: str) -> bool:
    return mirrored(design, image) != image


def placeholder(env_name: str) -> str:
    """Where a secret goes in a template: named after the environment variable that holds it."""
    return f"__{env_name}__"
