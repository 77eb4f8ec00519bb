"""Image bundles: container images preloaded onto the nodes, for sites without a registry.

An *image bundle* is one tar archive of images: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/``, as ``ctr images export``, ``skopeo`` or ``crane`` write it) or a
``docker save`` archive (``manifest.json`` with ``RepoTags``). Air-gapped sites copy it to each
node and load it into containerd's ``k8s.io`` namespace, where the kubelet (through the CRI)
finds its images, so kubeadm, the static Pods and the add-ons never pull. It is the offline twin
of ``network.registry_mirrors``.

* :func:`bundle_references` reads which images an archive holds, without unpacking it;
* :func:`missing_images` says which required images a bundle lacks, before anything is copied;
* :func:`preload_script` is the node-side script: import, then check that every required image
  is there (exit 1 naming the missing ones).

* :func:`bundle_problems` is what `check` and the bootstrap phase say about ``kubernetes.image_bundle``.

``kubernetes.image_bundle`` names the archive; ``render`` writes :data:`PRELOAD_SCRIPT` for the
design's images (``Design.node_images``); the bootstrap phase copies the archive to every node it
brings up and runs the script before kubeadm. The test nodes (tests/nodes) load theirs the same way.
"""

from __future__ import annotations

import shlex
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nsxkube.spec.problems import Problem
from nsxkube.untrusted import InputError, load_json
from nsxkube.wording import and_more

PRELOAD_SCRIPT = "scripts/preload-images.sh"
CONTAINERD_NAMESPACE = "k8s.io"  # the namespace the CRI plugin (and so the kubelet) uses
CONTAINERD_ADDRESS = "/run/containerd/containerd.sock"

_CONTAINERD_NAME = "io.containerd.image.name"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"


KEY = "kubernetes.image_bundle"


class BundleError(ValueError):
    """The file is not an image bundle nsxkube can read."""


def normalize_reference(reference: str) -> str:
    """The fully qualified name containerd lists: ``pause:3.10`` → ``docker.io/library/pause:3.10``."""
    name, _, digest = reference.partition("@")
    first, sep, _ = name.partition("/")
    if not sep:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


INDEX_LIMIT = 4 << 20
"""index.json / manifest.json of a bundle: a few KiB per image; 4 MiB holds thousands."""


MEMBER_LIMIT = 100_000
"""Entries in a bundle: a layer is one blob, a few hundred for every image a cluster needs; the
headers of more would only cost time and memory before anything is read."""


