"""`/_emulator/...`: the test-control endpoint for an emulator running in another process. It is
NOT part of the NSX API, needs the emulator's own basic credentials, and is not written to the
request log (the log is the record of NSX traffic only).

    POST   /_emulator/fail                {"status": 503, "count": 2, "error_code"?, "method"?, "path_prefix"?}
    POST   /_emulator/stale-put           {"count": 1}
    POST   /_emulator/hold                {"seconds": 5, "count"?, "method"?, "path_prefix"?}
    GET    /_emulator/holds               → {"started": N}: held calls so far
    POST   /_emulator/expire-sessions
    POST   /_emulator/realization-error   {"path": "/infra/segments/x", "message": "..."}
    DELETE /_emulator/realization-error?path=/infra/segments/x
    POST   /_emulator/realization-delay   {"seconds": 0.2}
    POST   /_emulator/omit-derived-fields {"on": true}
    POST   /_emulator/version             {"version": "4.1.2.0.0.22589037"}
    POST   /_emulator/plant               {"path": ..., "body": {...}, "principal": "wcp-..."?}
    GET    /_emulator/object?path=/infra/segments/x
    GET    /_emulator/requests
    POST   /_emulator/attach-vm           {"name": "k8s-prod-cp-1", "segment": "k8s-nodes-segment",
                                           "external_id"?, "mac"?}  → the VM, its MAC and port path
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from nsxkube.lab.nsx.api import NsxApi, Request, Response, error_response, note_changes
from nsxkube.lab.nsx.errors import NsxApiError, field_errors, not_found
from nsxkube.lab.nsx.presets import plant
from nsxkube.lab.nsx.transaction import NOT_PROTECTED, REQUIRE_OVERRIDE, Actor
from nsxkube.lab.nsx.vms import attach_vm

CONTROL_PREFIX = "/_emulator/"


def handle_control(api: NsxApi, request: Request) -> Response:
    try:
        api.auth.authenticate(request.headers)
        return _route(api, request)
    except NsxApiError as err:
        return error_response(err)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        return error_response(field_errors([f"bad control request: {err!r}"]))


def _route(api: NsxApi, request: Request) -> Response:
    action = request.path[len(CONTROL_PREFIX) :].strip("/")
    method = request.method
    body: dict[str, Any] = json.loads(request.body) if request.body.strip() else {}
    if (method, action) == ("POST", "fail"):
        api.faults.fail_next(
            int(body["status"]),
            int(body.get("count", 1)),
            error_code=body.get("error_code"),
            message=body.get("message"),
            method=body.get("method"),
            path_prefix=body.get("path_prefix"),
        )
    elif (method, action) == ("POST", "stale-put"):
        api.faults.stale_next_put(int(body.get("count", 1)))
    elif (method, action) == ("POST", "hold"):
        api.faults.hold_next(float(body["seconds"]), int(body.get("count", 1)), method=body.get("method"),
                             path_prefix=body.get("path_prefix"))
    elif (method, action) == ("GET", "holds"):
        return Response(200, {"started": api.faults.holds_started})
    elif (method, action) == ("POST", "expire-sessions"):
        api.auth.expire_all()
    elif (method, action) == ("POST", "realization-error"):
        api.realizer.force_error(body["path"], body.get("message", "Realization failed (injected)."))
    elif (method, action) == ("DELETE", "realization-error"):
        api.realizer.clear_error(request.query["path"])
    elif (method, action) == ("POST", "realization-delay"):
        api.realizer.set_delay(float(body["seconds"]))
    elif (method, action) == ("POST", "omit-derived-fields"):
        api.faults.omit_derived_fields(bool(body.get("on", True)))
    elif (method, action) == ("POST", "version"):
        api.nsx_version = str(body["version"])
    elif (method, action) == ("POST", "plant"):
        principal = body.get("principal")
        actor = Actor(
            user=principal or "admin",
            protection=REQUIRE_OVERRIDE if principal else NOT_PROTECTED,
            trusted=True,
        )
        note_changes(api.realizer, plant(api.store, actor, [(body["path"], body["body"])]))
    elif (method, action) == ("GET", "object"):
        obj = api.store.view(request.query["path"])
        if obj is None:
            raise not_found(request.query["path"])
        return Response(200, obj)
    elif (method, action) == ("POST", "attach-vm"):
        vm = attach_vm(api, body["name"], body["segment"], external_id=body.get("external_id"), mac=body.get("mac"))
        return Response(200, dataclasses.asdict(vm))
    elif (method, action) == ("GET", "requests"):
        return Response(200, {"results": api.log.entries()})
    else:
        raise NsxApiError(404, 600, f"unknown emulator control call {method} {request.path}")
    return Response(200)
