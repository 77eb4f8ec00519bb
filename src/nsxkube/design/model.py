"""Design: everything later layers need, derived from the spec alone (no I/O, no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nsxkube.design.ip_plan import IpPlan, derive_ip_plan
from nsxkube.design.mtu import MtuChain, derive_mtu_chain
from nsxkube.design.ports import Flow, derive_port_matrix
from nsxkube.design.versions import VersionSet, resolve_versions
from nsxkube.errors import SpecError
from nsxkube.spec.model import ClusterSpec
from nsxkube.spec.problems import Problem
from nsxkube.wording import and_more

OWNERSHIP_SCOPE = "nsxkube/cluster"
API_PORT = 6443


@dataclass(frozen=True)
class Tag:
    scope: str
    tag: str


@dataclass(frozen=True)
class Design:
    spec: ClusterSpec
    versions: VersionSet
    ip_plan: IpPlan
    mtu: MtuChain
    ports: tuple[Flow, ...]
    no_proxy: tuple[str, ...]
    warnings: tuple[Problem, ...]

    @property
    def cgroup_driver(self) -> str:
        """The kubelet's and containerd's: systemd (Ubuntu 24.04, cgroup v2) unless a sandbox says otherwise."""
        return self.spec.sandbox.kubelet_cgroup_driver if self.spec.sandbox else "systemd"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ownership(self) -> Tag:
        return Tag(OWNERSHIP_SCOPE, self.spec.name)

    @property
    def node_images(self) -> tuple[str, ...]:
        """The images kubeadm and kube-vip run on the nodes (what an image bundle must hold)."""
        from nsxkube.design.images import node_images

        return node_images(self.versions, kube_proxy=not self.spec.addons.cilium.kube_proxy_replacement,
                           kube_vip=self.api_vip_provider == "kube-vip")

    @property
    def api_vip_provider(self) -> str:
        """What holds the API VIP on the control planes: ``kube-vip`` or ``keepalived``."""
        return self.spec.network.api_vip_provider

    @property
    def api_endpoint(self) -> str:
        """Where kubelets and clients reach the API: the DNS name when the site has one, else the VIP."""
        host = self.spec.kubernetes.api_dns_name or str(self.ip_plan.api_vip)
        return f"{host}:{API_PORT}"


PORT_BINDING_LIMIT = 256
"""IP bindings NSX keeps for one segment port. NSX documents no maximum for a SegmentPort's manual
``address_bindings``; the documented per-port bound on the addresses it binds to a port is IP
discovery's ``ArpSnoopingConfig.arp_binding_limit``: minimum 1, maximum 256 "arp snooped IP addresses
to be remembered per LogicalPort" (NSX-T Data Center REST API, type ArpSnoopingConfig). A control
plane's port carries its own address, the API VIP and every LoadBalancer pool address (allowlist
mode), and the IP discovery profile nsxkube binds to the segment must remember them all."""


def port_binding_problems(pool_addresses: int) -> list[Problem]:
    """allowlist mode: the bindings of a control plane's port (own address + API VIP + pools) within the limit."""
    per_port = 2 + pool_addresses
    if per_port <= PORT_BINDING_LIMIT:
        return []
    room = PORT_BINDING_LIMIT - 2
    return [Problem("network.loadbalancer_pools", f"{pool_addresses} pool addresses would give each control plane's "
                    f"segment port {per_port} address bindings (its own address, the API VIP and every pool "
                    f"address), more than the {PORT_BINDING_LIMIT} NSX keeps per port",
                    hint=f"shrink the pools to at most {room} addresses in total, or set nsx.vip_mode: "
                    "segment-profiles (SpoofGuard's allowlist off: no per-address bindings)")]


def analyse(spec: ClusterSpec) -> tuple[Design | None, list[Problem]]:
    """Derive the design and every finding; the design is None when any finding is an error."""
    versions, problems = resolve_versions(spec.kubernetes.version)
    ip_plan, ip_problems = derive_ip_plan(spec)
    mtu, mtu_problems = derive_mtu_chain(spec)
    problems += ip_problems + mtu_problems + _cluster_rules(spec) + _sandbox_rules(spec)
    if any(p.severity == "error" for p in problems) or versions is None or ip_plan is None:
        return None, problems
    design = Design(
        spec=spec,
        versions=versions,
        ip_plan=ip_plan,
        mtu=mtu,
        ports=derive_port_matrix(spec, mtu),
        no_proxy=_no_proxy(spec),
        warnings=tuple(p for p in problems if p.severity == "warning"),
    )
    return design, problems


