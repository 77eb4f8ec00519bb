"""docs/: one runbook per stage of the seed plan, with this cluster's values."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.acceptance import PVC_PROBE_TEXT, PVC_READ_TEST, PVC_TEST, TESTS_NAMESPACE
from nsxkube.render.addons.common import MONITORING_NAMESPACE, VELERO_NAMESPACE
from nsxkube.render.addons.observability import GRAFANA_ADMIN_SECRET
from nsxkube.render.addons.security import READ_ONLY_GROUP
from nsxkube.render.docs import bundle
from nsxkube.render.docs.markdown import bash, bullets, document, render_steps
from nsxkube.render.docs.readme import cluster_facts, ip_plan_table, nodes_table
from nsxkube.render.docs.steps import stage0_steps, stage1_steps, stage2_steps


def _checklist(items: list[str]) -> str:
    return "\n".join(f"- [ ] {item}" for item in items)


def stage0_doc(design: Design) -> str:
    spec, mtu = design.spec, design.mtu
    return document(
        f"# Stage 0 for {design.name}: NSX and the VM template",
        f"Goal: the NSX segment {spec.nsx.segment.name} is ready for the nodes, with the DFW, IP discovery and "
        f"SpoofGuard set so that the API VIP and the LoadBalancer pools work, the MTU proven end to end, and the "
        f"VM template {spec.vsphere.template} ready to clone. NSX was set up for vSphere with Tanzu by someone "
        "else: nothing here changes an object that Tanzu, NCP or nsx-operator created.",
        "## Done when\n\n" + _checklist([
            f"The segment {spec.nsx.segment.name} ({spec.nsx.segment.cidr}) is REALIZED on tier-1 {spec.nsx.tier1}.",
            "The IP plan below is reserved in IPAM (node addresses, API VIP, LoadBalancer pools).",
            "The groups and the DFW policy of nsx/dfw-rules.md exist; the SpoofGuard / IP discovery settings of "
            "nsx/spoofguard-allowlist.md are bound to the segment.",
            f"DF-bit pings of {mtu.probe_payload} bytes pass between test VMs on the segment and "
            f"{mtu.probe_payload_over} bytes fail.",
            f"The template {spec.vsphere.template} exists, with disk.enableUUID=TRUE.",
        ]),
        "## This cluster\n\n" + cluster_facts(design),
        "## IP plan\n\n" + ip_plan_table(design),
        "## MTU chain\n\n" + bullets([
            f"NSX TEP / uplink MTU: {mtu.tep_mtu} (NSX's Geneve needs at least 1600; 1700 is recommended)",
            f"Geneve outside the VM costs about {mtu.nsx_overhead} bytes: guests may use up to {mtu.node_mtu_max}",
            f"Node NIC MTU: {mtu.node_mtu} (network.node_mtu)",
            f"Cilium's {mtu.tunnel} inside the nodes costs {mtu.tunnel_overhead} bytes: pod MTU {mtu.pod_mtu}",
            f"Probe: `ping -M do -s {mtu.probe_payload}` must pass, `-s {mtu.probe_payload_over}` must fail",
        ]),
        "## Steps\n\n" + render_steps(stage0_steps(design)),
    )


def stage1_doc(design: Design) -> str:
    plan = design.ip_plan
    return document(
        f"# Stage 1 for {design.name}: the cluster and its add-ons",
        f"Goal: {len(plan.control_planes)} control planes and {len(plan.workers)} workers running Kubernetes "
        f"{design.versions.kubernetes} behind the API VIP {plan.api_vip}, with Cilium, vSphere storage, "
        "LoadBalancer addresses and ingress working, proven by the acceptance tests.",
        "## Done when\n\n" + _checklist([
            f"The API answers on https://{design.api_endpoint}, and every node is Ready.",
            "`cilium status` is OK and `cilium connectivity test` passes.",
            "Every node has a vsphere:// ProviderID.",
            *(["The PVC test writes and reads its file."] if design.spec.addons.storage.enabled else []),
            *(["The LoadBalancer test gets an address from the pool and answers from a client network."]
              if design.spec.addons.loadbalancer.provider != "none" else []),
            *(["HTTP through the Ingress / HTTPRoute test answers."]
              if design.spec.addons.ingress.controller != "none" or design.spec.addons.gateway_api.enabled else []),
        ]),
        "## Nodes\n\n" + nodes_table(design),
        "## Order matters\n\n" + bullets([
            "Control planes join one at a time (etcd membership changes are serial); workers in parallel.",
            "Gateway API CRDs before Cilium; Cilium before anything that needs pod networking.",
            "The CPI before the CSI driver: the CSI driver needs every node's ProviderID.",
            "MetalLB's pools after its webhook is ready.",
        ]),
        "## Steps\n\n" + render_steps(stage1_steps(design)),
    )


def _etcd_drill(design: Design) -> str:
    etcd = design.spec.addons.backups.etcd
    cps = design.ip_plan.control_planes
    cp = cps[0]
    restore = f"sudo bash {bundle.NODE_WORKDIR}/{bundle.ETCD_RESTORE} --yes"
    copy_lines = []
    for node in cps[1:]:
        for suffix in ("", ".sha256"):
            copy_lines.append(bundle.ssh(design, cp, f'"sudo cat $SNAPSHOT{suffix}"') + " | "
                              + bundle.ssh(design, node, f'"sudo install -d -m 0700 {etcd.directory} && '
                                                         f'sudo tee $SNAPSHOT{suffix} >/dev/null"'))
    return document(
        "### etcd snapshots and the restore drill",
        f"Each control plane keeps its newest {etcd.keep} snapshots in {etcd.directory} "
        f"(`etcd-<host>-<UTC time>.db`, a `.sha256` beside it, checked with etcdutl when taken). A backup counts "
        "only once it has been restored: rehearse in a lab cluster rendered from a copy of cluster.yaml (its own "
        "name and addresses) every quarter and after every upgrade, with exactly these commands.",
        bash([
            "# 1. A fresh snapshot, and a marker made after it: the restore must make the marker disappear.",
            f"SNAPSHOT=$({bundle.ssh(design, cp, f'sudo {paths.ETCD_BACKUP_PROGRAM}')})   # prints the new path",
            "kubectl create namespace restore-drill-marker",
            "# 2. The same snapshot on every control plane.",
            *copy_lines,
            "# 3. Restore on every control plane, one after the other (the script explains and asks for --yes).",
            *(bundle.ssh(design, node, f'"{restore} $SNAPSHOT"') for node in cps),
            "# 4. The cluster is back as it was at the snapshot.",
            "kubectl get nodes",
            "kubectl get namespace restore-drill-marker   # NotFound",
        ]),
        "Write down how long step 3 took: that is the recovery time of the control plane. A real restore (etcd "
        f"lost or corrupted) is the same sequence on {', '.join(n.name for n in cps)} with the newest good "
        f"snapshot; `{bundle.ETCD_RESTORE}` keeps the old data directory beside the new one. Keep copies of the "
        "snapshots off the nodes as well: they hold every Secret of the cluster, so store them encrypted.",
    )


def _velero_drill(design: Design) -> str:
    if not design.spec.addons.backups.velero.enabled:
        return ("### Velero\n\nVelero is disabled (addons.backups.velero.enabled). Without it only etcd is backed "
                "up: volumes and their data are not.")
    ns = TESTS_NAMESPACE
    if not design.spec.addons.storage.enabled:
        return ("### Velero restore drill\n\nThis cluster has no vSphere storage (addons.storage.enabled): drill "
                f"with a namespace of objects only, e.g. `velero backup create drill --include-namespaces {ns}`.")
    return document(
        "### Velero restore drill",
        f"Uses the acceptance-test namespace {ns}: the backup must bring back the objects and the volume's data. "
        "Pods are left out of the restore, and a read-only pod proves the data came back.",
        bash([
            f"kubectl apply -f {paths.TESTS_NAMESPACE} -f {paths.TEST_PVC}",
            f"kubectl -n {ns} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/{PVC_TEST} --timeout=5m",
            f"velero backup create drill-{ns} --include-namespaces {ns} --wait",
            f"velero backup describe drill-{ns} --details   # Phase: Completed, the volume moved to the bucket",
            f"kubectl delete namespace {ns} --wait",
            f"velero restore create drill-{ns} --from-backup drill-{ns} --exclude-resources pods --wait",
            f"kubectl apply -f {paths.TEST_PVC_READ}",
            f"kubectl -n {ns} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/{PVC_READ_TEST} --timeout=10m",
            f"kubectl -n {ns} logs pod/{PVC_READ_TEST}   # {PVC_PROBE_TEXT}",
            f"velero backup delete drill-{ns} --confirm && kubectl delete namespace {ns}",
        ]),
        f"Velero keeps its own state in the namespace {VELERO_NAMESPACE}; `velero schedule get` shows the daily "
        "schedule.",
    )


def _observability(design: Design) -> str:
    addons = design.spec.addons
    lines = []
    if addons.monitoring.enabled:
        lines += [f"kubectl -n {MONITORING_NAMESPACE} port-forward svc/kube-prometheus-stack-prometheus 9090",
                  f"kubectl -n {MONITORING_NAMESPACE} port-forward svc/kube-prometheus-stack-alertmanager 9093"]
        if addons.monitoring.grafana:
            lines += [f"kubectl -n {MONITORING_NAMESPACE} get secret {GRAFANA_ADMIN_SECRET} "
                      "-o jsonpath='{.data.admin-password}' | base64 -d; echo",
                      f"kubectl -n {MONITORING_NAMESPACE} port-forward svc/kube-prometheus-stack-grafana 3000:80"]
    if addons.cilium.hubble and addons.cilium.hubble_ui:
        lines.append("cilium hubble ui   # opens Hubble's flow view")
    if addons.metrics_server.enabled:
        lines.append("kubectl top nodes && kubectl top pods -A")
    body = bash(lines) if lines else "No observability add-on is enabled in cluster.yaml."
    notes = ["Alertmanager ships with a null receiver: route alerts to your on-call system before production.",
             f"Prometheus retention: {addons.monitoring.retention}." if addons.monitoring.enabled else ""]
    return document("## Observability", body, bullets([n for n in notes if n]))


def _security(design: Design) -> str:
    vsphere = design.spec.vsphere
    cp = design.ip_plan.control_planes[0]
    return document(
        "## Security",
        bullets([
            f"Pod Security '{design.spec.addons.security.pod_security}' is enforced on "
            f"{', '.join(design.spec.addons.security.namespaces)}; warnings show what 'restricted' would refuse.",
            "Namespaces with default-deny need a NetworkPolicy per application (ingress from its clients, egress "
            "to what it calls).",
            f"Read-only access: add people to the group {READ_ONLY_GROUP} in your identity provider.",
        ]),
        f"Rotating the vCenter password: update ${vsphere.credentials.password_env}, create the Secrets again and "
        "restart what reads them.",
        bash([
            f"bash {paths.CREATE_SECRETS}",
            "kubectl -n kube-system rollout restart daemonset/vsphere-cloud-controller-manager",
            *(["kubectl -n vmware-system-csi rollout restart deployment/vsphere-csi-controller "
               "daemonset/vsphere-csi-node"] if design.spec.addons.storage.enabled else []),
        ]),
        "Certificates made by kubeadm last one year; an upgrade renews them. Check them on a control plane:",
        bash([bundle.ssh(design, cp, "sudo kubeadm certs check-expiration")]),
    )


def stage2_doc(design: Design) -> str:
    return document(
        f"# Stage 2 for {design.name}: operations",
        "Goal: the cluster can be run in production: metrics and alerts, backups that have been restored at least "
        "once, and the security baseline in place.",
        "## Done when\n\n" + _checklist([
            "Monitoring shows every target up; metrics-server answers `kubectl top`.",
            "etcd snapshots are taken on schedule, and a restore drill succeeded.",
            *(["A Velero backup was restored in the drill."] if design.spec.addons.backups.velero.enabled else []),
            "The security baseline is applied and checked.",
        ]),
        "## Steps\n\n" + render_steps(stage2_steps(design)),
        "## Backups\n\n" + _etcd_drill(design) + "\n\n" + _velero_drill(design),
        _observability(design),
        _security(design),
    )


def stage3_doc(design: Design) -> str:
    pools = ", ".join(f"{p.name} {p.range}" for p in design.ip_plan.pools) or "no pool"
    provider = design.spec.addons.loadbalancer.provider
    ip_annotation = {"metallb": "`metallb.io/loadBalancerIPs`", "cilium-l2": "`lbipam.cilium.io/ips`"}.get(provider)
    return document(
        f"# Stage 3 for {design.name}: notes on migrating from vSphere with Tanzu",
        "These are the differences that matter when workloads move from a Tanzu (TKG / Supervisor) cluster on the "
        "same vCenter and NSX to this one. Migrate namespace by namespace and keep the old cluster until the new "
        "one has carried the load.",
        "## Leave Tanzu's NSX objects alone\n\n" + bullets([
            "NCP and nsx-operator tag what they create (`ncp/*`, `nsx-op/*`, `nsx/managed-by`) and protect it "
            "(`_protection: REQUIRE_OVERRIDE`). nsxkube never changes such objects; do not change them by hand "
            "either while Tanzu runs.",
            f"This cluster's objects carry `{design.ownership.scope}={design.ownership.tag}`: that is how to tell "
            "them apart.",
        ]) + "\n\n" + bash([bundle.nsx_get(design, "/search/query?query=tags.scope:ncp%5C%2Fcluster")
                            + " | jq -r '.results[].display_name'"]),
        "## Take stock on the Tanzu cluster\n\n" + bash([
            "kubectl get ingress,service -A -o wide | grep -v ClusterIP",
            "kubectl get pvc -A -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name,"
            "CLASS:.spec.storageClassName,SIZE:.spec.resources.requests.storage",
            "kubectl get networkpolicy -A",
            "kubectl get ns -L pod-security.kubernetes.io/enforce",
        ]),
        "## What changes\n\n" + bullets([
            "Ingress: NCP's or Contour's Ingress becomes Cilium's (`ingressClassName: cilium`); NCP-specific "
            "annotations are ignored and must be re-expressed. New routes are better written as Gateway API "
            "HTTPRoutes." if design.spec.addons.ingress.controller == "cilium" else
            f"Ingress: the controller here is {design.spec.addons.ingress.controller}; review every ingressClassName "
            "and controller-specific annotation.",
            f"LoadBalancer addresses come from {pools} instead of NSX IP pools"
            + (f"; to keep an address stable, set {ip_annotation} on the Service." if ip_annotation else "."),
            "DNS records of services and ingresses must point at the new addresses at cut-over.",
            "NetworkPolicies: NCP turned them into DFW rules, Cilium enforces them in the nodes. Same objects, but "
            "test them: default-deny namespaces block everything not allowed.",
            f"Storage: both clusters use vSphere CNS volumes. Move data with Velero (back up in the Tanzu cluster to "
            f"the same bucket, restore here, mapping storage classes to {design.spec.addons.storage.class_name} with "
            "Velero's change-storage-class ConfigMap).",
            f"Pod Security: TKG enforces its own defaults; here namespaces get '{design.spec.addons.security.pod_security}'"
            " from the security baseline; label each migrated namespace.",
        ]),
        "## Cut-over per application\n\n" + "\n".join([
            "1. Lower the DNS TTL of its names a day before.",
            "2. Restore or deploy it here; run its own checks against the new LoadBalancer / ingress address.",
            "3. Switch DNS; watch errors and latency.",
            "4. Roll back by switching DNS back; delete it in Tanzu only after a quiet period.",
        ]),
        "## After the move\n\n" + bullets([
            "GitOps (Argo CD or Flux) so that the cluster's content is declared like the cluster itself.",
            "ExternalDNS for service and ingress names.",
            "Forward logs and metrics to the corporate systems.",
            "A second (production-sized) cluster from another cluster.yaml: the same runbook applies.",
        ]),
    )
