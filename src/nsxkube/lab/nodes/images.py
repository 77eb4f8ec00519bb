"""Container images for the lab's and the tests' nodes, without a registry.

kubeadm's static Pods and every Pod sandbox need images. None can be pulled here, so they are
assembled from the Go-built programs (programs/build.sh) as OCI image layouts:

* one gzip layer per image: a minimal root (``/etc/passwd``, ``/etc/group``, ``/tmp`` …) and the
  program(s) in ``/usr/local/bin`` (where the upstream images keep them too);
* an image config for linux/amd64 with ``PATH`` set, so the commands in kubeadm's manifests
  (``kube-apiserver``, ``etcd`` …) resolve as they do in the upstream images;
* tagged with exactly the references ``kubeadm config images list --config init.yaml`` prints, in
  the ``io.containerd.image.name`` annotation (containerd's import names images from it) and
  ``org.opencontainers.image.ref.name`` (the tag).

Several images go into one archive, an *image bundle*; ``ctr -n k8s.io images import`` loads it
into a node's containerd, where the CRI plugin (and so the kubelet) finds them.

The pause image is built from ``programs/pause/pause.go`` (Go standard library only).
The kube-vip image is the prebuilt kube-vip binary (:func:`locate_kube_vip`: ``$NSXKUBE_KUBE_VIP`` or
``~/.cache/nsxkube/programs/kube-vip-<version>``, outside the repository, which never builds or holds
kube-vip: its module is not served by the Go module proxy) as ``/kube-vip``, the entrypoint, like the
upstream image built ``FROM scratch``. CoreDNS is not built: :func:`plan_images` reports every
reference it has no program for, with the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nsxkube.lab.programs import PROGRAMS_DIR, cache_dir, kubernetes_version, versions
from nsxkube.lab.programs import locate as locate_binary

PAUSE_SOURCE = PROGRAMS_DIR / "pause" / "pause.go"
# Bump when the layout of the images changes: cached bundles are keyed by it.
BUILDER_VERSION = "1"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"

# What the images contain, by repository name (the last path element of the reference).
PROGRAMS_BY_REPOSITORY: dict[str, tuple[str, ...]] = {
    "kube-apiserver": ("kube-apiserver",),
    "kube-controller-manager": ("kube-controller-manager",),
    "kube-scheduler": ("kube-scheduler",),
    "etcd": ("etcd", "etcdctl", "etcdutl"),
}
# References with no program to build them from here, and why.
UNAVAILABLE: dict[str, str] = {
    "coredns": "CoreDNS is not built for the test nodes (optional add-on; its Pods could not be scheduled "
               "anyway: without the vSphere CPI every node keeps the node.cloudprovider.kubernetes.io/uninitialized taint)",
    "kube-proxy": "kube-proxy is not built (the design replaces it with Cilium's kube-proxy replacement)",
}


KUBE_VIP_ENV = "NSXKUBE_KUBE_VIP"


def kube_vip_candidates(version: str) -> list[Path]:
    """Where a prebuilt kube-vip of ``version`` is looked for, in order."""
    configured = os.environ.get(KUBE_VIP_ENV)
    default = Path.home() / ".cache" / "nsxkube" / "programs" / f"kube-vip-{version}"
    return [Path(configured).expanduser()] if configured else [default]


def locate_kube_vip(version: str) -> tuple[Path | None, str]:
    """The prebuilt kube-vip binary, or None and where it was looked for."""
    for candidate in kube_vip_candidates(version):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate, f"{candidate}"
    where = ", ".join(str(c) for c in kube_vip_candidates(version))
    return None, (f"no kube-vip {version} binary at {where} (set {KUBE_VIP_ENV} to a prebuilt kube-vip {version}; "
                  "nothing in the repository builds it: the Go module proxy does not serve github.com/kube-vip/kube-vip)")


class ImageError(RuntimeError):
    """An image could not be built (a program is missing, go build failed …)."""


@dataclass(frozen=True)
class ImageFile:
    """One file in an image: where it goes, where its bytes come from, its mode."""

    path: str
    source: Path
    mode: int = 0o755


@dataclass(frozen=True)
class ImageSpec:
    reference: str
    files: tuple[ImageFile, ...]
    entrypoint: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return self.reference.rsplit(":", 1)[1]


@dataclass(frozen=True)
class ImagePlan:
    """Which of the wanted references can be built (specs) and which cannot (missing: reason)."""

    specs: tuple[ImageSpec, ...]
    missing: dict[str, str]


def repository_name(reference: str) -> str:
    """``registry.k8s.io/coredns/coredns:v1.13.1`` → ``coredns``."""
    without_tag = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    return without_tag.rsplit("/", 1)[-1]


# ---- pause ---------------------------------------------------------------------------------


def _go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not found:
        raise ImageError("no Go toolchain to build pause (install Go 1.25+ or set PATH)")
    return found


def build_pause(cache: Path | None = None) -> Path:
    """The static pause program built from pause/pause.go, cached by the source's hash."""
    source_sum = hashlib.sha256(PAUSE_SOURCE.read_bytes()).hexdigest()[:16]
    target_dir = (cache or cache_dir()) / "nodes" / f"pause-{source_sum}"
    target = target_dir / "pause"
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target_dir / "pause.partial"
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"}
    result = subprocess.run([_go(), "build", "-ldflags", "-s -w", "-o", str(partial), str(PAUSE_SOURCE)],
                            capture_output=True, text=True, env=env, cwd=PAUSE_SOURCE.parent, check=False)
    if result.returncode != 0:
        raise ImageError(f"go build pause failed: {result.stderr.strip()[-400:]}")
    partial.rename(target)
    return target


