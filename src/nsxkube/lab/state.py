"""The lab directory: what `lab up` writes there and how `lab down` finds what to stop.

    DIR/cluster.yaml        the cluster file, pointed at the simulators (rewritten by every up)
    DIR/lab.env             export lines: the credential variables cluster.yaml names (0600)
    DIR/lab.json            the running lab: supervisor pid, endpoints, thumbprints (0600, no secrets)
    DIR/lab.log             the supervisor's log; DIR/vcsim.log the simulator's
    DIR/nsx-requests.jsonl  one JSON line per NSX API request
    DIR/ssh/id_ed25519      a throwaway key for the nodes
    with --nodes:
    DIR/images.tar          the nodes' images (kubernetes.image_bundle of cluster.yaml)
    DIR/known_hosts         each running node's SSH host key (ssh.known_hosts_file of cluster.yaml)
    DIR/nodes/NAME/         a node's files (its /etc/kubernetes, /var/lib/kubelet, /var/log …)
    DIR/nodes.json          the nodes and their state, rewritten as they change
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nsxkube.errors import UsageError
from nsxkube.untrusted import InputError, read_text

STATE_FILE = "lab.json"
ENV_FILE = "lab.env"
LOG_FILE = "lab.log"
VCSIM_LOG = "vcsim.log"
REQUEST_LOG = "nsx-requests.jsonl"
CLUSTER_FILE = "cluster.yaml"
SSH_KEY = "ssh/id_ed25519"
NODES_FILE = "nodes.json"
SUPERVISOR_MODULE = "nsxkube.lab.supervisor"
STATE_LIMIT = 64 << 10  # lab.json and lab.env are a few hundred bytes; anything larger is not ours


@dataclass(frozen=True)
class Service:
    name: str  # "vcenter" | "nsx"
    host: str
    port: int
    thumbprint: str
    detail: str  # e.g. "govmomi v0.56.0 (Go module)" or "preset tanzu"
    pid: int = 0  # the process serving it (the NSX emulator runs inside the supervisor); 0: not recorded

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


@dataclass(frozen=True)
class LabState:
    pid: int
    started_at: str
    cluster: str
    services: tuple[Service, ...]
    nodes: bool = False  # started with --nodes: node VMs get real nodes

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "services": [asdict(s) for s in self.services]}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabState:
        data: dict[str, Any] = json.loads(text)
        return cls(int(data["pid"]), str(data["started_at"]), str(data["cluster"]),
                   tuple(Service(**s) for s in data["services"]), bool(data.get("nodes", False)))


def write_private(path: Path, content: str | bytes) -> None:
    """Writes a file only its owner can read, atomically (readers never see half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(temporary, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


ENV_HEADER = "# nsxkube lab: where the simulators listen and their throwaway credentials; `source` this file\n"


def write_env(lab_dir: Path, values: dict[str, str]) -> None:
    """DIR/lab.env: one shell `export` line per value (0600)."""
    write_private(lab_dir / ENV_FILE, ENV_HEADER + "".join(f"export {name}={shlex.quote(value)}\n"
                                                            for name, value in values.items()))


def read_env(lab_dir: Path) -> dict[str, str]:
    """The values of DIR/lab.env, as `source` would set them."""
    values = {}
    try:
        text = read_text(lab_dir / ENV_FILE, limit=STATE_LIMIT)
    except InputError as err:
        raise UsageError(f"{lab_dir / ENV_FILE}: cannot read: {err}", hint="start the lab again with `nsxkube lab up`") \
            from None
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote: a line `source` would also refuse
            continue
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            values[name] = value
    return values


def read_state(lab_dir: Path) -> LabState | None:
    try:
        return LabState.from_json(read_text(lab_dir / STATE_FILE, limit=STATE_LIMIT))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        # missing (InputError is a ValueError), torn, foreign or hostile: treated as no running lab
        return None


def is_supervisor(pid: int) -> bool:
    """Whether ``pid`` is a lab supervisor (a pid in a stale lab.json may belong to anything now)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return SUPERVISOR_MODULE.encode() in cmdline
