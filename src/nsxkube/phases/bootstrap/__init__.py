"""bootstrap: Kubernetes on the node VMs over SSH, with exactly the files `nsxkube render` writes.

Order of apply: every node still to do waits for cloud-init, gets the bundle (kubeadm/ and
scripts/) — with kubernetes.image_bundle also that archive (copied only when the node lacks the
same file) loaded into containerd — and passes the preflight and the MTU probe → the first control
plane runs bootstrap-control-plane.sh (kubeadm init with kube-vip or keepalived) and hands back the join values
→ the other control planes join one at a time (etcd membership changes are serial) → the workers
join in parallel → kubelet-serving CSRs of our nodes are approved and nodes labelled by role → the
admin kubeconfig is fetched to the work directory, pointed at the API endpoint.

A node that already joined is detected (its kubelet.conf) and left alone; a worker that fails
does not stop or undo the others, and the summary says how to retry. The steps live beside this
file: prepare (before kubeadm), kubeadm (init, joins), metadata (CSRs, labels, kubeconfig).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from nsxkube.design import Design, Node
from nsxkube.errors import NsxkubeError, ProviderError
from nsxkube.phases.bootstrap import kubeadm, metadata, prepare
from nsxkube.phases.bootstrap.kubeadm import NodeProgress
from nsxkube.phases.bootstrap.plan import (
    BRIDGE_CNI,
    CONTROL_PLANE_PODS,
    NODE_KINDS,
    BootstrapSnapshot,
    LocalKubeconfig,
    plan_bootstrap,
)
from nsxkube.phases.bootstrap.remote import PHASE_NAME, Nodes
from nsxkube.pipeline.change import Change, mutating
from nsxkube.pipeline.context import Context
from nsxkube.pipeline.parallel import each
from nsxkube.providers.nodes.probes import LiveNode

__all__ = ["PHASE", "BootstrapSnapshot", "plan_bootstrap"]

BUSY_POLL_SECONDS = 3.0

READY_SECONDS = 180.0  # a node turns Ready seconds after its CNI configuration is written; kubelet retries every 5 s


class BootstrapPhase:
    name = PHASE_NAME
    title = "Bootstrap Kubernetes on the nodes"
    conflict_hint = "nsxkube never joins or changes a node that is not this cluster's"

    def observe(self, ctx: Context) -> BootstrapSnapshot:
        from nsxkube.providers.nodes import kube, probes

        design = ctx.design
        all_nodes = design.ip_plan.nodes
        # A plan of several phases: nodes whose VM the machines phase has yet to create cannot be
        # asked anything; they are planned as new, and nothing connects to them.
        vms = ctx.handoff.node_vms
        pending = frozenset(n.name for n in all_nodes if vms is not None and n.name not in vms)
        reachable = [n for n in all_nodes if n.name not in pending]
        nodes = Nodes(ctx) if reachable else None
        states = {} if nodes is None else self._states(ctx, nodes, reachable)
        snapshot = BootstrapSnapshot({n.name: states.get(n.name, probes.LiveNode(n.name, False, False))
                                      for n in all_nodes}, pending, _local_kubeconfig(ctx))
        first = design.ip_plan.control_planes[0]
        if nodes is not None and snapshot.nodes[first.name].initialized:
            self._check_init(nodes, first, snapshot)
        if nodes is not None and snapshot.nodes[first.name].initialized:
            snapshot.csrs = kube.parse_csrs(nodes.kubectl(first, "listing CSRs", kube.list_csrs_script()))
            ours = {n.name: str(n.address) for n in all_nodes}
            for name, refusal in metadata.refused_csrs(snapshot.csrs, ours):
                ctx.reporter.warning(self.name, f"CSR {name} is left pending: {refusal}")
            snapshot.kube_nodes = kube.parse_nodes(nodes.kubectl(first, "listing nodes", kube.list_nodes_script()))
            snapshot.desired_kubeconfig = metadata.read_desired_kubeconfig(nodes, first)
            snapshot.control_plane_ready = kube.ready_components(
                nodes.kubectl(first, "listing control-plane Pods", kube.list_control_plane_pods_script()))
        bundle = design.spec.kubernetes.image_bundle
        if bundle is not None and not all(s.joined or s.initialized for s in snapshot.nodes.values()):
            from nsxkube.images import verified_digest

            snapshot.image_bundle_sha256 = verified_digest(bundle, design.node_images)
        return snapshot

    def _states(self, ctx: Context, nodes: Nodes, reachable: Sequence[Node]) -> dict[str, LiveNode]:
        """Each node's state, once no kubeadm of an earlier (killed) run is at work on any of them:
        kubeadm outlives the SSH session that started it, and its result is what counts."""
        from nsxkube.providers.nodes import probes

        def read(group: Sequence[Node]) -> dict[str, LiveNode]:
            outputs = self._on_each(ctx, group, lambda n: nodes.run(n, "reading the node's state",
                                                                     probes.STATE_SCRIPT).stdout)
            return {n.name: probes.parse_state(n.name, str(outputs.get(n.name, ""))) for n in group}

        states = read(reachable)
        deadline = time.monotonic() + nodes.timeouts.long
        busy = [n for n in reachable if states[n.name].kubeadm_running]
        if busy:
            ctx.reporter.step(self.name, f"waiting for the kubeadm an earlier run started on "
                                         f"{', '.join(n.name for n in busy)} to finish")
        while busy:
            if time.monotonic() > deadline:
                raise ProviderError(f"kubeadm is still running on {busy[0].name} ({busy[0].address}) after "
                                    f"{nodes.timeouts.long:.0f} s", hint="look at it (ps -ef | grep kubeadm) and "
                                    "stop it, then run apply again")
            time.sleep(BUSY_POLL_SECONDS)
            states.update(read(busy))
            busy = [n for n in busy if states[n.name].kubeadm_running]
        return states

    def _check_init(self, nodes: Nodes, first: Node, snapshot: BootstrapSnapshot) -> None:
        """admin.conf on the first control plane: the init finished only when the API answers and
        holds kubeadm's configuration. Otherwise, and while no other node has joined, the init is
        redone after `kubeadm reset -f`; with joined nodes that would lose the cluster: an error."""
        import dataclasses

        from nsxkube.providers.nodes import probes

        result = nodes.run(first, "checking that kubeadm init finished", probes.INIT_STATE_SCRIPT,
                           nodes.timeouts.short + 30)
        finished = probes.init_finished(result.stdout)
        if finished:
            return
        joined = sorted(n for n, live in snapshot.nodes.items() if live.joined and n != first.name)
        what = "its API does not answer" if finished is None else "kubeadm init stopped before it finished"
        if joined:
            raise ProviderError(f"{first.name} ({first.address}): {what}, and {', '.join(joined)} joined already",
                                hint="repair the control plane by hand (journalctl -u kubelet; crictl ps -a): "
                                     "resetting it would lose the cluster")
        nodes.ctx.reporter.warning(self.name, f"{first.name}: {what}; it is reset and initialized again")
        snapshot.nodes[first.name] = dataclasses.replace(snapshot.nodes[first.name], initialized=False, half_done=True)

    def plan(self, design: Design, snapshot: BootstrapSnapshot) -> list[Change]:
        return plan_bootstrap(design, snapshot)

    def apply(self, ctx: Context, snapshot: BootstrapSnapshot, changes: list[Change]) -> list[Change]:
        nodes, design = Nodes(ctx), ctx.design
        first = design.ip_plan.control_planes[0]
        todo: list[Node] = [c.subject for c in mutating(changes, *NODE_KINDS)]
        progress = {n.name: NodeProgress("in the cluster") for n in design.ip_plan.nodes}
        progress.update({n.name: NodeProgress() for n in todo})
        try:
            if todo:
                resets = {name for name, live in snapshot.nodes.items() if live.needs_reset}
                self._get_ready(ctx, nodes, todo, progress, snapshot.image_bundle_sha256, resets)
                values = kubeadm.init_or_mint(nodes, first, todo, progress)
                for node in todo:
                    if node.is_control_plane and node is not first:
                        kubeadm.join(nodes, node, values, progress)
                workers = [n for n in todo if not n.is_control_plane and not progress[n.name].failed]
                self._on_each(ctx, workers, lambda n: kubeadm.join(nodes, n, values, progress),
                              failures=lambda n, err: _failed(progress, n, err))
            cni: list[Node] = [c.subject for c in mutating(changes, BRIDGE_CNI)]
            self._on_each(ctx, [n for n in cni if not progress[n.name].failed],
                          lambda n: kubeadm.install_bridge_cni(nodes, n),
                          failures=lambda n, err: _failed(progress, n, err))
            metadata.approve_and_label(nodes, first, [n for n in todo if not progress[n.name].failed])
            if cni:
                metadata.wait_until_ready(nodes, first, [n.name for n in cni if not progress[n.name].failed],
                                          READY_SECONDS)
            if todo or mutating(changes, CONTROL_PLANE_PODS):  # also after a killed run's joins
                metadata.wait_for_control_plane(nodes, first, [n.name for n in design.ip_plan.control_planes],
                                                READY_SECONDS)
            metadata.ensure_kubeconfig(nodes, first)
        finally:
            self._summary(ctx, nodes, progress)
        failed = sorted(name for name, p in progress.items() if p.failed)
        if failed:
            raise ProviderError(
                f"{len(failed)} of {len(todo)} node(s) did not join: "
                + "; ".join(f"{name}: {progress[name].status}" for name in failed),
                hint="the others are in the cluster; fix the cause and run apply --phase bootstrap again, after "
                     f"resetting a half-joined node (`sudo kubeadm reset -f` on {failed[0]})")
        ctx.handoff.kubeconfig = ctx.options.workdir / "kubeconfig"
        return mutating(changes)

    def _get_ready(self, ctx: Context, nodes: Nodes, todo: Sequence[Node], progress: dict[str, NodeProgress],
                   image_bundle_sha256: str | None, resets: set[str]) -> None:
        """cloud-init finished, bundle uploaded (and images preloaded), what a stopped kubeadm left
        reset, preflight and MTU probe passed. A worker may fail alone; a control plane that fails
        stops the phase."""
        def ready(node: Node) -> None:
            start = time.monotonic()
            prepare.get_ready(nodes, node, image_bundle_sha256, reset=node.name in resets)
            progress[node.name].seconds += time.monotonic() - start

        errors: dict[str, NsxkubeError] = {}
        self._on_each(ctx, todo, ready, failures=lambda n, err: errors.setdefault(n.name, err))
        for node in todo:
            if node.name in errors:
                _failed(progress, node, errors[node.name])
        stopping = [n for n in todo if n.is_control_plane and n.name in errors]
        if stopping:
            raise errors[stopping[0].name]
        self._on_each(ctx, [n for n in todo if n.name not in errors], lambda n: prepare.probe_mtu(nodes, n))

    def _summary(self, ctx: Context, nodes: Nodes, progress: dict[str, NodeProgress]) -> None:
        for node in ctx.design.ip_plan.nodes:
            p = progress[node.name]
            took = f" in {p.seconds:.1f} s" if p.seconds else ""
            ctx.reporter.step(self.name, f"{node.name} ({node.address}): {p.status}{took}; log {nodes.log_path(node)}")

    def _on_each(self, ctx: Context, nodes: Sequence[Node], work: Callable[[Node], object],
                 failures: Callable[[Node, NsxkubeError], None] | None = None) -> dict[str, object]:
        """``work`` on every node in parallel. Without ``failures`` the first error (in node order) is
        raised once all have finished; with it, each error is handed over and warned about."""
        outcomes = each(nodes, work, key=lambda n: n.name, concurrency=ctx.options.concurrency, name="nodes")
        errors = {}
        for node in nodes:
            err = outcomes.failed.get(node.name)
            if err is None:
                continue
            if not isinstance(err, NsxkubeError):
                raise err
            errors[node.name] = err
            if failures is not None:
                failures(node, err)
                ctx.reporter.warning(self.name, f"{node.name}: {err.one_line()}")
        if errors and failures is None:
            first = next(iter(errors.values()))
            if len(errors) == 1:
                raise first
            raise ProviderError(f"{len(errors)} nodes failed: " + "; ".join(e.message for e in errors.values()),
                                hint=first.hint)
        return {str(k): v for k, v in outcomes.done.items()}


def _local_kubeconfig(ctx: Context) -> LocalKubeconfig:
    from nsxkube.providers.nodes import kubeconfig

    path = ctx.options.workdir / "kubeconfig"
    text = kubeconfig.get_kubeconfig(path)
    return LocalKubeconfig(str(path), text, path.stat().st_mode & 0o777 if text is not None else 0)


def _failed(progress: dict[str, NodeProgress], node: Node, err: BaseException) -> None:
    text = err.one_line() if isinstance(err, NsxkubeError) else str(err)
    progress[node.name] = NodeProgress(f"FAILED: {text}", progress[node.name].seconds, True)


PHASE = BootstrapPhase()
