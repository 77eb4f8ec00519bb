"""kubeadm configuration and the kube-vip static Pod, rendered from the design.

`kubeadm/init.yaml` is complete for the first control plane (its name and address are in the
design). The join files carry placeholders that the join scripts fill in memory on the node:
the node's own name and address, and the join secrets, which exist only at run time.
"""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design, Node, VersionSet
from nsxkube.design.images import kube_vip_image
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.files import RenderedFile, to_yaml, to_yaml_documents

API_PORT = 6443
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
KUBE_VIP_LEASE = "plndr-cp-lock"
# kube-vip's Prometheus endpoint (its default, rendered so the bootstrap's switch can watch it).
KUBE_VIP_METRICS_PORT = 2112
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
# Since Kubernetes 1.29 admin.conf is only bound to cluster-admin through RBAC, which does not
# exist yet while `kubeadm init` waits for the API; super-admin.conf carries system:masters.
SUPER_ADMIN_SINCE_MINOR = 29

# Placeholders the join scripts replace. Never real values: they are minted on the first control plane.
JOIN_TOKEN = "__JOIN_TOKEN__"
CA_CERT_HASH = "__CA_CERT_HASH__"
CERTIFICATE_KEY = "__CERTIFICATE_KEY__"
NODE_NAME = "__NODE_NAME__"
NODE_IP = "__NODE_IP__"
PLACEHOLDERS = (JOIN_TOKEN, CA_CERT_HASH, CERTIFICATE_KEY, NODE_NAME, NODE_IP)

INIT_PATH = "kubeadm/init.yaml"
JOIN_CONTROL_PLANE_PATH = "kubeadm/join-control-plane.yaml"
JOIN_WORKER_PATH = "kubeadm/join-worker.yaml"
KUBE_VIP_PATH = "kubeadm/kube-vip.yaml"
KUBE_VIP_INIT_PATH = "kubeadm/kube-vip-init.yaml"


def render_kubeadm(design: Design) -> list[RenderedFile]:
    """init.yaml, the two join configurations and, with kube-vip, its manifests (steady state and init)."""
    files = [
        RenderedFile(INIT_PATH, to_yaml_documents(init_documents(design))),
        RenderedFile(JOIN_CONTROL_PLANE_PATH, to_yaml_documents([join_configuration(design, control_plane=True)])),
        RenderedFile(JOIN_WORKER_PATH, to_yaml_documents([join_configuration(design, control_plane=False)])),
    ]
    if design.api_vip_provider == "kube-vip":
        files += [
            RenderedFile(KUBE_VIP_PATH, to_yaml(kube_vip_pod(design, ADMIN_CONF))),
            RenderedFile(KUBE_VIP_INIT_PATH, to_yaml(kube_vip_pod(design, kube_vip_init_kubeconfig(design.versions)))),
        ]
    return files


def control_plane_endpoint(design: Design) -> str:
    return design.api_endpoint


def first_control_plane(design: Design) -> Node:
    return design.ip_plan.control_planes[0]


def kube_vip_init_kubeconfig(versions: VersionSet) -> str:
    """The kubeconfig kube-vip mounts while `kubeadm init` runs — the one place this rule lives."""
    minor = int(versions.kubernetes_minor.split(".")[1])
    return SUPER_ADMIN_CONF if minor >= SUPER_ADMIN_SINCE_MINOR else ADMIN_CONF


def init_documents(design: Design) -> list[dict[str, Any]]:
    documents = [init_configuration(design), cluster_configuration(design), kubelet_configuration(design)]
    proxy = kube_proxy_configuration(design)
    return documents if proxy is None else [*documents, proxy]


def kube_proxy_configuration(design: Design) -> dict[str, Any] | None:
    """Only where a sandbox changes kube-proxy's defaults (kubeadm stores it in the kube-proxy ConfigMap)."""
    sandbox = design.spec.sandbox
    if kube_proxy_skipped(design) or sandbox is None or sandbox.kube_proxy_conntrack_max_per_core is None:
        return None
    return {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "conntrack": {"maxPerCore": sandbox.kube_proxy_conntrack_max_per_core}}


def init_configuration(design: Design) -> dict[str, Any]:
    node = first_control_plane(design)
    config: dict[str, Any] = {
        "apiVersion": design.versions.kubeadm_api,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": str(node.address), "bindPort": API_PORT},
        "nodeRegistration": node_registration(design, node.name, str(node.address)),
    }
    if kube_proxy_skipped(design):
        config["skipPhases"] = ["addon/kube-proxy"]
    return config


def kube_proxy_skipped(design: Design) -> bool:
    return design.spec.addons.cilium.kube_proxy_replacement


