"""nsxkube validate: the checks against the NSX emulator and a real kube-apiserver (cluster states
built through its API), broken one thing at a time; the reports (JSON keys fixed, Markdown in
English or Russian, JUnit one testcase per check) and the exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from nsxkube.errors import UsageError
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.phases.network import PHASE as NETWORK
from nsxkube.phases.validate import CHECKS, report, select_checks, validate
from nsxkube.phases.validate.model import CheckResult
from nsxkube.pipeline import runner
from tests.providers.nsx.helpers import emulator_design, make_context
from tests.support.specs import example_design

RESULTS = [
    CheckResult("nsx.objects", "nsx", "NSX objects", "ok", "38 objects as designed"),
    CheckResult("nodes.ready", "nodes", "every node Ready", "fail", "4 of 5 nodes Ready: k8s-prod-worker-2 is NotReady",
                "kubectl describe node", "docs/troubleshooting.md: x | y"),
    CheckResult("vsphere.anti-affinity", "vsphere", "DRS rules", "skipped", "vsphere.anti_affinity is false"),
    CheckResult("nodes.design", "nodes", "labels", "warn", "no ProviderID", "the CPI sets it"),
]


# ---- the checks --------------------------------------------------------------------------------


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.id: r for r in results}


def test_nsx_checks_pass_after_apply_and_fail_with_the_hint_when_a_dfw_rule_is_deleted(
        nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    assert runner.apply(make_context(design, nsx, tmp_path), [NETWORK], "cluster.yaml").ok
    results = by_id(validate(make_context(design, nsx, tmp_path), ["nsx.objects", "nsx.tep-mtu"]))
    assert results["nsx.objects"].verdict == "ok" and "38 objects as designed" in results["nsx.objects"].detail
    assert results["nsx.tep-mtu"].verdict == "ok" and "TEP MTU 1700" in results["nsx.tep-mtu"].detail

    policy = next(p for p in nsx.paths("/infra/domains/default/security-policies/") if "/rules/" in p
                  and (nsx.get(p) or {}).get("tags"))  # one of ours, not the default section
    ctx = make_context(design, nsx, tmp_path)
    ctx.client("nsx", lambda c: None).request("DELETE", policy)
    broken = by_id(validate(make_context(design, nsx, tmp_path), ["nsx.objects"]))["nsx.objects"]
    assert broken.verdict == "fail" and "differ from the design" in broken.detail
    assert "DFW policy" in broken.detail and "nsxkube apply --phase network" in broken.hint
    assert broken.doc.endswith("One kind of traffic is blocked (the DFW)")


def test_a_too_small_tep_mtu_fails_with_the_mtu_section(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx, {"network.node_mtu": 1650, "nsx.tep_mtu": 1800})  # NSX says 1700
    [result] = validate(make_context(design, nsx, tmp_path), ["nsx.tep-mtu"])
    assert result.verdict == "fail" and result.detail.startswith("TEP MTU 1700 (from ")
    assert "is too small for node MTU 1650" in result.detail
    assert result.doc.endswith("Large packets hang")


def test_a_cluster_check_without_a_kubeconfig_fails_in_one_line(nsx: NsxEmulator, tmp_path: Path) -> None:
    [result] = validate(make_context(emulator_design(nsx), nsx, tmp_path), ["nodes.ready"])
    assert result.verdict == "fail" and result.detail.startswith("cannot read the kubeconfig")
    assert "run nsxkube apply" in result.hint


def test_unknown_groups_are_refused_and_groups_select_their_checks() -> None:
    with pytest.raises(UsageError, match="--only storage: no such group or check"):
        select_checks(["storage"])
    assert {c.group for c in select_checks(["nodes"])} == {"nodes"}
    assert [c.id for c in select_checks(["nsx.bindings"])] == ["nsx.bindings"]
    assert len(select_checks()) == len(CHECKS) >= 9


def test_a_check_past_the_deadline_fails_and_the_others_are_reported(tmp_path: Path) -> None:
    import threading

    from nsxkube.phases.validate.model import Check, ok
    from nsxkube.phases.validate.runner import run_checks
    from nsxkube.pipeline.context import Context, Options
    from nsxkube.pipeline.reporter import RecordingReporter

    release = threading.Event()
    checks = [Check("nodes.slow", "slow", lambda probe: release.wait(10) and ok("late")),
              Check("nodes.quick", "quick", lambda probe: ok("fast")),
              Check("nodes.broken", "broken", lambda probe: 1 / 0)]
    ctx = Context(example_design(), Options(workdir=tmp_path), RecordingReporter(), secret=lambda n, w: "")
    try:
        results = by_id(run_checks(ctx, checks, deadline_seconds=0.5))
    finally:
        release.set()
    assert results["nodes.quick"].verdict == "ok"
    assert results["nodes.slow"].verdict == "fail" and "did not finish within the run's 0.5 s" in results["nodes.slow"].detail
    assert results["nodes.broken"].verdict == "fail" and "ZeroDivisionError" in results["nodes.broken"].detail
    assert any(p.startswith("checks 3/3") or p.startswith("checks 2/3") for p in ctx.reporter.texts("progress"))


# ---- cluster checks against a real API server ---------------------------------------------------


def node_object(name: str, role: str, *, ready: bool = True, version: str = "v1.35.8",
                provider: str | None = "vsphere://4211-aaaa") -> dict[str, Any]:
    labels = {"nsxkube/cluster": "k8s-prod", f"node-role.kubernetes.io/{role}": ""}
    spec = {"providerID": provider} if provider else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "x",
                                       "message": "x", "lastHeartbeatTime": "2026-12-06T00:00:00Z",
                                       "lastTransitionTime": "2026-12-06T00:00:00Z"}],
                       "nodeInfo": {"kubeletVersion": version, "machineID": "m", "systemUUID": "s", "bootID": "b",
                                    "kernelVersion": "k", "osImage": "o", "containerRuntimeVersion": "c",
                                    "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"}}}


def put_nodes(cp: Any, nodes: list[dict[str, Any]]) -> None:
    existing = cp.client.get("/api/v1/nodes").json()["items"]
    for node in existing:
        cp.client.delete(f"/api/v1/nodes/{node['metadata']['name']}").raise_for_status()
    for node in nodes:
        created = cp.client.post("/api/v1/nodes", json={k: v for k, v in node.items() if k != "status"})
        created.raise_for_status()
        body = created.json()
        body["status"] = node["status"]
        cp.client.put(f"/api/v1/nodes/{node['metadata']['name']}/status", json=body).raise_for_status()


@pytest.mark.slow
def test_node_checks_against_a_real_api_server(kube_control_plane: Any, tmp_path: Path) -> None:
    from nsxkube.pipeline.context import Context, Options
    from nsxkube.pipeline.reporter import RecordingReporter

    design = example_design({"kubernetes.version": "1.35"})
    shutil.copy(kube_control_plane.kubeconfig, tmp_path / "kubeconfig")
    ctx = lambda: Context(design, Options(workdir=tmp_path), RecordingReporter(), secret=lambda n, w: "")  # noqa: E731
    wanted = [node_object(n.name, n.role, version=f"v{design.versions.kubernetes}") for n in design.ip_plan.nodes]
    assert len(wanted) == 5

    put_nodes(kube_control_plane, wanted)
    results = by_id(validate(ctx(), ["nodes"]))
    assert results["nodes.ready"].verdict == "ok" and results["nodes.ready"].detail == "all 5 nodes Ready"
    assert results["nodes.design"].verdict == "ok"

    broken = [node_object(n["metadata"]["name"], "worker" if "worker" in n["metadata"]["name"] else "control-plane",
                          ready="worker-2" not in n["metadata"]["name"], version=f"v{design.versions.kubernetes}",
                          provider=None if "cp-3" in n["metadata"]["name"] else "vsphere://x") for n in wanted[:4]]
    broken.append({**node_object("k8s-prod-worker-2", "worker", ready=False)})
    put_nodes(kube_control_plane, broken)
    results = by_id(validate(ctx(), ["nodes"]))
    assert results["nodes.ready"].verdict == "fail"
    assert results["nodes.ready"].detail.startswith("4 of 5 nodes Ready: k8s-prod-worker-2 is NotReady")
    assert results["nodes.design"].verdict == "warn" and "no vSphere ProviderID on k8s-prod-cp-3" in results[
        "nodes.design"].detail

    put_nodes(kube_control_plane, [node_object(n.name, n.role, version="v1.34.2") for n in design.ip_plan.nodes])
    stale = by_id(validate(ctx(), ["nodes.design"]))["nodes.design"]
    assert stale.verdict == "fail" and "runs kubelet v1.34.2, pinned v1.35." in stale.detail
    etcd = by_id(validate(ctx(), ["kubernetes.etcd"]))["kubernetes.etcd"]
    assert etcd.verdict == "fail" and etcd.detail.startswith("0 of 3 etcd members Ready")  # no kubeadm etcd pods here
    put_nodes(kube_control_plane, [])


# ---- reports -----------------------------------------------------------------------------------


def test_json_keys_do_not_change_with_the_language_and_exit_code_follows_failures() -> None:
    data = json.loads(report.as_json("k8s-prod", RESULTS, 1.5))
    assert data["ok"] is False and data["counts"] == {"ok": 1, "warn": 1, "fail": 1, "skipped": 1}
    assert [c["id"] for c in data["checks"]] == [r.id for r in RESULTS]
    assert set(data["checks"][0]) == {"id", "group", "title", "verdict", "detail", "hint", "doc", "seconds"}
    assert report.exit_code(RESULTS) == 1 and report.exit_code([RESULTS[0], RESULTS[2], RESULTS[3]]) == 0


def test_markdown_in_english_and_russian() -> None:
    english = report.as_markdown("k8s-prod", RESULTS, 1.5)
    assert english.startswith("# Validation of cluster k8s-prod\n")
    assert "1 passed, 1 failed, 1 warnings, 1 skipped" in english
    assert "| `nodes.ready` every node Ready | FAIL |" in english and "x \\| y" in english  # pipes escaped
    russian = report.as_markdown("k8s-prod", RESULTS, 1.5, "ru")
    assert russian.startswith("# Проверка кластера k8s-prod\n")
    assert "| `nodes.ready` Все узлы в состоянии Ready | ОШИБКА |" in russian
    assert "что сделать: kubectl describe node" in russian
    assert all(r.id in report.TITLES_RU for r in RESULTS[:2])
    assert set(report.TITLES_RU) == {c.id for c in CHECKS}  # every check has its Russian title


def test_junit_has_one_testcase_per_check() -> None:
    suite = ET.fromstring(report.as_junit("k8s-prod", RESULTS, 1.5))
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("testsuite", "4", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == [r.id for r in RESULTS]
    assert cases["nodes.ready"].find("failure").get("message").startswith("4 of 5 nodes Ready")
    assert cases["vsphere.anti-affinity"].find("skipped") is not None
    assert cases["nsx.objects"].find("failure") is None and cases["nsx.objects"].get("classname") == "nsx"
