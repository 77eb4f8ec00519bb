"""The NSX client against the emulator as a real HTTPS server: trust, auth, retries, paging, errors."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from nsxkube.errors import CredentialsError, ProviderError
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.providers.nsx.client import Backoff, ClientConfig, NsxClient, parse_manager
from nsxkube.providers.nsx.errors import NsxRequestError, describe
from nsxkube.providers.nsx.trust import Endpoint, fetch_certificate, fingerprint
from nsxkube.spec.model import Tls
from tests.providers.nsx.helpers import FAST, SESSION_CALLS, api_calls, manager_of

SEGMENT = {"connectivity_path": "/infra/tier-1s/t1-gw",
           "transport_zone_path": "/infra/sites/default/enforcement-points/default/transport-zones/overlay-tz",
           "subnets": [{"gateway_address": "172.16.60.1/24"}]}


def client_for(nsx: NsxEmulator, *, auth: str = "session", tls: Tls | None = None, password: str | None = None,
               backoff: Backoff = FAST, notes: list[str] | None = None) -> NsxClient:
    config = ClientConfig(parse_manager(manager_of(nsx)), tls or Tls(thumbprint=nsx.thumbprint), auth,  # type: ignore[arg-type]
                          nsx.username, password or nsx.password, "NSX_USER and NSX_PASSWORD", backoff=backoff)
    return NsxClient(config, notify=(notes.append if notes is not None else None), sleep=lambda s: None)


# ---- auth -------------------------------------------------------------------------------------------


def test_session_auth_logs_in_once_and_sends_the_xsrf_token(nsx: NsxEmulator) -> None:
    client = client_for(nsx)
    client.get_object("/infra/tier-1s/t1-gw")
    client.list_objects("/infra/segments")
    client.close()
    paths = [r["path"] for r in nsx.requests]
    assert (paths[0], paths[-1]) == ("/api/session/create", "/api/session/destroy")
    calls = api_calls(nsx)
    assert len(calls) == 2 and all(r["auth"] == {"kind": "session", "user": "admin", "ok": True} for r in calls)
    assert len(api_calls(nsx)) == 2


def test_basic_auth_needs_no_session(nsx: NsxEmulator) -> None:
    client = client_for(nsx, auth="basic")
    assert client.get_object("/infra/tier-1s/t1-gw")["id"] == "t1-gw"
    client.close()
    assert [r["auth"]["kind"] for r in nsx.requests] == ["basic"]
    assert not any(r["path"] in SESSION_CALLS for r in nsx.requests)


def test_a_stale_session_token_is_renewed(nsx: NsxEmulator) -> None:
    notes: list[str] = []
    client = client_for(nsx, notes=notes)
    client.get_object("/infra/tier-1s/t1-gw")
    nsx.expire_sessions()
    assert client.get_object("/infra/tier-0s/t0-gw")["id"] == "t0-gw"
    logins = [r for r in nsx.requests if r["path"] == "/api/session/create"]
    assert len(logins) == 2 and [r["status"] for r in api_calls(nsx)] == [200, 403, 200]
    assert notes == ["NSX session expired; logging in again"]


@pytest.mark.parametrize("auth", ["session", "basic"])
def test_bad_credentials_give_one_clear_line(nsx: NsxEmulator, auth: str) -> None:
    client = client_for(nsx, auth=auth, password="wrong-password")
    with pytest.raises(CredentialsError) as caught:
        client.get_object("/infra/segments/x")
    line = caught.value.one_line()
    assert "\n" not in line and "wrong-password" not in line
    assert "refused" in line and "'admin'" in line and "NSX_USER and NSX_PASSWORD" in line
    assert len(nsx.requests) == 1  # no retry of a refused login


# ---- TLS ----------------------------------------------------------------------------------------------


def test_the_self_signed_certificate_is_refused_without_thumbprint_or_ca(nsx: NsxEmulator) -> None:
    with pytest.raises(ProviderError, match="certificate nsxkube does not trust") as caught:
        client_for(nsx, tls=Tls()).get_object("/infra/segments")
    assert "nsx.tls.thumbprint" in caught.value.one_line() and "\n" not in caught.value.one_line()
    assert nsx.requests == []  # the handshake failed: no request, no credential went out


def test_the_right_thumbprint_or_ca_file_is_accepted(nsx: NsxEmulator) -> None:
    der = fetch_certificate(Endpoint("127.0.0.1", nsx.port))
    for tls in (Tls(thumbprint=nsx.thumbprint), Tls(thumbprint=fingerprint(der, sha1=True)), Tls(ca_file=nsx.ca_file)):
        assert client_for(nsx, tls=tls).get_object("/infra/tier-1s/t1-gw") is not None
    assert fingerprint(der) == nsx.thumbprint


def test_a_wrong_thumbprint_stops_before_any_credential_is_sent(nsx: NsxEmulator) -> None:
    wrong = ":".join(["AB"] * 32)
    with pytest.raises(ProviderError, match="stopping before any credential is sent") as caught:
        client_for(nsx, tls=Tls(thumbprint=wrong)).get_object("/infra/segments")
    assert nsx.thumbprint in caught.value.one_line() and wrong in caught.value.one_line()
    assert nsx.requests == []


def test_insecure_skips_verification(nsx: NsxEmulator) -> None:
    assert client_for(nsx, tls=Tls(insecure=True)).get_object("/infra/tier-1s/t1-gw") is not None


# ---- faults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [(429, None), (503, None), (500, 607)])
def test_retryable_faults_are_survived(nsx: NsxEmulator, status: int, code: int | None) -> None:
    notes: list[str] = []
    client = client_for(nsx, notes=notes)
    nsx.fail_next(status, 2, error_code=code, method="PATCH")
    client.request("PATCH", "/infra/segments/s", json=SEGMENT)
    assert [r["status"] for r in api_calls(nsx)] == [status, status, 200]
    assert nsx.get("/infra/segments/s") is not None
    assert len(notes) == 2 and all(f"NSX answered {status}" in n for n in notes)


def test_a_fault_that_outlasts_the_retries_is_one_line_with_nsx_message(nsx: NsxEmulator) -> None:
    nsx.fail_next(503, 10, method="GET")
    with pytest.raises(NsxRequestError) as caught:
        client_for(nsx).list_objects("/infra/segments")
    line = caught.value.one_line()
    assert line.startswith("NSX refused GET /policy/api/v1/infra/segments: 503 (error 503) Service unavailable")
    assert len(api_calls(nsx)) == FAST.attempts


def test_the_login_is_retried_too(nsx: NsxEmulator) -> None:
    nsx.fail_next(503, 2, method="POST", path_prefix="/api/session/create")
    assert client_for(nsx).get_object("/infra/tier-1s/t1-gw") is not None
    assert [r["status"] for r in nsx.requests] == [503, 503, 200, 200]


def test_a_500_without_607_is_not_retried(nsx: NsxEmulator) -> None:
    nsx.fail_next(500, 1, error_code=100, method="GET")
    with pytest.raises(NsxRequestError, match=r"500 \(error 100\)"):
        client_for(nsx).get_object("/infra/segments/s")
    assert len(api_calls(nsx)) == 1


def test_a_stale_revision_is_read_again_and_retried(nsx: NsxEmulator) -> None:
    client = client_for(nsx)
    client.request("PATCH", "/infra/segments/s", json=SEGMENT)
    nsx.stale_next_put()
    updated = client.update_object("/infra/segments/s", lambda seg: {**seg, "description": "nodes"})
    assert updated["description"] == "nodes"
    assert [(r["method"], r["status"]) for r in api_calls(nsx)][1:] == [("GET", 200), ("PUT", 412), ("GET", 200),
                                                                          ("PUT", 200)]


def test_errors_are_one_line_with_nsx_message_and_related_errors(nsx: NsxEmulator) -> None:
    with pytest.raises(NsxRequestError) as caught:
        client_for(nsx).request("PATCH", "/infra/segments/s", json={**SEGMENT, "mtu": 1500, "vlan": 1})
    line = caught.value.one_line()
    assert "\n" not in line and "400 (error 287)" in line and "property mtu is unrecognized" in line
    body: dict[str, Any] = {"error_code": 500012, "error_message": "Invalid reference",
                            "related_errors": [{"error_message": "group /g does not exist"},
                                               {"error_message": "service /s\ndoes not exist"}]}
    assert describe("PATCH", "/policy/api/v1/infra", 400, body) == (
        "NSX refused PATCH /policy/api/v1/infra: 400 (error 500012) Invalid reference; "
        "related: group /g does not exist; service /s does not exist")


def test_an_unreachable_manager_is_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ClientConfig(Endpoint("127.0.0.1", port), Tls(insecure=True), "basic", "u", "p", backoff=FAST)
    with pytest.raises(ProviderError, match=f"cannot reach NSX at 127.0.0.1:{port}"):
        NsxClient(config, sleep=lambda s: None).get_object("/infra")


# ---- paging -------------------------------------------------------------------------------------------


def test_lists_follow_the_cursor_to_the_last_page(nsx: NsxEmulator) -> None:
    client = client_for(nsx)
    for i in range(5):
        client.request("PATCH", f"/infra/services/s{i}", json={})
    names = {s["id"] for s in client.list_objects("/infra/services", {"page_size": 2})}
    assert {f"s{i}" for i in range(5)} <= names
    assert len([r for r in api_calls(nsx) if r["method"] == "GET"]) > 3


@pytest.mark.parametrize(("manager", "host", "port"), [
    ("nsx.example.com", "nsx.example.com", 443), ("10.0.0.5:8443", "10.0.0.5", 8443),
    ("https://nsx.example.com:444/", "nsx.example.com", 444), ("[::1]:9443", "::1", 9443)])
def test_manager_forms(manager: str, host: str, port: int) -> None:
    assert parse_manager(manager) == Endpoint(host, port)


def test_plain_http_managers_are_refused() -> None:
    with pytest.raises(ProviderError, match="https only"):
        parse_manager("http://nsx.example.com")
