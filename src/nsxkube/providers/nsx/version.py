"""Which NSX nsxkube talks to: `GET /api/v1/node/version` (`node_version`, `product_version`, e.g.
"4.2.1.0.0.24304122"), and whether nsxkube knows that release.

Supported are the releases whose Policy API nsxkube's reference describes and its emulator
reproduces: NSX-T 3.2 and NSX 4.0–4.2 (hierarchical PATCH, the realized-state API, uplink
host-switch profiles in the Policy API from 4.0). Anything else is refused before nsxkube reads or
writes more, with one line naming the version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nsxkube.errors import ProviderError

NODE_VERSION = "/api/v1/node/version"
SUPPORTED = ((3, 2), (4, 0), (4, 1), (4, 2))
SUPPORTED_TEXT = "NSX-T 3.2 and NSX 4.0 to 4.2"
_NUMBERS = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class NsxVersion:
    text: str  # as the manager wrote it, e.g. 4.2.1.0.0.24304122
    major: int
    minor: int
    patch: int = 0

    @property
    def release(self) -> str:
        """4.2.1"""
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def supported(self) -> bool:
        return (self.major, self.minor) in SUPPORTED


def parse_version(body: Mapping[str, Any] | None, manager: str) -> NsxVersion:
    """The manager's answer → NsxVersion; ProviderError when it names no version nsxkube can read."""
    text = str((body or {}).get("product_version") or (body or {}).get("node_version") or "").strip()
    match = _NUMBERS.match(text)
    if match is None:
        raise ProviderError(f"NSX at {manager} did not say its version (GET {NODE_VERSION} gave {text or 'nothing'!r})",
                            hint=f"nsxkube supports {SUPPORTED_TEXT}; check that nsx.manager is an NSX Manager")
    return NsxVersion(text, int(match[1]), int(match[2]), int(match[3] or 0))


def require_supported(version: NsxVersion, manager: str) -> NsxVersion:
    if not version.supported:
        raise ProviderError(f"NSX at {manager} runs version {version.text}, which nsxkube does not support "
                            f"(supported: {SUPPORTED_TEXT})",
                            hint="use an NSX release nsxkube supports; nothing was changed in NSX")
    return version
