"""The MTU chain: NSX TEP (Geneve underlay) → node NIC → pod overlay, and the probe sizes."""

from __future__ import annotations

from dataclasses import dataclass

from nsxkube.spec.model import ClusterSpec
from nsxkube.spec.problems import Problem

# NSX adds its Geneve header outside the guest; VMware asks for TEP MTU ≥ guest MTU + 100.
NSX_OVERLAY_OVERHEAD = 100
# Cilium's VXLAN and Geneve encapsulation over IPv4 (outer IP 20 + UDP 8 + header 8 + inner Ethernet 14).
POD_TUNNEL_OVERHEAD = {"vxlan": 50, "geneve": 50}
TUNNEL_PORT = {"vxlan": 8472, "geneve": 6081}
# An ICMP echo carries 20 bytes of IPv4 and 8 of ICMP around its payload.
ICMP_HEADERS = 28


@dataclass(frozen=True)
class MtuChain:
    tep_mtu: int
    nsx_overhead: int
    node_mtu_max: int
    node_mtu: int
    tunnel: str
    tunnel_port: int
    tunnel_overhead: int
    pod_mtu: int

    @property
    def probe_payload(self) -> int:
        """`ping -M do -s N`: the largest payload that must pass between nodes."""
        return self.node_mtu - ICMP_HEADERS

    @property
    def probe_payload_over(self) -> int:
        """One byte more: must fail, or something on the path fragments or lies about its MTU."""
        return self.probe_payload + 1


def derive_mtu_chain(spec: ClusterSpec) -> tuple[MtuChain, list[Problem]]:
    tunnel = spec.addons.cilium.tunnel
    tep = spec.nsx.tep_mtu
    node = spec.network.node_mtu
    chain = MtuChain(
        tep_mtu=tep,
        nsx_overhead=NSX_OVERLAY_OVERHEAD,
        node_mtu_max=tep - NSX_OVERLAY_OVERHEAD,
        node_mtu=node,
        tunnel=tunnel,
        tunnel_port=TUNNEL_PORT[tunnel],
        tunnel_overhead=POD_TUNNEL_OVERHEAD[tunnel],
        pod_mtu=node - POD_TUNNEL_OVERHEAD[tunnel],
    )
    problems: list[Problem] = []
    if node > chain.node_mtu_max:
        problems.append(
            Problem(
                "network.node_mtu",
                f"node MTU {node} does not fit the NSX TEP MTU {tep} (Geneve needs {NSX_OVERLAY_OVERHEAD} bytes)",
                hint=f"use network.node_mtu ≤ {chain.node_mtu_max}, or raise the TEP MTU (nsx.tep_mtu) in NSX first",
            )
        )
    if tep < 1600:
        problems.append(
            Problem("nsx.tep_mtu", f"TEP MTU {tep} is below the 1600 NSX requires for its overlay",
                    severity="warning", hint="1700 is VMware's recommendation")
        )
    if tunnel == "vxlan":
        problems.append(
            Problem("addons.cilium.tunnel", "VXLAN on UDP 8472 is silently dropped on some ESXi/NSX hosts",
                    severity="warning", hint="prefer geneve, or turn off tx-udp tunnel offload on the node NICs")
        )
    return chain, problems
