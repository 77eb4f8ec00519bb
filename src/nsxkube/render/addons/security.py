"""The security baseline: Pod Security Admission labels, default-deny + DNS NetworkPolicies, read-only RBAC."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import SYSTEM_NAMESPACES, manifest_file, metadata, pod_security_labels
from nsxkube.render.files import RenderedFile

READ_ONLY_GROUP = "nsxkube:read-only"
CLUSTER_READER_ROLE = "nsxkube-cluster-reader"


def baseline_namespaces(design: Design) -> list[str]:
    """The namespaces of addons.security.namespaces that may safely be locked down."""
    return [ns for ns in dict.fromkeys(design.spec.addons.security.namespaces) if ns not in SYSTEM_NAMESPACES]


def labelled_namespace(design: Design, name: str) -> dict[str, Any]:
    """Labels on a namespace that belongs to the users: no ownership marker, so nsxkube never deletes it."""
    level = design.spec.addons.security.pod_security
    # Warn and audit at 'restricted' so that teams see what a stricter level would refuse.
    labels = pod_security_labels(level, design.versions.kubernetes_minor,
                                 warn="restricted" if level != "restricted" else None)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def network_policies(design: Design, namespace: str) -> list[dict[str, Any]]:
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(design, "default-deny-all", namespace),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    dns = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(design, "allow-dns", namespace),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        },
    }
    return [deny, dns]


def read_only_rbac(design: Design) -> list[dict[str, Any]]:
    """Operators may look at everything but Secrets: the built-in 'view' role plus cluster-scoped reads."""
    read = ["get", "list", "watch"]
    reader = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(design, CLUSTER_READER_ROLE),
        "rules": [
            {"apiGroups": [""], "resources": ["nodes", "namespaces", "persistentvolumes"], "verbs": read},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses", "csinodes", "csidrivers",
                                                            "volumeattachments"], "verbs": read},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"], "verbs": read},
            {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": read},
            {"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"], "verbs": read},
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gatewayclasses", "gateways", "httproutes"],
             "verbs": read},
            {"apiGroups": ["cilium.io"], "resources": ["*"], "verbs": read},
            {"apiGroups": ["metallb.io"], "resources": ["*"], "verbs": read},
        ],
    }
    subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": READ_ONLY_GROUP}]
    view_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(design, "nsxkube-read-only-view"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": subjects,
    }
    reader_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(design, "nsxkube-read-only-cluster"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_READER_ROLE},
        "subjects": subjects,
    }
    return [reader, view_binding, reader_binding]


def render_security(design: Design) -> list[RenderedFile]:
    security = design.spec.addons.security
    namespaces = baseline_namespaces(design)
    skipped = sorted(set(security.namespaces) & SYSTEM_NAMESPACES)
    skipped_line = [f"Skipped (system namespaces are never locked down): {', '.join(skipped)}."] if skipped else []
    files: list[RenderedFile] = []
    if namespaces:
        files.append(manifest_file(paths.POD_SECURITY, [
            f"Pod Security Admission: enforce '{security.pod_security}' on {', '.join(namespaces)}"
            + (", warn and audit at 'restricted'." if security.pod_security != "restricted" else "."),
            "These namespaces belong to their teams: they get labels only, no nsxkube ownership marker.",
            *skipped_line,
            f"  kubectl apply -f {paths.POD_SECURITY}",
        ], [labelled_namespace(design, ns) for ns in namespaces]))
    if security.default_deny_network_policies and namespaces:
        files.append(manifest_file(paths.NETWORK_POLICIES, [
            f"Default deny (ingress and egress) plus DNS egress to CoreDNS in: {', '.join(namespaces)}.",
            "After this, every application needs its own NetworkPolicy allowing its traffic.",
            f"  kubectl apply -f {paths.NETWORK_POLICIES}",
        ], [policy for ns in namespaces for policy in network_policies(design, ns)]))
    files.append(manifest_file(paths.READ_ONLY_RBAC, [
        f"Read-only access for operators: members of the group '{READ_ONLY_GROUP}' (map your identity",
        "provider's group to it) see every namespaced object except Secrets (the built-in 'view' role), plus",
        "nodes, volumes, storage and network classes and CRDs. Nothing here can change the cluster.",
        f"  kubectl apply -f {paths.READ_ONLY_RBAC}",
        f"  kubectl auth can-i list secrets --as=someone --as-group={READ_ONLY_GROUP} -A   # must say no",
    ], read_only_rbac(design)))
    return files
