"""addons/tests: the seed's acceptance objects, each with the command that checks it."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    GATEWAY_NAMESPACE,
    TESTS_NAMESPACE,
    manifest_file,
    metadata,
    mirrored,
    owned_namespace,
)
from nsxkube.render.addons.ingress import GATEWAY_NAME, ingress_class
from nsxkube.render.files import RenderedFile

# One small upstream test image for every probe: it serves HTTP (netexec) and has a shell.
# Test tooling, not an installed component, so it is pinned here and not in the version set.
TEST_IMAGE = "registry.k8s.io/e2e-test-images/agnhost:2.53"
PVC_PROBE_TEXT = "nsxkube-pvc-ok"
WEB_APP = "web-test"
LB_APP = "lb-test"
PVC_TEST = "pvc-test"
PVC_READ_TEST = "pvc-read-test"


def _restricted_pod_spec(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A pod spec that passes Pod Security 'restricted', so the tests run under any baseline."""
    return {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        **extra,
        "containers": containers,
    }


def _container(design: Design, name: str, args: list[str], command: list[str] | None = None,
               **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": mirrored(design, TEST_IMAGE),
        **({"command": command} if command else {}),
        "args": args,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        **extra,
    }


def _http_container(design: Design) -> dict[str, Any]:
    return _container(design, "web", ["netexec", "--http-port=8080"],
                      ports=[{"name": "http", "containerPort": 8080}],
                      readinessProbe={"httpGet": {"path": "/healthz", "port": "http"}})


def _deployment(design: Design, name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(design, name, TESTS_NAMESPACE, labels=labels),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": _restricted_pod_spec([_http_container(design)])},
        },
    }


def _service(design: Design, name: str, service_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(design, name, TESTS_NAMESPACE),
        "spec": {"type": service_type, "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
    }


def pvc_test_objects(design: Design) -> list[dict[str, Any]]:
    storage = design.spec.addons.storage
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(design, PVC_TEST, TESTS_NAMESPACE),
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage.class_name,
                 "resources": {"requests": {"storage": "1Gi"}}},
    }
    script = (f"echo {PVC_PROBE_TEXT} > /data/probe && sync && test \"$(cat /data/probe)\" = {PVC_PROBE_TEXT} "
              "&& cat /data/probe")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(design, PVC_TEST, TESTS_NAMESPACE),
        "spec": _restricted_pod_spec(
            [_container(design, "write-read", ["-c", script], command=["/bin/sh"],
                        volumeMounts=[{"name": "data", "mountPath": "/data"}])],
            restartPolicy="Never",
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": PVC_TEST}}],
        ),
    }
    return [claim, pod]


def pvc_read_test_object(design: Design) -> dict[str, Any]:
    """A pod that only reads the probe file: proves that a restored volume kept its data."""
    script = f"test \"$(cat /data/probe)\" = {PVC_PROBE_TEXT} && cat /data/probe"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(design, PVC_READ_TEST, TESTS_NAMESPACE),
        "spec": _restricted_pod_spec(
            [_container(design, "read", ["-c", script], command=["/bin/sh"],
                        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}])],
            restartPolicy="Never",
            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": PVC_TEST}}],
        ),
    }


def ingress_test_object(design: Design) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(design, WEB_APP, TESTS_NAMESPACE),
        "spec": {
            "ingressClassName": ingress_class(design),
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
                "service": {"name": WEB_APP, "port": {"name": "http"}}}}]}}],
        },
    }


def httproute_test_object(design: Design) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(design, WEB_APP, TESTS_NAMESPACE),
        "spec": {
            "parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                       "backendRefs": [{"name": WEB_APP, "port": 80}]}],
        },
    }


