"""Values that used to be accepted and only failed later (in vCenter, NSX or a rendered script):
each field of the spec now refuses the empty, the whitespace-only, the absurd, naming the key."""

from __future__ import annotations

import pytest

from nsxkube.errors import SpecError
from tests.support.specs import example_data, spec_from, with_changes

REQUIRED_NAMES = ["vsphere.server", "vsphere.datacenter", "vsphere.cluster", "vsphere.datastore", "vsphere.network",
                  "vsphere.template", "nsx.manager", "nsx.transport_zone", "nsx.tier1", "nsx.domain"]
OPTIONAL_NAMES = ["vsphere.folder", "vsphere.resource_pool", "vsphere.tls.ca_file", "nsx.tls.ca_file",
                  "kubernetes.image_bundle", "ssh.private_key_file", "ssh.known_hosts_file", "ssh.bastion",
                  "network.apt_mirror", "addons.storage.storage_policy", "addons.storage.datastore_url",
                  "addons.backups.etcd.directory", "addons.backups.etcd.schedule", "addons.backups.velero.bucket",
                  "addons.backups.velero.s3_url", "addons.backups.velero.region", "addons.backups.velero.schedule"]


def refused(changes: dict) -> SpecError:
    with pytest.raises(SpecError) as caught:
        spec_from(with_changes(example_data(), changes))
    return caught.value


@pytest.mark.parametrize("key", REQUIRED_NAMES + OPTIONAL_NAMES)
@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_empty_and_blank_values_are_refused_naming_the_key(key, blank):
    error = refused({key: blank})
    assert error.problems, error
    assert error.problems[0].key == key, error.one_line()


@pytest.mark.parametrize("key", ["vsphere.datastore", "vsphere.network", "vsphere.datacenter", "nsx.tier1",
                                 "addons.storage.storage_policy"])
def test_names_with_line_breaks_are_refused(key):
    assert refused({key: "ds1\nrm -rf /"}).problems[0].key == key


@pytest.mark.parametrize(("changes", "key", "words"), [
    ({"network.ntp_servers": ["300.1.2.3"]}, "network.ntp_servers[0]", "neither an IPv4 address nor a host name"),
    ({"network.ntp_servers": ["10.0.0.1", "ntp..example.com"]}, "network.ntp_servers[1]", "host name"),
    ({"network.ntp_servers": ["-ntp.example.com"]}, "network.ntp_servers[0]", "host name"),
    ({"network.ntp_servers": [""]}, "network.ntp_servers[0]", "empty"),
    ({"vsphere.server": "999.1.1.1"}, "vsphere.server", "neither"),
    ({"vsphere.server": "vc.example.com:99999"}, "vsphere.server", "port"),
    ({"vsphere.server": "http://vc.example.com"}, "vsphere.server", "https"),
    ({"nsx.manager": "admin:pw@nsx.example.com"}, "nsx.manager", "credentials"),
    ({"nsx.manager": "nsx example com"}, "nsx.manager", "host name"),
    ({"vsphere.datastore": "d" * 81}, "vsphere.datastore", "at most 80"),
    ({"vsphere.folder": "k8s//prod"}, "vsphere.folder", "folder path"),
    ({"nsx.tier1": "/infra/tier-1s/t1"}, "nsx.tier1", "without '/'"),
    ({"nsx.transport_zone": "overlay tz"}, "nsx.transport_zone", "NSX id"),
    ({"network.apt_mirror": "ftp://mirror"}, "network.apt_mirror", "http(s) URL"),
    ({"network.proxy": {"url": "http://proxy:3128", "no_proxy": ["a.example.com, b.example.com"]}},
     "network.proxy.no_proxy", "one per list item"),
    ({"ssh.bastion": "jump@300.0.0.1:22"}, "ssh.bastion", "neither"),
    ({"ssh.bastion": "jump@host:70000"}, "ssh.bastion", "user@host"),
    ({"addons.monitoring.storage_gib": 10 ** 12}, "addons.monitoring.storage_gib", "less than or equal"),
    ({"addons.backups.etcd.directory": "backups"}, "addons.backups.etcd.directory", "absolute"),
    ({"addons.backups.etcd.schedule": "0 */6 * * * ; reboot"}, "addons.backups.etcd.schedule", "cron"),
    ({"addons.backups.etcd.schedule": "0 $(id) * * *"}, "addons.backups.etcd.schedule", "cron"),
    ({"addons.backups.velero.schedule": "nightly"}, "addons.backups.velero.schedule", "cron"),
    ({"addons.backups.velero.bucket": "My Bucket"}, "addons.backups.velero.bucket", "pattern"),
    ({"addons.storage.datastore_url": "vmfs/volumes/x"}, "addons.storage.datastore_url", "pattern"),
    ({"network.proxy": {"url": "http://proxy.example.com:99999"}}, "network.proxy.url", "port 1-65535"),
    ({"network.proxy": {"url": "http://300.1.1.1:3128"}}, "network.proxy.url", "neither"),
    ({"network.registry_mirrors": {"registry.k8s.io": "https://mirror local/"}}, "network.registry_mirrors",
     "http(s) URL"),
    ({"network.loadbalancer_ports": [80, 443, 80]}, "network.loadbalancer_ports", "listed twice"),
    ({"addons.monitoring.retention": "0d"}, "addons.monitoring.retention", "pattern"),
    ({"addons.monitoring.retention": "99999999999999999999d"}, "addons.monitoring.retention", "pattern"),
    ({"addons.backups.velero.ttl": "0h"}, "addons.backups.velero.ttl", "pattern"),
])
def test_absurd_values_are_refused(changes, key, words):
    error = refused(changes)
    assert error.problems[0].key == key, error.one_line()
    assert words in error.problems[0].message, error.one_line()


@pytest.mark.parametrize(("key", "value"), [
    ("network.ntp_servers", ["10.10.0.123", "ntp.ubuntu.com", "Time.Example.COM"]),
    ("vsphere.server", "vc.example.com:8443"),
    ("vsphere.server", "https://10.0.0.5/sdk"),
    ("nsx.manager", "[fd00::1]:443"),
    ("vsphere.datastore", "vsanDatastore (1)"),
    ("vsphere.folder", "k8s/prod"),
    ("ssh.bastion", "jump@bastion.example.com:2222"),
    ("addons.backups.etcd.schedule", "*/15 0-6 * * MON-FRI"),
    ("network.proxy", {"url": "http://proxy.example.com:3128/", "no_proxy": [".example.com", "10.0.0.0/8"]}),
    ("network.registry_mirrors", {"registry.k8s.io": "https://mirror.local:5000/k8s"}),
])
def test_real_values_still_pass(key, value):
    spec_from(with_changes(example_data(), {key: value}))
