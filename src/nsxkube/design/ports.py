"""The port matrix: who talks to whom, on which protocol and ports, and why.

It is the single source of the DFW rules and of the firewall documentation. Endpoints are
names of address sets, resolved by the NSX render into groups:
``nodes``, ``control-planes``, ``api-vip``, ``lb-pools``, ``admin-networks``, ``client-networks``,
``dns-servers``, ``ntp-servers``, ``proxy``, ``vcenter`` and ``internet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nsxkube.design.mtu import MtuChain
from nsxkube.spec.model import ClusterSpec

Protocol = Literal["TCP", "UDP", "ICMP", "VRRP"]
# For ICMP flows, ``ports`` names ICMP types instead of port numbers.
ICMP_TYPES = {"echo-request": 8, "destination-unreachable": 3}
# VRRP is an IP protocol of its own (no ports): keepalived's advertisements between control planes.
VRRP_IP_PROTOCOL = 112
ICMP_PROBES = ("echo-request", "destination-unreachable")


@dataclass(frozen=True)
class Flow:
    id: str
    source: str
    destination: str
    protocol: Protocol
    ports: tuple[str, ...]
    """TCP/UDP: ports and ranges such as ``2379-2380``; ICMP: type names from ICMP_TYPES; VRRP: none."""
    reason: str

    @property
    def ports_text(self) -> str:
        if self.protocol == "VRRP":
            return f"IP protocol {VRRP_IP_PROTOCOL}"
        return ", ".join(self.ports)


def derive_port_matrix(spec: ClusterSpec, mtu: MtuChain) -> tuple[Flow, ...]:
    addons = spec.addons
    network = spec.network
    monitoring = addons.monitoring.enabled
    flows = [
        Flow("api-from-nodes", "nodes", "control-planes", "TCP", ("6443",), "kubelets and pods reach the API"),
        Flow("api-vip-from-nodes", "nodes", "api-vip", "TCP", ("6443",),
             f"the API through the {network.api_vip_provider} VIP"),
        Flow("etcd-peers", "control-planes", "control-planes", "TCP", ("2379-2380",),
             "etcd client and peer traffic, control planes only"),
        Flow("kubelet", "nodes", "nodes", "TCP", ("10250",), "API server, metrics-server and Prometheus to kubelets"),
        Flow("pod-tunnel", "nodes", "nodes", "UDP", (str(mtu.tunnel_port),),
             f"Cilium {mtu.tunnel} tunnel between nodes"),
        Flow("cilium-health", "nodes", "nodes", "TCP", ("4240",), "Cilium node health checks"),
        Flow("icmp-nodes", "nodes", "nodes", "ICMP", ICMP_PROBES, "Cilium health and the DF-bit MTU probe"),
        # Routers anywhere on the path send "fragmentation needed"; dropping it breaks path-MTU
        # discovery and large packets then hang silently, the classic overlay-MTU failure.
        Flow("icmp-path-mtu", "internet", "nodes", "ICMP", ("destination-unreachable",),
             "path-MTU discovery (fragmentation needed) from routers on the path"),
    ]
    if network.api_vip_provider == "keepalived":
        # Unicast advertisements between the control planes' own addresses: the DFW must pass them,
        # or every control plane believes it is alone and all claim the VIP at once.
        flows.append(Flow("vrrp", "control-planes", "control-planes", "VRRP", (),
                          "keepalived advertisements (unicast) that elect the API VIP holder"))
    if addons.cilium.hubble:
        flows.append(Flow("hubble", "nodes", "nodes", "TCP", ("4244-4245",), "Hubble server and relay"))
    if monitoring:
        flows += [
            Flow("control-plane-metrics", "nodes", "control-planes", "TCP", ("2381", "10257", "10259"),
                 "Prometheus scrapes etcd, controller-manager and scheduler"),
            Flow("node-exporter", "nodes", "nodes", "TCP", ("9100",), "Prometheus scrapes node-exporter"),
        ]
    if addons.loadbalancer.provider == "metallb":
        flows += [
            Flow("metallb-memberlist-tcp", "nodes", "nodes", "TCP", ("7946",), "MetalLB speaker memberlist"),
            Flow("metallb-memberlist-udp", "nodes", "nodes", "UDP", ("7946",), "MetalLB speaker memberlist"),
        ]
    if network.admin_networks:
        flows += [
            Flow("api-from-admin", "admin-networks", "api-vip", "TCP", ("6443",), "operators reach the API via the VIP"),
            Flow("api-nodes-from-admin", "admin-networks", "control-planes", "TCP", ("6443",),
                 "operators reach each API server (kubeadm, debugging)"),
            Flow("ssh-from-admin", "admin-networks", "nodes", "TCP", (str(spec.ssh.port),), "nsxkube and operators log in"),
            Flow("icmp-from-admin", "admin-networks", "nodes", "ICMP", ICMP_PROBES, "operators ping nodes"),
        ]
    if addons.loadbalancer.provider != "none" and network.loadbalancer_ports:
        flows.append(
            Flow("loadbalancer-services", "client-networks", "lb-pools", "TCP",
                 tuple(str(p) for p in sorted(set(network.loadbalancer_ports))),
                 "clients reach LoadBalancer services and ingress")
        )
    if network.nodeport:
        flows += [
            Flow("nodeport-tcp", "client-networks", "nodes", "TCP", ("30000-32767",), "NodePort services"),
            Flow("nodeport-udp", "client-networks", "nodes", "UDP", ("30000-32767",), "NodePort services"),
        ]
    flows += [
        Flow("dns-udp", "nodes", "dns-servers", "UDP", ("53",), "name resolution"),
        Flow("dns-tcp", "nodes", "dns-servers", "TCP", ("53",), "name resolution (large answers)"),
    ]
    ntp_target = "ntp-servers" if network.ntp_servers else "internet"
    flows.append(Flow("ntp", "nodes", ntp_target, "UDP", ("123",), "time sync (etcd and TLS need it)"))
    flows.append(Flow("vcenter", "nodes", "vcenter", "TCP", ("443",), "vSphere CPI and CSI call vCenter"))
    if network.proxy:
        port = network.proxy.url.rsplit(":", 1)[-1] if network.proxy.url.count(":") == 2 else (
            "443" if network.proxy.url.startswith("https") else "80")
        flows.append(Flow("egress-proxy", "nodes", "proxy", "TCP", (port,), "packages and images via the proxy"))
    else:
        flows.append(Flow("egress-web", "nodes", "internet", "TCP", ("80", "443"), "packages and container images"))
    return tuple(flows)


# What kubeadm's components bind on each node: the API server, etcd (client, peer, metrics),
# kubelet, controller-manager and scheduler on a control plane; the kubelet alone on a worker.
# The bootstrap preflight refuses a node where something else holds one of them.
LISTENING_PORTS: dict[str, tuple[int, ...]] = {
    "control-plane": (6443, 2379, 2380, 2381, 10250, 10257, 10259),
    "worker": (10250,),
}
