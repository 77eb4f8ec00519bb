"""bootstrap: Kubernetes on the node VMs over SSH, with exactly the files `nsxkube render` writes.

Order of apply: every node still to do waits for cloud-init, gets the bundle (kubeadm/ and
scripts/) — with kubernetes.image_bundle also that archive (copied only when the node lacks the
same file) loaded into containerd — and passes the preflight and the MTU probe → the first control plane runs
bootstrap-control-plane.sh (kubeadm init with kube-vip) and hands back the join values → the
other control planes join one at a time (etcd membership changes are serial) → the workers join
in parallel → kubelet-serving CSRs of our nodes are approved and nodes labelled by role → the
admin kubeconfig is fetched to the work directory, pointed at the API endpoint.

The join values (token, CA hash, certificate key) live in memory only: they reach the join
scripts on stdin, never in a process's arguments, a log or the work directory. A node that
already joined is detected (its kubelet.conf) and left alone; a worker that fails does not stop
or undo the others, and the summary says how to retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nsxkube.design import Design, Node
from nsxkube.errors import NsxkubeError, ProviderError
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.facts import MACHINES

T = TypeVar("T")
FACTS = "bootstrap"
_OBSERVED = "bootstrap.observed"
REMOTE_BUNDLE = "/var/lib/nsxkube/bundle"
IMAGES_ARCHIVE = "images.tar"  # kubernetes.image_bundle, as copied to each node it brings up
JOIN_KEYS = ("NSXKUBE_JOIN_TOKEN", "NSXKUBE_CA_CERT_HASH", "NSXKUBE_CERTIFICATE_KEY")
# What kubeadm binds: the API server, etcd (client, peer, metrics), kubelet, controller-manager, scheduler.
CONTROL_PLANE_PORTS = (6443, 2379, 2380, 2381, 10250, 10257, 10259)
WORKER_PORTS = (10250,)
CLUSTER_LABEL = "nsxkube/cluster"
CSR_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Timeouts:
    connect: float
    short: float  # facts, uploads, kubectl
    long: float  # cloud-init, kubeadm init and join
    csr: float  # how long new nodes get to ask for their serving certificate

    @classmethod
    def of(cls, ctx: Context) -> Timeouts:
        total = ctx.options.timeout_seconds
        return cls(min(15.0, total), min(120.0, total), total, min(120.0, total))


@dataclass
class Observed:
    live: dict[str, Any]  # name → facts.LiveNode
    kubeconfig: str | None = field(default=None, repr=False)  # what <workdir>/kubeconfig should hold
    image_bundle_sha256: str | None = None  # of kubernetes.image_bundle, checked at plan time


@dataclass
class Outcome:
    """One node's fate in this run, for the summary."""

    status: str = "to do"
    seconds: float = 0.0
    failed: bool = False


def client_of(ctx: Context) -> Any:
    from nsxkube.providers.nodes.client import client_for

    def new_key(target: Any, fingerprint: str) -> None:
        ctx.reporter.warning("bootstrap", f"trusting the new host key of {target.where}: {fingerprint} "
                                          "(compare it with the VM console)")

    return ctx.client("nodes", lambda c: client_for(c.design.spec.ssh, c.options.workdir,
                                                    connect_timeout=Timeouts.of(c).connect, on_new_host_key=new_key),
                      close=lambda client: client.close())


def mtu_hint(design: Design) -> str:
    mtu = design.mtu
    return (f"NSX: the host TEP / uplink MTU must be at least {mtu.node_mtu + mtu.nsx_overhead} (node MTU "
            f"{mtu.node_mtu} + Geneve {mtu.nsx_overhead}), or lower network.node_mtu; see 'Large packets hang' in "
            "docs/troubleshooting.md of the bundle (nsxkube render)")