def load_design(path: Path) -> Design:
    """cluster.yaml read, validated and derived: what every command that takes a PATH starts from."""
    from nsxkube.spec import load_spec

    return derive_design(load_spec(path))


def derive_design(spec: ClusterSpec) -> Design:
    """The design, or a SpecError listing every error (warnings stay in ``design.warnings``)."""
    design, problems = analyse(spec)
    if design is None:
        errors = [p for p in problems if p.severity == "error"]
        raise SpecError(and_more([e.one_line() for e in errors]), problems=tuple(errors))
    return design


def _cluster_rules(spec: ClusterSpec) -> list[Problem]:
    problems: list[Problem] = []
    k8s, network = spec.kubernetes, spec.network
    segment = spec.nsx.segment.cidr
    named = [("kubernetes.pod_cidr", k8s.pod_cidr), ("kubernetes.service_cidr", k8s.service_cidr)]
    if k8s.pod_cidr.overlaps(k8s.service_cidr):
        problems.append(Problem("kubernetes.service_cidr",
                                f"service CIDR {k8s.service_cidr} overlaps the pod CIDR {k8s.pod_cidr}"))
    for key, cidr in named:
        if cidr.overlaps(segment):
            problems.append(Problem(key, f"{cidr} overlaps the node segment {segment}"))
        for i, admin in enumerate(network.admin_networks):
            if cidr.overlaps(admin):
                problems.append(Problem(key, f"{cidr} overlaps admin network {admin} (network.admin_networks[{i}])",
                                        hint="pick a cluster range the site does not route"))
    if k8s.service_cidr.prefixlen < 12:
        problems.append(Problem("kubernetes.service_cidr", f"{k8s.service_cidr} is larger than the /12 kubeadm allows"))
    node_count = spec.nodes.control_planes.count + spec.nodes.workers.count
    # kubeadm gives every node a /24 of the pod CIDR (node-cidr-mask-size 24).
    if k8s.pod_cidr.prefixlen > 24:
        problems.append(Problem("kubernetes.pod_cidr", f"{k8s.pod_cidr} is smaller than one node's /24"))
    elif node_count > 2 ** (24 - k8s.pod_cidr.prefixlen):
        problems.append(Problem("kubernetes.pod_cidr", f"{k8s.pod_cidr} holds {2 ** (24 - k8s.pod_cidr.prefixlen)} "
                                f"node /24s, fewer than the {node_count} nodes", hint="use a larger pod CIDR"))

    control_planes = spec.nodes.control_planes.count
    if control_planes < 1:
        problems.append(Problem("nodes.control_planes.count", "a cluster needs at least one control plane"))
    elif control_planes % 2 == 0:
        problems.append(Problem("nodes.control_planes.count", f"{control_planes} control planes: etcd quorum "
                                "tolerates no more failures than with one fewer", severity="warning",
                                hint="use an odd number (3 or 5)"))
    if spec.nodes.workers.count == 0:
        problems.append(Problem("nodes.workers.count", "no workers: workloads need the control-plane taint removed",
                                severity="warning"))

    if not network.dns_servers:
        problems.append(Problem("network.dns_servers", "at least one DNS server is required",
                                hint="list the site's resolvers, e.g. [10.0.0.53]"))
    if not network.ntp_servers:
        problems.append(Problem("network.ntp_servers", "no NTP servers: nodes will use ntp.ubuntu.com over the internet",
                                severity="warning", hint="list the site's NTP servers (air-gapped sites must)"))
    if not network.admin_networks:
        problems.append(Problem("network.admin_networks", "no admin networks: the DFW lets nobody outside the nodes "
                                "reach the API or SSH", severity="warning",
                                hint="list the networks nsxkube and operators work from"))
    if not spec.ssh.public_keys:
        problems.append(Problem("ssh.public_keys", "no SSH public key: nobody could log in to the nodes",
                                hint="add the public key that matches ssh.private_key_file"))

    if spec.nsx.vip_mode == "allowlist":
        problems += port_binding_problems(sum(p.range.size for p in network.loadbalancer_pools))

    addons = spec.addons
    if addons.ingress.controller == "ingress-nginx":
        problems.append(Problem("addons.ingress.controller", "ingress-nginx is retired (archived March 2026, no more "
                                "security patches)", severity="warning",
                                hint="use cilium: existing Ingress objects keep working"))
    if addons.ingress.controller == "cilium" and not addons.cilium.kube_proxy_replacement:
        problems.append(Problem("addons.ingress.controller", "Cilium's ingress controller needs kube-proxy replacement",
                                hint="set addons.cilium.kube_proxy_replacement: true"))
    if addons.gateway_api.enabled and not addons.cilium.kube_proxy_replacement:
        problems.append(Problem("addons.gateway_api.enabled", "Cilium's Gateway API needs kube-proxy replacement",
                                hint="set addons.cilium.kube_proxy_replacement: true"))
    if addons.loadbalancer.provider == "cilium-l2" and not addons.cilium.kube_proxy_replacement:
        problems.append(Problem("addons.loadbalancer.provider", "Cilium L2 announcements need kube-proxy replacement",
                                hint="set addons.cilium.kube_proxy_replacement: true, or use provider metallb"))
    if addons.loadbalancer.provider != "none" and not network.loadbalancer_pools:
        problems.append(Problem("network.loadbalancer_pools", f"{addons.loadbalancer.provider} needs at least one pool"))
    if spec.vsphere.tls.insecure:
        problems.append(Problem("vsphere.tls.insecure", "vCenter certificate verification is OFF", severity="warning",
                                hint="set vsphere.tls.thumbprint or ca_file"))
    if spec.nsx.tls.insecure:
        problems.append(Problem("nsx.tls.insecure", "NSX certificate verification is OFF", severity="warning",
                                hint="set nsx.tls.thumbprint or ca_file"))
    return problems