def check_commands(design: Design) -> dict[str, list[str]]:
    """For each test file, the shell lines that prove it works (the runbook repeats them)."""
    ns = TESTS_NAMESPACE
    pools = ", ".join(str(p.range) for p in design.ip_plan.pools)
    commands = {
        paths.TEST_PVC: [
            f"kubectl -n {ns} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/{PVC_TEST} --timeout=5m",
            f"kubectl -n {ns} logs pod/{PVC_TEST}   # prints {PVC_PROBE_TEXT}",
            f"kubectl -n {ns} get pvc {PVC_TEST}    # STATUS Bound, STORAGECLASS {design.spec.addons.storage.class_name}",
        ],
        paths.TEST_LOADBALANCER: [
            f"kubectl -n {ns} rollout status deployment/{LB_APP} --timeout=5m",
            f"LB_IP=$(kubectl -n {ns} get service {LB_APP} -o jsonpath='{{.status.loadBalancer.ingress[0].ip}}')",
            f'echo "$LB_IP"   # an address of the pool(s) {pools}',
            'curl -fsS "http://$LB_IP/hostname"   # from a client network: prints a pod name',
        ],
        paths.TEST_INGRESS: [
            f"kubectl -n {ns} rollout status deployment/{WEB_APP} --timeout=5m",
            f"INGRESS_IP=$(kubectl -n {ns} get ingress {WEB_APP} -o jsonpath='{{.status.loadBalancer.ingress[0].ip}}')",
            'curl -fsS "http://$INGRESS_IP/hostname"   # prints a pod name',
        ],
        paths.TEST_HTTPROUTE: [
            f"kubectl -n {ns} rollout status deployment/{WEB_APP} --timeout=5m",
            f"GATEWAY_IP=$(kubectl -n {GATEWAY_NAMESPACE} get gateway {GATEWAY_NAME} "
            "-o jsonpath='{.status.addresses[0].value}')",
            'curl -fsS "http://$GATEWAY_IP/hostname"   # prints a pod name',
        ],
    }
    return commands


def render_acceptance(design: Design) -> list[RenderedFile]:
    addons = design.spec.addons
    checks = check_commands(design)
    files = [manifest_file(paths.TESTS_NAMESPACE, [
        "Namespace of the acceptance tests; 'restricted' because the test pods need nothing more.",
        f"Remove everything afterwards: kubectl delete namespace {TESTS_NAMESPACE}",
    ], [owned_namespace(design, TESTS_NAMESPACE, "restricted")])]
    if addons.storage.enabled:
        files.append(manifest_file(paths.TEST_PVC, [
            "Storage: a PVC from the vSphere CSI StorageClass and a pod that writes a file, reads it back and exits.",
            *checks[paths.TEST_PVC],
        ], pvc_test_objects(design)))
    if addons.loadbalancer.provider != "none":
        files.append(manifest_file(paths.TEST_LOADBALANCER, [
            "LoadBalancer: a Service that must get an address from the pool and answer from outside the cluster.",
            *checks[paths.TEST_LOADBALANCER],
        ], [_deployment(design, LB_APP, 2), _service(design, LB_APP, "LoadBalancer")]))
    if addons.storage.enabled and addons.backups.velero.enabled:
        files.append(manifest_file(paths.TEST_PVC_READ, [
            "For the Velero restore drill: reads the probe file from the restored volume, writes nothing.",
            f"kubectl -n {TESTS_NAMESPACE} wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/{PVC_READ_TEST} "
            "--timeout=5m",
            f"kubectl -n {TESTS_NAMESPACE} logs pod/{PVC_READ_TEST}   # prints {PVC_PROBE_TEXT}",
        ], [pvc_read_test_object(design)]))
    has_ingress = addons.ingress.controller != "none"
    if has_ingress or addons.gateway_api.enabled:
        files.append(manifest_file(paths.TEST_WEB_APP, [
            "The test web application behind the Ingress and HTTPRoute tests.",
        ], [_deployment(design, WEB_APP, 2), _service(design, WEB_APP, "ClusterIP")]))
    if has_ingress:
        files.append(manifest_file(paths.TEST_INGRESS, [
            f"Ingress through the '{ingress_class(design)}' IngressClass (apply {paths.TEST_WEB_APP} first).",
            *checks[paths.TEST_INGRESS],
        ], [ingress_test_object(design)]))
    if addons.gateway_api.enabled:
        files.append(manifest_file(paths.TEST_HTTPROUTE, [
            f"HTTPRoute attached to the Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} (apply {paths.TEST_WEB_APP} first).",
            *checks[paths.TEST_HTTPROUTE],
        ], [httproute_test_object(design)]))
    return files
