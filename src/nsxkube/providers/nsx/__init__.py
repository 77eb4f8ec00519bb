"""The NSX provider: an httpx client for the Policy API (trust, login, retries, paging, one-line
errors), readers of the live inventory, the pure diff of desired objects against it, realization
waits and the VM / segment-port look-ups of the node bindings. Modules import httpx, so the CLI
imports this package only inside commands."""
