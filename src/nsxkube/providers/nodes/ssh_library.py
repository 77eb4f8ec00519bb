"""asyncssh, imported once and quietly: its DSA support trips cryptography's deprecation warning
at import time, which is noise to an operator (nsxkube never offers or accepts DSA keys)."""

from __future__ import annotations

import warnings
from types import ModuleType


def asyncssh() -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*DSA.*", category=DeprecationWarning)
        try:
            from cryptography.utils import CryptographyDeprecationWarning
        except ImportError:  # pragma: no cover - every supported cryptography has it
            pass
        else:
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        import asyncssh as module
    return module
