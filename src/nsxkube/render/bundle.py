"""The whole bundle: every file an operator needs, from the design alone."""

from __future__ import annotations

import os
from pathlib import Path

from nsxkube.design import Design
from nsxkube.errors import UsageError
from nsxkube.render.files import RenderedFile

# Files written into a bundle directory are listed here, so a re-render can remove what it no
# longer produces without touching anything else in the directory.
MANIFEST = ".nsxkube-bundle"


def render_bundle(design: Design) -> tuple[RenderedFile, ...]:
    """All files, sorted by path. Pure: the same design gives byte-identical files."""
    from nsxkube.render.addons import render_addons
    from nsxkube.render.docs import render_docs
    from nsxkube.render.keepalived import render_keepalived
    from nsxkube.render.kubeadm import render_kubeadm
    from nsxkube.render.nsx import render_nsx
    from nsxkube.render.scripts import render_scripts
    from nsxkube.render.vm_files import render_machines

    files: list[RenderedFile] = []
    for area in (render_docs, render_nsx, render_machines, render_kubeadm, render_keepalived, render_scripts,
                 render_addons):
        files += area(design)
    paths = [f.path for f in files]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise AssertionError(f"two render functions write {duplicates}")
    return tuple(sorted(files, key=lambda f: f.path))


def write_bundle(files: tuple[RenderedFile, ...], out_dir: Path) -> list[Path]:
    """Write the files; remove files an earlier render wrote that this one does not."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} exists and is not a directory")
    manifest = out_dir / MANIFEST
    if out_dir.exists() and any(out_dir.iterdir()) and not manifest.exists():
        raise UsageError(f"{out_dir} is not empty and was not written by nsxkube render",
                         hint="choose an empty or new directory")
    previous = set(manifest.read_text(encoding="utf-8").splitlines()) if manifest.exists() else set()
    written: list[Path] = []
    try:
        for rendered in files:
            target = out_dir / rendered.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(rendered.content, encoding="utf-8")
            os.chmod(target, rendered.mode)
            written.append(target)
        for stale in sorted(previous - {f.path for f in files}):
            (out_dir / stale).unlink(missing_ok=True)
        manifest.write_text("".join(f"{f.path}\n" for f in files), encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write the bundle into {out_dir}: {err.strerror} ({err.filename})") from None
    return written
