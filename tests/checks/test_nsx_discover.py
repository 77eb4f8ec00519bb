"""`nsx discover` on the emulator's tanzu preset: owners, the overlapping CIDR, the report, only GETs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nsxkube.checks.nsx_audit import audit
from nsxkube.checks.nsx_report import discover_dict, render_nsx_report
from nsxkube.lab.nsx import TANZU_OVERLAPPING_CIDR, TANZU_OVERLAPPING_SEGMENT_ID, NsxEmulator
from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.connect import client_config
from nsxkube.providers.nsx.inventory import get_full_inventory
from tests.providers.nsx.helpers import emulator_design, env_of, manager_of
from tests.support.specs import example_data, with_changes


@pytest.fixture
def tanzu(tmp_path: Path) -> Iterator[NsxEmulator]:
    with NsxEmulator("tanzu", realization_delay=0, log_path=tmp_path / "nsx.jsonl") as emulator:
        yield emulator


def test_discover_labels_ncp_objects_and_flags_the_overlapping_cidr(tanzu: NsxEmulator) -> None:
    design = emulator_design(tanzu)
    client = NsxClient(client_config(design.spec.nsx, lambda name, what: env_of(tanzu)[name]))
    inventory = get_full_inventory(client)
    findings = audit(design, inventory)
    data = discover_dict(design, inventory, findings)
    segments = {s["path"].rsplit("/", 1)[1]: s for s in data["segments"]}
    assert segments[TANZU_OVERLAPPING_SEGMENT_ID]["owner"] == "tanzu-ncp"
    assert segments[TANZU_OVERLAPPING_SEGMENT_ID]["subnets"] == [TANZU_OVERLAPPING_CIDR]
    assert segments["legacy-vms"]["owner"] == "unknown"
    assert {s["owner"] for s in segments.values()} == {"tanzu-ncp", "nsx-operator", "unknown"}
    assert not any(item["owner"] == "nsxkube" for key in ("segments", "gateways", "security_policies")
                   for item in data[key])
    cidr = next(f for f in data["findings"] if f["check"] == "segment-cidr")
    assert cidr["status"] == "fail" and TANZU_OVERLAPPING_CIDR in cidr["detail"] and not data["ok"]
    assert data["rules_per_category"] == {"Application": 5}
    report = render_nsx_report(design, inventory, findings)
    assert report == render_nsx_report(design, inventory, findings)  # deterministic
    for heading in ("## 1. Investigation results", "## 2. Conflicts with cluster.yaml", "## 3. Decision",
                    "**Status: blocked**", "| segment-cidr | FAIL |"):
        assert heading in report


def write_spec(tmp_path: Path, nsx: NsxEmulator) -> Path:
    data = with_changes(example_data(), {"nsx.manager": manager_of(nsx), "nsx.transport_zone": "overlay-tz",
                                         "nsx.tier1": "t1-gw", "nsx.tls.thumbprint": nsx.thumbprint})
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def discover(tmp_path: Path, nsx: NsxEmulator, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_of(nsx)}
    return subprocess.run([sys.executable, "-m", "nsxkube", "nsx", "discover", str(write_spec(tmp_path, nsx)), *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)


def test_discover_subprocess_writes_the_report_and_json_with_only_gets(tanzu: NsxEmulator, tmp_path: Path) -> None:
    report = tmp_path / "out" / "nsx-investigation.md"
    done = discover(tmp_path, tanzu, "--output", "json", "--report", str(report))
    assert done.returncode == 1, done.stderr  # a check fails: the overlapping Tanzu segment
    data = json.loads(done.stdout)
    assert any(f["check"] == "segment-cidr" and f["status"] == "fail" for f in data["findings"])
    assert "## 3. Decision" in report.read_text(encoding="utf-8")
    logged = [json.loads(line) for line in (tmp_path / "nsx.jsonl").read_text().splitlines()]
    assert logged and {entry["method"] for entry in logged} == {"GET"}
    assert all(entry["auth"]["kind"] == "basic" and entry["auth"]["ok"] for entry in logged)
    assert tanzu.password not in done.stdout + done.stderr + report.read_text(encoding="utf-8")


def test_discover_text_output_and_a_clean_exit_on_an_empty_nsx(tmp_path: Path) -> None:
    with NsxEmulator("empty", realization_delay=0) as nsx:
        done = discover(tmp_path, nsx)
    assert done.returncode == 0, done.stderr
    assert "Conflicts with cluster.yaml" in done.stdout and "segment-cidr" in done.stdout


def test_discover_with_bad_credentials_is_one_line(tanzu: NsxEmulator, tmp_path: Path) -> None:
    env = {**os.environ, "NSX_USER": "admin", "NSX_PASSWORD": "nope"}
    done = subprocess.run([sys.executable, "-m", "nsxkube", "nsx", "discover", str(write_spec(tmp_path, tanzu))],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: NSX at"), done.stderr
    assert "Traceback" not in done.stderr
