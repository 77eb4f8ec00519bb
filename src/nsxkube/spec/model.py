"""The pydantic model of cluster.yaml. Defaults come from the seed plan's environment.

Only shape and single-field rules live here; rules that relate several fields (overlaps,
sizes, the MTU chain) live in ``nsxkube.design``, which can explain them with the whole plan.
Secrets are never values here: only the names of environment variables that hold them.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from nsxkube.spec.types import (
    AbsolutePath,
    Address,
    Cidr,
    DnsLabel,
    DnsName,
    Endpoint,
    EnvName,
    FilePath,
    FolderPath,
    Host,
    HttpUrl,
    InventoryName,
    NsxId,
    Range,
    Text,
    check_host,
    check_http_url,
)


class Strict(BaseModel):
    """Unknown keys are errors (with a did-you-mean); parsed specs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Credentials(Strict):
    user_env: EnvName = Field(description="environment variable holding the user name")
    password_env: EnvName = Field(description="environment variable holding the password")


_THUMBPRINT = re.compile(r"^([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$")


class Tls(Strict):
    """How the server's certificate is trusted. Verification is on unless ``insecure`` is set."""

    ca_file: FilePath | None = Field(default=None, description="PEM file of the CA that signed the server certificate")
    thumbprint: str | None = Field(default=None, description="SHA-256 (or SHA-1) of the certificate, AA:BB:…")
    insecure: bool = Field(default=False, description="skip certificate verification (loud warning every run)")

    @field_validator("thumbprint")
    @classmethod
    def _thumbprint_format(cls, value: str | None) -> str | None:
        if value is not None and not _THUMBPRINT.match(value):
            raise ValueError("must be a SHA-256 or SHA-1 fingerprint written as colon-separated hex pairs")
        return value.upper() if value else value

    @model_validator(mode="after")
    def _one_way_of_trust(self) -> Tls:
        if self.insecure and (self.ca_file or self.thumbprint):
            raise ValueError("insecure: true cannot be combined with ca_file or thumbprint: choose one")
        return self


class Kubernetes(Strict):
    version: str = Field(default="1.35", pattern=r"^v?1\.\d+(\.\d+)?$",
                         description="a minor (newest known patch) or an exact patch; 1.34–1.37")
    pod_cidr: Cidr = Field(default=ipaddress.IPv4Network("10.244.0.0/16"), description="kubeadm podSubnet; each node gets a /24")
    service_cidr: Cidr = Field(default=ipaddress.IPv4Network("10.96.0.0/12"), description="Service ClusterIPs; at most a /12")
    dns_domain: DnsName = Field(default="cluster.local", description="cluster DNS domain")
    api_dns_name: DnsName | None = Field(default=None, description="DNS name of the API VIP; added to the certificate SANs")
    image_bundle: FilePath | None = Field(
        default=None, description="image archive (OCI layout or docker save) preloaded into containerd on every node "
        "before kubeadm, for sites without a registry; must hold every image `nsxkube check` lists")


class Vsphere(Strict):
    server: Endpoint = Field(description="vCenter host name or address, optionally :port")
    datacenter: InventoryName = Field(description="datacenter name")
    cluster: InventoryName = Field(description="compute cluster name")
    datastore: InventoryName = Field(description="datastore for the VM disks")
    folder: FolderPath | None = Field(default=None, description="VM folder path; default the datacenter's VM root")
    resource_pool: InventoryName | None = Field(default=None, description="default the cluster's root pool")
    template: InventoryName = Field(default="ubuntu-2404-k8s-template", description="the node template (see `nsxkube template`)")
    network: InventoryName = Field(default="k8s-nodes-segment", description="port group of the node segment")
    credentials: Credentials = Credentials(user_env="VSPHERE_USER", password_env="VSPHERE_PASSWORD")
    tls: Tls = Tls()
    anti_affinity: bool = Field(default=True, description="DRS rules: control planes on different hosts, workers spread")


class Segment(Strict):
    name: DnsLabel = Field(default="k8s-nodes-segment", description="NSX segment id and name")
    cidr: Cidr = Field(default=ipaddress.IPv4Network("172.16.50.0/24"), description="the node network")
    gateway: Address | None = Field(default=None, description="default the first address of the CIDR")
    dhcp_ranges: list[Range] = Field(default=[], description="NSX DHCP ranges, kept clear of every planned address")
    use_existing: bool = Field(default=False, description="the segment belongs to someone else: only read it")


class Dfw(Strict):
    enabled: bool = Field(default=True, description="create the DFW security policy from the port matrix")
    category: Literal["Infrastructure", "Environment", "Application"] = "Application"
    sequence_number: int = Field(default=100, ge=0, le=999_999)
    default_deny: bool = Field(default=True, description="drop what the port matrix does not allow")
    log_denied: bool = True


