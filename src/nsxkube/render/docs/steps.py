"""The runbook's steps, stage by stage, with this cluster's names, addresses and versions."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design, Node
from nsxkube.render.addons import paths
from nsxkube.render.addons.acceptance import TESTS_NAMESPACE, check_commands
from nsxkube.render.addons.common import (
    CSI_NAMESPACE,
    GATEWAY_NAMESPACE,
    METALLB_NAMESPACE,
    MONITORING_NAMESPACE,
    VELERO_NAMESPACE,
)
from nsxkube.render.addons.ingress import GATEWAY_NAME
from nsxkube.render.addons.secrets_script import secret_env_names
from nsxkube.render.addons.security import READ_ONLY_GROUP, baseline_namespaces
from nsxkube.render.addons.versions import HelmChart, helm_charts, manifests
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.docs import bundle
from nsxkube.render.docs.markdown import Step
from nsxkube.render.files import to_yaml

PSA_PROBE_IMAGE = "registry.k8s.io/pause:3.10"


def _chart(design: Design, release: str) -> HelmChart:
    return next(c for c in helm_charts(design) if c.release == release)


def _manifest_url(design: Design, name_start: str) -> str:
    return next(m.url for m in manifests(design) if m.name.startswith(name_start))


def _helm(design: Design, release: str) -> list[str]:
    chart = _chart(design, release)
    repo = chart.repo_command()
    return [*([repo] if repo else []), chart.install_command()]


def _first_cp(design: Design) -> Node:
    return design.ip_plan.control_planes[0]


def _govc_vm_path(design: Design) -> str:
    vsphere = design.spec.vsphere
    return f"/{vsphere.datacenter}/vm" + (f"/{vsphere.folder}" if vsphere.folder else "")


def _govc_pool(design: Design) -> str:
    vsphere = design.spec.vsphere
    pool = f"/{vsphere.datacenter}/host/{vsphere.cluster}/Resources"
    return pool + (f"/{vsphere.resource_pool}" if vsphere.resource_pool else "")


# ---- stage 0: NSX and the VM template -----------------------------------------------------


def workstation(design: Design) -> Step:
    vsphere, nsx, velero = design.spec.vsphere, design.spec.nsx, design.spec.addons.backups.velero
    users = [vsphere.credentials.user_env, nsx.credentials.user_env]
    hidden = [vsphere.credentials.password_env, nsx.credentials.password_env]
    if velero.enabled:
        hidden += [velero.access_key_env, velero.secret_key_env]
    env = users + hidden
    commands = [
        "# Logins come from the environment only; secrets are read without echo, so they stay out of history.",
        *(f"read -rp '{name}: ' {name} && export {name}" for name in users),
        *(f"read -rsp '{name}: ' {name} && echo && export {name}" for name in hidden),
        "# govc reads its vCenter login from these.",
        f"export GOVC_URL={vsphere.server} GOVC_DATACENTER='{vsphere.datacenter}'",
        f'export GOVC_USERNAME="${vsphere.credentials.user_env}" GOVC_PASSWORD="${vsphere.credentials.password_env}"',
    ]
    return Step(
        "Prepare the workstation",
        f"Run every command from the bundle directory on a machine in an admin network "
        f"({', '.join(str(n) for n in design.spec.network.admin_networks) or 'see network.admin_networks'}). "
        f"Tools: kubectl {design.versions.kubernetes}, helm, jq, curl, govc, ssh, cilium-cli "
        f"{design.versions.cilium_cli} ({_manifest_url(design, 'cilium-cli')})"
        + (f", velero {design.versions.velero}" if velero.enabled else "") + ".",
        commands=tuple(commands),
        check_commands=(
            f"for v in {' '.join(env)}; do [[ -n \"${{!v:-}}\" ]] || echo \"missing $v\"; done",
            "govc about   # prints the vCenter version",
        ),
    )


def nsx_review(design: Design) -> Step:
    segment = design.spec.nsx.segment
    return Step(
        "Review the NSX plan",
        f"Read what will change in NSX Manager {design.spec.nsx.manager} before anything does: the node segment "
        f"{segment.name} ({segment.cidr}, gateway {design.ip_plan.gateway}, tier-1 {design.spec.nsx.tier1}, "
        f"transport zone {design.spec.nsx.transport_zone}), the addresses nodes may announce besides their own "
        f"(API VIP {design.ip_plan.api_vip} and the LoadBalancer pools), and the DFW rules with the reason for each.",
        files=(bundle.NSX_SEGMENT, bundle.NSX_SPOOFGUARD, bundle.NSX_DFW_RULES),
        checks=(
            "Every address in the IP plan (table at the top of this file) is free in your IPAM.",
            "Nothing in NSX carries the same segment name unless it is meant to be reused "
            "(`nsx.segment.use_existing`).",
            "Objects tagged by Tanzu/NCP (`ncp/*`, `nsx-op/*`) are not touched by this configuration.",
        ),
        check_commands=(bundle.nsx_get(design, f"/infra/segments/{segment.name}") +
                        " || echo 'segment does not exist yet'",),
    )


def nsx_apply(design: Design) -> Step:
    segment = design.spec.nsx.segment.name
    return Step(
        "Apply the NSX configuration",
        f"One hierarchical Policy API call (`PATCH /policy/api/v1/infra`) creates or updates the segment, the "
        f"IP discovery / SpoofGuard profiles that let the VIP and the pools through, the groups, services and one "
        f"DFW policy. Every object carries the tag `{design.ownership.scope}={design.ownership.tag}`.",
        files=(bundle.NSX_INFRA_PATCH, bundle.NSX_APPLY),
        commands=(f"bash {bundle.NSX_APPLY}   # reads ${design.spec.nsx.credentials.user_env} / "
                  f"${design.spec.nsx.credentials.password_env}",),
        checks=(f"The segment {segment} is REALIZED, and the DFW policy shows in NSX Manager under "
                f"Security > Distributed Firewall > {design.spec.nsx.dfw.category}.",),
        check_commands=(
            bundle.nsx_get(design, f"/infra/realized-state/realized-entities?intent_path=/infra/segments/{segment}")
            + " | jq -r '.results[].state'   # REALIZED",
        ),
    )


def _build_meta_data(design: Design) -> str:
    """Network config for the template build VM when the segment has no DHCP (address from $BUILD_ADDRESS)."""
    plan, network = design.ip_plan, design.spec.network
    nic: dict[str, Any] = {
        "match": {"driver": "vmxnet3"},
        "set-name": NODE_NIC,
        "addresses": [f"${{BUILD_ADDRESS}}/{plan.prefix_length}"],
        "routes": [{"to": "0.0.0.0/0", "via": str(plan.gateway)}],
        "mtu": design.mtu.node_mtu,
        "nameservers": {"addresses": [str(a) for a in network.dns_servers]},
    }
    return to_yaml({"instance-id": f"{design.spec.vsphere.template}-build",
                    "local-hostname": design.spec.vsphere.template,
                    "network": {"version": 2, "ethernets": {NODE_NIC: nic}}})


def vm_template(design: Design) -> Step:
    vsphere = design.spec.vsphere
    name = vsphere.template
    folder, pool = _govc_vm_path(design), _govc_pool(design)
    commands = [
        f"govc folder.create {folder} 2>/dev/null || true",
        f"govc import.ova -name {name} -ds '{vsphere.datastore}' -pool '{pool}' -folder '{folder}' \\",
        "  https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.ova",
        f"govc vm.network.change -vm {name} -net '{vsphere.network}' ethernet-0",
        f"# The settings of {bundle.TEMPLATE_SETTINGS}, inherited by every clone.",
        f"govc vm.change -vm {name} -e disk.enableUUID=TRUE",
        f"govc vm.upgrade -vm {name} -version=15",
        f"govc vm.change -vm {name} -e guestinfo.userdata=\"$(gzip -c9 {bundle.TEMPLATE_USER_DATA} | base64 -w0)\" \\",
        "  -e guestinfo.userdata.encoding=gzip+base64",
    ]
    notes = [f"`{bundle.TEMPLATE_USER_DATA}` writes and runs `{bundle.TEMPLATE_PREPARE}` (the packages of "
             f"`{bundle.TEMPLATE_PACKAGES}`) and powers the VM off when the preparation succeeded; a failed one "
             "leaves it running so that its log can be read. By hand instead: copy prepare-vm.sh to the VM, run "
             "`sudo ./prepare-vm.sh`, power off."]
    if not design.spec.nsx.segment.dhcp_ranges:
        last = design.ip_plan.nodes[-1]
        commands += [
            f"# No DHCP on {design.spec.nsx.segment.name}: a temporary address for the build VM. {last.address} "
            f"({last.name}) is free until the nodes exist.",
            f"BUILD_ADDRESS={last.address}",
            "cat > build-meta-data <<EOF",
            *_build_meta_data(design).splitlines(),
            "EOF",
            f"govc vm.change -vm {name} -e guestinfo.metadata=\"$(gzip -c9 build-meta-data | base64 -w0)\" \\",
            "  -e guestinfo.metadata.encoding=gzip+base64",
        ]
    commands += [
        f"govc vm.power -on {name}",
        "# Wait for the preparation to power the VM off (about 10 minutes).",
        f"until [[ $(govc object.collect -s '{folder}/{name}' runtime.powerState) == poweredOff ]]; do sleep 30; done",
        f"govc vm.change -vm {name} -e guestinfo.userdata= -e guestinfo.metadata=   # clones get their own",
        f"govc vm.markastemplate {name}",
    ]
    return Step(
        "Build the Ubuntu 24.04 VM template",
        f"The template {name} carries containerd {design.versions.containerd}, kubeadm/kubelet/kubectl "
        f"{design.versions.kubernetes} (held) from {design.versions.package_repo}, kernel modules, sysctls, "
        "swap off and open-vm-tools, with the VM settings the CSI driver needs.",
        files=(bundle.TEMPLATE_SETTINGS, bundle.TEMPLATE_PACKAGES, bundle.TEMPLATE_USER_DATA, bundle.TEMPLATE_PREPARE),
        commands=tuple(commands),
        notes=tuple(notes),
        checks=("The template exists with `disk.enableUUID` TRUE (the CSI driver cannot find disks otherwise) and "
                "hardware version 15 or later.",),
        check_commands=(f"govc vm.info -e {name} | grep -i -e enableuuid -e 'Guest name'",),
    )


def stage0_steps(design: Design) -> list[Step]:
    return [workstation(design), nsx_review(design), nsx_apply(design), vm_template(design)]


# ---- stage 1: the cluster -----------------------------------------------------------------


def create_vms(design: Design) -> Step:
    vsphere = design.spec.vsphere
    plan = design.ip_plan
    folder, pool = _govc_vm_path(design), _govc_pool(design)
    commands = ["# One clone per node, sized by its role; nothing is powered on yet."]
    for node in plan.nodes:
        commands.append(f"govc vm.clone -vm {vsphere.template} -on=false -folder '{folder}' -pool '{pool}' "
                        f"-ds '{vsphere.datastore}' -net '{vsphere.network}' -c {node.cpus} -m {node.memory_gib * 1024} "
                        f"{node.name}")
        commands.append(f"govc vm.disk.change -vm {node.name} -size {node.disk_gib}G")
    names = " ".join(n.name for n in plan.nodes)
    commands += [
        "# The guestinfo keys carry each node's cloud-init metadata (hostname, static address, MTU) and user-data.",
        f"for vm in {names}; do",
        "  while IFS= read -r setting; do",
        '    [[ -z "$setting" || "$setting" == \\#* ]] && continue',
        '    govc vm.change -vm "$vm" -e "$setting"',
        '  done < "nodes/$vm/guestinfo.env"',
        "done",
    ]
    if vsphere.anti_affinity and len(plan.control_planes) > 1:
        commands.append(f"govc cluster.rule.create -cluster '{vsphere.cluster}' -name {design.name}-control-planes "
                        f"-enable -anti-affinity {' '.join(n.name for n in plan.control_planes)}")
    commands.append(f"govc vm.power -on {names}")
    keepalived = design.api_vip_provider == "keepalived"
    commands.append("# When cloud-init is done: the bundle's kubeadm/ and scripts/ side by side on every node"
                    + (" (and keepalived/ on the control planes)." if keepalived else "."))
    for node in plan.nodes:
        sources = "kubeadm scripts" + (" keepalived" if keepalived and node.is_control_plane else "")
        commands.append(bundle.ssh(design, node, f"'cloud-init status --wait && mkdir -p {bundle.NODE_WORKDIR}'")
                        + " && " + bundle.copy_to_node(design, node, sources))
    first_files = bundle.node_files(plan.nodes[0])
    return Step(
        "Create the node VMs",
        f"{len(plan.control_planes)} control planes and {len(plan.workers)} workers are cloned from {vsphere.template} "
        f"into {folder} on {vsphere.datastore}, attached to {vsphere.network}. Each node's files are "
        f"`nodes/<vm>/meta-data`, `nodes/<vm>/user-data` and `nodes/<vm>/guestinfo.env` (for example "
        f"`{first_files[0]}`, `{first_files[1]}`, `{first_files[2]}`); guestinfo.env holds the first two encoded "
        "as the VM's advanced settings.",
        files=tuple(path for node in plan.nodes for path in bundle.node_files(node)),
        commands=tuple(commands),
        checks=("Each node answers on its address with its own hostname and cloud-init done: "
                + ", ".join(f"{n.name} {n.address}" for n in plan.nodes) + ".",),
        check_commands=tuple(bundle.ssh(design, n, "'hostname; cloud-init status'") for n in plan.nodes),
    )


def check_mtu(design: Design) -> Step:
    mtu = design.mtu
    a, b = design.ip_plan.nodes[0], design.ip_plan.nodes[-1]
    return Step(
        "Prove the MTU chain between nodes",
        f"NSX TEP MTU {mtu.tep_mtu} − Geneve {mtu.nsx_overhead} leaves at most {mtu.node_mtu_max} for the nodes; they "
        f"use {mtu.node_mtu}. On every node the script sends DF-bit pings of exactly {mtu.probe_payload} bytes to "
        f"every other node (must pass) and {mtu.probe_payload_over} bytes (must fail); anything else means a hop "
        "with another MTU (see docs/troubleshooting.md).",
        files=(bundle.CHECK_MTU,),
        commands=tuple(bundle.ssh(design, n, f"bash {bundle.NODE_WORKDIR}/{bundle.CHECK_MTU}")
                       for n in design.ip_plan.nodes),
        checks=("Every run ends with its verdict line and exit status 0.",),
        check_commands=(
            bundle.ssh(design, a, f"ping -M do -c 3 -s {mtu.probe_payload} {b.address}") + "   # must pass",
            bundle.ssh(design, a, f"ping -M do -c 3 -s {mtu.probe_payload_over} {b.address}") + "   # must fail",
        ),
    )


def preload_images(design: Design) -> Step | None:
    archive = design.spec.kubernetes.image_bundle
    if archive is None:
        return None
    from nsxkube.images import PRELOAD_SCRIPT

    commands = []
    for node in design.ip_plan.nodes:
        commands.append(bundle.copy_to_node(design, node, str(archive)))
        commands.append(_run_on_node(design, node, PRELOAD_SCRIPT, f" {archive.name}"))
    return Step(
        "Preload the image bundle into containerd",
        f"No registry is reachable: every node loads {archive.name} into containerd's k8s.io namespace (where the "
        f"kubelet looks) before kubeadm, and the script checks that all {len(design.node_images)} images kubeadm and "
        "kube-vip need are there. containerd's sandbox image is pinned to the bundle's pause image.",
        files=(PRELOAD_SCRIPT,),
        commands=tuple(commands),
        checks=("Each run ends with 'all N required images are loaded'; a 'missing' line names an image to add.",),
        check_commands=(bundle.ssh(design, design.ip_plan.nodes[0], "sudo ctr -n k8s.io images ls -q"),),
    )


def _run_on_node(design: Design, node: Node, script: str, arguments: str = "") -> str:
    return bundle.ssh(design, node, f"'cd {bundle.NODE_WORKDIR} && sudo bash {script}{arguments}'")


def _join_on_node(design: Design, node: Node, script: str) -> str:
    """Runs a join script with the join values in its environment, passed through stdin (never argv)."""
    inner = f'sudo bash -c "set -a && . /dev/stdin && set +a && exec bash {script}"'
    return bundle.ssh(design, node, f"'cd {bundle.NODE_WORKDIR} && {inner}'") + ' <<< "$JOIN"'


def bootstrap(design: Design) -> Step:
    cp = _first_cp(design)
    vip = design.ip_plan.api_vip
    if design.api_vip_provider == "keepalived":
        holder = (
            f"keepalived (Ubuntu's package, installed by the control planes' cloud-init) holds the VIP {vip}: VRRP "
            "in unicast between the control planes, a check on the local API server's /readyz (2 failures → the "
            "holder gives the VIP up), advertisements every second, `nopreempt` so a control plane that comes "
            "back does not take the VIP back. The script creates the cluster CA first and derives the VRRP "
            "password on the node from its key (never in cluster.yaml or this bundle); kubeadm needs no switch. "
        )
        files = (bundle.KUBEADM_INIT, f"keepalived/{cp.name}.conf", bundle.BOOTSTRAP_CONTROL_PLANE)
        holder_check = (bundle.ssh(design, cp, "'ip -brief address | grep -F " + str(vip)
                                   + "; systemctl status keepalived --no-pager | tail -5'")
                        + "   # the VRRP master holds the VIP")
    else:
        holder = (
            f"kube-vip holds the VIP {vip} in ARP mode (a static Pod, leader election on a Lease). On Kubernetes "
            "≥ 1.29 kube-vip needs super-admin.conf while `kubeadm init` runs; the script then switches it to "
            "admin.conf one instance at a time, answering the VIP from lo meanwhile, so the API never drops. "
            "(Choose `network.api_vip_provider: keepalived` for a VIP that does not depend on the kubelet.) "
        )
        files = (bundle.KUBEADM_INIT, bundle.KUBE_VIP, "kubeadm/kube-vip-init.yaml", bundle.BOOTSTRAP_CONTROL_PLANE)
        holder_check = bundle.ssh(design, cp, f"ip -brief address | grep -F {vip}") + "   # kube-vip holds the VIP here"
    return Step(
        f"Bootstrap the first control plane ({cp.name})",
        f"`kubeadm init` with the API endpoint {design.api_endpoint}; " + holder
        + "On stdout it prints the join values (NSXKUBE_JOIN_TOKEN and friends): they "
        "are secrets for two hours, kept here in a shell variable only.",
        files=files,
        commands=(
            f"JOIN=$({_run_on_node(design, cp, bundle.BOOTSTRAP_CONTROL_PLANE)})",
            "# The admin kubeconfig, readable by you only.",
            f"(umask 077 && {bundle.ssh(design, cp, 'sudo cat /etc/kubernetes/admin.conf')} > kubeconfig)",
            'export KUBECONFIG="$PWD/kubeconfig"',
        ),
        notes=("When the join values have expired (after two hours): "
               f"`JOIN=$({_run_on_node(design, cp, bundle.BOOTSTRAP_CONTROL_PLANE, ' --print-join')})`.",),
        checks=(f"The API answers on the VIP {vip} and {cp.name} is listed (NotReady until Cilium runs).",),
        check_commands=(
            f"curl -fsSk https://{vip}:6443/livez; echo",
            "kubectl get nodes -o wide",
            holder_check,
        ),
    )


def join_control_planes(design: Design) -> Step | None:
    others = design.ip_plan.control_planes[1:]
    if not others:
        return None
    commands = []
    for node in others:
        commands += [
            f"# {node.name}: only after the previous member's etcd is Ready (etcd adds one member at a time).",
            _join_on_node(design, node, bundle.JOIN_CONTROL_PLANE),
            f"kubectl -n kube-system wait --for=condition=Ready pod/etcd-{node.name} --timeout=10m",
        ]
    cp = _first_cp(design)
    return Step(
        "Join the other control planes, one at a time",
        "Never join two control planes at once. The script fills the token, CA hash and certificate key of "
        "the join configuration from the values in $JOIN, in a private tmpfs directory only while kubeadm runs.",
        files=(bundle.KUBEADM_JOIN_CONTROL_PLANE, bundle.JOIN_CONTROL_PLANE),
        commands=tuple(commands),
        checks=(f"etcd lists {len(design.ip_plan.control_planes)} started members.",),
        check_commands=(
            f"kubectl -n kube-system exec etcd-{cp.name} -- etcdctl --endpoints=https://127.0.0.1:2379 "
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
            "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list -w table",
        ),
    )


def join_workers(design: Design) -> Step | None:
    workers = design.ip_plan.workers
    if not workers:
        return None
    commands = [_join_on_node(design, node, bundle.JOIN_WORKER) + " &" for node in workers]
    commands += ["wait   # workers may join in parallel", "unset JOIN"]
    return Step(
        "Join the workers",
        "Workers join in parallel, with the token and CA hash from $JOIN.",
        files=(bundle.KUBEADM_JOIN_WORKER, bundle.JOIN_WORKER),
        commands=tuple(commands),
        checks=(f"All {len(design.ip_plan.nodes)} nodes are listed (NotReady until Cilium runs, and tainted "
                "node.cloudprovider.kubernetes.io/uninitialized until the CPI runs).",),
        check_commands=("kubectl get nodes -o wide",),
    )


def approve_serving_certificates(design: Design) -> Step:
    return Step(
        "Approve the kubelet serving certificates",
        "Kubelets ask for serving certificates signed by the cluster CA (serverTLSBootstrap), so that metrics-server "
        "and Prometheus can verify them. Approve only requests from this cluster's nodes.",
        commands=(
            "kubectl get csr -o json | jq -r '.items[] | select(.spec.signerName == \"kubernetes.io/kubelet-serving\")"
            " | select(.status.conditions == null) | .metadata.name' | xargs -r kubectl certificate approve",
        ),
        notes=("Repeat after a node joins or a kubelet certificate rotates (about once a year).",),
        check_commands=("kubectl get csr   # every kubelet-serving request: Approved,Issued",),
    )


def gateway_api_crds(design: Design) -> Step | None:
    if not design.spec.addons.gateway_api.enabled:
        return None
    url = _manifest_url(design, "Gateway API")
    return Step(
        f"Install the Gateway API CRDs ({design.versions.gateway_api})",
        "Before Cilium: its Gateway API controller starts only when the CRDs already exist.",
        commands=(f"kubectl apply --server-side -f {url}",),
        check_commands=("kubectl get crd gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io",),
    )


def cilium(design: Design) -> Step:
    mtu = design.mtu
    return Step(
        f"Install Cilium {design.versions.cilium}",
        f"The CNI with kube-proxy replacement, {mtu.tunnel} tunnel (UDP {mtu.tunnel_port}), pod MTU {mtu.pod_mtu} "
        f"(`MTU: {mtu.pod_mtu + mtu.tunnel_overhead}` in the values: Cilium subtracts its {mtu.tunnel_overhead} bytes).",
        files=(paths.CILIUM_VALUES,),
        commands=tuple(_helm(design, "cilium")),
        checks=("`cilium status` is all OK and every node becomes Ready.",),
        check_commands=(
            "cilium status --wait",
            "kubectl get nodes",
            "kubectl -n kube-system exec ds/cilium -- cilium-dbg status | grep -i KubeProxyReplacement",
        ),
    )


def secrets(design: Design) -> Step:
    env = secret_env_names(design)
    return Step(
        "Create the add-on Secrets",
        "vCenter's login for the CPI and CSI"
        + (", the S3 keys for Velero" if design.spec.addons.backups.velero.enabled else "")
        + (", and Grafana's admin password (generated once)" if design.spec.addons.monitoring.enabled
           and design.spec.addons.monitoring.grafana else "")
        + f" go straight from the environment ({', '.join('$' + e for e in env)}) into Secrets; the bundle holds "
        "only templates with placeholders.",
        files=(paths.CREATE_SECRETS, paths.CPI_SECRET_TEMPLATE,
               *((paths.CSI_CONF_TEMPLATE,) if design.spec.addons.storage.enabled else ())),
        commands=(f"bash {paths.CREATE_SECRETS}",),
        check_commands=("kubectl -n kube-system get secret vsphere-cloud-secret",),
    )


def cpi(design: Design) -> Step:
    url = _manifest_url(design, "vSphere CPI")
    return Step(
        "Install the vSphere CPI",
        "The cloud provider gives every node its ProviderID and removes the uninitialized taint. The upstream "
        "manifest's example Secret and ConfigMap are left out with a label selector: ours are used.",
        files=(paths.CPI_CONFIG, paths.CPI_SECRET_TEMPLATE),
        commands=(
            f"kubectl apply -f {paths.CPI_CONFIG}",
            f"curl -fsSLo vsphere-cpi.yaml {url}",
            "kubectl apply -l 'vsphere-cpi-infra notin (secret,config)' -f vsphere-cpi.yaml",
        ),
        checks=("Every node has a `vsphere://` ProviderID and no uninitialized taint. The CSI driver must not be "
                "installed before this holds.",),
        check_commands=(
            "kubectl -n kube-system rollout status daemonset/vsphere-cloud-controller-manager --timeout=5m",
            "kubectl get nodes -o custom-columns=NAME:.metadata.name,PROVIDER:.spec.providerID,"
            "TAINTS:.spec.taints[*].key",
        ),
    )


def csi(design: Design) -> Step | None:
    storage = design.spec.addons.storage
    if not storage.enabled:
        return None
    commands = [
        f"kubectl apply -f {paths.CSI_NAMESPACE}",
        f"kubectl -n {CSI_NAMESPACE} get secret vsphere-config-secret   # made by {paths.CREATE_SECRETS}",
        f"kubectl apply -f {_manifest_url(design, 'vSphere CSI')}",
        f"kubectl -n {CSI_NAMESPACE} rollout status deployment/vsphere-csi-controller --timeout=10m",
        f"kubectl apply -f {paths.STORAGE_CLASS}",
    ]
    files = [paths.CSI_NAMESPACE, paths.CSI_CONF_TEMPLATE, paths.STORAGE_CLASS]
    if design.spec.addons.backups.velero.enabled:
        commands += [
            "# Velero's CSI snapshots need the snapshot controller and CRDs shipped with the driver.",
            f"curl -fsSLO {_manifest_url(design, 'CSI snapshot')}",
            "bash deploy-csi-snapshot-components.sh",
            f"kubectl apply -f {paths.SNAPSHOT_CLASS}",
        ]
        files.append(paths.SNAPSHOT_CLASS)
    return Step(
        f"Install the vSphere CSI driver {design.versions.vsphere_csi} and the StorageClass",
        f"Volumes on vSphere through CNS; StorageClass {storage.class_name}"
        + (" is the default." if storage.default_class else "."),
        files=tuple(files),
        commands=tuple(commands),
        checks=("Every node lists the driver csi.vsphere.vmware.com, and the StorageClass exists.",),
        check_commands=("kubectl get csinodes -o custom-columns=NODE:.metadata.name,DRIVERS:.spec.drivers[*].name",
                        "kubectl get storageclass"),
    )


def loadbalancer(design: Design) -> Step | None:
    provider = design.spec.addons.loadbalancer.provider
    pools = ", ".join(f"{p.name} {p.range}" for p in design.ip_plan.pools)
    if provider == "metallb":
        return Step(
            f"Install MetalLB {design.versions.metallb} and its pools",
            f"LoadBalancer addresses from {pools}, announced by ARP on the node segment (NSX lets them through, "
            "see nsx/spoofguard-allowlist.md).",
            files=(paths.METALLB_NAMESPACE, paths.METALLB_POOLS),
            commands=(
                f"kubectl apply -f {paths.METALLB_NAMESPACE}",
                *_helm(design, "metallb"),
                f"kubectl -n {METALLB_NAMESPACE} wait --for=condition=Available deployment --all --timeout=5m",
                f"kubectl apply -f {paths.METALLB_POOLS}",
            ),
            check_commands=(f"kubectl -n {METALLB_NAMESPACE} get ipaddresspools,l2advertisements",),
        )
    if provider == "cilium-l2":
        return Step(
            "Create the Cilium LoadBalancer pools",
            f"Cilium LB-IPAM hands out {pools} and announces them by ARP (no MetalLB in this cluster).",
            files=(paths.CILIUM_LB_POOLS,),
            commands=(f"kubectl apply -f {paths.CILIUM_LB_POOLS}",),
            check_commands=("kubectl get ciliumloadbalancerippools   # CONFLICTING False",),
        )
    return None


def ingress(design: Design) -> Step | None:
    addons = design.spec.addons
    if not addons.gateway_api.enabled and addons.ingress.controller == "none":
        return None
    commands: list[str] = []
    files: list[str] = []
    checks: list[str] = []
    if addons.gateway_api.enabled:
        commands += [f"kubectl apply -f {paths.GATEWAY}",
                     f"kubectl -n {GATEWAY_NAMESPACE} wait --for=condition=Programmed gateway/{GATEWAY_NAME} "
                     "--timeout=5m"]
        files.append(paths.GATEWAY)
        checks.append(f"kubectl -n {GATEWAY_NAMESPACE} get gateway {GATEWAY_NAME}   # PROGRAMMED True, an address")
    notes: tuple[str, ...] = ()
    if addons.ingress.controller == "ingress-nginx":
        commands += _helm(design, "ingress-nginx")
        files.append(paths.INGRESS_NGINX_VALUES)
        notes = ("ingress-nginx is retired (archived March 2026, no more patches): it is installed only because the "
                 "spec asks for it. Plan the move to Cilium's Ingress or Gateway API.",)
    checks.append("kubectl get ingressclass")
    controller = {"cilium": "Cilium's Ingress controller (IngressClass cilium, the default)",
                  "ingress-nginx": "ingress-nginx (legacy)", "none": "no Ingress controller"}[addons.ingress.controller]
    return Step(
        "Ingress and Gateway API",
        f"{controller}" + (f"; a shared Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} for HTTPRoutes."
                           if addons.gateway_api.enabled else "."),
        files=tuple(files),
        commands=tuple(commands),
        notes=notes,
        check_commands=tuple(checks),
    )


def acceptance(design: Design) -> Step:
    addons = design.spec.addons
    checks = check_commands(design)
    files = [paths.TESTS_NAMESPACE]
    commands = [f"kubectl apply -f {paths.TESTS_NAMESPACE}"]
    verify: list[str] = []

    def add(path: str, *before: str) -> None:
        files.extend(before)
        files.append(path)
        commands.extend(f"kubectl apply -f {p}" for p in (*before, path))
        verify.extend(checks[path])

    if addons.storage.enabled:
        add(paths.TEST_PVC)
    if addons.loadbalancer.provider != "none":
        add(paths.TEST_LOADBALANCER)
    web_app = (paths.TEST_WEB_APP,)
    if addons.ingress.controller != "none":
        add(paths.TEST_INGRESS, *web_app)
        web_app = ()
    if addons.gateway_api.enabled:
        add(paths.TEST_HTTPROUTE, *web_app)
    verify = list(dict.fromkeys(verify))  # the web app's rollout check serves both Ingress and HTTPRoute
    verify += ["cilium connectivity test   # pod, service and policy paths across nodes",
               f"kubectl delete namespace {TESTS_NAMESPACE}   # when everything passed"]
    return Step(
        "Run the acceptance tests",
        "The stage 1 success criteria, each as an object and the command that proves it: storage that writes and "
        "reads, a LoadBalancer address from the pool, HTTP through Ingress / Gateway API, and Cilium's own "
        "connectivity test.",
        files=tuple(files),
        commands=tuple(commands),
        check_commands=tuple(verify),
    )


def stage1_steps(design: Design) -> list[Step]:
    steps = [create_vms(design), check_mtu(design), preload_images(design), bootstrap(design), join_control_planes(design),
             join_workers(design), approve_serving_certificates(design), gateway_api_crds(design), cilium(design),
             secrets(design), cpi(design), csi(design), loadbalancer(design), ingress(design), acceptance(design)]
    return [s for s in steps if s is not None]


# ---- stage 2: operations ------------------------------------------------------------------


def metrics_server(design: Design) -> Step | None:
    if not design.spec.addons.metrics_server.enabled:
        return None
    return Step(
        f"Install metrics-server {design.versions.metrics_server}",
        "Resource metrics for `kubectl top` and autoscaling; the Helm chart shipping this app version is looked up.",
        files=(paths.METRICS_SERVER_VALUES,),
        commands=tuple(_helm(design, "metrics-server")),
        check_commands=("kubectl top nodes",),
    )


def monitoring(design: Design) -> Step | None:
    if not design.spec.addons.monitoring.enabled:
        return None
    grafana = design.spec.addons.monitoring.grafana
    return Step(
        f"Install kube-prometheus-stack {design.versions.kube_prometheus_stack}",
        "Prometheus, Alertmanager" + (", Grafana" if grafana else "") + " and the exporters; etcd (2381), "
        "controller-manager (10257) and scheduler (10259) are scraped on the control planes.",
        files=(paths.MONITORING_NAMESPACE, paths.KUBE_PROMETHEUS_STACK_VALUES),
        commands=(f"kubectl apply -f {paths.MONITORING_NAMESPACE}", *_helm(design, "kube-prometheus-stack")),
        checks=("Every target is up, including kube-etcd, kube-controller-manager and kube-scheduler.",),
        check_commands=(
            f"kubectl -n {MONITORING_NAMESPACE} get pods",
            f"kubectl -n {MONITORING_NAMESPACE} port-forward svc/kube-prometheus-stack-prometheus 9090 &",
            "sleep 3; curl -fsS 'http://127.0.0.1:9090/api/v1/query?query=up==0' | jq '.data.result'   # []",
        ),
    )


def velero(design: Design) -> Step | None:
    velero = design.spec.addons.backups.velero
    if not velero.enabled:
        return None
    return Step(
        f"Install Velero {design.versions.velero}",
        f"Backups of objects and volumes to {velero.s3_url} bucket {velero.bucket}, daily at '{velero.schedule}', "
        f"kept {velero.ttl}. Volumes: CSI snapshots copied into the bucket by the node-agent data mover.",
        files=(paths.VELERO_NAMESPACE, paths.VELERO_VALUES),
        commands=(f"kubectl apply -f {paths.VELERO_NAMESPACE}", *_helm(design, "velero")),
        check_commands=(f"kubectl -n {VELERO_NAMESPACE} get backupstoragelocations   # PHASE Available",
                        f"kubectl -n {VELERO_NAMESPACE} get schedules"),
    )


def etcd_backups(design: Design) -> Step | None:
    etcd = design.spec.addons.backups.etcd
    if not etcd.enabled:
        return None
    commands = []
    unit = paths.ETCD_BACKUP_UNIT
    for node in design.ip_plan.control_planes:
        # scripts/ is already on the node (copied when the VMs were created).
        commands += [
            bundle.copy_to_node(design, node, f"{paths.ETCD_BACKUP_SERVICE} {paths.ETCD_BACKUP_TIMER}"),
            bundle.ssh(design, node, f"'cd {bundle.NODE_WORKDIR} && "
                                     f"sudo install -m 0755 {bundle.ETCD_BACKUP} {paths.ETCD_BACKUP_PROGRAM} && "
                                     f"sudo install -m 0644 etcd-backup.service /etc/systemd/system/{unit}.service && "
                                     f"sudo install -m 0644 etcd-backup.timer /etc/systemd/system/{unit}.timer && "
                                     f"sudo systemctl daemon-reload && sudo systemctl enable --now {unit}.timer'"),
        ]
    cp = _first_cp(design)
    return Step(
        "Schedule etcd snapshots on every control plane",
        f"A systemd timer runs the snapshot script at '{etcd.schedule}' (node local time); it keeps {etcd.keep} "
        f"snapshots in {etcd.directory} on each control plane. Copy them off the nodes as well.",
        files=(bundle.ETCD_BACKUP, paths.ETCD_BACKUP_SERVICE, paths.ETCD_BACKUP_TIMER),
        commands=tuple(commands),
        notes=(f"Restoring uses `{bundle.ETCD_RESTORE}`; the restore drill is the section \"etcd snapshots and the restore drill\" of the stage 2 runbook.",),
        checks=("The timer is listed with its next run, and a snapshot taken now lands in the directory.",),
        check_commands=(
            bundle.ssh(design, cp, f"systemctl list-timers {unit}.timer"),
            bundle.ssh(design, cp, f"'sudo systemctl start {unit}.service && sudo ls -l {etcd.directory}'"),
        ),
    )


def security(design: Design) -> Step:
    addons = design.spec.addons
    namespaces = baseline_namespaces(design)
    files = []
    if namespaces:
        files.append(paths.POD_SECURITY)
        if addons.security.default_deny_network_policies:
            files.append(paths.NETWORK_POLICIES)
    files.append(paths.READ_ONLY_RBAC)
    checks = [f"kubectl auth can-i list secrets -A --as=probe --as-group={READ_ONLY_GROUP}   # no"]
    if namespaces and addons.security.pod_security != "privileged":
        checks.append(f"kubectl -n {namespaces[0]} run psa-probe --image={PSA_PROBE_IMAGE} --dry-run=server "
                      "--overrides='{\"spec\":{\"hostNetwork\":true}}'   # forbidden by Pod Security")
    return Step(
        "Apply the security baseline",
        f"Pod Security '{addons.security.pod_security}' on {', '.join(namespaces) or 'no namespace'}"
        + (", default-deny NetworkPolicies with DNS allowed" if addons.security.default_deny_network_policies
           and namespaces else "")
        + f", and read-only RBAC for the group {READ_ONLY_GROUP}.",
        files=tuple(files),
        commands=tuple(f"kubectl apply -f {f}" for f in files),
        check_commands=tuple(checks),
    )


def stage2_steps(design: Design) -> list[Step]:
    steps = [metrics_server(design), monitoring(design), velero(design), etcd_backups(design), security(design)]
    return [s for s in steps if s is not None]
