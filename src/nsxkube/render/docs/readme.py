"""README.md of the bundle: this cluster at a glance and the runbook from NSX to validation."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.docs import bundle
from nsxkube.render.docs.markdown import bullets, document, render_steps, table
from nsxkube.render.docs.steps import stage0_steps, stage1_steps, stage2_steps

STAGE_DOCS = {
    "docs/stage-0-nsx-and-template.md": "stage 0: NSX segment, DFW, SpoofGuard, MTU, VM template",
    "docs/stage-1-cluster-and-addons.md": "stage 1: nodes, kubeadm, kube-vip, Cilium, CPI/CSI, LoadBalancer, ingress, "
                                          "acceptance tests",
    "docs/stage-2-operations.md": "stage 2: backups with restore drills, observability, security",
    "docs/stage-3-migration-from-tanzu.md": "stage 3: moving workloads from vSphere with Tanzu",
    "docs/troubleshooting.md": "the known NSX pains: symptom, how to confirm, fix",
}

# What each file of the other bundle parts is for, in the order the runbook uses them.
CORE_FILES = (
    (bundle.NSX_INFRA_PATCH, "the whole NSX configuration as one hierarchical Policy API body"),
    (bundle.NSX_APPLY, "sends it (curl; login from the environment)"),
    (bundle.NSX_SEGMENT, "the node segment and the IP plan"),
    (bundle.NSX_SPOOFGUARD, "how the VIP and the LoadBalancer pools get through IP discovery / SpoofGuard"),
    (bundle.NSX_DFW_RULES, "the DFW rules, each with its reason"),
    (bundle.TEMPLATE_USER_DATA, "cloud-init of the template build VM"),
    (bundle.TEMPLATE_PREPARE, "turns an Ubuntu 24.04 VM into the node template"),
    (bundle.TEMPLATE_PACKAGES, "the packages and versions it installs"),
    (bundle.TEMPLATE_SETTINGS, "VM settings the template needs (disk.EnableUUID, hardware version, PVSCSI)"),
    ("nodes/<vm>/meta-data", "per node: hostname and static network (address, gateway, DNS, MTU)"),
    ("nodes/<vm>/user-data", "per node: users and SSH keys"),
    ("nodes/<vm>/guestinfo.env", "per node: the guestinfo keys and encoded values set on the VM"),
    (bundle.KUBEADM_INIT, "kubeadm Init/Cluster/KubeletConfiguration"),
    (bundle.KUBEADM_JOIN_CONTROL_PLANE, "join configuration of the other control planes"),
    (bundle.KUBEADM_JOIN_WORKER, "join configuration of the workers"),
    (bundle.KUBE_VIP, "the kube-vip static pod that holds the API VIP (network.api_vip_provider: kube-vip)"),
    ("keepalived/<control plane>.conf", "keepalived's VRRP configuration per control plane, password left out "
                                        "(network.api_vip_provider: keepalived)"),
    (bundle.BOOTSTRAP_CONTROL_PLANE, "kubeadm init on the first control plane"),
    (bundle.JOIN_CONTROL_PLANE, "joins one more control plane"),
    (bundle.JOIN_WORKER, "joins a worker"),
    (bundle.ETCD_BACKUP, "one etcd snapshot with checksum and retention"),
    (bundle.ETCD_RESTORE, "restores a snapshot"),
    (bundle.CHECK_MTU, "DF-bit probes between nodes at the node MTU and one byte over"),
)


def cluster_facts(design: Design) -> str:
    spec, plan, mtu, v = design.spec, design.ip_plan, design.mtu, design.versions
    rows = [
        ("Kubernetes", f"{v.kubernetes} (kubeadm API {v.kubeadm_api})"),
        ("API endpoint", f"https://{design.api_endpoint}" + (f" ({spec.kubernetes.api_dns_name})"
                                                            if spec.kubernetes.api_dns_name else "")),
        ("vCenter", f"{spec.vsphere.server}: datacenter {spec.vsphere.datacenter}, cluster {spec.vsphere.cluster}, "
                    f"datastore {spec.vsphere.datastore}"),
        ("NSX", f"{spec.nsx.manager}: tier-1 {spec.nsx.tier1}, transport zone {spec.nsx.transport_zone}"),
        ("Node segment", f"{spec.nsx.segment.name} {plan.segment}, gateway {plan.gateway}"),
        ("API VIP", f"{plan.api_vip}, held by {design.api_vip_provider}"),
        ("LoadBalancer pools", ", ".join(f"{p.name} {p.range}" for p in plan.pools) or "none"),
        ("Pod / service CIDR", f"{spec.kubernetes.pod_cidr} / {spec.kubernetes.service_cidr}"),
        ("MTU chain", f"TEP {mtu.tep_mtu} → node {mtu.node_mtu} (max {mtu.node_mtu_max}) → pod {mtu.pod_mtu}"),
        ("Pod tunnel", f"{mtu.tunnel}, UDP {mtu.tunnel_port}"),
        ("Ownership tag", f"`{design.ownership.scope}={design.ownership.tag}`"),
    ]
    return table(("", "this cluster"), rows)


def ip_plan_table(design: Design) -> str:
    return table(("addresses", "count", "use"),
                 ((str(r.range), r.range.size, r.purpose) for r in design.ip_plan.reservations()))


def nodes_table(design: Design) -> str:
    rows = [(n.name, n.role, n.address, n.cpus, f"{n.memory_gib} GiB", f"{n.disk_gib} GiB",
             " ".join(f"`{p}`" for p in bundle.node_files(n))) for n in design.ip_plan.nodes]
    return table(("VM", "role", "address", "vCPU", "memory", "disk", "files"), rows)


def layout(addon_paths: list[str]) -> str:
    core = [f"`{path}`: {what}" for path, what in CORE_FILES]
    addons = [f"`{path}`" for path in addon_paths]
    docs = [f"`{path}`: {what}" for path, what in STAGE_DOCS.items()]
    return "\n\n".join([bullets(core), "Add-ons:", bullets(addons), "Runbooks per stage:", bullets(docs)])


def render_readme(design: Design, addon_paths: list[str]) -> str:
    v = design.versions
    s0, s1, s2 = stage0_steps(design), stage1_steps(design), stage2_steps(design)
    warnings = [f"`{w.key}`: {w.message}" + (f" ({w.hint})" if w.hint else "") for w in design.warnings]
    return document(
        f"# {design.name}: runbook",
        f"Kubernetes {v.kubernetes} on vSphere VMs attached to the NSX-T segment {design.spec.nsx.segment.name}, "
        f"API at https://{design.api_endpoint}. Every file of this bundle was rendered by nsxkube from cluster.yaml "
        "for this cluster only: change cluster.yaml and render again instead of editing files. No file holds a "
        "secret: logins come from environment variables at the moment a command needs them.",
        "The steps run top to bottom; each one says which files it uses, the exact commands, and what to check "
        "before going on. `nsxkube apply` performs the same steps with the same files.",
        ("## Warnings of the design\n\n" + bullets(warnings)) if warnings else "",
        "## This cluster\n\n" + cluster_facts(design),
        "## IP plan\n\n" + ip_plan_table(design),
        "## Nodes\n\n" + nodes_table(design),
        "## Bundle layout\n\n" + layout(addon_paths),
        "## Stage 0: NSX and the VM template\n\n" + render_steps(s0, 1),
        "## Stage 1: the cluster and its add-ons\n\n" + render_steps(s1, 1 + len(s0)),
        "## Stage 2: operations\n\n" + render_steps(s2, 1 + len(s0) + len(s1)),
        "## When something does not work\n\n"
        "`docs/troubleshooting.md` lists the known NSX pains with this cluster's numbers: a VIP that does not "
        "answer, large packets that hang, a dropped tunnel, volumes without ProviderIDs, disks without UUIDs.",
    )
