"""The Kubernetes API, read through a small typed client built from a kubeconfig."""
