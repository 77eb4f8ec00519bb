"""The node provider: SSH into the node VMs (asyncssh), run commands with sudo, upload files.

asyncssh is imported inside the functions that open connections, never at import time, so the
CLI starts fast and the pure parts (model, commands, facts, logs, kubeconfig) load without it.

Modules: ``model`` (targets, commands, results), ``commands`` (remote command text: sudo,
secrets through stdin, uploads), ``hostkeys`` (known_hosts, trust on first use),
``log`` (the per-node log file, secrets redacted), ``client`` (connections and runs, one event
loop for the whole run), ``facts`` (what a node reports, parsed), ``kube`` (kubectl on a
control plane: CSRs and node labels), ``kubeconfig`` (the operator's copy of admin.conf).
"""
