"""The repository's docs/runbooks/ and docs/troubleshooting.md: the bundle's pages for the example cluster.

`nsxkube render` writes these pages into a bundle with one cluster's names and addresses; the
repository carries the same pages rendered from the example cluster.yaml (`nsxkube init`), so that
there is one source of truth. Regenerate with ``python -m nsxkube.render.docs.site docs/``;
tests/render/test_docs_site.py fails when the committed pages differ.

The pages name bundle files as plain text or code spans (``nsx/apply.sh``), never as Markdown
links, so they are copied unchanged; the note on top says those paths are the bundle's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nsxkube.design import derive_design
from nsxkube.render.addons.versions import render_versions_doc
from nsxkube.render.docs import render_docs
from nsxkube.render.files import RenderedFile
from nsxkube.spec import parse_spec
from nsxkube.spec.example import example_text

RUNBOOKS = "runbooks"
VERSIONS = "versions.md"
COMMAND = "python -m nsxkube.render.docs.site docs/"
NOTE = (f"> Generated from the example cluster.yaml (`nsxkube init`) by `{COMMAND}`: do not edit. "
        "`nsxkube render` writes the same page with your cluster's names and addresses; "
        "paths such as `nsx/apply.sh` are files of that bundle.\n\n")


def _site_path(bundle_path: str) -> str:
    """docs/stage-*.md of the bundle go to runbooks/, the other pages stay at the top of docs/."""
    name = bundle_path.removeprefix("docs/")
    return f"{RUNBOOKS}/{name}" if name.startswith("stage-") else name


def render_site() -> list[RenderedFile]:
    """The bundle's docs/*.md for the example cluster, with paths relative to the repository's docs/."""
    design = derive_design(parse_spec(example_text(), source="example cluster.yaml"))
    pages = [RenderedFile(_site_path(f.path), NOTE + f.content)
             for f in render_docs(design) if f.path.startswith("docs/")]
    # The bundle's addons/versions.md: every pinned chart (chart and app version, where it was checked).
    return [*pages, RenderedFile(VERSIONS, NOTE + render_versions_doc(design))]


def write_site(docs_dir: Path) -> list[Path]:
    """Write the pages under docs_dir; remove runbook pages that are no longer rendered."""
    pages = render_site()
    written = []
    for page in pages:
        target = docs_dir / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page.content, encoding="utf-8", newline="\n")
        written.append(target)
    for stale in sorted((docs_dir / RUNBOOKS).glob("*.md")):
        if stale not in written:
            stale.unlink()
    return written


def main(argv: list[str]) -> int:
    docs_dir = Path(argv[0] if argv else "docs")
    for path in write_site(docs_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