class Nsx(Strict):
    manager: Endpoint = Field(description="NSX Manager host name or address, optionally :port")
    credentials: Credentials = Credentials(user_env="NSX_USER", password_env="NSX_PASSWORD")
    tls: Tls = Tls()
    auth: Literal["session", "basic"] = Field(default="session", description="session login with XSRF token, or basic auth per call")
    transport_zone: NsxId = Field(description="overlay transport zone id for the segment")
    tier1: NsxId = Field(description="tier-1 gateway id the segment attaches to")
    domain: NsxId = Field(default="default", description="policy domain of groups and the DFW policy")
    segment: Segment = Segment()
    tep_mtu: int = Field(default=1700, ge=1280, le=9216, description="TEP / uplink MTU of the NSX hosts (Geneve underlay)")
    vip_mode: Literal["allowlist", "segment-profiles"] = Field(
        default="allowlist",
        description=(
            "allowlist: SpoofGuard stays on and the API VIP and LoadBalancer pools are added as "
            "address bindings on the ports of the nodes that may announce them; segment-profiles: "
            "a SpoofGuard profile without the binding allowlist is bound to the node segment"
        ),
    )
    dfw: Dfw = Dfw()


class LoadBalancerPool(Strict):
    name: DnsLabel
    range: Range


class Proxy(Strict):
    url: str
    no_proxy: list[str] = Field(default=[], description="hosts, .domains and CIDRs reached without the proxy")

    @field_validator("no_proxy")
    @classmethod
    def _no_proxy(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not re.fullmatch(r"[A-Za-z0-9.*:/_\[\]-]{1,253}", entry):
                raise ValueError(f"{entry!r} is not a host, .domain or CIDR (one per list item, no spaces or commas)")
        return entries

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "@" in value:
            raise ValueError("must not carry credentials: nsxkube never writes secrets into files")
        match = re.fullmatch(r"https?://([^/\s:]+)(?::(\d{1,5}))?/?", value)
        if not match or (match.group(2) and not 1 <= int(match.group(2)) <= 65535):
            raise ValueError("must look like http://proxy.example.com:3128 (port 1-65535, no credentials in the file)")
        check_host(match.group(1))
        return value.rstrip("/")


class Network(Strict):
    api_vip: Address = Field(default=ipaddress.IPv4Address("172.16.50.10"), description="the API address kube-vip holds")
    api_vip_provider: Literal["kube-vip", "keepalived"] = Field(
        default="kube-vip",
        description=(
            "what holds the API VIP on the control planes: kube-vip (a static Pod, Kubernetes Lease leader "
            "election, ARP) or keepalived (the distribution's package, VRRP in unicast between the control "
            "planes, a check on the local API server's /readyz)"
        ),
    )
    loadbalancer_pools: list[LoadBalancerPool] = [
        LoadBalancerPool(name="default", range="172.16.50.200-172.16.50.250")  # type: ignore[arg-type]
    ]
    node_mtu: int = Field(default=1500, ge=1280, le=9000, description="MTU of the node NICs; ≤ TEP MTU − 100")
    dns_servers: list[Address] = Field(default=[], description="resolvers for the nodes (at least one)")
    ntp_servers: list[Host] = Field(default=[], description="time servers (names or addresses)")
    search_domains: list[DnsName] = Field(default=[], description="DNS search domains of the nodes")
    admin_networks: list[Cidr] = Field(default=[], description="may reach the API (6443) and SSH (22)")
    client_networks: list[Cidr] = Field(
        default=[ipaddress.IPv4Network("0.0.0.0/0")], description="may reach LoadBalancer services and NodePorts"
    )
    loadbalancer_ports: list[int] = Field(default=[80, 443], description="TCP ports the DFW opens to LoadBalancer IPs")
    nodeport: bool = Field(default=True, description="open the NodePort range to client_networks")
    proxy: Proxy | None = Field(default=None, description="HTTP(S) proxy for packages and images")
    apt_mirror: HttpUrl | None = Field(default=None, description="Ubuntu archive mirror URL")
    registry_mirrors: dict[str, str] = Field(
        default={}, description="registry host → mirror URL, e.g. registry.k8s.io: https://mirror.local"
    )

    @field_validator("registry_mirrors")
    @classmethod
    def _mirrors(cls, mirrors: dict[str, str]) -> dict[str, str]:
        for registry, mirror in mirrors.items():
            if not re.match(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?$", registry):
                raise ValueError(f"{registry!r} is not a registry host[:port] such as registry.k8s.io")
            try:
                check_http_url(mirror)
            except ValueError:
                raise ValueError(f"mirror for {registry} must be an http(s) URL without credentials") from None
        return mirrors

    @field_validator("loadbalancer_ports")
    @classmethod
    def _ports(cls, ports: list[int]) -> list[int]:
        for index, port in enumerate(ports):
            if not 1 <= port <= 65535:
                raise ValueError(f"{port} is not a TCP port (1-65535)")
            if port in ports[:index]:
                raise ValueError(f"port {port} is listed twice")
        return ports


class Role(Strict):
    count: int = Field(ge=0, le=500, description="number of VMs of this role")
    name_prefix: DnsLabel = Field(description="VM names are <cluster>-<prefix>-<n>")
    cpus: int = Field(default=4, ge=1, le=768)
    memory_gib: int = Field(default=8, ge=2, le=24_576)
    disk_gib: int = Field(default=60, ge=20, le=62_000)
    addresses: list[Address] = Field(default=[], description="one per node; empty = allocate from nodes.address_range")


class Nodes(Strict):
    address_range: Range | None = Field(
        default=None, description="where node addresses are allocated; default the addresses after the API VIP"
    )
    control_planes: Role = Role(count=3, name_prefix="cp", cpus=4, memory_gib=8, disk_gib=60)
    workers: Role = Role(count=2, name_prefix="worker", cpus=4, memory_gib=16, disk_gib=100)


_SSH_KEY = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( .*)?$")


class Ssh(Strict):
    user: str = Field(default="ubuntu", pattern=r"^[a-z_][a-z0-9_-]{0,31}$", description="login user created on every node")
    port: int = Field(default=22, ge=1, le=65535)
    public_keys: list[str] = Field(default=[], description="OpenSSH public keys allowed to log in")
    private_key_file: FilePath = Field(default=Path("~/.ssh/id_ed25519"), description="key nsxkube logs in with")
    known_hosts_file: FilePath | None = Field(default=None, description="default <workdir>/known_hosts")
    trust_on_first_use: bool = Field(default=False, description="accept and record unknown host keys (fingerprint printed)")
    bastion: str | None = Field(default=None, description="jump host as user@host[:port]")

    @field_validator("bastion")
    @classmethod
    def _bastion(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = re.fullmatch(r"(?:([a-z_][a-z0-9_-]{0,31})@)?([^@:\s]+)(?::(\d{1,5}))?", value)
        if not match or (match.group(3) and not 1 <= int(match.group(3)) <= 65535):
            raise ValueError(f"{value!r} is not user@host[:port] (port 1-65535)")
        check_host(match.group(2))
        return value

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not _SSH_KEY.match(key):
                raise ValueError(f"{key[:30]!r}… is not an OpenSSH public key line (ssh-ed25519 AAAA… comment)")
            if "PRIVATE KEY" in key:
                raise ValueError("a private key was pasted: only public keys belong here")
        return keys


class Cilium(Strict):
    tunnel: Literal["geneve", "vxlan"] = Field(
        default="geneve", description="geneve (UDP 6081); vxlan (UDP 8472) is dropped by some NSX/ESXi offloads"
    )
    hubble: bool = True
    hubble_ui: bool = True
    kube_proxy_replacement: bool = True


class LoadBalancer(Strict):
    provider: Literal["metallb", "cilium-l2", "none"] = Field(default="metallb", description="who hands out and announces LoadBalancer IPs")


class Ingress(Strict):
    controller: Literal["cilium", "ingress-nginx", "none"] = Field(default="cilium", description="ingress-nginx is retired: legacy only")


class GatewayApi(Strict):
    enabled: bool = True


class Storage(Strict):
    enabled: bool = True
    class_name: DnsLabel = "vsphere-csi"
    storage_policy: Text | None = Field(default=None, description="vSphere storage policy name of the StorageClass")
    datastore_url: str | None = Field(default=None, pattern=r"^ds:///\S+$",
                                      description="datastore URL (ds:///vmfs/volumes/…/) of the StorageClass")
    default_class: bool = True
    fstype: Literal["ext4", "xfs"] = "ext4"
    reclaim_policy: Literal["Delete", "Retain"] = "Delete"

    @model_validator(mode="after")
    def _one_placement(self) -> Storage:
        if self.storage_policy and self.datastore_url:
            raise ValueError("set storage_policy or datastore_url, not both")
        return self


class Enabled(Strict):
    enabled: bool = True


class Monitoring(Strict):
    enabled: bool = True
    grafana: bool = True
    retention: str = Field(default="15d", pattern=r"^[1-9]\d{0,4}[hdwy]$", description="Prometheus retention: 15d, 12w…")
    storage_gib: int = Field(default=50, ge=1, le=65_536)


def check_cron(value: str) -> str:
    """Five fields of digits, names, ``*``, ``/``, ``,`` and ``-``: what cron and a CronJob accept."""
    fields = value.split()
    if len(fields) != 5 or not all(re.fullmatch(r"[0-9A-Za-z*/,-]{1,64}", f) for f in fields):
        raise ValueError("must be a five-field cron expression such as '0 */6 * * *'")
    return " ".join(fields)


class EtcdBackup(Strict):
    enabled: bool = True
    schedule: str = Field(default="0 */6 * * *", description="cron expression, node local time")
    keep: int = Field(default=28, ge=1, le=10_000, description="snapshots kept per control plane")
    directory: AbsolutePath = Field(default="/var/backups/etcd", description="absolute path on the control planes")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class Velero(Strict):
    enabled: bool = False
    s3_url: HttpUrl | None = None
    bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                               description="S3 bucket name (3-63 lowercase letters, digits, . and -)")
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,64}$")
    access_key_env: EnvName = "VELERO_S3_ACCESS_KEY"
    secret_key_env: EnvName = "VELERO_S3_SECRET_KEY"
    schedule: str = Field(default="0 2 * * *", description="cron expression of the Velero backup schedule")
    ttl: str = Field(default="720h", pattern=r"^[1-9]\d{0,5}h$", description="how long a backup is kept, in hours")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @model_validator(mode="after")
    def _target(self) -> Velero:
        if self.enabled and not (self.s3_url and self.bucket):
            raise ValueError("velero is enabled: set s3_url and bucket (credentials come from the env vars)")
        return self


class Backups(Strict):
    etcd: EtcdBackup = EtcdBackup()
    velero: Velero = Velero()


class Security(Strict):
    pod_security: Literal["privileged", "baseline", "restricted"] = Field(default="baseline", description="Pod Security Admission level enforced")
    default_deny_network_policies: bool = True
    namespaces: list[DnsLabel] = Field(default=["default"], description="namespaces given the baseline")


class Charts(Strict):
    """Where the Helm charts come from: the projects' public repositories unless one of these is set."""

    directory: Path | None = Field(default=None, description="air-gapped: a directory holding <chart>-<version>.tgz "
                                   "for every pinned chart (helm pull --version …)")
    oci: str | None = Field(default=None, pattern=r"^oci://[^/\s]+(/[^\s]*)?$",
                            description="an OCI registry path holding every pinned chart, e.g. oci://registry.example.com/charts")

    @model_validator(mode="after")
    def _one_source(self) -> Charts:
        if self.directory and self.oci:
            raise ValueError("set directory or oci, not both (neither: the public repositories)")
        return self


class Addons(Strict):
    charts: Charts = Field(default=Charts(), description="where Helm charts come from (public repositories by default)")
    cilium: Cilium = Cilium()
    loadbalancer: LoadBalancer = LoadBalancer()
    ingress: Ingress = Ingress()
    gateway_api: GatewayApi = GatewayApi()
    storage: Storage = Storage()
    metrics_server: Enabled = Enabled()
    monitoring: Monitoring = Monitoring()
    backups: Backups = Backups()
    security: Security = Security()


class Sandbox(Strict):
    """What a sandbox forces that production never wants — the nsxkube lab, whose nodes are network
    namespaces on one machine. `check` lists every setting made here, and every run repeats it."""

    reason: str = Field(min_length=1, pattern=r"\S", description="why this cluster differs from production (shown by check)")
    kubelet_cgroup_driver: Literal["systemd", "cgroupfs"] = Field(
        default="systemd", description="cgroupfs where PID 1 is not systemd (kubelet and containerd)")
    allow_cgroup_v1: bool = Field(default=False, description="let the kubelet start on a cgroup v1 host (failCgroupV1: false)")
    ignore_preflight_errors: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]*$")]] = Field(
        default=[], description="kubeadm preflight checks to skip, e.g. SystemVerification")
    cni: Literal["cilium", "bridge"] = Field(
        default="cilium", description="bridge: the CNI bridge plugin on each node's pod CIDR in place of Cilium")
    kube_proxy_conntrack_max_per_core: int | None = Field(
        default=None, ge=0, description="kube-proxy's conntrack.maxPerCore; 0 leaves nf_conntrack_max alone "
                                        "(a node in a network namespace cannot set it)")
    skip_node_checks: list[Literal["clock"]] = Field(
        default=[], description="nsxkube's own node checks to skip: clock (a kernel clock not NTP-disciplined)")


class ClusterSpec(Strict):
    """The whole of cluster.yaml."""

    name: DnsLabel
    kubernetes: Kubernetes = Kubernetes()
    vsphere: Vsphere
    nsx: Nsx
    network: Network = Network()
    nodes: Nodes = Nodes()
    ssh: Ssh = Ssh()
    addons: Addons = Addons()
    sandbox: Sandbox | None = Field(default=None, description="sandbox-only settings (the nsxkube lab); never in production")
