"""The names of what one phase leaves in ``Context.facts`` for the phases after it."""

MACHINES = "machines"
"""machines → node name → MachineFacts of each of this cluster's VMs that exists (set by plan and
apply). Absent when the machines phase did not run in this command."""

DOOMED_VMS = "machines.doomed"
"""machines' destroy plan → the instance UUIDs of the VMs it deletes, so that the network phase
(destroyed after it) does not refuse a segment whose only ports are theirs."""
