"""Imports in src/nsxkube point down the layers, never up or sideways.

Layers, top to bottom (docs: architecture): cli → lab → pipeline and phases (one level; phases may
import pipeline, not the reverse) → checks → providers → render → design → spec. One provider
(providers/nsx, providers/vsphere, providers/nodes, …) never imports another. errors, findings,
secrets, images, wording, untrusted and the package root are shared leaves that any module may import; a leaf itself
imports only other leaves and spec. Nothing but cli imports lab, and lab imports anything but cli.

Every import is read from the syntax tree, so imports inside functions and under TYPE_CHECKING
count too. Imports built from strings at run time (importlib) are not seen.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nsxkube"

# Top to bottom; names on one row share a level.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),
    ("lab",),
    ("pipeline", "phases"),
    ("checks",),
    ("providers",),
    ("render",),
    ("design",),
    ("spec",),
)
LEAVES = frozenset({"errors", "findings", "secrets", "images", "wording", "untrusted", "nsxkube"})
# Sideways imports that the layering allows: (importer, imported) on the same level.
SIDEWAYS = frozenset({("phases", "pipeline")})
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}

# Violations allowed for now (none): the test fails on any violation not listed here, and on any
# entry here that no longer occurs, so the list cannot go stale.
KNOWN: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    rule: str
    where: str  # file:line, to find it; not part of the key, which must survive edits elsewhere

    @property
    def key(self) -> str:
        return f"{self.importer} → {self.imported} ({self.rule})"


def modules_under(package_dir: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the package (a package is its __init__)."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_modules(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(module, line) for every import of the package's own modules in the file, at any depth.

    ``from a.b import c`` names a.b.c when that is a module, else a.b (c is an attribute of it)."""
    root = module.split(".")[0]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule if submodule in known else source, node.lineno))
    return [(name, line) for name, line in found if name == root or name.startswith(f"{root}.")]


def area(module: str, packages: frozenset[str] = frozenset()) -> tuple[str, str | None]:
    """(layer or leaf, provider) of a module: nsxkube.providers.nsx.client → ("providers", "nsx").

    A provider is a package under providers/; a module beside them (providers/x.py) is shared."""
    parts = module.split(".")
    if len(parts) == 1:
        return parts[0], None
    top = "cli" if parts[1] == "__main__" else parts[1]
    is_provider = top == "providers" and (len(parts) > 3 or (len(parts) == 3 and module in packages))
    return top, (parts[2] if is_provider else None)


def rule_broken(importer: str, imported: str, packages: frozenset[str] = frozenset()) -> str | None:
    (mine, my_provider), (theirs, their_provider) = area(importer, packages), area(imported, packages)
    for name in (mine, theirs):
        if name not in LEVEL and name not in LEAVES:
            return f"{name} is in no layer: add it to LAYERS or LEAVES"
    if mine in LEAVES:
        return None if theirs in LEAVES or theirs == "spec" else "a shared leaf imports only leaves and spec"
    if theirs in LEAVES or mine == theirs == "cli":
        return None
    if mine == theirs == "providers":
        return None if my_provider == their_provider or None in (my_provider, their_provider) \
            else "one provider may not import another"
    if mine == theirs or LEVEL[mine] < LEVEL[theirs] or (mine, theirs) in SIDEWAYS:
        return None
    return f"{mine} may not import {theirs}"


def violations(package_dir: Path) -> list[Violation]:
    modules = modules_under(package_dir)
    packages = frozenset(name for name, path in modules.items() if path.name == "__init__.py")
    found = []
    for module, path in modules.items():
        for imported, line in imported_modules(module, path, set(modules)):
            rule = rule_broken(module, imported, packages)
            if rule is not None:
                found.append(Violation(module, imported, rule, f"{path}:{line}"))
    return found


def test_imports_point_down_the_layers() -> None:
    found = violations(SRC)
    assert len(modules_under(SRC)) > 100, "the checker read too few modules to be reading src/nsxkube"
    new = sorted({f"{v.key}  [{v.where}]" for v in found if v.key not in KNOWN})
    assert not new, "imports that run up the layers:\n" + "\n".join(new)
    gone = sorted(KNOWN - {v.key for v in found})
    assert not gone, "fixed, so take them out of KNOWN:\n" + "\n".join(gone)


# ---- the checker itself, on a made-up package -----------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "nsxkube"


