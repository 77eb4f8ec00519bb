"""Pure derivations from the spec: IP plan, MTU chain, port matrix, version set."""

from nsxkube.design.ip_plan import IpPlan, Node, Pool
from nsxkube.design.model import OWNERSHIP_SCOPE, Design, Tag, analyse, derive_design, load_design
from nsxkube.design.mtu import MtuChain
from nsxkube.design.ports import Flow
from nsxkube.design.versions import VersionSet

__all__ = [
    "OWNERSHIP_SCOPE", "Design", "Flow", "IpPlan", "MtuChain", "Node", "Pool", "Tag", "VersionSet",
    "analyse", "derive_design", "load_design",
]
