"""The NSX API surface: route one request to auth, faults, the store, realization or search, and
record it in the request log. Transport-free: the HTTP server only parses bytes into a Request
and writes the Response back, so this module is the emulator's behaviour in one place."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from nsxkube.lab.nsx import hierarchy, members, paging, realization, search, tree
from nsxkube.lab.nsx.auth import SESSION_COOKIE, XSRF_HEADER, Authenticator, Identity, identity_of_failure
from nsxkube.lab.nsx.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    MODULE_COMMON,
    NOT_EMULATED,
    STALE_REVISION,
    NsxApiError,
    field_errors,
    invalid,
    not_found,
)
from nsxkube.lab.nsx.faults import FaultPlan
from nsxkube.lab.nsx.inventory import FABRIC_VIFS, POLICY_VMS, Inventory
from nsxkube.lab.nsx.realization import Realizer
from nsxkube.lab.nsx.registry import (
    GLOBAL_CONFIG_PATH,
    GROUP_MEMBER_KINDS,
    INFRA,
    INFRA_TYPE,
    Location,
    locate,
    locate_empty,
    nearest_object,
    parent_of,
)
from nsxkube.lab.nsx.request_log import RequestLog
from nsxkube.lab.nsx.store import Store, collection, object_view
from nsxkube.lab.nsx.transaction import Actor, Changes, Transaction

POLICY_PREFIX = "/policy/api/v1"
SESSION_CREATE = "/api/session/create"
SESSION_DESTROY = "/api/session/destroy"
MP_SWITCHING_CONFIG = "/api/v1/global-configs/SwitchingGlobalConfig"
MP_HOST_SWITCH_PROFILES = "/api/v1/host-switch-profiles"
NODE_VERSION = "/api/v1/node/version"
MANAGER_PREFIX = "/api/v1/"
# What GET /api/v1/node/version answers unless told otherwise: a 4.2 manager's build string.
DEFAULT_NSX_VERSION = "4.2.1.0.0.24304122"
UPLINK_PROFILE_TYPES = {"UplinkHostSwitchProfile": "PolicyUplinkHostSwitchProfile"}  # manager → policy name
ALLOW_OVERWRITE_HEADER = "X-Allow-Overwrite"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # URL path, without the query string
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive lookups (email.message.Message) in the server
    body: bytes = b""


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)


def error_response(err: NsxApiError) -> Response:
    return Response(err.status, err.body())


@dataclass
class _Call:
    request: Request
    identity: Identity | None = None


class NsxApi:
    def __init__(
        self,
        store: Store,
        realizer: Realizer,
        auth: Authenticator,
        faults: FaultPlan,
        log: RequestLog,
        *,
        inventory: Inventory | None = None,
        secure_cookies: bool = True,
        nsx_version: str = DEFAULT_NSX_VERSION,
    ) -> None:
        self.store = store
        self.inventory = inventory or Inventory()
        self.realizer = realizer
        self.auth = auth
        self.faults = faults
        self.log = log
        self._secure_cookies = secure_cookies
        self.nsx_version = nsx_version

    def handle(self, request: Request) -> Response:
        """Answer one NSX API call and append it to the request log."""
        started = time.monotonic()
        call = _Call(request)
        try:
            response = self._dispatch(call)
        except NsxApiError as err:
            response = error_response(err)
        except Exception:  # no traceback reaches a client: NSX answers 500 with its error body
            _log.exception("internal error in the NSX emulator: %s %s", request.method, request.path)
            response = error_response(
                NsxApiError(500, INTERNAL_ERROR, "General error has occurred (NSX emulator internal error).")
            )
        self._record(call, response, started)
        return response

    # ---- routing --------------------------------------------------------------------------------

    def _dispatch(self, call: _Call) -> Response:
        request = call.request
        method, path = request.method, request.path.rstrip("/") or "/"
        if path == SESSION_CREATE and method == "POST":
            self._inject_fault(method, path)
            return self._login(call)
        call.identity = self.auth.authenticate(request.headers)
        self._inject_fault(method, path)
        if path == SESSION_DESTROY and method == "POST":
            self.auth.logout(request.headers)
            return Response(200)
        if path == MP_SWITCHING_CONFIG:
            return self._switching_config(method)
        if path == NODE_VERSION:
            _require_method(method, ("GET",), path)
            return Response(200, {"node_version": self.nsx_version, "product_version": self.nsx_version})
        if path == MP_HOST_SWITCH_PROFILES:
            _require_method(method, ("GET",), path)
            return Response(200, self._manager_host_switch_profiles(request.query))
        if path == FABRIC_VIFS:
            _require_method(method, ("GET",), path)
            return Response(200, self.inventory.list_vifs(request.query))
        if path == POLICY_VMS:
            return self._virtual_machines(call, method)
        if path.startswith(POLICY_PREFIX + "/"):
            return self._policy(call, method, path[len(POLICY_PREFIX) :])
        if path.startswith(MANAGER_PREFIX):
            raise not_emulated(method, path)
        raise NsxApiError(404, 600, f"The requested URI: {path} could not be found.")

    def _policy(self, call: _Call, method: str, path: str) -> Response:
        query = call.request.query
        special: dict[str, Callable[[Mapping[str, str]], dict[str, Any]]] = {
            "/infra/realized-state/realized-entities": self._realized_entities,
            "/infra/realized-state/status": self._realized_status,
            "/search/query": self._search,
            "/search": self._search,
        }
        if path in special:
            _require_method(method, ("GET",), path)
            return Response(200, special[path](query))
        loc = locate(path)
        if loc is None:
            return self._unmodelled(method, path, query)
        if loc.kind == "collection":
            _require_method(method, ("GET",), path)
            return Response(200, self._list(loc, query))
        if method == "GET" and loc.otype is INFRA_TYPE and (wanted := tree.type_matcher(query)) is not None:
            return Response(200, tree.infra_tree(self.store.committed(), self._get(loc), wanted,
                                                 self.faults.omitted_fields))
        if method == "GET":
            return Response(200, self._get(loc))
        if method == "PATCH":
            body = _json_body(call.request)
            if loc.otype is INFRA_TYPE:
                self._write(call, lambda tx: hierarchy.patch_infra(tx, body))
            else:
                self._write(call, lambda tx: hierarchy.patch_object(tx, loc.path, body, replace=False))
            return Response(200)
        if method == "PUT" and loc.otype is not INFRA_TYPE:
            body = _json_body(call.request)
            if self.faults.take_stale_put():
                raise NsxApiError(
                    412,
                    STALE_REVISION,
                    f"The object {loc.otype.resource_type}/{loc.object_id} was modified by somebody else. "
                    "Please refresh and retry.",
                    module=MODULE_COMMON,
                )
            revision = body.get("_revision") if isinstance(body, dict) else None
            self._write(
                call, lambda tx: hierarchy.patch_object(tx, loc.path, body, replace=True, expected_revision=revision)
            )
            return Response(200, self._get(loc))
        if method == "DELETE":
            self._write(call, lambda tx: tx.delete(loc.path, subtree=False))
            return Response(200)
        raise _method_not_allowed(method, path)

    # ---- reads ----------------------------------------------------------------------------------

    def _get(self, loc: Location) -> dict[str, Any]:
        if loc.otype is INFRA_TYPE:
            return {
                "resource_type": "Infra",
                "id": "infra",
                "display_name": "infra",
                "path": INFRA,
                "relative_path": "infra",
                "_revision": 0,
                "_system_owned": True,
                "_protection": "NOT_PROTECTED",
            }
        obj = self.store.view(loc.path)
        if obj is None:
            raise not_found(loc.path)
        return obj

    def _list(self, loc: Location, query: Mapping[str, str]) -> dict[str, Any]:
        objects = self.store.committed()
        if loc.parent_path != INFRA and loc.parent_path not in objects:
            raise not_found(loc.parent_path)
        items = collection(objects, loc.path, loc.parent_path)
        if loc.otype.resource_type == "PolicyUplinkHostSwitchProfile" and query.get("hostswitch_profile_type"):
            items = [o for o in items if o["resource_type"] == query["hostswitch_profile_type"]]
        return paging.paginate(items, query)

    def _unmodelled(self, method: str, path: str, query: Mapping[str, str]) -> Response:
        """A policy path the store does not hold: a known empty collection (200 / 404 by its parent),
        a group's computed members, or something the emulator does not implement (501)."""
        objects = self.store.committed()
        if "%2F" in path.upper():  # an id cannot hide a slash: no such object
            raise not_found(path)
        parts = path.rstrip("/").split("/")
        if len(parts) == 8 and parts[1:3] == ["infra", "domains"] and parts[4] == "groups" and parts[6] == "members":
            group_path = "/".join(parts[:6])
            if parts[7] in GROUP_MEMBER_KINDS:
                _require_method(method, ("GET",), path)
                group = objects.get(group_path)
                if group is None:
                    raise not_found(group_path)
                found = members.group_members(group, parts[7], objects, self.inventory.list_vms({})["results"])
                return Response(200, {"results": found, "result_count": len(found)})
        empty = locate_empty(path)
        if empty is not None:
            if method not in ("GET", "DELETE"):
                raise not_emulated(method, POLICY_PREFIX + path)
            if empty.parent_path not in objects:
                raise not_found(empty.parent_path)
            if empty.object_id is not None:  # an item of a collection that holds nothing
                if method == "DELETE":
                    return Response(200)
                raise not_found(path)
            _require_method(method, ("GET",), path)
            return Response(200, paging.paginate([], query))
        nearest = nearest_object(path)
        if nearest is not None and method == "GET" and nearest.path not in objects:
            raise not_found(nearest.path)
        raise not_emulated(method, POLICY_PREFIX + path)

    def _manager_host_switch_profiles(self, query: Mapping[str, str]) -> dict[str, Any]:
        """The manager API's (deprecated in 4.x, still served) view of the uplink profiles."""
        wanted = query.get("hostswitch_profile_type")
        if wanted and wanted not in UPLINK_PROFILE_TYPES:
            items: list[dict[str, Any]] = []
        else:
            items = [
                {**{k: v for k, v in o.items() if k not in ("path", "parent_path", "relative_path", "unique_id",
                                                             "marked_for_delete", "overridden")},
                 "resource_type": "UplinkHostSwitchProfile", "path": o["path"]}
                for o in collection(self.store.committed(), "/infra/host-switch-profiles", INFRA)
                if o["resource_type"] == "PolicyUplinkHostSwitchProfile"
            ]
        return paging.paginate(items, query)

    def _search(self, query: Mapping[str, str]) -> dict[str, Any]:
        if not query.get("query"):
            raise field_errors(["required query parameter query is missing"])
        terms = search.parse_query(query["query"])
        objects = self.store.committed()
        hits = [
            object_view(objects, path, with_rules=False)
            for path in sorted(objects)
            if search.matches(objects[path], terms)
        ]
        return paging.paginate(hits, query)  # type: ignore[arg-type]

    def _intent(self, query: Mapping[str, str]) -> dict[str, Any] | None:
        intent_path = query.get("intent_path")
        if not intent_path:
            raise field_errors(["required query parameter intent_path is missing"])
        return self.store.view(intent_path.rstrip("/"))

    def _realized_entities(self, query: Mapping[str, str]) -> dict[str, Any]:
        obj = self._intent(query)
        if obj is None:  # intent gone (or never there): nothing realized for it
            return {"results": [], "result_count": 0, "intent_path": query["intent_path"]}
        state = realization.effective_state(self.store.committed(), obj["path"], self.realizer)
        entity = realization.realized_entity(obj, state)
        return {"results": [entity], "result_count": 1, "intent_path": obj["path"]}

    def _realized_status(self, query: Mapping[str, str]) -> dict[str, Any]:
        obj = self._intent(query)
        if obj is None:
            raise not_found(query["intent_path"])
        state = realization.effective_state(self.store.committed(), obj["path"], self.realizer)
        return realization.consolidated_status(obj, state)

    def _virtual_machines(self, call: _Call, method: str) -> Response:
        """The VM inventory: a paged list, or `?action=update_tags` (204, no body)."""
        action = call.request.query.get("action")
        if method == "GET" and action is None:
            return Response(200, self.inventory.list_vms(call.request.query))
        if method == "POST" and action == "update_tags":
            self.inventory.update_tags(_json_body(call.request))
            return Response(204)
        if method == "POST":
            raise invalid(f"action {action!r} is not supported on {POLICY_VMS}; use update_tags")
        raise _method_not_allowed(method, POLICY_VMS)

    def _switching_config(self, method: str) -> Response:
        """The manager API's view of the TEP MTU, read from the policy global config."""
        _require_method(method, ("GET",), MP_SWITCHING_CONFIG)
        config = self.store.view(GLOBAL_CONFIG_PATH) or {}
        return Response(
            200,
            {
                "resource_type": "SwitchingGlobalConfig",
                "id": "SwitchingGlobalConfig",
                "physical_uplink_mtu": config.get("physical_uplink_mtu", 1700),
                "global_replication_mode_enabled": False,
                "_revision": config.get("_revision", 0),
            },
        )

    # ---- writes and sessions --------------------------------------------------------------------

    def _write(self, call: _Call, work: Callable[[Transaction], None]) -> Changes:
        headers = call.request.headers
        assert call.identity is not None and call.identity.user is not None
        actor = Actor(
            user=call.identity.user,
            allow_overwrite=(headers.get(ALLOW_OVERWRITE_HEADER) or "").strip().lower() == "true",
        )
        with self.store.transaction(actor) as tx:
            work(tx)
        note_changes(self.realizer, tx.changes)
        return tx.changes

    def _login(self, call: _Call) -> Response:
        form = parse_qs(call.request.body.decode("utf-8", "replace"))
        call.identity = Identity("session", (form.get("j_username") or [None])[0], False)
        session_id, token = self.auth.login(call.request.body)
        call.identity = Identity("session", call.identity.user, True)
        cookie = f"{SESSION_COOKIE}={session_id}; Path=/; HttpOnly" + ("; Secure" if self._secure_cookies else "")
        return Response(200, None, {"Set-Cookie": cookie, XSRF_HEADER: token})

    def _inject_fault(self, method: str, path: str) -> None:
        held = self.faults.take_hold(method, path)
        if held:
            time.sleep(held)
        failure = self.faults.take_failure(method, path)
        if failure is not None:
            raise failure

    def _record(self, call: _Call, response: Response, started: float) -> None:
        request = call.request
        identity = call.identity or identity_of_failure(request.headers)
        self.log.record(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body": _loggable_body(request),
                "status": response.status,
                "auth": identity.as_log(),
                "allow_overwrite": (request.headers.get(ALLOW_OVERWRITE_HEADER) or "").lower() == "true",
                "duration_ms": round((time.monotonic() - started) * 1000, 2),
            }
        )


