"""nsxkube: production Kubernetes on vSphere + NSX-T from one declarative file."""

__version__ = "0.1.0"