def _sandbox_rules(spec: ClusterSpec) -> list[Problem]:
    """Each sandbox setting is a warning that says what production does instead; the bridge CNI
    needs kube-proxy, so what only Cilium does is an error."""
    sandbox = spec.sandbox
    if sandbox is None:
        return []
    why = f"sandbox: {sandbox.reason}"
    problems = [Problem("sandbox", f"sandbox settings in force, not for production ({sandbox.reason})",
                        severity="warning", hint="remove the sandbox section on real vSphere and NSX")]
    if sandbox.kubelet_cgroup_driver != "systemd":
        problems.append(Problem("sandbox.kubelet_cgroup_driver", f"kubelet and containerd use the "
                                f"{sandbox.kubelet_cgroup_driver} cgroup driver instead of systemd", severity="warning",
                                hint=why))
    if sandbox.allow_cgroup_v1:
        problems.append(Problem("sandbox.allow_cgroup_v1", "the kubelet starts on cgroup v1 (failCgroupV1: false); "
                                "Ubuntu 24.04 nodes have cgroup v2", severity="warning", hint=why))
    if sandbox.ignore_preflight_errors:
        problems.append(Problem("sandbox.ignore_preflight_errors", "kubeadm skips the preflight checks "
                                f"{', '.join(sandbox.ignore_preflight_errors)}", severity="warning", hint=why))
    if sandbox.kube_proxy_conntrack_max_per_core is not None:
        problems.append(Problem("sandbox.kube_proxy_conntrack_max_per_core", "kube-proxy's conntrack.maxPerCore is "
                                f"{sandbox.kube_proxy_conntrack_max_per_core} (production keeps kube-proxy's default)",
                                severity="warning", hint=why))
    if sandbox.skip_node_checks:
        problems.append(Problem("sandbox.skip_node_checks", "nsxkube skips its node checks "
                                f"{', '.join(sandbox.skip_node_checks)} before kubeadm", severity="warning", hint=why))
    if sandbox.cni == "bridge":
        problems.append(Problem("sandbox.cni", "pods use the CNI bridge plugin on each node's pod CIDR instead of "
                                "Cilium (no tunnel, no network policies, no Hubble)", severity="warning", hint=why))
        if spec.addons.cilium.kube_proxy_replacement:
            # with kube-proxy, the rules above already refuse what only Cilium does (its ingress,
            # Gateway API, L2 announcements)
            problems.append(Problem("addons.cilium.kube_proxy_replacement", "sandbox.cni is bridge: without Cilium "
                                    "nothing replaces kube-proxy", hint="set it to false"))
    return problems


def _no_proxy(spec: ClusterSpec) -> tuple[str, ...]:
    if spec.network.proxy is None:
        return ()
    k8s = spec.kubernetes
    entries = ["localhost", "127.0.0.1", ".svc", f".{k8s.dns_domain}", str(k8s.pod_cidr), str(k8s.service_cidr),
               str(spec.nsx.segment.cidr), str(spec.network.api_vip), spec.vsphere.server]
    if k8s.api_dns_name:
        entries.append(k8s.api_dns_name)
    entries += spec.network.proxy.no_proxy
    return tuple(dict.fromkeys(entries))