class BootstrapPhase:
    name = "bootstrap"
    title = "Bootstrap Kubernetes on the nodes"

    # ---- plan -------------------------------------------------------------------------------

    def plan(self, ctx: Context) -> list[Change]:
        from nsxkube.providers.nodes import facts

        design, timeouts = ctx.design, Timeouts.of(ctx)
        nodes = design.ip_plan.nodes
        # A plan of several phases: nodes whose VM the machines phase has yet to create cannot be
        # asked anything; they are planned as new, and nothing connects to them.
        vms = ctx.facts.get(MACHINES)
        pending = {n.name for n in nodes if vms is not None and n.name not in vms}
        reachable = [n for n in nodes if n.name not in pending]
        client = client_of(ctx) if reachable else None
        outputs = self._each(ctx, reachable, lambda n: self._run(client, n, "reading the node's state",
                                                                 facts.STATE_SCRIPT, timeouts.short).stdout)
        live = {n.name: facts.parse_state(n.name, outputs.get(n.name, "")) for n in nodes}
        first = design.ip_plan.control_planes[0]
        preload = design.spec.kubernetes.image_bundle is not None
        changes = [self._node_change(n, live[n.name], n is first, pending=n.name in pending, preload=preload)
                   for n in nodes]
        observed = Observed(live)
        if preload and any(c.mutating for c in changes):
            from nsxkube.images import verified_digest

            observed.image_bundle_sha256 = verified_digest(design.spec.kubernetes.image_bundle, design.node_images)
        if live[first.name].initialized:
            changes += self._cluster_changes(ctx, client, first, live)
            observed.kubeconfig = self._desired_kubeconfig(ctx, client, first)
        changes.append(self._kubeconfig_change(ctx, observed.kubeconfig))
        ctx.facts[_OBSERVED] = observed
        return changes

    @staticmethod
    def _node_change(node: Node, live: Any, first: bool, *, pending: bool = False, preload: bool = False) -> Change:
        steps = (("once its VM is up: " if pending else "") + "wait for cloud-init, preflight and MTU probe, "
                 + ("preload the image bundle, " if preload else ""))
        if first:
            if live.initialized:
                return Change("unchanged", "control-plane", node.name, "initialized")
            return Change("create", "control-plane", node.name, steps + "kubeadm init with kube-vip")
        if live.joined:
            return Change("unchanged", node.role, node.name, "already in the cluster")
        return Change("create", node.role, node.name, steps + "kubeadm join" + (
            " (one at a time)" if node.is_control_plane else " (in parallel)"))

    def _cluster_changes(self, ctx: Context, client: Any, first: Node, live: dict[str, Any]) -> list[Change]:
        from nsxkube.providers.nodes import kube

        ours = {n.name: str(n.address) for n in ctx.design.ip_plan.nodes}
        timeout = Timeouts.of(ctx).short
        changes = []
        for csr in kube.parse_csrs(self._kubectl(client, first, "listing CSRs", kube.list_csrs_script(), timeout)):
            if csr.signer == kube.SERVING_SIGNER and csr.pending:
                refusal = kube.serving_csr_refusal(csr, ours)
                if refusal is None:
                    changes.append(Change("update", "csr", csr.name, f"approve the serving certificate of "
                                                                     f"{csr.username.removeprefix('system:node:')}"))
                else:
                    ctx.reporter.warning(self.name, f"CSR {csr.name} is left pending: {refusal}")
        present = kube.parse_nodes(self._kubectl(client, first, "listing nodes", kube.list_nodes_script(), timeout))
        for kube_node in present:
            node = next((n for n in ctx.design.ip_plan.nodes if n.name == kube_node.name), None)
            if node is not None and self._missing_labels(ctx.design, node, kube_node.labels):
                changes.append(Change("update", "node", node.name, "label it by role",
                                      tuple(sorted(self._missing_labels(ctx.design, node, kube_node.labels)))))
        return changes

    @staticmethod
    def _wanted_labels(design: Design, node: Node) -> dict[str, str]:
        return {CLUSTER_LABEL: design.name, f"node-role.kubernetes.io/{node.role}": ""}

    def _missing_labels(self, design: Design, node: Node, labels: Any) -> dict[str, str]:
        return {k: v for k, v in self._wanted_labels(design, node).items() if labels.get(k) != v}

    def _desired_kubeconfig(self, ctx: Context, client: Any, first: Node) -> str:
        from nsxkube.providers.nodes import kubeconfig
        from nsxkube.providers.nodes.model import Command

        result = client.run(self._target(client, first), Command(
            "reading admin.conf", kubeconfig.READ_ADMIN_CONF, Timeouts.of(ctx).short, log_stdout=False))
        if not result.ok:
            raise ProviderError(f"cannot read {kubeconfig.ADMIN_CONF} on {first.name} ({first.address}): "
                                f"{result.last_line()}")
        return kubeconfig.render_kubeconfig(result.stdout, ctx.design.api_endpoint)

    @staticmethod
    def _kubeconfig_change(ctx: Context, desired: str | None) -> Change:
        from nsxkube.providers.nodes import kubeconfig

        path = ctx.options.workdir / "kubeconfig"
        current = kubeconfig.get_kubeconfig(path)
        detail = f"admin kubeconfig, server https://{ctx.design.api_endpoint}"
        if current is None:
            return Change("create", "kubeconfig", str(path), detail)
        if desired is None or current != desired or (path.stat().st_mode & 0o777) != 0o600:
            return Change("update", "kubeconfig", str(path), detail)
        return Change("unchanged", "kubeconfig", str(path))

    # ---- apply ------------------------------------------------------------------------------

    def apply(self, ctx: Context, changes: list[Change]) -> list[Change]:
        if _OBSERVED not in ctx.facts:
            self.plan(ctx)
        observed: Observed = ctx.facts.pop(_OBSERVED)
        client, design = client_of(ctx), ctx.design
        first = design.ip_plan.control_planes[0]
        todo = [n for n in design.ip_plan.nodes if any(c.name == n.name and c.kind in ("control-plane", "worker")
                                                       and c.mutating for c in changes)]
        outcomes = {n.name: Outcome("in the cluster") for n in design.ip_plan.nodes}
        outcomes.update({n.name: Outcome() for n in todo})
        try:
            if todo:
                self.ensure_nodes_ready(ctx, client, todo, outcomes, observed.image_bundle_sha256)
                values = self.ensure_first_control_plane(ctx, client, first, todo, outcomes)
                for node in todo:
                    if node.is_control_plane and node is not first:
                        self.ensure_joined(ctx, client, node, values, outcomes)
                workers = [n for n in todo if not n.is_control_plane and not outcomes[n.name].failed]
                self._each(ctx, workers, lambda n: self.ensure_joined(ctx, client, n, values, outcomes),
                           failures=lambda n, err: self._failed(outcomes, n, err))
            fresh = [n for n in todo if not outcomes[n.name].failed]
            self.ensure_cluster_metadata(ctx, client, first, fresh)
            self.ensure_kubeconfig(ctx, client, first, observed)
        finally:
            self._summary(ctx, client, outcomes)
        failed = sorted(name for name, o in outcomes.items() if o.failed)
        if failed:
            raise ProviderError(
                f"{len(failed)} of {len(todo)} node(s) did not join: "
                + "; ".join(f"{name}: {outcomes[name].status}" for name in failed),
                hint="the others are in the cluster; fix the cause and run apply --phase bootstrap again, after "
                     f"resetting a half-joined node (`sudo kubeadm reset -f` on {failed[0]})")
        ctx.facts[FACTS] = {"kubeconfig": ctx.options.workdir / "kubeconfig"}
        return [c for c in changes if c.mutating]

    def ensure_nodes_ready(self, ctx: Context, client: Any, todo: Sequence[Node], outcomes: dict[str, Outcome],
                           bundle_sha256: str | None = None) -> None:
        """cloud-init finished, bundle uploaded (and images preloaded), preflight and MTU probe passed;
        workers may fail alone."""
        def ready(node: Node) -> None:
            start = time.monotonic()
            self._wait_for_cloud_init(ctx, client, node)
            self._upload_bundle(ctx, client, node)
            if bundle_sha256:
                self._preload_images(ctx, client, node, bundle_sha256)
            self._preflight(ctx, client, node)
            outcomes[node.name].seconds += time.monotonic() - start

        errors: dict[str, NsxkubeError] = {}
        self._each(ctx, todo, ready, failures=lambda n, err: errors.setdefault(n.name, err))
        for node in todo:
            if node.name in errors:
                self._failed(outcomes, node, errors[node.name])
        stopping = [n for n in todo if n.is_control_plane and n.name in errors]
        if stopping:
            raise errors[stopping[0].name]
        probing = [n for n in todo if n.name not in errors]
        self._each(ctx, probing, lambda n: self._probe_mtu(ctx, client, n))

    def _wait_for_cloud_init(self, ctx: Context, client: Any, node: Node) -> None:
        from nsxkube.providers.nodes import facts

        ctx.reporter.progress(self.name, node.name, 0, 4, "waiting for cloud-init")
        result = self._run(client, node, "waiting for cloud-init", facts.CLOUD_INIT_WAIT, Timeouts.of(ctx).long,
                           check=False)
        status = facts.cloud_init_status(result.stdout)
        if result.exit_status == 2 or status == "degraded done":
            ctx.reporter.warning(self.name, f"{node.name}: cloud-init finished with recoverable errors "
                                            f"(cloud-init status --long on the node)")
        elif not result.ok:
            tail = self._run(client, node, "reading the cloud-init log", facts.CLOUD_INIT_TAIL,
                             Timeouts.of(ctx).short, check=False).stdout.rstrip().splitlines()
            for line in tail:
                ctx.reporter.step(self.name, f"{node.name} | {line}")
            last = " | ".join(line.strip() for line in tail[-3:] if line.strip()) or "the log is empty"
            raise ProviderError(f"cloud-init failed on {node.name} ({node.address}), status {status}: {last}",
                                hint=f"the last {len(tail)} lines of {facts.CLOUD_INIT_LOG} are above and in "
                                     f"logs/{node.name}.log; fix the template or cluster.yaml and recreate the VM")
        ctx.reporter.progress(self.name, node.name, 1, 4, "cloud-init done")

    def _upload_bundle(self, ctx: Context, client: Any, node: Node) -> None:
        from nsxkube.render.keepalived import render_keepalived
        from nsxkube.render.kubeadm import render_kubeadm
        from nsxkube.render.scripts import render_scripts

        files = {f.path: (f.content, f.mode) for f in [*render_kubeadm(ctx.design), *render_keepalived(ctx.design),
                                                        *render_scripts(ctx.design)]}
        client.create_files(self._target(client, node), REMOTE_BUNDLE, files, Timeouts.of(ctx).short)

    def _preload_images(self, ctx: Context, client: Any, node: Node, sha256: str) -> None:
        """Copies the bundle to the node unless the same file is there already, then loads it into
        containerd with the rendered script, which checks that every image is listed."""
        from nsxkube.images import PRELOAD_SCRIPT

        bundle = ctx.design.spec.kubernetes.image_bundle
        assert bundle is not None
        remote, timeouts, target = f"{REMOTE_BUNDLE}/{IMAGES_ARCHIVE}", Timeouts.of(ctx), self._target(client, node)
        present = self._run(client, node, "checking the image bundle on the node",
                            f"sha256sum {remote} 2>/dev/null || true", timeouts.short).stdout.split()
        if present[:1] != [sha256]:
            size = bundle.expanduser().stat().st_size
            ctx.reporter.progress(self.name, node.name, 1, 4, f"copying {bundle.name} ({size / 2**20:.0f} MiB)")
            client.upload_file(target, bundle.expanduser(), remote, timeouts.long)
        result = self._run(client, node, "preloading images", f"bash {REMOTE_BUNDLE}/{PRELOAD_SCRIPT} {remote}",
                           timeouts.long, check=False)
        if not result.ok:
            missing = [line.removeprefix("missing ") for line in result.stdout.splitlines() if line.startswith("missing ")]
            what = f"containerd lacks {', '.join(missing)} after the import" if missing else result.last_line()
            raise ProviderError(f"preloading images on {node.name} ({node.address}) failed: {what}",
                                hint=f"see logs/{node.name}.log; `nsxkube check` lists the images the bundle needs")
        ctx.reporter.progress(self.name, node.name, 1, 4, f"{len(ctx.design.node_images)} images preloaded")

    def _preflight(self, ctx: Context, client: Any, node: Node) -> None:
        from nsxkube.providers.nodes import facts

        result = self._run(client, node, "preflight", facts.PREFLIGHT_SCRIPT, Timeouts.of(ctx).short)
        problems = facts.preflight_problems(result.stdout,
                                            CONTROL_PLANE_PORTS if node.is_control_plane else WORKER_PORTS)
        if problems:
            more = f" (and {len(problems) - 1} more in logs/{node.name}.log)" if len(problems) > 1 else ""
            client.log_of(self._target(client, node)).write("preflight problems:\n" + "\n".join(problems))
            raise ProviderError(f"{node.name} ({node.address}) is not ready for kubeadm: {problems[0]}{more}",
                                hint="the node template (prepare-vm.sh) and cloud-init set these up")
        ctx.reporter.progress(self.name, node.name, 2, 4, "preflight passed")

    def _probe_mtu(self, ctx: Context, client: Any, node: Node) -> None:
        result = self._run(client, node, "MTU probe", f"bash {REMOTE_BUNDLE}/scripts/check-mtu.sh",
                           Timeouts.of(ctx).short, check=False)
        if not result.ok:
            lines = [line for line in result.stdout.splitlines() if line.startswith("FAIL")] or [result.last_line()]
            raise ProviderError(f"MTU probe from {node.name} ({node.address}) failed: {lines[0].removeprefix('FAIL').strip()}",
                                hint=mtu_hint(ctx.design))
        ctx.reporter.progress(self.name, node.name, 3, 4, f"MTU {ctx.design.mtu.node_mtu} holds")

    def ensure_first_control_plane(self, ctx: Context, client: Any, first: Node, todo: Sequence[Node],
                                   outcomes: dict[str, Outcome]) -> dict[str, str]:
        """kubeadm init when needed, and the join values when anyone is to join (memory only)."""
        from nsxkube.providers.nodes import facts
        from nsxkube.providers.nodes.model import Command

        initializing = first in todo
        if not initializing and not [n for n in todo if n is not first]:
            return {}
        start = time.monotonic()
        script = f"{REMOTE_BUNDLE}/scripts/bootstrap-control-plane.sh" + ("" if initializing else " --print-join")
        label = "kubeadm init" if initializing else "minting join values"
        ctx.reporter.step(self.name, f"{first.name}: {label}")
        result = client.run(self._target(client, first), Command(label, script, Timeouts.of(ctx).long,
                                                                 log_stdout=False))
        values = {k: v for k, v in facts.key_values(result.stdout).items() if k in JOIN_KEYS}
        client.add_secrets(values.values())
        if not result.ok or len(values) != len(JOIN_KEYS):
            outcomes[first.name] = Outcome(f"{label} failed: {result.last_line()}", failed=True)
            raise ProviderError(f"{label} on {first.name} ({first.address}) failed: {result.last_line()}",
                                hint=f"see logs/{first.name}.log; the script resumes when run again (after a "
                                     "half-finished init it asks for kubeadm reset -f)")
        if initializing:
            outcomes[first.name].status = "initialized"
            outcomes[first.name].seconds += time.monotonic() - start
        return values

    def ensure_joined(self, ctx: Context, client: Any, node: Node, values: dict[str, str],
                      outcomes: dict[str, Outcome]) -> None:
        from nsxkube.providers.nodes import commands
        from nsxkube.providers.nodes.model import Command

        keys = JOIN_KEYS if node.is_control_plane else JOIN_KEYS[:2]  # workers never see the certificate key
        secrets = [values[k] for k in keys]
        script = commands.with_secret_env(keys, commands.env_prefix({"NSXKUBE_NODE_NAME": node.name})
                                          + f"{REMOTE_BUNDLE}/scripts/join-{node.role}.sh")
        start = time.monotonic()
        ctx.reporter.progress(self.name, node.name, 3, 4, "joining")
        result = client.run(self._target(client, node), Command(
            f"kubeadm join as {node.role}", script, Timeouts.of(ctx).long, stdin=commands.secret_stdin(secrets),
            secrets=tuple(secrets)))
        outcomes[node.name].seconds += time.monotonic() - start
        if not result.ok:
            outcomes[node.name] = Outcome(f"join failed: {result.last_line()}", outcomes[node.name].seconds, True)
            raise ProviderError(f"kubeadm join of {node.name} ({node.address}) failed: {result.last_line()}",
                                hint=f"see logs/{node.name}.log")
        outcomes[node.name].status = "joined"
        ctx.reporter.progress(self.name, node.name, 4, 4, "joined")

    def ensure_cluster_metadata(self, ctx: Context, client: Any, first: Node, fresh: Sequence[Node]) -> None:
        """Approves our nodes' kubelet-serving CSRs and labels them, waiting for the new nodes' requests."""
        from nsxkube.providers.nodes import kube

        design, timeout = ctx.design, Timeouts.of(ctx)
        ours = {n.name: str(n.address) for n in design.ip_plan.nodes}
        waiting = {n.name for n in fresh}
        warned: set[str] = set()
        deadline = time.monotonic() + timeout.csr
        while True:
            csrs = kube.parse_csrs(self._kubectl(client, first, "listing CSRs", kube.list_csrs_script(), timeout.short))
            serving = [c for c in csrs if c.signer == kube.SERVING_SIGNER]
            approve = [c for c in serving if c.pending and kube.serving_csr_refusal(c, ours) is None]
            for csr in (c for c in serving if c.pending and c.name not in warned):
                refusal = kube.serving_csr_refusal(csr, ours)
                if refusal is not None:
                    warned.add(csr.name)
                    ctx.reporter.warning(self.name, f"CSR {csr.name} is left pending: {refusal}")
            if approve:
                self._kubectl(client, first, "approving serving CSRs",
                              kube.approve_csrs_script(c.name for c in approve), timeout.short)
                ctx.reporter.step(self.name, "approved the kubelet-serving certificates of "
                                  + ", ".join(sorted({c.username.removeprefix('system:node:') for c in approve})))
            present = kube.parse_nodes(self._kubectl(client, first, "listing nodes", kube.list_nodes_script(),
                                                     timeout.short))
            unlabelled: dict[tuple[tuple[str, str], ...], list[str]] = {}
            for kube_node in (k for k in present if k.name in ours):
                node = next(n for n in design.ip_plan.nodes if n.name == kube_node.name)
                missing = self._missing_labels(design, node, kube_node.labels)
                if missing:
                    unlabelled.setdefault(tuple(sorted(missing.items())), []).append(node.name)
            for labels, names in unlabelled.items():
                self._kubectl(client, first, f"labelling {', '.join(names)}",
                              kube.label_nodes_script(names, dict(labels)), timeout.short)
            asked = {c.username.removeprefix("system:node:") for c in serving if c.condition in ("Approved", "Pending")}
            waiting -= asked & {k.name for k in present}
            if not waiting:
                return
            if time.monotonic() > deadline:
                ctx.reporter.warning(self.name, f"no kubelet-serving CSR from {', '.join(sorted(waiting))} within "
                                                f"{timeout.csr:.0f} s: approve it later (kubectl certificate approve)")
                return
            time.sleep(CSR_POLL_SECONDS)

    def ensure_kubeconfig(self, ctx: Context, client: Any, first: Node, observed: Observed) -> None:
        from nsxkube.providers.nodes import kubeconfig

        desired = self._desired_kubeconfig(ctx, client, first)
        path = ctx.options.workdir / "kubeconfig"
        if kubeconfig.get_kubeconfig(path) != desired or (path.stat().st_mode & 0o777) != 0o600:
            kubeconfig.create_kubeconfig(path, desired)
            ctx.reporter.step(self.name, f"kubeconfig written to {path} (server https://{ctx.design.api_endpoint})")

    # ---- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _target(client: Any, node: Node) -> Any:
        return client.target(node.name, str(node.address))

    def _run(self, client: Any, node: Node, label: str, script: str, timeout: float, *, check: bool = True) -> Any:
        from nsxkube.providers.nodes.model import Command

        result = client.run(self._target(client, node), Command(label, script, timeout))
        if check and not result.ok:
            raise ProviderError(f"{label} on {node.name} ({node.address}) failed: {result.last_line()}",
                                hint=f"see logs/{node.name}.log")
        return result

    def _kubectl(self, client: Any, first: Node, label: str, script: str, timeout: float) -> str:
        return self._run(client, first, label, script, timeout).stdout

    @staticmethod
    def _failed(outcomes: dict[str, Outcome], node: Node, err: BaseException) -> None:
        text = err.one_line() if isinstance(err, NsxkubeError) else str(err)
        outcomes[node.name] = Outcome(f"FAILED: {text}", outcomes[node.name].seconds, True)

    def _summary(self, ctx: Context, client: Any, outcomes: dict[str, Outcome]) -> None:
        for node in ctx.design.ip_plan.nodes:
            outcome = outcomes[node.name]
            took = f" in {outcome.seconds:.1f} s" if outcome.seconds else ""
            log = client.log_of(self._target(client, node)).path
            ctx.reporter.step(self.name, f"{node.name} ({node.address}): {outcome.status}{took}; log {log}")

    def _each(self, ctx: Context, nodes: Iterable[Node], work: Callable[[Node], T],
              failures: Callable[[Node, NsxkubeError], None] | None = None) -> dict[str, T]:
        """``work`` on every node, at most ``concurrency`` at once. Without ``failures`` the first
        error (in node order) is raised once all have finished; with it, each error is handed over."""
        nodes = list(nodes)
        if not nodes:
            return {}
        done: dict[str, T] = {}
        errors: dict[str, NsxkubeError] = {}
        with ThreadPoolExecutor(max_workers=max(1, ctx.options.concurrency), thread_name_prefix="nodes") as pool:
            futures = {n.name: pool.submit(work, n) for n in nodes}
            for node in nodes:
                try:
                    done[node.name] = futures[node.name].result()
                except NsxkubeError as err:
                    errors[node.name] = err
                    if failures is not None:
                        failures(node, err)
                        ctx.reporter.warning(self.name, f"{node.name}: {err.one_line()}")
        if errors and failures is None:
            first = next(n for n in nodes if n.name in errors)
            if len(errors) == 1:
                raise errors[first.name]
            raise ProviderError(f"{len(errors)} nodes failed: " + "; ".join(e.message for e in errors.values()),
                                hint=errors[first.name].hint)
        return done


PHASE = BootstrapPhase()
