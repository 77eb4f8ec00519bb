"""The vCenter provider (pyVmomi): one verified session, bulk inventory reads, node VM clones,
DRS anti-affinity rules and the ownership marker; the node template's checks and preparation.

pyVmomi is imported inside the functions that talk to vCenter, never at import time, so the
CLI starts fast and the pure parts (model, diff, template checks, resolution) load without it.

Modules: ``connection`` (TLS, login, property-collector reads), ``inventory`` (bulk snapshot
and name resolution), ``observe`` (the phase's typed snapshot), ``machines`` (VM and rule
operations), ``tasks`` (batched task waits), ``ownership`` (the marker), ``template``,
``diff`` (pure plans), ``model`` (records), ``faults`` (vCenter errors as one line).
"""
