"""docs/troubleshooting.md: the known NSX pains, each with this cluster's numbers, a check and the fix."""

from __future__ import annotations

from dataclasses import dataclass

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.acceptance import TESTS_NAMESPACE, WEB_APP
from nsxkube.render.addons.common import CSI_NAMESPACE
from nsxkube.render.addons.versions import helm_charts
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.docs import bundle
from nsxkube.render.docs.markdown import bash, bullets, document


@dataclass(frozen=True)
class KnownProblem:
    title: str
    symptom: str
    cause: str
    confirm: tuple[str, ...]
    fix: tuple[str, ...]
    fix_commands: tuple[str, ...] = ()


def vip_not_answering(design: Design) -> KnownProblem:
    plan, nsx = design.ip_plan, design.spec.nsx
    cp, other = plan.control_planes[0], plan.nodes[-1]
    pools = ", ".join(str(p.range) for p in plan.pools) or "no pool"
    fix = [
        f"Re-apply {bundle.NSX_INFRA_PATCH} (`bash {bundle.NSX_APPLY}`): it binds an IP discovery profile without "
        "trust-on-first-use and with room for the VIP and pools, and lets the addresses through SpoofGuard.",
    ]
    if nsx.vip_mode == "allowlist":
        fix.append(f"This cluster uses vip_mode allowlist: every node port that may announce {plan.api_vip} or "
                   f"{pools} needs them as address bindings (same MAC as the node's NIC). A node cloned again has a "
                   f"new port: re-run `bash {bundle.NSX_APPLY}` after replacing any node.")
    else:
        fix.append("This cluster uses vip_mode segment-profiles: the SpoofGuard profile without the binding allowlist "
                   f"must be bound to {nsx.segment.name}; check the binding maps in {bundle.NSX_SPOOFGUARD}.")
    fix.append(f"The DFW group of the VIP and pools must match the rules of {bundle.NSX_DFW_RULES}.")
    return KnownProblem(
        f"The API VIP {plan.api_vip} (or a LoadBalancer address) does not answer",
        "kubectl times out against the VIP while each control plane answers on its own address; or a LoadBalancer "
        "service has an EXTERNAL-IP nobody can reach; or it works until the VIP moves to another node.",
        "NSX learns one address per port, trusted on first use, and SpoofGuard drops the rest: an address that "
        "moves between nodes by ARP (kube-vip, MetalLB, Cilium L2) is dropped or points at the old node.",
        (
            f"ping -c 3 {plan.api_vip}",
            bundle.ssh(design, cp, f"ip -brief address | grep -F {plan.api_vip}") + "   # which node holds it",
            bundle.ssh(design, other, f"'ip neigh flush to {plan.api_vip}; ping -c 1 -W 1 {plan.api_vip}; "
                                      f"ip neigh show {plan.api_vip}'") + "   # MAC must be the holder's",
            (f"kubectl -n kube-system logs kube-vip-{cp.name} --tail=50" if design.api_vip_provider == "kube-vip"
             else bundle.ssh(design, cp, "sudo journalctl -u keepalived -n 50 --no-pager")),
            bundle.nsx_get(design, f"/infra/segments/{nsx.segment.name}/segment-discovery-profile-binding-maps")
            + " | jq '.results'",
        ),
        tuple(fix),
    )


def _pod_mtu_commands(design: Design) -> tuple[str, ...]:
    """A pod's own view of its MTU, through the bundle's test app when the bundle has one."""
    addons = design.spec.addons
    if addons.ingress.controller == "none" and not addons.gateway_api.enabled:
        return (f"# in any running pod: cat /sys/class/net/eth0/mtu   # {design.mtu.pod_mtu}",)
    return (f"kubectl apply -f {paths.TEST_WEB_APP}   # the test app again: stage 1 deletes it after its checks",
            f"kubectl -n {TESTS_NAMESPACE} exec deploy/{WEB_APP} -- cat /sys/class/net/eth0/mtu   # {design.mtu.pod_mtu}")


