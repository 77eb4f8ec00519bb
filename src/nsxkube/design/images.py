"""The container images a node needs before kubeadm can bring it up: what `kubeadm config images
list` names for the version (kube-proxy only when Cilium does not replace it) plus kube-vip when it
holds the API VIP (keepalived is a distribution package, not an image). These
are the images an image bundle must hold on a site without a registry. Add-on images (Cilium,
CSI, …) come with their charts and are not in this list. Pure."""

from __future__ import annotations

from nsxkube.design.versions import VersionSet

KUBERNETES_REGISTRY = "registry.k8s.io"
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip"


def pause_image(versions: VersionSet) -> str:
    """The sandbox image: kubeadm's for this version, and the one containerd is pinned to."""
    return f"{KUBERNETES_REGISTRY}/pause:{versions.pause}"


def kube_vip_image(versions: VersionSet) -> str:
    return f"{KUBE_VIP_IMAGE}:{versions.kube_vip}"


def node_images(versions: VersionSet, *, kube_proxy: bool, kube_vip: bool = True) -> tuple[str, ...]:
    kubernetes = f"v{versions.kubernetes.lstrip('v')}"
    components = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] + (["kube-proxy"] if kube_proxy else [])
    return (
        *(f"{KUBERNETES_REGISTRY}/{name}:{kubernetes}" for name in components),
        f"{KUBERNETES_REGISTRY}/coredns/coredns:{versions.coredns}",
        pause_image(versions),
        f"{KUBERNETES_REGISTRY}/etcd:{versions.etcd.lstrip('v')}-0",
        *([kube_vip_image(versions)] if kube_vip else []),
    )
