"""The error tree. Every error nsxkube raises on purpose is one of these; the CLI shows its
message as one line and exits with its code, never a traceback."""

from __future__ import annotations


class NsxkubeError(Exception):
    """Base of every expected failure: ``str(err)`` is the one line the operator reads."""

    exit_code = 1
    area = "nsxkube"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class SpecError(NsxkubeError):
    """cluster.yaml cannot be read or is invalid; ``problems`` holds every finding."""

    exit_code = 2
    area = "spec"

    def __init__(self, message: str, *, problems: tuple[object, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class UsageError(NsxkubeError):
    """A command was called in a way that cannot work (a file exists, a flag is missing)."""

    exit_code = 2
    area = "usage"


class CredentialsError(NsxkubeError):
    """A secret that must come from the environment (or a prompt) is missing or refused."""

    exit_code = 3
    area = "credentials"


class ProviderError(NsxkubeError):
    """An outside system (NSX, vCenter, a node, the Kubernetes API) failed or refused."""

    exit_code = 4
    area = "provider"


class ConflictError(NsxkubeError):
    """An object nsxkube would create already exists and is not ours: we never touch it."""

    exit_code = 5
    area = "conflict"


class ClusterLocked(ConflictError):
    """Another run holds the cluster's lease: the whole command stops, nothing is changed."""


class Aborted(NsxkubeError):
    """The operator said no."""

    exit_code = 130
    area = "aborted"
