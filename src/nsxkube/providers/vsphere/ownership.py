"""The ownership marker of node VMs: custom attribute ``nsxkube/cluster = <cluster name>``.

Why a custom attribute and not a vSphere tag (vcsim serves both, at /rest/com/vmware/cis/tagging):

* it is read with everything else: ``customValue`` comes in the same property-collector
  retrieval as the inventory, so finding our VMs among thousands costs no request at all,
  while tags need a second session on the vAPI endpoint and one or two REST calls (plus
  category and tag look-ups) on every plan;
* one session, one permission model (Global.SetCustomField) and the same SOAP errors, on every
  vCenter edition, including ones whose vAPI endpoint is proxied away;
* custom attributes show in the vSphere Client next to the VM, like tags do.

A clone cannot set a custom attribute itself, so the clone's own extraConfig also carries
``nsxkube.cluster = <cluster name>``: a VM whose apply was interrupted between the clone and the
marker is still recognised as ours (and its marker completed) instead of blocking the next run
as a conflict. Either marker makes a VM ours; nsxkube writes both.
"""

from __future__ import annotations

from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.faults import describe_fault, fault_name
from nsxkube.providers.vsphere.model import OWNER_FIELD


def find_owner_field(session: Any) -> int | None:
    fields = session.read_objects([session.content.customFieldsManager], ["field"])
    for props in fields.values():
        for definition in props.get("field") or ():
            if definition.name == OWNER_FIELD:
                return int(definition.key)
    return None


def create_owner_field(session: Any) -> int:
    """Defines the VM custom attribute (once per vCenter; shared by every nsxkube cluster)."""
    from pyVmomi import vim

    try:
        return int(session.content.customFieldsManager.AddCustomFieldDef(name=OWNER_FIELD,
                                                                         moType=vim.VirtualMachine).key)
    except vim.fault.DuplicateName:  # defined meanwhile, or for every type
        key = find_owner_field(session)
        if key is not None:
            return key
        raise
    except Exception as err:
        raise ProviderError(f"cannot define the custom attribute {OWNER_FIELD}: {describe_fault(err)}",
                            hint="give the vCenter user Global.ManageCustomFields") from None


def update_marker(session: Any, vm_ref: Any, key: int, cluster: str) -> None:
    try:
        session.content.customFieldsManager.SetField(entity=vm_ref, key=key, value=cluster)
    except Exception as err:
        hint = "give the vCenter user Global.SetCustomField" if fault_name(err) == "NoPermission" else None
        raise ProviderError(f"cannot set {OWNER_FIELD}={cluster}: {describe_fault(err)}", hint=hint) from None
