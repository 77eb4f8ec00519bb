"""cluster.yaml: the model, its loading, and the findings it can produce."""

from nsxkube.spec.load import load_spec, parse_spec
from nsxkube.spec.model import ClusterSpec
from nsxkube.spec.problems import Problem

__all__ = ["ClusterSpec", "Problem", "load_spec", "parse_spec"]
