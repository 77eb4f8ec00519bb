"""vSphere CPI (node ProviderIDs) and CSI (volumes): configuration, secret templates, StorageClass."""

from __future__ import annotations

from typing import Any

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.common import (
    CSI_NAMESPACE,
    manifest_file,
    metadata,
    owned_namespace,
    placeholder,
)
from nsxkube.render.files import RenderedFile, to_yaml

CPI_CONFIG_MAP = "vsphere-cloud-config"
CPI_SECRET = "vsphere-cloud-secret"
CSI_SECRET = "vsphere-config-secret"
CSI_PROVISIONER = "csi.vsphere.vmware.com"
VCENTER_PORT = 443


def cpi_config(design: Design) -> dict[str, Any]:
    """The CPI's vsphere.conf (YAML form): where vCenter is and which Secret holds its login."""
    vsphere = design.spec.vsphere
    global_section: dict[str, Any] = {
        "port": VCENTER_PORT,
        "insecureFlag": vsphere.tls.insecure,
        "secretName": CPI_SECRET,
        "secretNamespace": "kube-system",
    }
    if vsphere.tls.thumbprint:
        global_section["thumbprint"] = vsphere.tls.thumbprint
    return {
        "global": global_section,
        "vcenter": {vsphere.server: {"server": vsphere.server, "datacenters": [vsphere.datacenter]}},
    }


def cpi_config_map(design: Design) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(design, CPI_CONFIG_MAP, "kube-system"),
        "data": {"vsphere.conf": to_yaml(cpi_config(design))},
    }


def cpi_secret_template(design: Design) -> dict[str, Any]:
    """The CPI Secret with placeholders where the login goes: never a value."""
    vsphere = design.spec.vsphere
    creds = vsphere.credentials
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(design, CPI_SECRET, "kube-system"),
        "type": "Opaque",
        "stringData": {
            f"{vsphere.server}.username": placeholder(creds.user_env),
            f"{vsphere.server}.password": placeholder(creds.password_env),
        },
    }


def csi_conf_template(design: Design) -> str:
    """csi-vsphere.conf (INI) with placeholders for the login; the secrets script fills them."""
    vsphere = design.spec.vsphere
    creds = vsphere.credentials
    lines = [
        f"# vSphere CSI configuration for {design.name}. TEMPLATE: {placeholder(creds.user_env)} and",
        f"# {placeholder(creds.password_env)} are filled from ${creds.user_env} / ${creds.password_env} by",
        f"# {paths.CREATE_SECRETS}, which stores the result only in the Secret {CSI_SECRET} ({CSI_NAMESPACE}).",
    ]
    if vsphere.tls.ca_file:
        lines.append(f"# vsphere.tls.ca_file ({vsphere.tls.ca_file}) is a path on the operator's machine; to use it "
                     "here, mount it into the CSI controller and add ca-file.")
    lines += [
        "",
        "[Global]",
        # Unique per vCenter: CNS groups this cluster's volumes under it.
        f'cluster-id = "{design.name}"',
        "",
        f'[VirtualCenter "{vsphere.server}"]',
        f'insecure-flag = "{str(vsphere.tls.insecure).lower()}"',
        f'user = "{placeholder(creds.user_env)}"',
        f'password = "{placeholder(creds.password_env)}"',
        f'port = "{VCENTER_PORT}"',
        f'datacenters = "{vsphere.datacenter}"',
    ]
    if vsphere.tls.thumbprint:
        lines.append(f'thumbprint = "{vsphere.tls.thumbprint}"')
    return "\n".join(lines) + "\n"


def storage_class(design: Design) -> dict[str, Any]:
    storage = design.spec.addons.storage
    parameters: dict[str, str] = {}
    if storage.storage_policy:
        parameters["storagepolicyname"] = storage.storage_policy
    if storage.datastore_url:
        parameters["datastoreurl"] = storage.datastore_url
    parameters["csi.storage.k8s.io/fstype"] = storage.fstype
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if storage.default_class else None
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": metadata(design, storage.class_name, annotations=annotations),
        "provisioner": CSI_PROVISIONER,
        "parameters": parameters,
        "reclaimPolicy": storage.reclaim_policy,
        "allowVolumeExpansion": True,
        # Wait for the pod's node so the volume lands on a datastore that node can reach.
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def volume_snapshot_class(design: Design) -> dict[str, Any]:
    """The snapshot class Velero picks by label for CSI snapshots of vSphere volumes."""
    return {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": metadata(design, f"{design.spec.addons.storage.class_name}-snapshots",
                             labels={"velero.io/csi-volumesnapshot-class": "true"}),
        "driver": CSI_PROVISIONER,
        # The data mover copies each snapshot to S3; the vSphere snapshot itself is temporary.
        "deletionPolicy": "Delete",
    }


def render_vsphere(design: Design) -> list[RenderedFile]:
    vsphere = design.spec.vsphere
    creds = vsphere.credentials
    files = [
        manifest_file(paths.CPI_CONFIG, [
            f"vSphere CPI configuration for {design.name}: vCenter {vsphere.server}, datacenter {vsphere.datacenter}.",
            "The CPI sets each node's ProviderID and removes the node.cloudprovider.kubernetes.io/uninitialized taint",
            "that kubelet's cloud-provider=external puts on every node. Apply before the CPI manifest:",
            f"  kubectl apply -f {paths.CPI_CONFIG}",
        ], [cpi_config_map(design)]),
        manifest_file(paths.CPI_SECRET_TEMPLATE, [
            f"TEMPLATE of the CPI login Secret. {placeholder(creds.user_env)} and {placeholder(creds.password_env)} "
            "stand for",
            f"${creds.user_env} and ${creds.password_env}; never write the values into this file.",
            f"{paths.CREATE_SECRETS} creates the real Secret straight from the environment.",
        ], [cpi_secret_template(design)]),
    ]
    storage = design.spec.addons.storage
    if not storage.enabled:
        return files
    placement = ("storage policy " + storage.storage_policy if storage.storage_policy else
                 "datastore " + storage.datastore_url if storage.datastore_url else
                 "no storage policy or datastore URL: CSI picks a datastore every node can reach "
                 "(set addons.storage.storage_policy to choose)")
    files += [
        manifest_file(paths.CSI_NAMESPACE, [
            "The vSphere CSI namespace; its node plugin is privileged (it mounts disks on the host).",
        ], [owned_namespace(design, CSI_NAMESPACE, "privileged")]),
        RenderedFile(paths.CSI_CONF_TEMPLATE, csi_conf_template(design)),
        manifest_file(paths.STORAGE_CLASS, [
            f"StorageClass {storage.class_name}: {placement}.",
            "Default class." if storage.default_class else "Not the default class (addons.storage.default_class).",
            f"  kubectl apply -f {paths.STORAGE_CLASS}",
        ], [storage_class(design)]),
    ]
    if design.spec.addons.backups.velero.enabled:
        files.append(manifest_file(paths.SNAPSHOT_CLASS, [
            "VolumeSnapshotClass for Velero's CSI snapshots (needs the CSI snapshot controller and CRDs).",
        ], [volume_snapshot_class(design)]))
    return files
