"""The configuration files prepare-vm.sh writes on the template (clones inherit them): kernel
modules, sysctls, containerd, crictl, and the apt proxy and mirror when the design has them."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.design.images import pause_image
from nsxkube.render.containerd import CONTAINERD_UNIT, containerd_config_toml, registry_hosts_toml, registry_mirrors

APT_PROXY_FILE = "/etc/apt/apt.conf.d/90nsxkube-proxy"
CONTAINERD_PROXY_FILE = "/etc/systemd/system/containerd.service.d/http-proxy.conf"


def template_files(design: Design) -> list[tuple[str, str]]:
    """The configuration files prepare-vm.sh writes, as (path, content)."""
    network = design.spec.network
    files = [
        ("/etc/modules-load.d/k8s.conf", "overlay\nbr_netfilter\n"),
        ("/etc/sysctl.d/99-kubernetes.conf",
         "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"),
        ("/etc/containerd/config.toml", containerd_config_toml(pause_image(design.versions),
                                                                 systemd_cgroup=design.cgroup_driver == "systemd")),
        ("/etc/systemd/system/containerd.service", CONTAINERD_UNIT),
        ("/etc/crictl.yaml", "runtime-endpoint: unix:///run/containerd/containerd.sock\n"
                             "image-endpoint: unix:///run/containerd/containerd.sock\n"),
    ]
    files += [(f"/etc/containerd/certs.d/{registry}/hosts.toml", registry_hosts_toml(registry, mirror))
              for registry, mirror in registry_mirrors(design)]
    if network.proxy is not None:
        url = network.proxy.url
        files.append((APT_PROXY_FILE, f'Acquire::http::Proxy "{url}";\nAcquire::https::Proxy "{url}";\n'))
    if network.apt_mirror:
        files.append(("/etc/apt/sources.list.d/ubuntu.sources", ubuntu_sources(network.apt_mirror)))
    return files


def unset_files(design: Design) -> list[str]:
    return [APT_PROXY_FILE, CONTAINERD_PROXY_FILE] if design.spec.network.proxy is None else []


def ubuntu_sources(mirror: str) -> str:
    stanza = ("Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main restricted universe multiverse\n"
              "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n")
    return (stanza.format(uri=mirror, suites="noble noble-updates noble-backports") + "\n"
            + stanza.format(uri=mirror, suites="noble-security"))
