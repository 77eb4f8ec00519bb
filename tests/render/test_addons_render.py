"""The add-on files of the bundle, checked by real validators and against the design."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nsxkube.render.addons import paths, render_addons
from nsxkube.render.addons.backups import cron_to_on_calendar
from nsxkube.render.docs import render_docs
from nsxkube.render.files import RenderedFile
from tests.support.specs import example_design
from tests.support.validators import is_built_in, kubernetes_schema, shellcheck, yamllint

SCHEMA_VERSION = "1.35.0"
# Cilium's pkg/mtu: VXLAN and Geneve over IPv4 cost 50 bytes (outer IP 20, UDP 8, header 8, inner Ethernet 14).
CILIUM_TUNNEL_OVERHEAD_IPV4 = 50

VELERO_ON = {
    "addons.backups.velero.enabled": True,
    "addons.backups.velero.s3_url": "https://s3.example.com",
    "addons.backups.velero.bucket": "k8s-prod-backups",
}
# Spec variants that together switch every add-on file on at least once.
VARIANTS: dict[str, dict[str, Any]] = {
    "example": {},
    "cilium-l2, nginx, velero, mirrors": {
        "addons.loadbalancer.provider": "cilium-l2",
        "addons.ingress.controller": "ingress-nginx",
        "addons.storage.storage_policy": "vSAN Default Storage Policy",
        "addons.security.pod_security": "restricted",
        "addons.security.namespaces": ["default", "apps", "kube-system"],
        "network.registry_mirrors": {"quay.io": "https://registry.example.com/quay.io",
                                     "registry.k8s.io": "https://registry.example.com/k8s",
                                     "docker.io": "https://registry.example.com/docker"},
        **VELERO_ON,
    },
    "minimal": {
        "addons.loadbalancer.provider": "none",
        "addons.ingress.controller": "none",
        "addons.gateway_api.enabled": False,
        "addons.storage.enabled": False,
        "addons.monitoring.enabled": False,
        "addons.metrics_server.enabled": False,
        "addons.backups.etcd.enabled": False,
        "addons.cilium.hubble": False,
        "addons.cilium.kube_proxy_replacement": False,
        "addons.security.default_deny_network_policies": False,
    },
}


def rendered(changes: dict[str, Any] | None = None) -> dict[str, RenderedFile]:
    return {f.path: f for f in render_addons(example_design(changes))}


def documents(file: RenderedFile) -> list[Any]:
    return list(yaml.safe_load_all(file.content))


def objects(files: dict[str, RenderedFile]) -> list[dict[str, Any]]:
    found = []
    for path, file in files.items():
        if path.endswith(".yaml"):
            found += [doc for doc in documents(file) if isinstance(doc, dict) and "kind" in doc]
    return found


def kinds(files: dict[str, RenderedFile]) -> set[str]:
    return {obj["kind"] for obj in objects(files)}


def values(files: dict[str, RenderedFile], path: str) -> dict[str, Any]:
    return yaml.safe_load(files[path].content)


# ---- shape and validators -----------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_file_is_under_addons_once(variant):
    files = render_addons(example_design(VARIANTS[variant]))
    assert files and all(f.path.startswith("addons/") for f in files)
    assert len({f.path for f in files}) == len(files)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_yaml_file_passes_yamllint(variant, tmp_path):
    findings, linted = [], 0
    for path, file in rendered(VARIANTS[variant]).items():
        if path.endswith(".yaml"):
            target = tmp_path / Path(path).name
            target.write_text(file.content, encoding="utf-8")
            findings += yamllint(target)
            linted += 1
    assert linted >= 5, "too few YAML files rendered to lint"
    assert findings == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_built_in_objects_validate_against_the_kubernetes_schema(variant):
    built_in = [obj for obj in objects(rendered(VARIANTS[variant])) if is_built_in(obj)]
    assert built_in, "no built-in objects rendered"
    findings = [finding for obj in built_in for finding in kubernetes_schema(obj, SCHEMA_VERSION)]
    assert findings == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_custom_resources_carry_their_identity(variant):
    custom = [obj for obj in objects(rendered(VARIANTS[variant])) if not is_built_in(obj)]
    # Only the minimal variant turns off every add-on that brings its own kinds.
    assert bool(custom) is (variant != "minimal"), [obj["kind"] for obj in custom]
    for obj in custom:
        assert "/" in obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], obj


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_secrets_script_passes_shellcheck(variant, tmp_path):
    script = rendered(VARIANTS[variant])[paths.CREATE_SECRETS]
    assert script.executable
    target = tmp_path / "create-secrets.sh"
    target.write_text(script.content, encoding="utf-8")
    assert shellcheck(target) == []


def test_objects_nsxkube_creates_carry_the_ownership_label():
    rendered_objects = objects(rendered(VARIANTS["cilium-l2, nginx, velero, mirrors"]))
    assert len(rendered_objects) >= 10
    for obj in rendered_objects:
        labels = obj["metadata"].get("labels", {})
        if obj["kind"] == "Namespace" and "nsxkube/cluster" not in labels:
            # Only the users' own namespaces go unmarked (so that nsxkube never deletes them).
            assert obj["metadata"]["name"] in ("default", "apps")
        else:
            assert labels.get("nsxkube/cluster") == "k8s-prod", obj["metadata"]


# ---- Cilium -------------------------------------------------------------------------------


@pytest.mark.parametrize(("node_mtu", "tunnel"), [(1500, "geneve"), (1400, "vxlan"), (1600, "geneve")])
def test_cilium_values_give_the_design_pod_mtu_vip_ipam_and_tunnel(node_mtu, tunnel):
    design = example_design({"network.node_mtu": node_mtu, "addons.cilium.tunnel": tunnel})
    files = {f.path: f for f in render_addons(design)}
    cilium = values(files, paths.CILIUM_VALUES)
    # Cilium subtracts its tunnel overhead from MTU for the routes inside pods.
    assert cilium["MTU"] - CILIUM_TUNNEL_OVERHEAD_IPV4 == design.mtu.pod_mtu
    assert cilium["k8sServiceHost"] == str(design.ip_plan.api_vip) == "172.16.50.10"
    assert cilium["k8sServicePort"] == 6443
    assert cilium["kubeProxyReplacement"] is True
    assert cilium["ipam"] == {"mode": "kubernetes"}
    assert cilium["routingMode"] == "tunnel"
    assert cilium["tunnelProtocol"] == tunnel
    assert f"= {design.mtu.pod_mtu} bytes" in files[paths.CILIUM_VALUES].content


def test_cilium_features_follow_the_spec():
    full = values(rendered(), paths.CILIUM_VALUES)
    assert {k: v for k, v in full["hubble"].items() if k != "tls"} == {"enabled": True, "relay": {"enabled": True},
                                                                         "ui": {"enabled": True}}
    assert full["ingressController"]["enabled"] is True
    assert full["gatewayAPI"] == {"enabled": True}
    assert "l2announcements" not in full
    bare = values(rendered(VARIANTS["minimal"]), paths.CILIUM_VALUES)
    assert bare["hubble"] == {"enabled": False}
    assert bare["kubeProxyReplacement"] is False
    assert not {"ingressController", "gatewayAPI", "l2announcements"} & set(bare)
    l2 = values(rendered({"addons.loadbalancer.provider": "cilium-l2"}), paths.CILIUM_VALUES)
    assert l2["l2announcements"] == {"enabled": True}
    assert l2["externalIPs"] == {"enabled": True}


def test_registry_mirrors_replace_image_repositories():
    files = rendered(VARIANTS["cilium-l2, nginx, velero, mirrors"])
    cilium = values(files, paths.CILIUM_VALUES)
    assert cilium["image"]["repository"] == "registry.example.com/quay.io/cilium/cilium"
    assert cilium["operator"]["image"]["repository"] == "registry.example.com/quay.io/cilium/operator"
    assert cilium["hubble"]["relay"]["image"]["repository"] == "registry.example.com/quay.io/cilium/hubble-relay"
    assert values(files, paths.METRICS_SERVER_VALUES)["image"]["repository"] == \
        "registry.example.com/k8s/metrics-server/metrics-server"
    velero = values(files, paths.VELERO_VALUES)
    assert velero["initContainers"][0]["image"] == "registry.example.com/docker/velero/velero-plugin-for-aws:v1.14.3"
    images = [c["image"] for obj in objects(files) if obj["kind"] in ("Pod", "Deployment")
              for c in (obj["spec"].get("template", {}).get("spec") or obj["spec"])["containers"]]
    assert images and all(image.startswith("registry.example.com/k8s/") for image in images)
    assert "image" not in values(rendered(), paths.CILIUM_VALUES)


# ---- LoadBalancer -------------------------------------------------------------------------

TWO_POOLS = {"network.loadbalancer_pools": [
    {"name": "web", "range": "172.16.50.200-172.16.50.220"},
    {"name": "infra", "range": "172.16.50.230-172.16.50.239"},
]}


def test_metallb_pools_equal_the_design_pools_and_leave_out_the_vip():
    design = example_design(TWO_POOLS)
    files = {f.path: f for f in render_addons(design)}
    docs = documents(files[paths.METALLB_POOLS])
    pools = {d["metadata"]["name"]: d["spec"]["addresses"] for d in docs if d["kind"] == "IPAddressPool"}
    assert pools == {p.name: [f"{p.range.first}-{p.range.last}"] for p in design.ip_plan.pools}
    assert pools == {"web": ["172.16.50.200-172.16.50.220"], "infra": ["172.16.50.230-172.16.50.239"]}
    for docs_pool in pools.values():
        first, last = (int(ip.split(".")[-1]) for ip in docs_pool[0].split("-"))
        assert not first <= int(str(design.ip_plan.api_vip).split(".")[-1]) <= last
    (advert,) = [d for d in docs if d["kind"] == "L2Advertisement"]
    assert advert["apiVersion"] == "metallb.io/v1beta1"
    assert advert["spec"]["ipAddressPools"] == ["web", "infra"]


def test_cilium_lb_pools_equal_the_design_pools():
    design = example_design({**TWO_POOLS, "addons.loadbalancer.provider": "cilium-l2"})
    files = {f.path: f for f in render_addons(design)}
    docs = documents(files[paths.CILIUM_LB_POOLS])
    pools = {d["metadata"]["name"]: d["spec"]["blocks"] for d in docs if d["kind"] == "CiliumLoadBalancerIPPool"}
    assert pools == {"web": [{"start": "172.16.50.200", "stop": "172.16.50.220"}],
                     "infra": [{"start": "172.16.50.230", "stop": "172.16.50.239"}]}
    assert {d["apiVersion"] for d in docs if d["kind"] == "CiliumLoadBalancerIPPool"} == {"cilium.io/v2"}
    (policy,) = [d for d in docs if d["kind"] == "CiliumL2AnnouncementPolicy"]
    assert policy["apiVersion"] == "cilium.io/v2alpha1"
    assert policy["spec"]["loadBalancerIPs"] is True


METALLB_KINDS = {"IPAddressPool", "L2Advertisement"}
CILIUM_LB_KINDS = {"CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy"}


@pytest.mark.parametrize(("provider", "present", "absent"), [
    ("metallb", METALLB_KINDS, CILIUM_LB_KINDS),
    ("cilium-l2", CILIUM_LB_KINDS, METALLB_KINDS),
    ("none", set(), METALLB_KINDS | CILIUM_LB_KINDS),
])
def test_one_loadbalancer_provider_never_both(provider, present, absent):
    files = rendered({"addons.loadbalancer.provider": provider})
    found = kinds(files)
    assert present <= found
    assert not absent & found
    assert (paths.TEST_LOADBALANCER in files) == (provider != "none")


# ---- vSphere ------------------------------------------------------------------------------


def storage_class(files: dict[str, RenderedFile]) -> dict[str, Any]:
    (sc,) = documents(files[paths.STORAGE_CLASS])
    return sc


def test_storage_class_is_the_default_when_asked():
    sc = storage_class(rendered())
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["provisioner"] == "csi.vsphere.vmware.com"
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc["parameters"]["csi.storage.k8s.io/fstype"] == "ext4"
    other = storage_class(rendered({"addons.storage.default_class": False, "addons.storage.fstype": "xfs"}))
    assert "annotations" not in other["metadata"]
    assert other["parameters"]["csi.storage.k8s.io/fstype"] == "xfs"


@pytest.mark.parametrize(("key", "value", "parameter"), [
    ("addons.storage.storage_policy", "vSAN Default Storage Policy", "storagepolicyname"),
    ("addons.storage.datastore_url", "ds:///vmfs/volumes/vsan:52b1/", "datastoreurl"),
])
def test_storage_class_places_volumes_as_the_spec_says(key, value, parameter):
    sc = storage_class(rendered({key: value}))
    assert sc["parameters"][parameter] == value
    assert {"storagepolicyname", "datastoreurl"} & set(sc["parameters"]) == {parameter}


def test_storage_disabled_renders_no_csi_and_no_volume_test():
    files = rendered({"addons.storage.enabled": False})
    assert not [p for p in files if p.startswith("addons/vsphere-csi/")]
    assert paths.TEST_PVC not in files
    assert paths.CPI_CONFIG in files  # the CPI is needed anyway: it initialises the nodes


def test_cpi_and_csi_configuration_hold_placeholders_never_values():
    files = rendered()
    (config_map,) = documents(files[paths.CPI_CONFIG])
    conf = yaml.safe_load(config_map["data"]["vsphere.conf"])
    assert conf["global"]["secretName"] == "vsphere-cloud-secret"
    assert conf["vcenter"]["vcenter.example.com"]["datacenters"] == ["Datacenter"]
    (secret,) = documents(files[paths.CPI_SECRET_TEMPLATE])
    assert secret["metadata"]["name"] == "vsphere-cloud-secret"
    assert secret["stringData"] == {"vcenter.example.com.username": "__VSPHERE_USER__",
                                    "vcenter.example.com.password": "__VSPHERE_PASSWORD__"}
    ini = files[paths.CSI_CONF_TEMPLATE].content
    assert 'password = "__VSPHERE_PASSWORD__"' in ini
    assert '[VirtualCenter "vcenter.example.com"]' in ini
    assert 'cluster-id = "k8s-prod"' in ini
    (namespace,) = documents(files[paths.CSI_NAMESPACE])
    assert namespace["metadata"]["name"] == "vmware-system-csi"


def test_no_secret_value_ever_reaches_a_file(monkeypatch):
    sentinels = {
        "VSPHERE_USER": "sentinel-vsphere-user-7f3a", "VSPHERE_PASSWORD": "sentinel-vsphere-pass-91c2",
        "NSX_USER": "sentinel-nsx-user-0b5e", "NSX_PASSWORD": "sentinel-nsx-pass-44d1",
        "VELERO_S3_ACCESS_KEY": "sentinel-s3-access-a8e0", "VELERO_S3_SECRET_KEY": "sentinel-s3-secret-5c77",
    }
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    design = example_design({**VELERO_ON, "addons.ingress.controller": "ingress-nginx"})
    files = render_addons(design) + render_docs(design)
    leaks = [(f.path, name) for f in files for name, value in sentinels.items() if value in f.content]
    assert leaks == []
    everything = "".join(f.content for f in files)
    assert "$VELERO_S3_SECRET_KEY" in everything  # the name is referenced, the value never


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendering_twice_is_byte_identical(variant):
    first = render_addons(example_design(VARIANTS[variant]))
    second = render_addons(example_design(VARIANTS[variant]))
    assert [(f.path, f.content, f.mode) for f in first] == [(f.path, f.content, f.mode) for f in second]


# ---- observability and backups -----------------------------------------------------------


def test_kube_prometheus_stack_scrapes_the_control_plane_and_skips_kube_proxy():
    design = example_design()
    kps = values({f.path: f for f in render_addons(design)}, paths.KUBE_PROMETHEUS_STACK_VALUES)
    control_planes = [str(n.address) for n in design.ip_plan.control_planes]
    assert kps["kubeProxy"] == {"enabled": False}
    for key, port in (("kubeEtcd", 2381), ("kubeControllerManager", 10257), ("kubeScheduler", 10259)):
        assert kps[key]["endpoints"] == control_planes
        assert kps[key]["service"]["port"] == kps[key]["service"]["targetPort"] == port
    assert kps["prometheus"]["prometheusSpec"]["retention"] == "15d"
    assert kps["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == \
        "vsphere-csi"
    assert kps["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    with_kube_proxy = values(rendered({"addons.cilium.kube_proxy_replacement": False,
                                       "addons.ingress.controller": "none", "addons.gateway_api.enabled": False,
                                       "addons.monitoring.grafana": False}), paths.KUBE_PROMETHEUS_STACK_VALUES)
    assert with_kube_proxy["kubeProxy"] == {"enabled": True}
    assert with_kube_proxy["grafana"] == {"enabled": False}


def test_velero_disabled_renders_no_velero_files():
    files = rendered()
    assert not [p for p in files if "velero" in p]
    assert paths.SNAPSHOT_CLASS not in files
    assert "velero" not in files[paths.CREATE_SECRETS].content.lower()


def test_velero_values_point_at_the_bucket_and_the_credentials_secret():
    files = rendered(VELERO_ON)
    velero = values(files, paths.VELERO_VALUES)
    (location,) = velero["configuration"]["backupStorageLocation"]
    assert location["bucket"] == "k8s-prod-backups"
    assert location["config"]["s3Url"] == "https://s3.example.com"
    assert location["config"]["region"] == "us-east-1"
    assert velero["credentials"] == {"useSecret": True, "existingSecret": "velero-s3-credentials"}
    assert velero["deployNodeAgent"] is True
    assert velero["configuration"]["features"] == "EnableCSI"
    assert velero["configuration"]["defaultSnapshotMoveData"] is True
    assert velero["schedules"]["daily"]["template"]["ttl"] == "720h"
    (snapshot_class,) = documents(files[paths.SNAPSHOT_CLASS])
    assert snapshot_class["metadata"]["labels"]["velero.io/csi-volumesnapshot-class"] == "true"
    script = files[paths.CREATE_SECRETS].content
    assert '"$VELERO_S3_ACCESS_KEY" "$VELERO_S3_SECRET_KEY"' in script


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 */6 * * *", ["*-*-* 00,06,12,18:00:00"]),
    ("30 2 * * *", ["*-*-* 02:30:00"]),
    ("15,45 1-3 * * 1-5", ["Mon,Tue,Wed,Thu,Fri *-*-* 01,02,03:15,45:00"]),
    ("0 0 1 * 0", ["*-*-01 00:00:00", "Sun *-*-* 00:00:00"]),
    ("0 3 * jan,jul sun", ["Sun *-01,07-* 03:00:00"]),
    ("*/20 * * * 7", ["Sun *-*-* *:00,20,40:00"]),
])
def test_cron_schedules_become_systemd_calendars(cron, expected):
    assert cron_to_on_calendar(cron) == expected


@pytest.mark.parametrize("bad", ["60 * * * *", "* * * * * *", "a b c d e", "0 0 0 * *"])
def test_invalid_cron_schedules_are_refused(bad):
    with pytest.raises(ValueError):
        cron_to_on_calendar(bad)


def _cron_matches(expression: str, when: dt.datetime) -> bool:
    """A plain cron matcher (numbers, ranges, steps, lists), the oracle for systemd's answer."""
    def field(text: str, value: int, low: int, high: int) -> bool:
        for item in text.split(","):
            base, _, step = item.partition("/")
            start, end = (low, high) if base == "*" else (
                tuple(int(x) for x in base.split("-")) if "-" in base else (int(base), high if step else int(base)))
            if start <= value <= end and (value - start) % int(step or 1) == 0:
                return True
        return False

    minute, hour, dom, month, dow = expression.split()
    weekday = (when.weekday() + 1) % 7
    day_ok = field(dom, when.day, 1, 31)
    weekday_ok = field(dow, weekday, 0, 7) or (weekday == 0 and field(dow, 7, 0, 7))
    # cron: when both day fields are restricted, either one matching is enough.
    either = not dom.startswith("*") and not dow.startswith("*")
    days = (day_ok or weekday_ok) if either else (day_ok and weekday_ok)
    return field(minute, when.minute, 0, 59) and field(hour, when.hour, 0, 23) and field(month, when.month, 1, 12) \
        and days


