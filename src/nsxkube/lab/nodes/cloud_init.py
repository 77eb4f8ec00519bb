"""What cloud-init does on a lab node, from the VM's guestinfo: the subset a Kubernetes node needs.

A real node VM runs cloud-init with the VMware datasource; a lab node is a set of namespaces with
no cloud-init daemon, so the lab does the same work from the same data (``guestinfo.metadata`` and
``guestinfo.userdata``, as nsxkube delivered them) and leaves cloud-init's own status files behind,
so that ``cloud-init status --wait`` — the real program — answers on the node as it would on a VM.

Honoured (docs/lab.md lists them too):

* meta-data: ``local-hostname``; ``network`` (v2): the first NIC's address, ``mtu``, its default
  route and ``nameservers`` (→ ``/etc/resolv.conf``);
* user-data: ``hostname``; ``users`` (``name``, ``groups``, ``shell``, ``sudo``,
  ``ssh_authorized_keys``, ``lock_passwd``); ``disable_root`` and ``ssh_pwauth`` (sshd already
  allows neither); ``write_files`` (``path``, ``content``, ``permissions``, ``append``; only inside
  the node's own directories and files, anything else is a recoverable error); ``runcmd`` (run in
  the node by ``sh -c``, output in ``/var/log/cloud-init-output.log``); ``packages``: a package the
  machine has (keepalived) is already in the node's image, any other is a recoverable error.
* Ignored, with the reason in the output log: ``ntp`` (the node shares the machine's clock),
  ``preserve_hostname``, ``manage_etc_hosts`` (the lab writes /etc/hosts once, like
  ``manage_etc_hosts: false``), any other key.
"""

from __future__ import annotations

import json
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsxkube.untrusted import load_yaml

OUTPUT_LOG = "/var/log/cloud-init-output.log"
STATUS_DIR = "/run/cloud-init"
HONOURED = {"hostname", "users", "write_files", "runcmd", "packages", "disable_root", "ssh_pwauth"}
IGNORED = {"ntp": "the node shares the machine's clock", "preserve_hostname": "the lab sets the hostname once",
           "manage_etc_hosts": "the lab writes /etc/hosts once (as manage_etc_hosts: false does)"}
# Packages a lab node has because the machine has them (scripts/setup installs them).
MACHINE_PACKAGES = {"keepalived": "/usr/sbin/keepalived"}
FIRST_UID = 1000


@dataclass
class NetworkConfig:
    address: str  # with /prefix
    gateway: str | None
    mtu: int | None
    nameservers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)


def network_config(meta_data: str) -> NetworkConfig:
    """The first NIC of the meta-data's network config (v2)."""
    meta = load_yaml(meta_data).data or {}
    ethernets = ((meta.get("network") or {}).get("ethernets") or {}) if isinstance(meta, dict) else {}
    for nic in ethernets.values():
        addresses = nic.get("addresses") or []
        if not addresses:
            continue
        gateway = next((str(r.get("via")) for r in nic.get("routes") or ()
                        if str(r.get("to")) in ("0.0.0.0/0", "default") and r.get("via")), None)
        servers = nic.get("nameservers") or {}
        return NetworkConfig(str(addresses[0]), gateway, nic.get("mtu"), [str(a) for a in servers.get("addresses") or ()],
                             [str(d) for d in servers.get("search") or ()])
    raise ValueError("the meta-data's network config has no NIC with an address")