# ---- what to build -------------------------------------------------------------------------


def kubeadm_image_list(kubeadm: Path, init_config: Path) -> list[str]:
    """The references ``kubeadm config images list --config`` prints for this configuration."""
    result = subprocess.run([str(kubeadm), "config", "images", "list", "--config", str(init_config)],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise ImageError(f"kubeadm config images list failed: {result.stderr.strip()[-400:]}")
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def plan_images(references: Iterable[str], *, pause: Path | None = None) -> ImagePlan:
    """An :class:`ImageSpec` for each reference a program exists for; the others with their reason."""
    specs: list[ImageSpec] = []
    missing: dict[str, str] = {}
    for reference in references:
        repository = repository_name(reference)
        if repository == "pause":
            program = pause or build_pause()
            specs.append(ImageSpec(reference, (ImageFile("/pause", program),), entrypoint=("/pause",)))
            continue
        if repository == "kube-vip":
            binary, where = locate_kube_vip(reference.rsplit(":", 1)[1])
            if binary is None:
                missing[reference] = where
            else:
                specs.append(ImageSpec(reference, (ImageFile("/kube-vip", binary),), entrypoint=("/kube-vip",)))
            continue
        programs = PROGRAMS_BY_REPOSITORY.get(repository)
        if programs is None:
            missing[reference] = UNAVAILABLE.get(repository, f"no program to build {repository} from")
            continue
        files = []
        for name in programs:
            located = locate_binary(name)
            if located.path is None:
                missing[reference] = located.reason or f"{name} not built"
                break
            files.append(ImageFile(f"/usr/local/bin/{name}", located.path))
        else:
            specs.append(ImageSpec(reference, tuple(files)))
    return ImagePlan(tuple(specs), missing)


# ---- OCI layout ----------------------------------------------------------------------------


def _base_entries() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A minimal root: the directories and files programs expect to find."""
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, mode in (("etc", 0o755), ("tmp", 0o1777), ("var", 0o755), ("var/run", 0o755), ("root", 0o700),
                       ("usr", 0o755), ("usr/local", 0o755), ("usr/local/bin", 0o755), ("dev", 0o755),
                       ("proc", 0o555), ("sys", 0o555), ("run", 0o755)):
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        entries.append((info, None))
    for name, text in (("etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"),
                       ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                       ("etc/nsswitch.conf", "hosts: files dns\n")):
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        entries.append((info, data))
    return entries


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what passes through to ``target``."""

    def __init__(self, target) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def _write_layer(spec: ImageSpec, blobs: Path) -> tuple[dict, str]:
    """Writes the gzip layer into blobs/; returns its descriptor and the uncompressed digest."""
    partial = blobs / f".layer-{os.getpid()}.partial"
    with partial.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=1, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for info, data in _base_entries():
                    tar.addfile(info, io.BytesIO(data) if data is not None else None)
                for item in spec.files:
                    info = tarfile.TarInfo(item.path.lstrip("/"))
                    info.size, info.mode = item.source.stat().st_size, item.mode
                    with item.source.open("rb") as source:
                        tar.addfile(info, source)
    digest = compressed.sha.hexdigest()
    partial.rename(blobs / digest)
    descriptor = {"mediaType": MEDIA_LAYER_GZIP, "digest": f"sha256:{digest}", "size": compressed.size}
    return descriptor, f"sha256:{uncompressed.sha.hexdigest()}"


def _write_blob(blobs: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(specs: Sequence[ImageSpec], layout: Path) -> list[dict]:
    """Writes an OCI image layout directory holding every image; returns index.json's manifests."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    manifests = []
    for spec in specs:
        layer, diff_id = _write_layer(spec, blobs)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [PATH_ENV], "WorkingDir": "/", "User": "0",
                       **({"Entrypoint": list(spec.entrypoint)} if spec.entrypoint else {}),
                       "Labels": {"org.opencontainers.image.title": repository_name(spec.reference),
                                  "io.nsxkube.test-image": "assembled from Go-built programs", **spec.labels}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "nsxkube tests/nodes/images: " + ", ".join(f.path for f in spec.files)}],
        }
        config_desc = _write_blob(blobs, _json(config), MEDIA_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_desc, "layers": [layer]}
        manifest_desc = _write_blob(blobs, _json(manifest), MEDIA_MANIFEST)
        manifest_desc["annotations"] = {CONTAINERD_NAME: spec.reference, OCI_REF_NAME: spec.tag}
        manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
        manifests.append(manifest_desc)
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                               "manifests": manifests}))
    return manifests


def write_archive(specs: Sequence[ImageSpec], archive: Path) -> Path:
    """An image bundle: the OCI layout of :func:`write_layout` as one uncompressed tar."""
    work = archive.parent / f".{archive.name}.layout-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        write_layout(specs, work)
        partial = archive.with_name(archive.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(work.rglob("*")):
                if path.is_file():
                    info = tar.gettarinfo(str(path), arcname=str(path.relative_to(work)))
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mtime = 0
                    with path.open("rb") as data:
                        tar.addfile(info, data)
        partial.rename(archive)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return archive


def _cache_key(specs: Sequence[ImageSpec]) -> str:
    key = hashlib.sha256(BUILDER_VERSION.encode())
    for spec in specs:
        key.update(spec.reference.encode())
        for item in spec.files:
            stat = item.source.stat()
            key.update(f"{item.path}:{item.source}:{stat.st_size}:{stat.st_mtime_ns}:{item.mode}".encode())
    return key.hexdigest()[:20]


@dataclass(frozen=True)
class ImageBundle:
    archive: Path
    references: tuple[str, ...]
    missing: dict[str, str]
    seconds: float
    cached: bool


def image_bundle(references: Iterable[str], cache: Path | None = None) -> ImageBundle:
    """The image bundle for ``references`` (cached by content), and what could not be built."""
    start = time.monotonic()
    plan = plan_images(references)
    if not plan.specs:
        raise ImageError("no image can be built: " + "; ".join(f"{r}: {why}" for r, why in plan.missing.items()))
    directory = (cache or cache_dir()) / "nodes" / f"images-{kubernetes_version()}-etcd-{versions()['ETCD_VERSION']}"
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"bundle-{_cache_key(plan.specs)}.tar"
    cached = archive.is_file()
    if not cached:
        write_archive(plan.specs, archive)
        for older in directory.glob("bundle-*.tar"):  # built from programs that have been rebuilt since
            if older != archive:
                older.unlink(missing_ok=True)
    return ImageBundle(archive, tuple(s.reference for s in plan.specs), plan.missing, time.monotonic() - start, cached)