def large_packets_hang(design: Design) -> KnownProblem:
    mtu = design.mtu
    a, b = design.ip_plan.nodes[0], design.ip_plan.nodes[-1]
    return KnownProblem(
        "Large packets hang (TLS handshakes, image pulls, `kubectl logs -f`, big API answers)",
        "Small requests work; anything large stalls until a timeout: `curl -v https://…` stops after the Client "
        "Hello, pulls stall mid-layer, pod-to-pod HTTP hangs on large bodies.",
        f"Somewhere on the path the MTU is smaller than the packets. This cluster's chain: NSX TEP MTU {mtu.tep_mtu} "
        f"− Geneve {mtu.nsx_overhead} = at most {mtu.node_mtu_max} for the nodes; node MTU {mtu.node_mtu}; "
        f"Cilium's {mtu.tunnel} takes {mtu.tunnel_overhead} more: pod MTU {mtu.pod_mtu} (Cilium value "
        f"`MTU: {mtu.pod_mtu + mtu.tunnel_overhead}`).",
        (
            bundle.ssh(design, a, f"bash {bundle.NODE_WORKDIR}/{bundle.CHECK_MTU}"),
            bundle.ssh(design, a, f"ping -M do -c 3 -s {mtu.probe_payload} {b.address}")
            + f"   # {mtu.node_mtu} bytes on the wire: must pass",
            bundle.ssh(design, a, f"ping -M do -c 3 -s {mtu.probe_payload_over} {b.address}")
            + "   # one byte more: must fail (message too long)",
            bundle.ssh(design, a, f"ip link show {NODE_NIC}") + f"   # mtu {mtu.node_mtu}",
            "helm -n kube-system get values cilium | grep -E '^MTU'"
            + f"   # MTU: {mtu.pod_mtu + mtu.tunnel_overhead}",
            *_pod_mtu_commands(design),
        ),
        (
            f"If the {mtu.probe_payload}-byte probe fails: the NSX TEP / uplink MTU (or a physical switch) is below "
            f"{mtu.node_mtu + mtu.nsx_overhead}. Raise it in NSX (host switch uplink profile, physical_uplink_mtu) or "
            "lower network.node_mtu in cluster.yaml, render again and re-apply the node network settings.",
            f"If the {mtu.probe_payload_over}-byte probe passes: something fragments or lies about its MTU; look for "
            "a hop with a larger MTU configured than it carries.",
            "If the node probes are right but pods hang: Cilium's MTU is not the rendered one. Upgrade the release "
            f"with {paths.CILIUM_VALUES} and restart the pods (they keep the MTU they were created with).",
        ),
        (
            f"helm upgrade cilium {_cilium_reference(design)} -n kube-system{_cilium_version(design)} "
            f"-f {paths.CILIUM_VALUES}",
            "kubectl -n kube-system rollout restart daemonset/cilium",
            "for ns in $(kubectl get namespaces -o name | cut -d/ -f2); do kubectl -n \"$ns\" rollout restart "
            "deployment,daemonset,statefulset; done",
        ),
    )


def tunnel_dropped(design: Design) -> KnownProblem:
    mtu = design.mtu
    a = design.ip_plan.nodes[0]
    current = (f"This cluster uses {mtu.tunnel} on UDP {mtu.tunnel_port}."
               + (" VXLAN is the protocol known to be hit." if mtu.tunnel == "vxlan" else
                  " Geneve is the usual way out; if it is dropped too, look at the DFW and the offloads below."))
    return KnownProblem(
        "Pod traffic between nodes is dropped (VXLAN on UDP 8472)",
        "Pods reach pods on the same node but not on other nodes; `cilium connectivity test` fails only its "
        "cross-node cases; `cilium status` shows unreachable node health endpoints.",
        "Some ESXi/NSX hosts drop VXLAN on UDP 8472 from guests (it collides with the host's own VXLAN handling "
        "and NIC tunnel offloads), or the DFW lacks the tunnel port. " + current,
        (
            "cilium status --wait",
            "kubectl -n kube-system exec ds/cilium -- cilium-dbg status --all-health | head -40",
            bundle.ssh(design, a, f"sudo timeout 20 tcpdump -ni {NODE_NIC} -c 20 udp port {mtu.tunnel_port}")
            + "   # run on sender and receiver: packets leave one and never reach the other?",
            bundle.ssh(design, a, f"ethtool -k {NODE_NIC}") + " | grep -i udp_tnl",
        ),
        (
            f"Check that {bundle.NSX_DFW_RULES} has the pod-tunnel rule for UDP {mtu.tunnel_port} between nodes "
            "(and that the logged DFW drops show nothing for it).",
            *(("Switch to Geneve: `addons.cilium.tunnel: geneve` in cluster.yaml, render again, apply the NSX "
               "configuration (the DFW rule follows the tunnel port), upgrade Cilium with the new values and restart "
               "pods.",) if mtu.tunnel == "vxlan" else ()),
            "If packets still vanish, turn off the UDP tunnel offloads of every node's NIC (make it permanent with a "
            "networkd-dispatcher or udev hook):",
        ),
        tuple(bundle.ssh(design, n, f"sudo ethtool -K {NODE_NIC} tx-udp_tnl-segmentation off "
                                    "tx-udp_tnl-csum-segmentation off") for n in design.ip_plan.nodes),
    )