def user_data_of(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    if not text.startswith("#cloud-config"):
        raise ValueError("user-data is not #cloud-config (the lab runs no other format)")
    data = load_yaml(text).data or {}
    if not isinstance(data, dict):
        raise ValueError("user-data is not a mapping")
    return data


@dataclass
class Applied:
    """What applying user-data left to do inside the running node, and what it said."""

    runcmd: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def resolv_conf(network: NetworkConfig) -> str:
    # timeout/attempts: the lab's name servers are usually unreachable; lookups fail fast.
    lines = [f"nameserver {server}" for server in network.nameservers[:3]] or ["nameserver 127.0.0.53"]
    if network.search:
        lines.append("search " + " ".join(network.search))
    return "\n".join([*lines, "options timeout:1 attempts:1"]) + "\n"


def apply_files(data: dict[str, Any], path_of: Callable[[str], Path]) -> Applied:
    """The parts of user-data that are files (accounts, keys, sudoers, write_files), written into the
    node's own directories before it boots; ``path_of`` maps a path in the node to the machine's."""
    applied = Applied()
    for key in sorted(data):
        if key in IGNORED:
            applied.log.append(f"{key}: ignored ({IGNORED[key]})")
        elif key not in HONOURED:
            applied.log.append(f"{key}: ignored (the lab's cloud-init does not implement it)")
    for user in data.get("users") or ():
        if isinstance(user, dict) and user.get("name"):
            _add_user(user, path_of, applied)
        elif user != "default":
            applied.errors.append(f"users: {user!r} is not a user the lab can add")
    for item in data.get("write_files") or ():
        _write_file(item, path_of, applied)
    for package in data.get("packages") or ():
        program = MACHINE_PACKAGES.get(str(package))
        if program and Path(program).exists():
            applied.log.append(f"packages: {package} is in the lab node's image ({program})")
        else:
            applied.errors.append(f"packages: {package} cannot be installed on a lab node (no package manager)")
    for command in data.get("runcmd") or ():
        applied.runcmd.append(shlex.join(str(c) for c in command) if isinstance(command, list) else str(command))
    return applied


def _add_user(user: dict[str, Any], path_of: Callable[[str], Path], applied: Applied) -> None:
    name = str(user["name"])
    passwd = path_of("/etc/passwd")
    entries = [line.split(":") for line in passwd.read_text().splitlines() if line.count(":") == 6]
    if any(e[0] == name for e in entries):
        uid = gid = next(int(e[2]) for e in entries if e[0] == name)
    else:
        taken = {int(e[2]) for e in entries if e[2].isdigit()}
        uid = gid = next(n for n in range(FIRST_UID, 60000) if n not in taken)
        home = f"/home/{name}"
        shell = str(user.get("shell") or "/bin/sh")
        with passwd.open("a") as handle:
            handle.write(f"{name}:x:{uid}:{gid}::{home}:{shell}\n")
        with path_of("/etc/group").open("a") as handle:
            handle.write(f"{name}:x:{gid}:\n")
        # "*", not "!": with lock_passwd there is no password either way, and sshd without PAM (the lab's)
        # refuses the key of an account whose password field starts with "!".
        for shadow, line in (("/etc/shadow", f"{name}:*:19000:0:99999:7:::\n"), ("/etc/gshadow", f"{name}:!::\n")):
            if path_of(shadow).exists():
                with path_of(shadow).open("a") as handle:
                    handle.write(line)
    groups = user.get("groups") or []
    groups = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else [str(g) for g in groups]
    if groups:
        _join_groups(path_of("/etc/group"), name, groups)
    home_dir = path_of(f"/home/{name}")
    dot_ssh = home_dir / ".ssh"
    dot_ssh.mkdir(parents=True, exist_ok=True)
    keys = [str(k).strip() for k in user.get("ssh_authorized_keys") or ()]
    (dot_ssh / "authorized_keys").write_text("".join(f"{k}\n" for k in keys))
    for path, mode in ((home_dir, 0o755), (dot_ssh, 0o700), (dot_ssh / "authorized_keys", 0o600)):
        shutil.chown(path, uid, gid)
        path.chmod(mode)
    if user.get("sudo"):
        rules = user["sudo"] if isinstance(user["sudo"], list) else [user["sudo"]]
        sudoers = path_of("/etc/sudoers.d") / "90-cloud-init-users"
        with sudoers.open("a") as handle:
            handle.write("".join(f"{name} {rule}\n" for rule in rules))
        sudoers.chmod(0o440)
    applied.log.append(f"users: {name} (uid {uid}, {len(keys)} SSH key(s){', sudo' if user.get('sudo') else ''})")


def _join_groups(group_file: Path, name: str, groups: list[str]) -> None:
    lines = group_file.read_text().splitlines()
    for index, line in enumerate(lines):
        parts = line.split(":")
        if len(parts) == 4 and parts[0] in groups:
            members = [m for m in parts[3].split(",") if m]
            if name not in members:
                parts[3] = ",".join([*members, name])
            lines[index] = ":".join(parts)
    group_file.write_text("\n".join(lines) + "\n")


def _write_file(item: Any, path_of: Callable[[str], Path], applied: Applied) -> None:
    if not isinstance(item, dict) or not item.get("path"):
        applied.errors.append(f"write_files: {item!r} has no path")
        return
    path = str(item["path"])
    try:
        target = path_of(path)
    except ValueError:
        applied.errors.append(f"write_files: {path} is outside the lab node's own directories; not written")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    content = str(item.get("content") or "")
    with target.open("a" if item.get("append") else "w") as handle:
        handle.write(content)
    if item.get("permissions"):
        target.chmod(int(str(item["permissions"]), 8))
    applied.log.append(f"write_files: {path}{' (appended)' if item.get('append') else ''}")


def status_files(applied: Applied, started: float, finished: float, datasource: str = "DataSourceVMware") -> dict:
    """cloud-init's /run/cloud-init/status.json and result.json, as its final stage leaves them."""
    errors = list(applied.errors)
    stages = {}
    for index, stage in enumerate(("init-local", "init", "modules-config", "modules-final")):
        stages[stage] = {"errors": errors if stage == "modules-final" else [], "recoverable_errors": {},
                         "start": started + index * 0.01, "finished": finished if stage == "modules-final"
                         else started + index * 0.01 + 0.005}
    status = {"v1": {"datasource": datasource, "stage": None, **stages}}
    result = {"v1": {"datasource": datasource, "errors": errors, "recoverable_errors": {}}}
    return {"status.json": json.dumps(status), "result.json": json.dumps(result)}