def _index_members(archive: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """index.json and manifest.json of the archive (the last of each name, as tar extracts it)."""
    found: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(archive, start=1):
        if count > MEMBER_LIMIT:
            raise BundleError(f"more than {MEMBER_LIMIT} entries: not an image bundle")
        name = member.name.removeprefix("./")
        if name in ("index.json", "manifest.json") and member.isfile():
            found[name] = member
    archive.members = []  # the headers read are not needed any more
    return found


def _read_member(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str) -> bytes | None:
    member = members.get(name)
    if member is None:
        return None
    if member.size > INDEX_LIMIT:
        raise BundleError(f"its {name} is {member.size} bytes, more than an image index holds (4 MiB)")
    handle = archive.extractfile(member)
    return handle.read(INDEX_LIMIT + 1) if handle is not None else None


def _index_json(path: Path, name: str, data: bytes, kind: type) -> Any:
    try:
        value = load_json(data)
    except InputError as error:
        raise BundleError(f"{path}: its {name} is not readable: {error}") from None
    if not isinstance(value, kind):
        raise BundleError(f"{path}: its {name} is not a JSON {'list' if kind is list else 'object'}")
    return value


def _objects(values: Any) -> list[dict[str, Any]]:
    return [value for value in values if isinstance(value, dict)] if isinstance(values, list) else []


def bundle_references(path: Path) -> list[str]:
    """The image names in a bundle (OCI layout or ``docker save`` archive, plain or gzip), sorted."""
    try:
        with tarfile.open(path, "r:*") as archive:
            members = _index_members(archive)
            index = _read_member(archive, members, "index.json")
            manifest = _read_member(archive, members, "manifest.json")
    except (OSError, tarfile.TarError, EOFError) as error:
        raise BundleError(f"{path}: not a readable tar archive ({error})") from None
    except BundleError as error:
        raise BundleError(f"{path}: {error}") from None
    names: set[str] = set()
    if manifest is not None:  # docker save
        for entry in _objects(_index_json(path, "manifest.json", manifest, list)):
            tags = entry.get("RepoTags") or []
            names.update(normalize_reference(tag) for tag in (tags if isinstance(tags, list) else [])
                         if isinstance(tag, str))
    if index is not None:  # OCI image layout
        for descriptor in _objects(_index_json(path, "index.json", index, dict).get("manifests")):
            annotations = descriptor.get("annotations")
            annotations = annotations if isinstance(annotations, dict) else {}
            name = annotations.get(_CONTAINERD_NAME) or annotations.get(_OCI_REF_NAME)
            if isinstance(name, str) and ("/" in name or ":" in name):  # a bare ref.name ("v1.35.8") names no image
                names.add(normalize_reference(name))
    if index is None and manifest is None:
        raise BundleError(f"{path}: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")
    return sorted(names)


def missing_images(path: Path, required: Iterable[str]) -> list[str]:
    """The required images the bundle does not hold (names normalized as containerd lists them)."""
    held = set(bundle_references(path))
    return sorted({normalize_reference(r) for r in required} - held)


def preload_script(required: Sequence[str], *, address: str = CONTAINERD_ADDRESS) -> str:
    """The node-side script: ``preload-images.sh BUNDLE.tar`` imports the bundle into containerd's
    k8s.io namespace and checks that each required image is listed afterwards."""
    images = "".join(f"  {shlex.quote(normalize_reference(r))}\n" for r in required)
    return f"""#!/usr/bin/env bash
# Loads an image bundle into containerd ({CONTAINERD_NAMESPACE} namespace, where the kubelet finds images)
# and checks that every image this cluster needs is there, so that nothing has to be pulled.
#
# Usage: preload-images.sh BUNDLE.tar
#   BUNDLE.tar: an OCI image layout archive or a `docker save` archive.
#   Prints one line per missing image and exits 1 when any is missing; 0 when all are there.
# Rendered by nsxkube.
set -euo pipefail

CONTAINERD_ADDRESS=${{NSXKUBE_CONTAINERD_ADDRESS:-{shlex.quote(address)}}}
REQUIRED=(
{images})

log() {{ printf '[%s] %s\\n' "${{0##*/}}" "$*" >&2; }}
die() {{ log "error: $*"; exit 1; }}

main() {{
  [[ $# -eq 1 ]] || die "usage: ${{0##*/}} BUNDLE.tar"
  local bundle=$1 listed image missing=0
  [[ -f $bundle ]] || die "$bundle does not exist"
  [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0 $bundle"
  command -v ctr >/dev/null || die "ctr (containerd) is not installed"
  log "importing $bundle into containerd ({CONTAINERD_NAMESPACE})"
  ctr --address "$CONTAINERD_ADDRESS" -n {CONTAINERD_NAMESPACE} images import "$bundle" >&2
  listed=$(ctr --address "$CONTAINERD_ADDRESS" -n {CONTAINERD_NAMESPACE} images ls -q)
  for image in "${{REQUIRED[@]}}"; do
    if ! grep -qxF -- "$image" <<<"$listed"; then
      printf 'missing %s\\n' "$image"
      missing=$((missing + 1))
    fi
  done
  if ((missing > 0)); then
    die "$missing of ${{#REQUIRED[@]}} required images are not in the bundle"
  fi
  log "all ${{#REQUIRED[@]}} required images are loaded"
}}

main "$@"
"""


def bundle_problems(bundle: Path, required: Sequence[str]) -> list[Problem]:
    """What is wrong with the image bundle for these images (reads the archive's index only)."""
    path = bundle.expanduser()
    if not path.is_file():
        return [Problem(KEY, f"{path} does not exist", hint="build it with `ctr images export` or "
                        "`docker save` on a machine that can pull, then copy it here")]
    try:
        missing = missing_images(path, required)
    except BundleError as error:
        return [Problem(KEY, str(error), hint="an OCI image layout archive or a `docker save` archive")]
    if missing:
        return [Problem(KEY, f"{path} lacks {and_more(missing)}",
                        hint="`nsxkube check` lists every image the nodes need; add them to the bundle")]
    return []


def verified_digest(bundle: Path | None, required: Sequence[str]) -> str:
    """The bundle's SHA-256 once it is known to hold every required image; UsageError otherwise."""
    import hashlib

    from nsxkube.errors import UsageError

    assert bundle is not None
    problems = bundle_problems(bundle, required)
    if problems:
        raise UsageError(f"{problems[0].key}: {problems[0].message}", hint=problems[0].hint)
    digest = hashlib.sha256()
    with bundle.expanduser().open("rb") as archive:
        for chunk in iter(lambda: archive.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