def csi_without_provider_id(design: Design) -> KnownProblem:
    server = design.spec.vsphere.server
    return KnownProblem(
        "Volumes fail: the CSI driver finds no ProviderID",
        "PVCs stay Pending or pods stay ContainerCreating; the CSI controller or node logs complain about a missing "
        "ProviderID / node VM not found; `kubectl get csinodes` lacks csi.vsphere.vmware.com on some nodes.",
        "kubelet runs with cloud-provider=external, so nodes wait for the vSphere CPI to set their ProviderID. When "
        "the CSI driver starts first, or the CPI cannot log in to vCenter, nodes stay without it.",
        (
            "kubectl get nodes -o custom-columns=NAME:.metadata.name,PROVIDER:.spec.providerID,"
            "TAINTS:.spec.taints[*].key",
            "kubectl -n kube-system logs daemonset/vsphere-cloud-controller-manager --tail=50",
            f"kubectl -n kube-system get secret vsphere-cloud-secret -o jsonpath='{{.data}}' | jq 'keys'"
            f"   # {server}.username and {server}.password",
            f"kubectl -n {CSI_NAMESPACE} logs deployment/vsphere-csi-controller -c vsphere-csi-controller --tail=50",
        ),
        (
            f"The Secret's keys must be named after the vCenter exactly as vsphere.conf names it ({server}); "
            f"re-run `bash {paths.CREATE_SECRETS}` and restart the CPI.",
            "A node whose uninitialized taint was removed by hand is never initialised: put the taint back and the "
            "CPI sets its ProviderID.",
            "Then restart the CSI driver so that it registers on every node.",
        ),
        (
            "kubectl -n kube-system rollout restart daemonset/vsphere-cloud-controller-manager",
            "NODE=...   # a node without ProviderID",
            'kubectl taint node "$NODE" node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule',
            f"kubectl -n {CSI_NAMESPACE} rollout restart deployment/vsphere-csi-controller daemonset/vsphere-csi-node",
        ),
    )


def disk_uuid_missing(design: Design) -> KnownProblem:
    node = design.ip_plan.nodes[-1]
    template = design.spec.vsphere.template
    return KnownProblem(
        "Volumes attach in vCenter but never appear in the node (disk.EnableUUID)",
        "Pods stay ContainerCreating with events such as \"disk … not attached to node\" or \"could not find "
        "device\", although vCenter shows the disk on the VM.",
        "Without disk.EnableUUID=TRUE the guest sees no disk serial numbers, and the CSI node plugin cannot find "
        "the attached disk under /dev/disk/by-id.",
        (
            f"govc vm.info -e {node.name} | grep -i enableuuid   # must be TRUE",
            f"govc vm.info -e {template} | grep -i enableuuid    # and on the template",
            bundle.ssh(design, node, "'ls -l /dev/disk/by-id/ | grep -c wwn-'") + "   # 0 means no UUIDs",
        ),
        (
            "Fix the template first (so new nodes are right), then each node: drain it, power it off, set the "
            "option, power it on, uncordon.",
        ),
        (
            f"govc vm.change -vm {template} -e disk.enableUUID=TRUE",
            f"kubectl drain {node.name} --ignore-daemonsets --delete-emptydir-data",
            f"govc vm.power -s -wait {node.name} && govc vm.change -vm {node.name} -e disk.enableUUID=TRUE "
            f"&& govc vm.power -on {node.name}",
            f"kubectl uncordon {node.name}",
        ),
    )


def kube_vip_init(design: Design) -> KnownProblem:
    cp = design.ip_plan.control_planes[0]
    return KnownProblem(
        "kubeadm init times out waiting for the API on the VIP",
        f"On {cp.name}, `kubeadm init` waits for https://{design.api_endpoint} until it gives up; kube-vip logs "
        "show 'forbidden' or 'unauthorized', or it cannot reach the API.",
        "Since Kubernetes 1.29 admin.conf has no cluster-admin rights until kubeadm init finishes; kube-vip must "
        "use super-admin.conf during init on the first control plane. It also needs the host alias "
        "kubernetes → 127.0.0.1 to reach the local API before the VIP exists.",
        (bundle.ssh(design, cp, "'sudo crictl ps -a --name kube-vip; "
                                "sudo crictl logs --tail 30 $(sudo crictl ps -a --name kube-vip -q | head -1)'"),
         bundle.ssh(design, cp, "sudo grep -n -e super-admin -e admin.conf /etc/kubernetes/manifests/kube-vip.yaml")),
        (f"Run `{bundle.BOOTSTRAP_CONTROL_PLANE}` rather than kubeadm by hand: it mounts super-admin.conf for the init "
         "and switches kube-vip back to admin.conf afterwards. Other control planes use admin.conf.",),
    )


