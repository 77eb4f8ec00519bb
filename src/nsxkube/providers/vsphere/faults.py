"""vCenter faults as one readable line (``DuplicateName: 'k8s-prod-cp-1' already exists``).

Works on pyVmomi's fault objects by their attributes, so it needs no pyVmomi import.
"""

from __future__ import annotations

from typing import Any


def fault_name(fault: Any) -> str:
    return type(fault).__name__.rsplit(".", 1)[-1]


def _ref(obj: Any) -> str:
    name = getattr(obj, "_moId", None)
    return str(name) if name else str(obj)


def describe_fault(fault: Any) -> str:
    """One line for a vmodl.MethodFault (or any exception) without losing the fault's type."""
    name = fault_name(fault)
    msg = (getattr(fault, "msg", None) or "").strip()
    # vcsim (and some vCenter faults) carry no message, or only the Go type name
    if msg.startswith("*types.") or msg == name:
        msg = ""
    detail = ""
    if name == "DuplicateName":
        detail = f"{getattr(fault, 'name', '?')!r} already exists"
        obj = getattr(fault, "object", None)
        if obj is not None:
            detail += f" ({_ref(obj)})"
    elif name == "NoPermission":
        detail = f"missing privilege {getattr(fault, 'privilegeId', '?')} on {_ref(getattr(fault, 'object', '?'))}"
    elif name == "InvalidPowerState":
        detail = (f"the VM is {getattr(fault, 'existingState', '?')}, the operation needs it "
                  f"{getattr(fault, 'requestedState', None) or 'in another power state'}")
    elif name == "ManagedObjectNotFound":
        detail = f"{_ref(getattr(fault, 'obj', '?'))} no longer exists"
    elif name == "InvalidLogin":
        detail = "wrong user name or password"
    elif name == "InvalidArgument":
        prop = getattr(fault, "invalidProperty", None)
        detail = f"invalid argument {prop}" if prop else ""
    elif name == "NotEnoughLicenses":
        detail = "not enough licenses"
    if not msg and not detail:
        cause = getattr(fault, "faultCause", None)
        if cause is not None:
            return f"{name}: {describe_fault(cause)}"
        if not hasattr(fault, "msg") and str(fault):
            return f"{name}: {' '.join(str(fault).split())}"
        return name
    text = msg if msg and (not detail or detail in msg) else f"{detail}{': ' + msg if msg else ''}"
    return f"{name}: {' '.join(text.split())}"
