"""The bundle's vm-template/ and nodes/<vm-name>/ directories, with the two notes for the
operator who builds the template by hand: packages.txt and vm-settings.md."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.cloud_init import NODE_NIC, guestinfo_env, render_node_cloud_init, template_user_data
from nsxkube.render.files import RenderedFile
from nsxkube.render.template_vm import (
    BASE_PACKAGES,
    CONTAINERD_RELEASES,
    ETCD_RELEASES,
    KUBERNETES_PACKAGES,
    prepare_vm_script,
)


def render_machines(design: Design) -> list[RenderedFile]:
    """vm-template/ (user-data, prepare-vm.sh, packages.txt, vm-settings.md) and nodes/<vm-name>/."""
    files = [
        RenderedFile("vm-template/user-data", template_user_data(design)),
        RenderedFile("vm-template/prepare-vm.sh", prepare_vm_script(design), mode=0o755),
        RenderedFile("vm-template/packages.txt", packages_text(design)),
        RenderedFile("vm-template/vm-settings.md", vm_settings_markdown(design)),
    ]
    for node in design.ip_plan.nodes:
        cloud_init = render_node_cloud_init(design, node)
        files += [
            RenderedFile(f"nodes/{node.name}/meta-data", cloud_init.meta_data),
            RenderedFile(f"nodes/{node.name}/user-data", cloud_init.user_data),
            RenderedFile(f"nodes/{node.name}/guestinfo.env", guestinfo_env(cloud_init.guestinfo)),
        ]
    return files


def packages_text(design: Design) -> str:
    versions = design.versions
    lines = [
        "# apt packages prepare-vm.sh installs on the Ubuntu 24.04 template",
        *BASE_PACKAGES,
        *(f"{name}={versions.kubernetes}-*" for name in KUBERNETES_PACKAGES),
        f"# held with apt-mark hold; repository {versions.package_repo}",
        "# from release tarballs (checksums verified):",
        f"# containerd {versions.containerd} ({CONTAINERD_RELEASES})",
        f"# etcdctl and etcdutl {design.versions.etcd} ({ETCD_RELEASES})",
    ]
    return "".join(f"{line}\n" for line in lines)


def vm_settings_markdown(design: Design) -> str:
    spec = design.spec
    rows = [
        ("`disk.EnableUUID = TRUE` (advanced setting)",
         "the guest sees stable disk serials in /dev/disk/by-id; without it the vSphere CSI driver cannot "
         "find attached volumes (\"disk not attached to node\")"),
        ("hardware version ≥ 15 (vmx-15)", "the minimum the vSphere CSI driver supports"),
        ("SCSI controller: VMware Paravirtual", "CSI attaches volumes to a paravirtual SCSI controller"),
        (f"one vmxnet3 NIC on port group `{spec.vsphere.network}`",
         f"the node segment; netplan matches the first vmxnet3 NIC and names it `{NODE_NIC}`, the interface "
         "kube-vip announces the API VIP on"),
        ("open-vm-tools in the guest", "cloud-init's VMware datasource reads guestinfo through it"),
        ("no vSphere guest customization", "cloud-init through guestinfo configures each clone; both at once "
         "fight over the network configuration"),
        ("cloud-init cleaned, machine-id empty (prepare-vm.sh does it)",
         "every clone gets its own instance, machine-id, SSH host keys and DHCP identity"),
    ]
    table = "".join(f"| {setting} | {why} |\n" for setting, why in rows)
    nodes = "".join(
        f"| {n.name} | {n.role} | {n.address}/{design.ip_plan.prefix_length} | {n.cpus} | {n.memory_gib} GiB "
        f"| {n.disk_gib} GiB |\n" for n in design.ip_plan.nodes
    )
    return (
        f"# VM settings for cluster {design.name}\n\n"
        f"Template `{spec.vsphere.template}` (Ubuntu 24.04 cloud image), prepared by `prepare-vm.sh` "
        f"for Kubernetes {design.versions.kubernetes}.\n\n"
        "| setting | why |\n|---|---|\n" + table + "\n"
        "Set on the template before it is converted (clones inherit it), for example with govc:\n\n"
        "```\n"
        f"govc vm.change -vm {spec.vsphere.template} -e disk.enableUUID=TRUE\n"
        f"govc vm.upgrade -vm {spec.vsphere.template} -version 15\n"
        "```\n\n"
        "## Building the template\n\n"
        "Deploy the Ubuntu 24.04 cloud image (OVA) with `vm-template/user-data` as its guestinfo user-data "
        "(and a meta-data giving it an address that reaches the package sources). It runs prepare-vm.sh and "
        "powers off when preparation succeeded; then mark it as a template. By hand instead: copy "
        "prepare-vm.sh to the VM, run `sudo ./prepare-vm.sh`, power off.\n\n"
        "## Clones\n\n"
        "Each clone gets the keys in `nodes/<vm-name>/guestinfo.env` as advanced settings (extraConfig):\n"
        "`guestinfo.metadata` and `guestinfo.userdata`, gzip+base64 encoded.\n\n"
        "| VM | role | address | vCPU | memory | disk |\n|---|---|---|---|---|---|\n" + nodes
    )