def node_registration(design: Design, name: str, address: str) -> dict[str, Any]:
    registration: dict[str, Any] = {
        "name": name,
        "criSocket": CRI_SOCKET,
        # external: nodes keep the uninitialized taint until the vSphere CPI sets their ProviderID,
        # which the CSI driver needs. node-ip: the kubelet must not guess among addresses.
        "kubeletExtraArgs": [
            {"name": "cloud-provider", "value": "external"},
            {"name": "node-ip", "value": address},
        ],
    }
    sandbox = design.spec.sandbox
    if sandbox is not None and sandbox.ignore_preflight_errors:
        registration["ignorePreflightErrors"] = list(sandbox.ignore_preflight_errors)
    return registration


def cluster_configuration(design: Design) -> dict[str, Any]:
    k8s = design.spec.kubernetes
    config: dict[str, Any] = {
        "apiVersion": design.versions.kubeadm_api,
        "kind": "ClusterConfiguration",
        "clusterName": design.name,
        "kubernetesVersion": f"v{design.versions.kubernetes}",
        "controlPlaneEndpoint": control_plane_endpoint(design),
        "networking": {
            "podSubnet": str(k8s.pod_cidr),
            "serviceSubnet": str(k8s.service_cidr),
            "dnsDomain": k8s.dns_domain,
        },
        "apiServer": {"certSANs": cert_sans(design)},
        # Prometheus scrapes these from other nodes; the port matrix opens 2381, 10257 and 10259.
        "controllerManager": {"extraArgs": [{"name": "bind-address", "value": "0.0.0.0"}]},
        "scheduler": {"extraArgs": [{"name": "bind-address", "value": "0.0.0.0"}]},
        "etcd": {"local": {"extraArgs": [{"name": "listen-metrics-urls", "value": "http://0.0.0.0:2381"}]}},
    }
    if kube_proxy_skipped(design):
        # Stored in the kubeadm-config ConfigMap, so `kubeadm upgrade` does not bring kube-proxy back.
        config["proxy"] = {"disabled": True}
    return config


def cert_sans(design: Design) -> list[str]:
    sans = [str(design.ip_plan.api_vip)]
    if design.spec.kubernetes.api_dns_name:
        sans.append(design.spec.kubernetes.api_dns_name)
    return sans


def kubelet_configuration(design: Design) -> dict[str, Any]:
    sandbox = design.spec.sandbox
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": design.cgroup_driver,
        # Serving certificates signed by the cluster CA (after CSR approval) let metrics-server
        # verify kubelets instead of running with --kubelet-insecure-tls.
        "serverTLSBootstrap": True,
        "rotateCertificates": True,
    }
    if sandbox is not None and sandbox.allow_cgroup_v1:
        config["failCgroupV1"] = False
    return config



def join_configuration(design: Design, *, control_plane: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": design.versions.kubeadm_api,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": control_plane_endpoint(design),
                "token": JOIN_TOKEN,
                "caCertHashes": [CA_CERT_HASH],
            },
        },
        "nodeRegistration": node_registration(design, NODE_NAME, NODE_IP),
    }
    if control_plane:
        config["controlPlane"] = {
            "localAPIEndpoint": {"advertiseAddress": NODE_IP, "bindPort": API_PORT},
            "certificateKey": CERTIFICATE_KEY,
        }
    return config


def kube_vip_pod(design: Design, kubeconfig: str) -> dict[str, Any]:
    """The kube-vip static Pod holding the API VIP by ARP, with leader election among control planes."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system"},
        "spec": {
            "containers": [
                {
                    "name": "kube-vip",
                    "image": kube_vip_image(design.versions),
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["manager"],
                    "env": kube_vip_env(design),
                    "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}},
                    "volumeMounts": [{"name": "kubeconfig", "mountPath": ADMIN_CONF}],
                }
            ],
            # kube-vip talks to the local API server before the VIP exists.
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            # type File: a missing kubeconfig must fail and retry, not become an empty directory
            # that would then block kubeadm from writing the file.
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": kubeconfig, "type": "File"}}],
        },
    }


def kube_vip_env(design: Design) -> list[dict[str, Any]]:
    values = [
        ("vip_arp", "true"),
        ("port", str(API_PORT)),
        ("vip_interface", NODE_NIC),
        ("vip_subnet", "32"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        # MetalLB or Cilium announce LoadBalancer Services; two announcers would fight over them.
        ("svc_enable", "false"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", KUBE_VIP_LEASE),
        ("vip_leaseduration", "5"),
        ("vip_renewdeadline", "3"),
        ("vip_retryperiod", "1"),
        ("address", str(design.ip_plan.api_vip)),
        ("prometheus_server", f":{KUBE_VIP_METRICS_PORT}"),
    ]
    env: list[dict[str, Any]] = [{"name": name, "value": value} for name, value in values]
    env.insert(2, {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    return env