SYNTHETIC = {
    "nsxkube/__init__.py": "",
    "nsxkube/__main__.py": "from nsxkube.cli import main\n",
    "nsxkube/errors.py": "",
    "nsxkube/images.py": "from nsxkube.spec import model\n",  # a leaf may import spec
    "nsxkube/findings.py": "from nsxkube.design import plan\n",  # but nothing else
    "nsxkube/cli/__init__.py": "from nsxkube import lab\nfrom nsxkube.phases import one\ndef main(): ...\n",
    "nsxkube/lab/__init__.py": "from nsxkube.phases.one import PHASE\n",
    "nsxkube/lab/runner.py": "def run():\n    from nsxkube.cli import main\n",
    "nsxkube/pipeline/__init__.py": "",
    "nsxkube/pipeline/runner.py": "from nsxkube.phases import one\n",
    "nsxkube/phases/__init__.py": "",
    "nsxkube/phases/one.py": ("from nsxkube.pipeline import runner\nfrom nsxkube.providers.nsx import client\n"
                              "from nsxkube.errors import *\nPHASE = 1\n"),
    "nsxkube/checks/__init__.py": "from nsxkube.providers.vsphere.read import read\n",
    "nsxkube/providers/__init__.py": "",
    "nsxkube/providers/common.py": "from nsxkube.providers.nsx import client\n",
    "nsxkube/providers/nsx/__init__.py": "",
    "nsxkube/providers/nsx/client.py": ("from typing import TYPE_CHECKING\nfrom .. import common\n"
                                        "from . import model\n"
                                        "if TYPE_CHECKING:\n    from ..vsphere.read import read\n"),
    "nsxkube/providers/nsx/model.py": "",
    "nsxkube/providers/vsphere/__init__.py": "",
    "nsxkube/providers/vsphere/read.py": "import nsxkube.checks\ndef read(): ...\n",
    "nsxkube/render/__init__.py": "from nsxkube.design import plan\nfrom nsxkube import images, secrets\n",
    "nsxkube/render/report.py": "def render():\n    from ..pipeline.runner import run\n",
    "nsxkube/design/__init__.py": "",
    "nsxkube/design/plan.py": "from nsxkube.spec.model import Spec\n",
    "nsxkube/spec/__init__.py": "",
    "nsxkube/spec/model.py": "from nsxkube.design.plan import derive\nimport json\n",
    "nsxkube/plugins/__init__.py": "from nsxkube.spec import model\n",
}


def test_the_checker_finds_each_kind_of_violation_and_passes_the_allowed_imports(tmp_path: Path) -> None:
    package = write_tree(tmp_path, SYNTHETIC)
    found = {v.key for v in violations(package)}
    assert found == {
        "nsxkube.findings → nsxkube.design.plan (a shared leaf imports only leaves and spec)",
        "nsxkube.lab.runner → nsxkube.cli (lab may not import cli)",  # inside a function
        "nsxkube.pipeline.runner → nsxkube.phases.one (pipeline may not import phases)",
        "nsxkube.providers.nsx.client → nsxkube.providers.vsphere.read (one provider may not import another)",
        "nsxkube.providers.vsphere.read → nsxkube.checks (providers may not import checks)",
        "nsxkube.render.report → nsxkube.pipeline.runner (render may not import pipeline)",  # relative, in a function
        "nsxkube.spec.model → nsxkube.design.plan (spec may not import design)",
        "nsxkube.plugins → nsxkube.spec.model (plugins is in no layer: add it to LAYERS or LEAVES)",
    }


@pytest.mark.parametrize(("importer", "imported", "rule"), [
    ("nsxkube.phases.bootstrap", "nsxkube.lab.nsx", "phases may not import lab"),
    ("nsxkube.render.kubeadm", "nsxkube.providers.nodes.client", "render may not import providers"),
    ("nsxkube.providers.nodes.template", "nsxkube.render.template_vm", None),
    ("nsxkube.checks.nsx_ownership", "nsxkube.providers.nsx.model", None),
    ("nsxkube.design.ports", "nsxkube.errors", None),
    ("nsxkube.secrets", "nsxkube.cli.commands", "a shared leaf imports only leaves and spec"),
    ("nsxkube.__main__", "nsxkube.lab.supervisor", None),
])
def test_rules(importer: str, imported: str, rule: str | None) -> None:
    assert rule_broken(importer, imported) == rule
