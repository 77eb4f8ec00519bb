"""The bundle's documentation: README.md (the runbook) and docs/ (per stage, troubleshooting).

Pure text built from the design, with this cluster's names, addresses, versions and MTU numbers.
"""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.addons import render_addons
from nsxkube.render.docs.readme import render_readme
from nsxkube.render.docs.stages import stage0_doc, stage1_doc, stage2_doc, stage3_doc
from nsxkube.render.docs.troubleshooting import troubleshooting_doc
from nsxkube.render.files import RenderedFile

__all__ = ["render_docs"]


def render_docs(design: Design) -> list[RenderedFile]:
    """README.md and docs/*.md for this cluster."""
    addon_paths = [f.path for f in render_addons(design)]
    return [
        RenderedFile("README.md", render_readme(design, addon_paths)),
        RenderedFile("docs/stage-0-nsx-and-template.md", stage0_doc(design)),
        RenderedFile("docs/stage-1-cluster-and-addons.md", stage1_doc(design)),
        RenderedFile("docs/stage-2-operations.md", stage2_doc(design)),
        RenderedFile("docs/stage-3-migration-from-tanzu.md", stage3_doc(design)),
        RenderedFile("docs/troubleshooting.md", troubleshooting_doc(design)),
    ]
