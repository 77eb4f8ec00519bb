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
upstream image built ``FROM scratch``. The CoreDNS image is ``programs/coredns/main.go`` (CoreDNS with
the plugins of kubeadm's Corefile) as ``/coredns``, the entrypoint, as upstream's. The kube-proxy image
adds the iptables and nft commands kube-proxy runs, taken from this machine's Debian packages with
their shared libraries and xtables modules (:func:`machine_files`). :func:`plan_images` reports every
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
BUILDER_VERSION = "2"
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
    "kube-proxy": ("kube-proxy",),
    "etcd": ("etcd", "etcdctl", "etcdutl"),
}
# Images whose one program is the entrypoint at the root of the image, as upstream's (distroless) image.
ROOT_PROGRAM_BY_REPOSITORY: dict[str, str] = {
    "coredns": "coredns",
}
# What an image runs besides its Go program, from this machine's packages. kube-proxy's upstream
# image is built FROM registry.k8s.io/build-image/distroless-iptables (Debian's iptables, legacy and
# nft, with iptables-wrapper choosing between them; nftables; conntrack; ipset). Here the nf_tables
# variant is taken as it is: the nodes' own iptables (Debian's default) is the nft one, so the
# wrapper has nothing to choose. kube-proxy 1.35 runs iptables, iptables-save, iptables-restore and
# their ip6tables twins (pkg/util/iptables), and nft (sigs.k8s.io/knftables: the nftables mode, and
# in iptables mode the cleanup of that mode's leftover rules at start). It clears conntrack entries
# over netlink (no conntrack command) and runs ipset and modprobe only in the deprecated ipvs mode,
# which is not supported here.
MACHINE_COMMANDS_BY_REPOSITORY: dict[str, tuple[str, ...]] = {
    "kube-proxy": ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                   "ip6tables-restore", "nft"),
}
MACHINE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# References with no program to build them from here, and why (none today: every image of a
# design's node_images is built, kube-vip's from a prebuilt binary).
UNAVAILABLE: dict[str, str] = {}


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
    """One file in an image: where it goes, where its bytes come from, its mode; or, with ``link``,
    a symbolic link to that target (``source`` unused)."""

    path: str
    source: Path | None = None
    mode: int = 0o755
    link: str = ""


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Go programs (``files``) and what it takes from this machine (``machine``)."""

    reference: str
    files: tuple[ImageFile, ...]
    entrypoint: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    machine: tuple[ImageFile, ...] = ()

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


# ---- files from this machine ---------------------------------------------------------------


def _mirror(path: Path, into: dict[str, ImageFile], depth: int = 0) -> None:
    """Adds ``path`` as this machine has it: each symbolic link on the way (``/lib`` → ``usr/lib``,
    ``libc.so.6`` → …) as the same link, then the file itself, so that every name a program or the
    dynamic loader uses resolves in the image as it does here."""
    if depth > 40:
        raise ImageError(f"{path}: too many levels of symbolic links")
    current = Path("/")
    parts = path.parts[1:]
    for index, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink():
            target = os.readlink(candidate)
            into.setdefault(str(candidate), ImageFile(str(candidate), link=target))
            resolved = Path(os.path.normpath(candidate.parent / target))  # ".." without following links
            _mirror(resolved.joinpath(*parts[index + 1:]), into, depth + 1)
            return
        current = candidate
    if not current.is_file():
        raise ImageError(f"{path} is not a file on this machine")
    into.setdefault(str(current), ImageFile(str(current), current, mode=current.stat().st_mode & 0o7777))


def shared_libraries(programs: Sequence[Path]) -> list[Path]:
    """The shared libraries ``programs`` load, the dynamic loader included, as ``ldd`` finds them."""
    ldd = shutil.which("ldd")
    if ldd is None:
        raise ImageError("no ldd on this machine to find the shared libraries of " + ", ".join(map(str, programs)))
    result = subprocess.run([ldd, *map(str, programs)], capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise ImageError(f"ldd {' '.join(map(str, programs))}: {(result.stderr or result.stdout).strip()[-400:]}")
    found: dict[str, Path] = {}
    for line in result.stdout.splitlines():
        words = line.split()
        if "not found" in line:
            raise ImageError(f"ldd: {line.strip()} (a library the image needs is missing here)")
        # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)";
        # "path:" heads each program's list when ldd is given several
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/") and not path.endswith(":"):
            found.setdefault(path, Path(path))
    return list(found.values())


def machine_files(commands: Sequence[str], search: str | None = None) -> tuple[ImageFile, ...]:
    """``commands`` from this machine for an image: each command as a link in its program's
    directory to the program (``/usr/sbin/iptables`` → ``xtables-nft-multi``), the programs, their
    shared libraries, and the extension modules libxtables loads (``<libdir>/xtables/*.so``) with
    theirs. Raises :class:`ImageError` naming a command that is not installed."""
    if not commands:
        return ()
    search = search or MACHINE_PATH
    into: dict[str, ImageFile] = {}
    programs: dict[str, Path] = {}
    for command in commands:
        found = shutil.which(command, path=search)
        if found is None:
            raise ImageError(f"{command} is not installed on this machine (looked in {search}; "
                             "scripts/setup installs the Debian packages iptables and nftables)")
        program = Path(found).resolve()
        programs[str(program)] = program
        link = program.parent / command
        if link != program:
            into[str(link)] = ImageFile(str(link), link=os.path.relpath(program, link.parent))
    libraries = shared_libraries(list(programs.values()))
    modules: list[Path] = []
    for library in libraries:
        if library.name.startswith("libxtables.so"):
            directory = library.resolve().parent / "xtables"
            if not directory.is_dir():
                raise ImageError(f"no xtables modules next to {library.resolve()} (looked for {directory})")
            modules = sorted(directory.glob("*.so"))
    if any(p.name.startswith("xtables-") for p in programs.values()) and not modules:
        raise ImageError("iptables here loads no xtables modules that could be found: " + ", ".join(programs))
    if modules:
        libraries += [lib for lib in shared_libraries(modules) if lib not in libraries]
    for path in (*programs.values(), *libraries, *modules):
        _mirror(path, into)
    return tuple(into[path] for path in sorted(into))


def _machine_packages(files: Sequence[ImageFile]) -> str:
    """``iptables 1.8.9-2, libc6 2.36-9+deb12u14, …``: the Debian packages the files come from."""
    dpkg = shutil.which("dpkg-query")
    sources = [str(f.source) for f in files if f.source is not None]
    # with /usr merged, dpkg knows /lib/x86_64-linux-gnu/libc.so.6 rather than /usr/lib/…
    sources += [path.removeprefix("/usr") for path in sources if path.startswith("/usr/")]
    if dpkg is None or not sources:
        return ""
    owners = subprocess.run([dpkg, "-S", *sources], capture_output=True, text=True, timeout=60, check=False)
    names = sorted({owner.strip().split(":")[0] for line in owners.stdout.splitlines()
                    for owner in line.split(": ", 1)[0].split(",") if ": " in line})
    if not names:
        return ""
    listed = subprocess.run([dpkg, "-W", "-f", "${Package} ${Version}\n", *names], capture_output=True, text=True,
                            timeout=60, check=False)
    return ", ".join(line.strip() for line in listed.stdout.splitlines() if line.strip())


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
        if repository in ROOT_PROGRAM_BY_REPOSITORY:
            name = ROOT_PROGRAM_BY_REPOSITORY[repository]
            located = locate_binary(name)
            if located.path is None:
                missing[reference] = located.reason or f"{name} not built"
            else:
                specs.append(ImageSpec(reference, (ImageFile(f"/{name}", located.path),), entrypoint=(f"/{name}",)))
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
            try:
                machine = machine_files(MACHINE_COMMANDS_BY_REPOSITORY.get(repository, ()))
            except ImageError as error:
                missing[reference] = str(error)
                continue
            packages = _machine_packages(machine) if machine else ""
            labels = {"io.nsxkube.machine-packages": packages} if packages else {}
            specs.append(ImageSpec(reference, tuple(files), labels=labels, machine=machine))
    return ImagePlan(tuple(specs), missing)


# ---- OCI layout ----------------------------------------------------------------------------


BASE_DIRECTORIES = (("etc", 0o755), ("tmp", 0o1777), ("var", 0o755), ("var/run", 0o755), ("root", 0o700),
                    ("usr", 0o755), ("usr/local", 0o755), ("usr/local/bin", 0o755), ("dev", 0o755),
                    ("proc", 0o555), ("sys", 0o555), ("run", 0o755))


def _base_entries() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A minimal root: the directories and files programs expect to find."""
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name, mode in BASE_DIRECTORIES:
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
                items = (*spec.files, *spec.machine)
                for directory in _parent_directories(items):
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                for item in items:
                    info = tarfile.TarInfo(item.path.lstrip("/"))
                    if item.link:
                        info.type, info.linkname, info.mode = tarfile.SYMTYPE, item.link, 0o777
                        tar.addfile(info)
                        continue
                    assert item.source is not None, item.path
                    info.size, info.mode = item.source.stat().st_size, item.mode
                    with item.source.open("rb") as source:
                        tar.addfile(info, source)
    digest = compressed.sha.hexdigest()
    partial.rename(blobs / digest)
    descriptor = {"mediaType": MEDIA_LAYER_GZIP, "digest": f"sha256:{digest}", "size": compressed.size}
    return descriptor, f"sha256:{uncompressed.sha.hexdigest()}"


def _parent_directories(items: Iterable[ImageFile]) -> list[str]:
    """The directories the items need that the base root lacks, parents first."""
    known = {name for name, _ in BASE_DIRECTORIES}
    wanted: set[str] = set()
    for item in items:
        parent = Path(item.path.lstrip("/")).parent
        while str(parent) not in (".", "") and str(parent) not in known:
            wanted.add(str(parent))
            parent = parent.parent
    return sorted(wanted, key=lambda d: (d.count("/"), d))


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
            "history": [{"created_by": "nsxkube lab images: " + ", ".join(f.path for f in spec.files)
                         + (f" and {len(spec.machine)} files from this machine" if spec.machine else "")}],
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
        for item in (*spec.files, *spec.machine):
            if item.source is None:
                key.update(f"{item.path}->{item.link}".encode())
                continue
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
