"""`nsxkube init --from-nsx`: pod and service ranges chosen from what the emulated NSX uses."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nsxkube.design.free_ranges import TANZU_NAMESPACE_NETWORK, TANZU_SERVICE_CIDR
from nsxkube.lab.nsx import NsxEmulator
from tests.providers.nsx.helpers import env_of, manager_of

Net = ipaddress.IPv4Network


@pytest.fixture(scope="module", params=["tanzu", "empty"])
def nsx(request: pytest.FixtureRequest) -> Iterator[NsxEmulator]:
    with NsxEmulator(request.param, realization_delay=0) as emulator:
        yield emulator


def init(tmp_path: Path, nsx: NsxEmulator, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    target = tmp_path / "cluster.yaml"
    done = subprocess.run([sys.executable, "-m", "nsxkube", "init", str(target), "--from-nsx", manager_of(nsx),
                           *args], capture_output=True, text=True, env={**os.environ, **env_of(nsx)}, timeout=60)
    return done, target


def test_init_from_nsx_avoids_what_nsx_uses_and_tanzu_defaults(nsx: NsxEmulator, tmp_path: Path) -> None:
    before = len(nsx.requests)
    done, target = init(tmp_path, nsx, "--nsx-thumbprint", nsx.thumbprint)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(target.read_text())
    pods, services = Net(data["kubernetes"]["pod_cidr"]), Net(data["kubernetes"]["service_cidr"])
    assert data["nsx"]["manager"] == manager_of(nsx) and data["nsx"]["tls"] == {"thumbprint": nsx.thumbprint}
    if nsx.preset == "tanzu":
        assert "vSphere with Tanzu found" in done.stdout
        assert not pods.overlaps(TANZU_NAMESPACE_NETWORK) and not pods.overlaps(Net("10.244.16.0/20"))
        assert not services.overlaps(TANZU_SERVICE_CIDR)
        assert (pods.prefixlen, services.prefixlen) == (16, 12)
        assert "# not 10.244.0.0/16: it overlaps IP block domain-c8_5a0c6b2e-ipblock-0" in target.read_text()
    else:  # nothing there: today's defaults stay
        assert (str(pods), str(services)) == ("10.244.0.0/16", "10.96.0.0/12")
    assert {r["method"] for r in nsx.requests[before:]} == {"GET"}
    checked = subprocess.run([sys.executable, "-m", "nsxkube", "check", str(target), "--no-charts"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_init_from_nsx_without_credentials_is_one_line(nsx: NsxEmulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NSX_USER", "NSX_PASSWORD")}
    done = subprocess.run([sys.executable, "-m", "nsxkube", "init", str(tmp_path / "c.yaml"), "--from-nsx",
                           manager_of(nsx), "--nsx-thumbprint", nsx.thumbprint], capture_output=True, text=True,
                          env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "NSX_USER" in done.stderr
    assert not (tmp_path / "c.yaml").exists()