def dfw_drops(design: Design) -> KnownProblem:
    dfw = design.spec.nsx.dfw
    return KnownProblem(
        "One kind of traffic is blocked (the DFW)",
        "A single port fails between nodes or from clients while others work: kubelet logs, metrics, NodePorts, "
        "DNS or NTP.",
        "The DFW policy allows exactly the port matrix"
        + (" and drops the rest." if dfw.default_deny else ".")
        + (" Dropped packets are logged." if dfw.log_denied else " Logging of drops is off (nsx.dfw.log_denied)."),
        ("PORT=10250   # the port that fails",
         f'grep -n -w "$PORT" {bundle.NSX_DFW_RULES}   # is the flow in the matrix at all?',
         "# On the ESXi host of the VM (if drops are logged):",
         "grep DROP /var/log/dfwpktlogs.log | tail -20"),
        ("If the flow is missing from the matrix, it is a design change: add it in cluster.yaml (or in nsxkube), "
         f"render again and re-apply `{bundle.NSX_APPLY}`. Never add hand-made rules to the nsxkube policy: the next "
         "apply replaces them.",),
    )


def keepalived_no_vip(design: Design) -> KnownProblem:
    cp = design.ip_plan.control_planes[0]
    return KnownProblem(
        "No control plane holds the API VIP, or two do (keepalived)",
        f"`ip -brief address` shows {design.ip_plan.api_vip} on no control plane, or on several; keepalived logs "
        "'entering FAULT state', 'received an invalid passwd' or 'two masters'.",
        "keepalived holds the VIP only where its check (the local API server's /readyz) passes; control planes "
        "that cannot exchange VRRP advertisements (IP protocol 112, the DFW rule vrrp) each believe they are "
        "alone; a control plane whose CA key differs derives another VRRP password.",
        (bundle.ssh(design, cp, "'sudo journalctl -u keepalived -n 30 --no-pager; "
                                "curl -sk https://127.0.0.1:6443/readyz; echo'"),
         bundle.ssh(design, cp, "sudo tcpdump -ni any -c 5 ip proto 112")),
        ("Check the DFW rule vrrp and that each control plane reaches the others' addresses.",
         f"Run `{bundle.JOIN_CONTROL_PLANE}` again on a control plane whose keepalived configuration is missing or "
         "stale: it rewrites it and restarts keepalived."),
    )


def render_pain(pain: KnownProblem) -> str:
    parts = [f"## {pain.title}", f"**Symptom.** {pain.symptom}", f"**Why.** {pain.cause}",
             "**Confirm:**", bash(pain.confirm), "**Fix:**", bullets(pain.fix)]
    if pain.fix_commands:
        parts.append(bash(pain.fix_commands))
    return "\n\n".join(parts)


def troubleshooting_doc(design: Design) -> str:
    pains = [vip_not_answering(design), large_packets_hang(design), tunnel_dropped(design),
             csi_without_provider_id(design), disk_uuid_missing(design),
             kube_vip_init(design) if design.api_vip_provider == "kube-vip" else keepalived_no_vip(design),
             dfw_drops(design)]
    mtu = design.mtu
    return document(
        f"# Troubleshooting {design.name}",
        "The problems people meet when Kubernetes runs on NSX-T segments, with the commands that confirm each one "
        f"and the fix. Numbers are this cluster's: API VIP {design.ip_plan.api_vip}, segment "
        f"{design.spec.nsx.segment.name}, TEP MTU {mtu.tep_mtu}, node MTU {mtu.node_mtu}, pod MTU {mtu.pod_mtu}, "
        f"{mtu.tunnel} on UDP {mtu.tunnel_port}.",
        "\n\n".join(render_pain(p) for p in pains),
    )


def _cilium_reference(design: Design) -> str:
    """cilium/cilium, or the archive / OCI reference when addons.charts says charts come from there."""
    return next(c.reference for c in helm_charts(design) if c.release == "cilium")


def _cilium_version(design: Design) -> str:
    return "" if design.spec.addons.charts.directory else f" --version {design.versions.cilium}"
