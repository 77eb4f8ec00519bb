"""containerd on the nodes: config.toml, its systemd unit, and the registry mirrors
(certs.d/<registry>/hosts.toml)."""

from __future__ import annotations

import json
import re

from nsxkube.design import Design

_REGISTRY_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")


CONTAINERD_UNIT = """\
[Unit]
Description=containerd container runtime (installed by nsxkube)
Documentation=https://containerd.io
After=network.target local-fs.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""


def registry_hosts_toml(registry: str, mirror: str) -> str:
    """containerd hosts.toml: pull through the mirror, fall back to the registry itself."""
    server = "https://registry-1.docker.io" if registry == "docker.io" else f"https://{registry}"
    return (
        f"server = {toml_string(server)}\n\n"
        f"[host.{toml_string(mirror)}]\n"
        '  capabilities = ["pull", "resolve"]\n'
    )


def containerd_config_toml(sandbox_image: str, *, systemd_cgroup: bool = True) -> str:
    return (
        "version = 3\n\n"
        # kubeadm's pause image, pinned: containerd's built-in default differs by release, and a
        # site without a registry (image bundle) must not need one it cannot pull
        "[plugins.'io.containerd.cri.v1.images'.pinned_images]\n"
        f"  sandbox = '{sandbox_image}'\n\n"
        "[plugins.'io.containerd.cri.v1.images'.registry]\n"
        "  config_path = '/etc/containerd/certs.d'\n\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
        "  runtime_type = 'io.containerd.runc.v2'\n\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
        # The kubelet's cgroup driver (systemd on Ubuntu 24.04, cgroup v2); both must agree.
        f"  SystemdCgroup = {'true' if systemd_cgroup else 'false'}\n"
    )


def toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value)


def registry_mirrors(design: Design) -> list[tuple[str, str]]:
    mirrors = sorted(design.spec.network.registry_mirrors.items())
    for registry, _ in mirrors:
        if not _REGISTRY_HOST.match(registry):
            raise ValueError(f"network.registry_mirrors: {registry!r} is not a registry host[:port]")
    return mirrors
