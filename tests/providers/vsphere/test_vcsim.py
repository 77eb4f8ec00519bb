"""The vSphere provider against vcsim: TLS trust, login, bulk inventory reads, the node template
(check, prepare, and the `nsxkube template` commands). No mocks of vCenter."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nsxkube.cli.template import template_app
from nsxkube.errors import CredentialsError, ProviderError, UsageError
from nsxkube.providers.vsphere.connection import Session, connect
from nsxkube.providers.vsphere.inventory import read_inventory
from nsxkube.providers.vsphere.machines import read_vm
from nsxkube.providers.vsphere.tasks import TaskWaiter
from nsxkube.providers.vsphere.template import check_template, failures, prepare_template
from nsxkube.spec.model import Tls
from tests.providers.vsphere.lab import SIM_VM, TEMPLATE, VsphereLab, skip_on_old_simulator
from tests.support.specs import example_data, with_changes
from tests.support.vcsim import Vcsim

pytestmark = pytest.mark.slow


def login(sim: Vcsim, tls: Tls, password: str | None = None, warn: Callable[[str], None] = print) -> Session:
    return connect(sim.host, sim.port, sim.username, password or sim.password, tls, warn=warn)


def refusal(sim: Vcsim, tls: Tls, password: str | None = None) -> str:
    with pytest.raises(ProviderError) as caught:
        login(sim, tls, password)
    line = caught.value.one_line()
    assert "\n" not in line
    return line


# ---- TLS and login -------------------------------------------------------------------------------


def test_the_simulators_self_signed_certificate_is_refused_by_default(vcsim: Vcsim) -> None:
    line = refusal(vcsim, Tls())
    # "self-signed certificate" (govmomi 0.56), "EE certificate key too weak" (the Debian 0.24 fallback)
    assert line.startswith(f"cannot verify the TLS certificate of vCenter {vcsim.host}:{vcsim.port} against the "
                           "system's CA certificates: ")
    # the operator sees the certificate's SHA-256 to compare out of band and pin
    assert f"it presented SHA-256 {vcsim.thumbprint_sha256} (set vsphere.tls.ca_file" in line


@pytest.mark.parametrize("kind", ["sha256", "sha1"])
def test_a_pinned_thumbprint_is_trusted(vcsim: Vcsim, kind: str) -> None:
    thumbprint = vcsim.thumbprint_sha256 if kind == "sha256" else vcsim.thumbprint_sha1
    session = login(vcsim, Tls(thumbprint=thumbprint))
    assert session.content.about.apiType == "VirtualCenter"
    assert dict(session.by_method) == {"RetrieveServiceContent": 1, "Login": 1}
    session.close()


def test_a_different_pinned_thumbprint_is_refused_on_every_connection(vcsim: Vcsim) -> None:
    wrong = "AA:" * 31 + "AA"
    assert refusal(vcsim, Tls(thumbprint=wrong)) == (
        f"vCenter {vcsim.host}:{vcsim.port} presented a certificate with SHA-256 {vcsim.thumbprint_sha256}, not the "
        f"pinned vsphere.tls.thumbprint {wrong} (if vCenter's certificate was renewed, check the new one out of band "
        "and update the thumbprint)")
    # pyVmomi's own pinning stops checking after a first handshake; ours checks every pooled connection
    session = login(vcsim, Tls(thumbprint=vcsim.thumbprint_sha256))
    context = session.stub.schemeArgs["context"]
    context.pin = "aa" * 32
    session.stub.DropConnections()
    with pytest.raises(Exception, match="not the pinned"):
        session.read_objects([session.content.rootFolder], ["name"])  # a request on a fresh connection
    context.pin = vcsim.thumbprint_sha256.replace(":", "").lower()
    assert session.read_objects([session.content.rootFolder], ["name"])
    session.close()


def test_a_ca_file_is_trusted_and_another_ca_is_refused(vcsim: Vcsim, tmp_path: Path) -> None:
    ca = tmp_path / "vcsim.pem"
    ca.write_text(vcsim.cert_pem)  # vcsim's certificate is its own CA (CA:TRUE, SAN 127.0.0.1)
    skip_on_old_simulator(vcsim, "its certificate has a key OpenSSL calls too weak even from a trusted CA file; "
                          "nsxkube keeps that refusal (a pinned thumbprint is the operator's explicit choice)")
    login(vcsim, Tls(ca_file=ca)).close()
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(other), "-days", "1", "-subj", "/CN=other CA"],
                   check=True, capture_output=True)
    line = refusal(vcsim, Tls(ca_file=other))
    assert line.startswith(f"cannot verify the TLS certificate of vCenter {vcsim.host}:{vcsim.port} against "
                           f"vsphere.tls.ca_file {other}:")


def test_insecure_connects_only_with_a_loud_warning(vcsim: Vcsim) -> None:
    warnings: list[str] = []
    login(vcsim, Tls(insecure=True), warn=warnings.append).close()
    assert len(warnings) == 1 and "TLS certificate verification is OFF" in warnings[0]


def test_a_wrong_password_is_one_line_without_the_password(vcsim: Vcsim) -> None:
    with pytest.raises(CredentialsError) as caught:
        login(vcsim, Tls(thumbprint=vcsim.thumbprint_sha256), password="hunter2-wrong")
    assert caught.value.one_line() == (f"vCenter {vcsim.host}:{vcsim.port} refused the login of "
                                       f"'{vcsim.username}': wrong user name or password (check the variables named "
                                       "in vsphere.credentials)")


def test_an_unreachable_vcenter_is_one_line(vcsim: Vcsim) -> None:
    port = vcsim.port
    vcsim.stop()
    with pytest.raises(ProviderError) as caught:
        connect(vcsim.host, port, "u", "p", Tls(), warn=print)
    assert caught.value.one_line() == (f"cannot reach vCenter {vcsim.host}:{port}: Connection refused (check "
                                       "vsphere.server and that this machine reaches it on that port)")


# ---- bulk inventory ------------------------------------------------------------------------------


@pytest.mark.parametrize("vms", [1, 40])
def test_the_inventory_is_read_in_three_requests_whatever_its_size(vcsim_factory: Callable[..., Vcsim],
                                                                   vms: int) -> None:
    sim = vcsim_factory(vms=vms, hosts_per_cluster=4)
    session = login(sim, Tls(thumbprint=sim.thumbprint_sha256))
    before = session.requests
    inventory = read_inventory(session)
    assert session.requests - before == 3
    assert {k: v for k, v in session.by_method.items() if k not in ("Login", "RetrieveServiceContent")} == {
        "CreateContainerView": 1, "RetrievePropertiesEx": 1, "DestroyView": 1}
    assert len(inventory.by_kind("VirtualMachine")) == vms
    assert len(inventory.by_kind("HostSystem")) == 4
    session.close()


# ---- the node template ---------------------------------------------------------------------------


def test_a_plain_vm_fails_the_template_checks_and_prepare_makes_it_the_template(
        vcsim_factory: Callable[..., Vcsim]) -> None:
    sim = vcsim_factory(vms=1)
    skip_on_old_simulator(sim, "UpgradeVM_Task stops at its own ESX version vmx-13, and key-indexed extraConfig "
                          "paths are not served; vCenter upgrades to vmx-15 as prepare asks")
    session = login(sim, Tls(thumbprint=sim.thumbprint_sha256))
    inventory = read_inventory(session)
    datacenter = inventory.find_datacenter("DC0")
    entity = inventory.find_vms(datacenter, [SIM_VM])[SIM_VM][0]
    raw = read_vm(session, entity.ref, None)
    # vcsim's VM: powered on, vmx-13, an e1000 NIC, no disk.EnableUUID, 10 GiB disk on PVSCSI
    assert [f.check for f in failures(check_template(raw, min_disk_gib=60))] == [
        "template", "hardware version", "disk.EnableUUID", "NIC type"]

    steps: list[str] = []
    pool = inventory.find_resource_pool(inventory.find_cluster(datacenter, "DC0_C0"), None)
    prepare_template(session, TaskWaiter(session), raw, pool, timeout=30, step=steps.append)
    assert steps == [f"powered {SIM_VM} off (VMware Tools not running, so no guest shutdown)",
                     "set disk.EnableUUID = TRUE; NIC e1000 → vmxnet3 on the same network",
                     "upgraded hardware vmx-13 → vmx-15", f"marked {SIM_VM} as template"]
    ready = read_vm(session, entity.ref, None)
    assert failures(check_template(ready, min_disk_gib=60)) == []
    assert ready.nics[0].network == raw.nics[0].network and ready.nics[0].adapter == "vmxnet3"

    again: list[str] = []
    prepare_template(session, TaskWaiter(session), ready, pool, timeout=30, step=again.append)
    assert again == [f"{SIM_VM} is a template already and needs no change"]
    session.close()


def test_prepare_refuses_a_node_vm(vsphere_lab: VsphereLab) -> None:
    from nsxkube.phases.machines import PHASE
    from nsxkube.pipeline import runner

    design = vsphere_lab.design({"nodes.control_planes.count": 1, "nodes.workers.count": 1})
    with vsphere_lab.guest(design):
        assert runner.apply(vsphere_lab.context(design), [PHASE], "cluster.yaml").ok
    node = vsphere_lab.vm("k8s-prod-cp-1")
    with pytest.raises(UsageError, match=r"^VM k8s-prod-cp-1 is a node of nsxkube cluster k8s-prod: refusing"):
        prepare_template(vsphere_lab.session, TaskWaiter(vsphere_lab.session), node,
                         vsphere_lab.entity("ResourcePool", "Resources"), timeout=30, step=print)
    assert vsphere_lab.vm("k8s-prod-cp-1").powered_on


def test_the_template_commands(vcsim_factory: Callable[..., Vcsim], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    sim = vcsim_factory(vms=1)
    skip_on_old_simulator(sim, "UpgradeVM_Task stops at its own ESX version vmx-13 (see the prepare test)")
    lab = VsphereLab(sim, None, tmp_path)  # type: ignore[arg-type]
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(with_changes(example_data(), lab.vsphere_keys(template=SIM_VM)), sort_keys=False))
    monkeypatch.setenv("VSPHERE_USER", sim.username)
    monkeypatch.setenv("VSPHERE_PASSWORD", sim.password)
    cli = CliRunner()

    checked = cli.invoke(template_app, ["check", str(spec)])
    assert checked.exit_code == 1, checked.output
    assert f"template {SIM_VM} (vm-" in checked.output
    assert "  FAIL hardware version: vmx-13\n       fix: the vSphere CSI driver needs vmx-15 or later" in checked.output
    assert "4 of 7 checks failed" in checked.output

    prepared = cli.invoke(template_app, ["prepare", str(spec), "--vm", SIM_VM])
    assert prepared.exit_code == 0, prepared.output
    assert "  · marked DC0_C0_RP0_VM0 as template\n" in prepared.output and "all 7 checks passed" in prepared.output
    assert "note:" not in prepared.output

    assert cli.invoke(template_app, ["check", str(spec)]).exit_code == 0
    missing = cli.invoke(template_app, ["prepare", str(spec), "--vm", "nope"])
    assert missing.exit_code == 1 and isinstance(missing.exception, UsageError)
    assert missing.exception.one_line() == f"VM 'nope' not found in datacenter DC0 (VMs there: {SIM_VM})"


def test_the_template_is_found_by_name_even_before_it_is_one(vsphere_lab: VsphereLab) -> None:
    inventory = read_inventory(vsphere_lab.session)
    template = inventory.find_template(inventory.find_datacenter("DC0"), TEMPLATE)
    assert template.props["config.template"] is True
