"""Paths of the add-on files in the bundle (the runbook and other tools rely on them)."""

CILIUM_VALUES = "addons/cilium/values.yaml"

CPI_CONFIG = "addons/vsphere-cpi/vsphere-cloud-config.yaml"
CPI_SECRET_TEMPLATE = "addons/vsphere-cpi/vsphere-cloud-secret.yaml"

CSI_NAMESPACE = "addons/vsphere-csi/namespace.yaml"
CSI_CONF_TEMPLATE = "addons/vsphere-csi/csi-vsphere.conf"
STORAGE_CLASS = "addons/vsphere-csi/storageclass.yaml"
SNAPSHOT_CLASS = "addons/vsphere-csi/volumesnapshotclass.yaml"

METALLB_NAMESPACE = "addons/loadbalancer/metallb-namespace.yaml"
METALLB_POOLS = "addons/loadbalancer/metallb-pools.yaml"
CILIUM_LB_POOLS = "addons/loadbalancer/cilium-lb-pools.yaml"

GATEWAY = "addons/ingress/gateway.yaml"
INGRESS_NGINX_VALUES = "addons/ingress/ingress-nginx-values.yaml"

METRICS_SERVER_VALUES = "addons/metrics-server/values.yaml"
MONITORING_NAMESPACE = "addons/monitoring/namespace.yaml"
KUBE_PROMETHEUS_STACK_VALUES = "addons/monitoring/kube-prometheus-stack-values.yaml"

VELERO_NAMESPACE = "addons/velero/namespace.yaml"
VELERO_VALUES = "addons/velero/values.yaml"

ETCD_BACKUP_SERVICE = "addons/backups/etcd-backup.service"
ETCD_BACKUP_TIMER = "addons/backups/etcd-backup.timer"

POD_SECURITY = "addons/security/pod-security.yaml"
NETWORK_POLICIES = "addons/security/network-policies.yaml"
READ_ONLY_RBAC = "addons/security/rbac-read-only.yaml"

TESTS_NAMESPACE = "addons/tests/namespace.yaml"
TEST_PVC = "addons/tests/pvc-test.yaml"
TEST_PVC_READ = "addons/tests/pvc-read-test.yaml"
TEST_LOADBALANCER = "addons/tests/loadbalancer-test.yaml"
TEST_WEB_APP = "addons/tests/web-app.yaml"
TEST_INGRESS = "addons/tests/ingress-test.yaml"
TEST_HTTPROUTE = "addons/tests/httproute-test.yaml"

CREATE_SECRETS = "addons/create-secrets.sh"
VERSIONS = "addons/versions.md"

# Where the etcd backup pieces go on each control plane. scripts/etcd-backup.sh (rendered
# elsewhere) is installed as the program; the units here only schedule it.
ETCD_BACKUP_PROGRAM = "/usr/local/sbin/nsxkube-etcd-backup"
ETCD_BACKUP_UNIT = "nsxkube-etcd-backup"