def note_changes(realizer: Realizer, changes: Changes) -> None:
    """Restart realization for what changed; a rule's change re-realizes its policy too."""
    realizer.forget(changes.deleted)
    touched = set(changes.written)
    touched |= {parent_of(p) for p in changes.written if "/rules/" in p}
    realizer.changed(touched)


def _json_body(request: Request) -> Any:
    if not request.body.strip():
        raise field_errors(["the request body is empty"])
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as err:
        raise field_errors([f"the request body is not valid JSON: {err}"]) from None


def _loggable_body(request: Request) -> Any:
    if request.path.rstrip("/") == SESSION_CREATE:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        return {"j_username": (form.get("j_username") or [None])[0]}  # never the password
    if not request.body.strip():
        return None
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return None


def not_emulated(method: str, path: str) -> NsxApiError:
    """A plausible NSX call the emulator does not implement: 501 with an NSX error body, never a
    404 that a client would read as "the object does not exist"."""
    return NsxApiError(501, NOT_EMULATED, f"{method} {path} is not implemented by the NSX emulator "
                       "(docs/testing.md lists what it covers).")


def _method_not_allowed(method: str, path: str) -> NsxApiError:
    return NsxApiError(405, METHOD_NOT_ALLOWED, f"Method {method} is not supported on {path}.")


def _require_method(method: str, allowed: tuple[str, ...], path: str) -> None:
    if method not in allowed:
        raise _method_not_allowed(method, path)


__all__ = ["NsxApi", "Request", "Response", "error_response", "invalid", "note_changes"]
