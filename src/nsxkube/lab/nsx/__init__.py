"""An emulator of the NSX-T Policy API for tests and the demo lab (no public NSX simulator exists).

    with NsxEmulator(preset="tanzu", realization_delay=0) as nsx:
        httpx.get(nsx.url + "/policy/api/v1/infra/segments", auth=(nsx.username, nsx.password),
                  verify=nsx.ca_file)

Module map: api (routing), server (HTTP/TLS transport), store + transaction (objects and write
semantics), hierarchy (hierarchical PATCH), schema / semantics / references / defaults (what
real NSX validates and fills in), realization, search, paging, auth, faults, request_log,
presets, control (the /_emulator test endpoint), emulator (the public object).
"""

from nsxkube.lab.nsx.emulator import NsxEmulator, parse_listen, run_foreground
from nsxkube.lab.nsx.presets import (
    OVERLAY_TZ_PATH,
    TANZU_OVERLAPPING_CIDR,
    TANZU_OVERLAPPING_SEGMENT_ID,
    TANZU_PRINCIPAL,
    TIER0_PATH,
    TIER1_PATH,
    VLAN_TZ_PATH,
)

__all__ = [
    "OVERLAY_TZ_PATH",
    "TANZU_OVERLAPPING_CIDR",
    "TANZU_OVERLAPPING_SEGMENT_ID",
    "TANZU_PRINCIPAL",
    "TIER0_PATH",
    "TIER1_PATH",
    "VLAN_TZ_PATH",
    "NsxEmulator",
    "parse_listen",
    "run_foreground",
]
