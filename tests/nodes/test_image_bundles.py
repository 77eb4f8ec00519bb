"""nsxkube.images: reading image bundles and the node-side preload script (fast suite).

The script also runs against real containerd on the test nodes (tests/test_real_nodes.py).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from nsxkube.images import BundleError, bundle_references, missing_images, normalize_reference, preload_script
from nsxkube.lab.nodes.images import ImageFile, ImageSpec, write_archive
from tests.support.validators import shellcheck


def _tar(path, members: dict[str, bytes], mode: str = "w") -> None:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(("reference", "normalized"), [
    ("pause:3.10.1", "docker.io/library/pause:3.10.1"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("kubernetesui/dashboard:v2", "docker.io/kubernetesui/dashboard:v2"),
    ("registry.k8s.io/coredns/coredns:v1.13.1", "registry.k8s.io/coredns/coredns:v1.13.1"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost/app:1", "localhost/app:1"),
    ("ghcr.io/kube-vip/kube-vip@sha256:" + "a" * 64, "ghcr.io/kube-vip/kube-vip@sha256:" + "a" * 64),
])
def test_references_are_named_as_containerd_lists_them(reference, normalized):
    assert normalize_reference(reference) == normalized


def test_an_oci_bundle_lists_its_images(tmp_path):
    program = tmp_path / "etcd"
    program.write_bytes(b"etcd")
    archive = write_archive([ImageSpec("registry.k8s.io/etcd:3.6.6-0", (ImageFile("/usr/local/bin/etcd", program),)),
                             ImageSpec("registry.k8s.io/pause:3.10.1", (ImageFile("/pause", program),))],
                            tmp_path / "bundle.tar")
    assert bundle_references(archive) == ["registry.k8s.io/etcd:3.6.6-0", "registry.k8s.io/pause:3.10.1"]
    assert missing_images(archive, ["registry.k8s.io/pause:3.10.1", "registry.k8s.io/coredns/coredns:v1.13.1"]) == [
        "registry.k8s.io/coredns/coredns:v1.13.1"]


def test_a_docker_save_archive_gzipped_or_not_lists_its_tags(tmp_path):
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["busybox:1.36", "ghcr.io/kube-vip/kube-vip:v1.2.0"],
                            "Layers": []}]).encode()
    for name, mode in (("plain.tar", "w"), ("packed.tar.gz", "w:gz")):
        _tar(tmp_path / name, {"manifest.json": manifest, "c.json": b"{}"}, mode)
        assert bundle_references(tmp_path / name) == ["docker.io/library/busybox:1.36",
                                                      "ghcr.io/kube-vip/kube-vip:v1.2.0"]


def test_an_oci_index_entry_with_only_a_tag_names_no_image(tmp_path):
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "0" * 64, "size": 1,
                                                "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    _tar(tmp_path / "b.tar", {"index.json": json.dumps(index).encode(), "oci-layout": b"{}"})
    assert bundle_references(tmp_path / "b.tar") == []


def test_other_files_are_refused_with_the_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("not a tar")
    with pytest.raises(BundleError, match="not a readable tar"):
        bundle_references(tmp_path / "notes.txt")
    _tar(tmp_path / "other.tar", {"README": b"x"})
    with pytest.raises(BundleError, match="neither an OCI image layout"):
        bundle_references(tmp_path / "other.tar")


REQUIRED = ["registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.6-0"]


def test_the_preload_script_passes_shellcheck(tmp_path):
    script = tmp_path / "preload-images.sh"
    script.write_text(preload_script(REQUIRED))
    assert shellcheck(script) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the script refuses to run without root, like on a node")
@pytest.mark.parametrize(("listed", "code"), [([*REQUIRED, "other:1"], 0), (REQUIRED[:1], 1)])
def test_the_preload_script_imports_then_names_what_is_missing(tmp_path, listed, code):
    """Against a stand-in `ctr` that records its calls; the real one runs on the test nodes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    (bin_dir / "ctr").write_text("#!/bin/sh\n"
                                 f'echo "$*" >> {calls}\n'
                                 'case "$*" in *"images ls -q"*) printf "%s\\n" '
                                 + " ".join(listed) + " ;; esac\n")
    (bin_dir / "ctr").chmod(0o755)
    script = tmp_path / "preload-images.sh"
    script.write_text(preload_script(REQUIRED))
    (tmp_path / "images.tar").write_bytes(b"")
    result = subprocess.run(["bash", str(script), str(tmp_path / "images.tar")], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                 "NSXKUBE_CONTAINERD_ADDRESS": "/run/x.sock"}, check=False)
    assert result.returncode == code, result.stderr
    assert calls.read_text().splitlines()[0] == f"--address /run/x.sock -n k8s.io images import {tmp_path}/images.tar"
    if code:
        assert result.stdout == "missing registry.k8s.io/etcd:3.6.6-0\n"
        assert "1 of 2 required images are not in the bundle" in result.stderr
    else:
        assert "all 2 required images are loaded" in result.stderr


# ---- kubernetes.image_bundle in cluster.yaml: `nsxkube check` reads the archive ----------------------


def _check(tmp_path, bundle) -> subprocess.CompletedProcess:
    from nsxkube.spec.example import example_text

    spec = tmp_path / "cluster.yaml"
    spec.write_text(example_text().replace("  # image_bundle: /srv/k8s-images.tar ", f"  image_bundle: {bundle} "))
    return subprocess.run([sys.executable, "-m", "nsxkube", "check", str(spec)], capture_output=True, text=True,
                          timeout=60)


def _docker_save(path, tags) -> None:
    _tar(path, {"manifest.json": json.dumps([{"Config": "c.json", "RepoTags": list(tags), "Layers": []}]).encode(),
                "c.json": b"{}"})


def test_check_names_a_missing_or_incomplete_bundle_in_one_line(tmp_path):
    from tests.support.specs import example_design

    absent = _check(tmp_path, tmp_path / "nope.tar")
    assert absent.returncode == 2 and absent.stderr.count("\n") == 1
    assert f"kubernetes.image_bundle: {tmp_path / 'nope.tar'} does not exist" in absent.stderr
    required = example_design().node_images
    _docker_save(tmp_path / "partial.tar", required[1:])
    partial = _check(tmp_path, tmp_path / "partial.tar")
    assert partial.returncode == 2 and f"lacks {required[0]} (" not in partial.stderr
    assert f"kubernetes.image_bundle: {tmp_path / 'partial.tar'} lacks {required[0]}" in partial.stderr
    (tmp_path / "garbage.tar").write_bytes(b"not a tar")
    assert "not a readable tar archive" in _check(tmp_path, tmp_path / "garbage.tar").stderr
    _docker_save(tmp_path / "full.tar", required)
    full = _check(tmp_path, tmp_path / "full.tar")
    assert full.returncode == 0, full.stderr
    assert f"preloaded from {tmp_path / 'full.tar'}" in full.stdout