@pytest.mark.parametrize("cron", ["0 */6 * * *", "15,45 1-3 * * 1-5", "0 0 1,15 * 0", "5 4 * 2-11/3 *"])
def test_the_rendered_timer_fires_when_cron_would(cron, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    files = rendered({"addons.backups.etcd.schedule": cron})
    timer = files[paths.ETCD_BACKUP_TIMER].content
    calendars = [line.split("=", 1)[1] for line in timer.splitlines() if line.startswith("OnCalendar=")]
    base = dt.datetime(2026, 1, 1, 0, 0)
    count = 12
    fired: set[dt.datetime] = set()
    for calendar in calendars:
        result = subprocess.run([tool, "calendar", f"--iterations={count}", "--base-time=2026-01-01 00:00:00 UTC",
                                 calendar], capture_output=True, text=True, env={"TZ": "UTC"})
        assert result.returncode == 0, result.stderr
        fired |= {dt.datetime.fromisoformat(m) for m in
                  re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", result.stdout)}
    expected: list[dt.datetime] = []
    when = base
    while len(expected) < count:
        when += dt.timedelta(minutes=1)
        if _cron_matches(cron, when):
            expected.append(when)
    assert sorted(fired)[:count] == expected


def test_the_etcd_backup_units_call_the_installed_script():
    files = rendered()
    service = files[paths.ETCD_BACKUP_SERVICE].content
    timer = files[paths.ETCD_BACKUP_TIMER].content
    assert "ExecStart=/usr/local/sbin/nsxkube-etcd-backup" in service
    assert "Type=oneshot" in service
    assert "Unit=nsxkube-etcd-backup.service" in timer
    assert "Persistent=true" in timer
    assert not [p for p in rendered({"addons.backups.etcd.enabled": False}) if p.startswith("addons/backups/")]


# ---- ingress, security, acceptance tests -------------------------------------------------


def test_gateway_uses_cilium_gateway_class():
    files = rendered()
    gateway = next(d for d in documents(files[paths.GATEWAY]) if d["kind"] == "Gateway")
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["spec"]["gatewayClassName"] == "cilium"
    assert gateway["spec"]["listeners"][0]["port"] == 80
    assert paths.GATEWAY not in rendered({"addons.gateway_api.enabled": False})


def test_ingress_nginx_is_rendered_only_as_loudly_marked_legacy():
    assert paths.INGRESS_NGINX_VALUES not in rendered()
    files = rendered({"addons.ingress.controller": "ingress-nginx"})
    text = files[paths.INGRESS_NGINX_VALUES].content
    assert "WARNING: ingress-nginx is RETIRED" in text
    assert values(files, paths.INGRESS_NGINX_VALUES)["controller"]["ingressClassResource"]["name"] == "nginx"
    (ingress,) = documents(files[paths.TEST_INGRESS])
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_security_baseline_follows_the_spec_and_spares_system_namespaces():
    files = rendered(VARIANTS["cilium-l2, nginx, velero, mirrors"])
    namespaces = {d["metadata"]["name"]: d["metadata"]["labels"] for d in documents(files[paths.POD_SECURITY])}
    assert set(namespaces) == {"default", "apps"}
    assert all(labels["pod-security.kubernetes.io/enforce"] == "restricted" for labels in namespaces.values())
    policies = documents(files[paths.NETWORK_POLICIES])
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies} == {
        (ns, name) for ns in ("default", "apps") for name in ("default-deny-all", "allow-dns")}
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny-all")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    default = {d["metadata"]["name"]: d["metadata"]["labels"] for d in documents(rendered()[paths.POD_SECURITY])}
    assert default["default"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert default["default"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert paths.NETWORK_POLICIES not in rendered(VARIANTS["minimal"])


def test_read_only_rbac_grants_no_write_and_no_secrets():
    docs = documents(rendered()[paths.READ_ONLY_RBAC])
    roles = [d for d in docs if d["kind"] == "ClusterRole"]
    bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    rules = [r for role in roles for r in role["rules"]]
    assert roles and bindings and rules
    for rule in rules:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert "secrets" not in rule["resources"]
    assert {b["roleRef"]["name"] for b in bindings} == {"view", *(r["metadata"]["name"] for r in roles)}


def test_acceptance_objects_cover_storage_loadbalancer_and_ingress():
    files = rendered()
    pvc, pod = documents(files[paths.TEST_PVC])
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["storageClassName"] == "vsphere-csi"
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert "> /data/probe" in pod["spec"]["containers"][0]["args"][-1]
    assert "cat /data/probe" in pod["spec"]["containers"][0]["args"][-1]
    service = next(d for d in documents(files[paths.TEST_LOADBALANCER]) if d["kind"] == "Service")
    assert service["spec"]["type"] == "LoadBalancer"
    (ingress,) = documents(files[paths.TEST_INGRESS])
    assert ingress["spec"]["ingressClassName"] == "cilium"
    (route,) = documents(files[paths.TEST_HTTPROUTE])
    assert route["spec"]["parentRefs"] == [{"name": "shared", "namespace": "gateway"}]
    for path in (paths.TEST_PVC, paths.TEST_LOADBALANCER, paths.TEST_INGRESS, paths.TEST_HTTPROUTE):
        assert "# kubectl " in files[path].content or "# curl " in files[path].content  # the check command
    bare = rendered(VARIANTS["minimal"])
    assert not {paths.TEST_PVC, paths.TEST_LOADBALANCER, paths.TEST_INGRESS, paths.TEST_HTTPROUTE} & set(bare)


def test_versions_doc_names_every_chart_with_its_chart_and_app_version_and_where_it_was_checked():
    design = example_design(VELERO_ON)
    text = {f.path: f for f in render_addons(design)}[paths.VERSIONS].content
    v = design.versions
    for row in (f"| cilium | `cilium/cilium` | https://helm.cilium.io/ | {v.cilium} | {v.cilium} |",
                f"| kube-prometheus-stack | `prometheus-community/kube-prometheus-stack` "
                f"| https://prometheus-community.github.io/helm-charts | {v.kube_prometheus_stack} | "
                f"{v.prometheus_operator} |",
                f"| velero | `vmware-tanzu/velero` | https://vmware-tanzu.github.io/helm-charts | {v.velero_chart} "
                f"| {v.velero} |",
                f"| metrics-server | `metrics-server/metrics-server` | https://kubernetes-sigs.github.io/metrics-server/ "
                f"| {v.metrics_server_chart} | {v.metrics_server} |",
                f"| metallb | `metallb/metallb` | https://metallb.github.io/metallb | {v.metallb} | v{v.metallb} |"):
        assert row in text
    for chart in ("cilium", "metallb", "metrics-server", "kube-prometheus-stack", "velero"):
        assert re.search(rf"^\| {chart} \| [0-9.]+ \| v?[0-9.]+ \| .*(index\.yaml|tag) ", text, re.M), chart
    assert f"vsphere-csi-driver/v{v.vsphere_csi}/" in text
    assert f"gateway-api/releases/download/{v.gateway_api}/" in text


# Chart version → application version, as the charts' published indexes list them (checked 2026-12-06).
PUBLISHED_CHARTS = {
    "metrics-server": ("3.13.0", "0.8.0"),
    "velero": ("12.1.0", "1.18.1"),
    "kube-prometheus-stack": ("88.0.0", "v0.93.0"),
    "cilium": ("1.20.0", "1.20.0"),
    "metallb": ("0.16.1", "v0.16.1"),
    "ingress-nginx": ("4.13.9", "1.13.9"),
}
EVERY_CHART = {**VARIANTS["cilium-l2, nginx, velero, mirrors"], "addons.loadbalancer.provider": "metallb"}


def test_every_helm_release_is_pinned_to_a_published_chart_version():
    from nsxkube.render.addons.versions import helm_charts

    charts = helm_charts(example_design(EVERY_CHART))
    assert {c.release for c in charts} == set(PUBLISHED_CHARTS)
    for chart in charts:
        assert (chart.version, chart.app_version) == PUBLISHED_CHARTS[chart.release], chart.release


@pytest.mark.parametrize("variant", [VARIANTS["example"], EVERY_CHART])
def test_the_bundle_installs_exact_chart_versions_and_looks_nothing_up(variant):
    from nsxkube.render.bundle import render_bundle

    design = example_design(variant)
    bundle = "\n".join(f.content for f in render_bundle(design))
    for lookup in ("helm search", "app_version", "--version null", "--version \"$(", "--version $("):
        assert lookup not in bundle
    pinned = re.findall(r"helm upgrade --install (\S+) \S+ .*?--version (\S+)", bundle, re.S)
    assert pinned
    for release, version in pinned:
        assert version == PUBLISHED_CHARTS[release][0], release


@pytest.mark.parametrize(("charts", "reference", "repo_add"), [
    ({"addons.charts.directory": "/srv/charts"}, "/srv/charts/metrics-server-3.13.0.tgz", False),
    ({"addons.charts.oci": "oci://registry.example.com/charts/"}, "oci://registry.example.com/charts/metrics-server",
     False),
    ({}, "metrics-server/metrics-server", True),
])
def test_charts_come_from_where_the_spec_says(charts, reference, repo_add):
    design = example_design(charts)
    runbook = "\n".join(f.content for f in render_docs(design))
    assert f"helm upgrade --install metrics-server {reference} " in runbook
    assert ("helm repo add metrics-server" in runbook) is repo_add
    cilium = "/srv/charts/cilium-1.20.0.tgz" if "addons.charts.directory" in charts else "cilium/cilium"
    if "addons.charts.oci" in charts:
        cilium = "oci://registry.example.com/charts/cilium"
    assert f"helm upgrade cilium {cilium} -n kube-system" in runbook  # troubleshooting's re-apply too
    versions = rendered(charts)[paths.VERSIONS].content
    assert ("helm pull metrics-server/metrics-server --version 3.13.0" in versions) is not repo_add


def test_the_cpi_manifest_is_the_release_tag_of_the_pinned_image():
    from nsxkube.render.addons.versions import manifests

    design = example_design()
    (cpi,) = [m for m in manifests(design) if m.name == "vSphere CPI"]
    assert "/master/" not in cpi.url
    assert cpi.url == ("https://raw.githubusercontent.com/kubernetes/cloud-provider-vsphere/"
                       f"v{design.versions.vsphere_cpi}/releases/v{design.versions.kubernetes_minor}/"
                       "vsphere-cloud-controller-manager.yaml")
    runbook = "\n".join(f.content for f in render_docs(design))
    assert "cloud-provider-vsphere/master" not in runbook


def test_hubble_certificates_are_not_made_by_helm_so_an_upgrade_changes_nothing():
    hubble = values(rendered(), paths.CILIUM_VALUES)["hubble"]
    # Cilium 1.20's chart: hubble.tls.auto.method is helm (regenerated every upgrade), cronJob or certmanager.
    assert hubble["tls"]["auto"]["enabled"] is True
    assert hubble["tls"]["auto"]["method"] == "cronJob"


@pytest.mark.parametrize(("provider", "ipam"), [("metallb", "none"), ("none", "none"), ("cilium-l2", None)])
def test_only_one_allocator_hands_out_loadbalancer_addresses(provider, ipam):
    cilium = values(rendered({"addons.loadbalancer.provider": provider}), paths.CILIUM_VALUES)
    # Cilium's chart default is lbipam: absent means Cilium allocates, which only cilium-l2 wants.
    assert cilium.get("defaultLBServiceIPAM") == ipam
