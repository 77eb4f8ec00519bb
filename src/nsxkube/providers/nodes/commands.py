"""Remote command text, built without I/O: root rights, secrets through stdin, uploads as tar."""

from __future__ import annotations

import io
import re
import shlex
import tarfile
from collections.abc import Mapping, Sequence

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def as_root(script: str, user: str) -> str:
    """bash runs the script; through ``sudo -n`` (never prompting) unless the login user is root."""
    command = f"bash -c {shlex.quote(script)}"
    return command if user == "root" else f"sudo -n -- {command}"


def with_secret_env(names: Sequence[str], then: str) -> str:
    """Reads one line of stdin into each environment variable, then runs ``then``.

    The values never appear in a process's arguments on the node (``ps`` shows only the
    names), nor in the log of the command: they come from ``secret_stdin``.
    """
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    if not names:
        return then
    reads = " && ".join(f"IFS= read -r {name}" for name in names)
    return f"{reads} && export {' '.join(names)} && {then}"


def secret_stdin(values: Sequence[str]) -> bytes:
    for value in values:
        if "\n" in value or "\r" in value:
            raise ValueError("a secret passed through stdin must be one line")
    return "".join(f"{value}\n" for value in values).encode()


def env_prefix(env: Mapping[str, str]) -> str:
    """``NAME=value …`` for values that are not secret (they are visible in the process list)."""
    return "".join(f"{name}={shlex.quote(value)} " for name, value in env.items() if _ENV_NAME.match(name))


def tar_archive(files: Mapping[str, tuple[str, int]]) -> bytes:
    """A tar archive of ``path → (text, mode)``, owned by root, for ``tar -x`` on the node."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(files):
            text, mode = files[path]
            data = text.encode("utf-8")
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, 0, 0, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def extract_into(directory: str) -> str:
    """Unpacks the archive on stdin into ``directory`` (created 0700: it holds kubeadm configs)."""
    where = shlex.quote(directory)
    return f"install -d -m 0700 {where} && tar -x --no-same-owner -C {where} -f - && chmod -R go-rwx {where}"
