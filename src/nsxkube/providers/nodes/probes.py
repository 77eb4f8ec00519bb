"""What a node reports, read by probes: its state towards the cluster, cloud-init, and the preflight.

Each probe is a read-only command and a pure parser, so the parsing is tested from tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

KUBERNETES_DIR = "/etc/kubernetes"
CLOUD_INIT_LOG = "/var/log/cloud-init-output.log"

# ---- the node's state towards the cluster ---------------------------------------------------------

CNI_DIR = "/etc/cni/net.d"
# kubeadm-running: a kubeadm of this machine (same mount namespace: on a VM that is every process;
# where nodes share a kernel, as the lab's do, only the node's own) is at work, e.g. the init or join
# of a run that was killed, which kubeadm outlives. started: kubeadm has written something here.
STATE_SCRIPT = f"""for f in admin.conf kubelet.conf; do
  if [ -f {KUBERNETES_DIR}/$f ]; then echo "$f=yes"; else echo "$f=no"; fi
done
set -- {CNI_DIR}/*.conf*
if [ -e "$1" ]; then echo "cni=yes"; else echo "cni=no"; fi
own=$(readlink /proc/self/ns/mnt)
for pid in $(pgrep -x kubeadm 2>/dev/null); do
  if [ "$(readlink /proc/$pid/ns/mnt 2>/dev/null)" = "$own" ]; then echo "kubeadm-running=yes"; break; fi
done
set -- {KUBERNETES_DIR}/manifests/*.yaml
if [ -e "$1" ] || [ -f {KUBERNETES_DIR}/pki/ca.crt ]; then echo "started=yes"; else echo "started=no"; fi"""

# On the first control plane, when admin.conf is there: does the API answer (the kubelet may be
# starting the control plane again), and did kubeadm init get as far as uploading its configuration?
INIT_STATE_SCRIPT = f"""for i in $(seq 1 24); do
  if kubectl --kubeconfig {KUBERNETES_DIR}/admin.conf get --raw=/readyz --request-timeout=5s >/dev/null 2>&1; then
    echo "api=yes"
    if kubectl --kubeconfig {KUBERNETES_DIR}/admin.conf -n kube-system get configmap kubeadm-config \
        --request-timeout=10s >/dev/null 2>&1; then echo "kubeadm-config=yes"; else echo "kubeadm-config=no"; fi
    exit 0
  fi
  sleep 5
done
echo api=no"""


@dataclass(frozen=True)
class LiveNode:
    """``initialized``: admin.conf is there (kubeadm init ran); ``joined``: kubelet.conf is there;
    ``cni``: a CNI configuration is in /etc/cni/net.d (the pod network can start);
    ``kubeadm_running``: a kubeadm is at work on the node; ``started``: kubeadm wrote certificates or
    static Pods here — with neither admin.conf nor kubelet.conf, an init or join stopped half-way;
    ``half_done``: the first control plane's init stopped before it finished (INIT_STATE_SCRIPT)."""

    name: str
    initialized: bool
    joined: bool
    cni: bool = False
    kubeadm_running: bool = False
    started: bool = False
    half_done: bool = False

    @property
    def needs_reset(self) -> bool:
        """kubeadm left files of an init or join that did not finish: `kubeadm reset -f` before another."""
        return self.half_done or (self.started and not self.initialized and not self.joined)


def parse_state(name: str, output: str) -> LiveNode:
    values = key_values(output)
    return LiveNode(name, values.get("admin.conf") == "yes", values.get("kubelet.conf") == "yes",
                    values.get("cni") == "yes", values.get("kubeadm-running") == "yes", values.get("started") == "yes")


def init_finished(output: str) -> bool | None:
    """From INIT_STATE_SCRIPT: True (API answers, kubeadm-config uploaded), False (API answers, no
    kubeadm-config: init stopped half-way), None (the API does not answer)."""
    values = key_values(output)
    if values.get("api") != "yes":
        return None
    return values.get("kubeadm-config") == "yes"


def key_values(output: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


# ---- cloud-init -------------------------------------------------------------------------------

CLOUD_INIT_WAIT = "cloud-init status --wait"
CLOUD_INIT_TAIL_LINES = 15
CLOUD_INIT_TAIL = f"tail -n {CLOUD_INIT_TAIL_LINES} {CLOUD_INIT_LOG}"


def cloud_init_status(output: str) -> str:
    """``status: done`` (after the progress dots of --wait) → ``done``."""
    for line in reversed(output.splitlines()):
        if line.strip().startswith("status:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# ---- preflight ------------------------------------------------------------------------------

PREFLIGHT_SCRIPT = r"""echo "swap=$(swapon --noheadings --show=NAME 2>/dev/null | tr '\n' ' ')"
if grep -qw overlay /proc/filesystems; then echo overlay=yes; else echo overlay=no; fi
echo "bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo missing)"
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
echo "containerd=$(systemctl is-active containerd 2>/dev/null)"
echo "ntp-synchronized=$(timedatectl show -p NTPSynchronized --value 2>/dev/null)"
echo "listening=$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ')"
"""


def preflight_problems(output: str, ports: Iterable[int], skip: Iterable[str] = ()) -> list[str]:
    """Everything that would make kubeadm fail on this node, each with its fix; [] when ready.
    ``skip``: checks a sandbox declares it cannot pass (``clock``)."""
    facts = key_values(output)
    problems = []
    if facts.get("swap"):
        problems.append(f"swap is on ({facts['swap']}): swapoff -a and remove it from /etc/fstab")
    if facts.get("overlay") != "yes":
        problems.append("the overlay filesystem is missing: modprobe overlay (and list it in /etc/modules-load.d)")
    if facts.get("bridge-nf-call-iptables") == "missing":
        problems.append("br_netfilter is not loaded: modprobe br_netfilter (and list it in /etc/modules-load.d)")
    elif facts.get("bridge-nf-call-iptables") != "1":
        problems.append("net.bridge.bridge-nf-call-iptables is not 1: set it in /etc/sysctl.d and sysctl --system")
    if facts.get("ip_forward") != "1":
        problems.append("net.ipv4.ip_forward is not 1: set it in /etc/sysctl.d and sysctl --system")
    if facts.get("containerd") != "active":
        problems.append(f"containerd is not running ({facts.get('containerd') or 'no status'}): "
                        "systemctl enable --now containerd")
    if facts.get("ntp-synchronized") != "yes" and "clock" not in skip:
        problems.append("the clock is not synchronized (timedatectl): check network.ntp_servers and UDP 123")
    listening = {int(p) for p in facts.get("listening", "").split() if p.isdigit()}
    busy = sorted(set(ports) & listening)
    if busy:
        problems.append(f"port(s) {', '.join(map(str, busy))} already in use: stop what listens there (ss -ltnp)")
    return problems
