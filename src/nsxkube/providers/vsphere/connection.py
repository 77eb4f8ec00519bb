"""One vCenter session: verified TLS, API version negotiation, login, bulk property reads.

Trust is the spec's ``vsphere.tls``: a CA file (chain and host name verified), a pinned
certificate thumbprint (SHA-256 or SHA-1, checked on every new connection), or the system CAs.
``insecure`` switches verification off only when the spec says so, and warns every time.

pyVmomi's own thumbprint support is not used: after the first mismatch-free handshake it turns
verification off on the shared SSL context, so later pooled connections would not be pinned.
Here the context itself checks the pin on every handshake.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nsxkube.errors import CredentialsError, ProviderError
from nsxkube.providers.vsphere.faults import describe_fault, fault_name
from nsxkube.spec.model import Tls, Vsphere

Warn = Callable[[str], None]


def parse_server(server: str) -> tuple[str, int]:
    """``vc.example.com``, ``vc.example.com:8443``, ``https://vc/sdk`` or ``[fd00::1]:443`` → (host, port)."""
    text = server.strip()
    parts = urlsplit(text if "//" in text else f"//{text}")
    if not parts.hostname:
        raise ProviderError(f"vsphere.server {server!r} is not a host name or address",
                            hint="write it as vcenter.example.com or vcenter.example.com:443")
    try:
        port = parts.port or 443
    except ValueError:
        raise ProviderError(f"vsphere.server {server!r} has an invalid port", hint="use host:port, port 1-65535") from None
    return parts.hostname, port


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


class PinMismatch(ssl.SSLCertVerificationError):
    """The server's certificate is not the pinned one."""

    def __init__(self, presented_sha256: str, pinned: str) -> None:
        super().__init__(f"certificate SHA-256 {presented_sha256} is not the pinned {pinned}")
        self.presented_sha256 = presented_sha256
        self.pinned = pinned


class _PinnedContext(ssl.SSLContext):
    """Accepts exactly the certificate whose SHA-256 (or SHA-1) thumbprint is pinned."""

    pin: str = ""

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        wrapped = super().wrap_socket(sock, *args, **kwargs)
        der = wrapped.getpeercert(binary_form=True) or b""
        digest = hashlib.sha1(der) if len(self.pin) == 40 else hashlib.sha256(der)
        if digest.hexdigest() != self.pin:
            wrapped.close()
            raise PinMismatch(colon_hex(hashlib.sha256(der).digest()), _pretty_pin(self.pin))
        return wrapped


def _pretty_pin(pin: str) -> str:
    return ":".join(pin[i:i + 2] for i in range(0, len(pin), 2)).upper()


def tls_context(tls: Tls, *, server: str, warn: Warn) -> ssl.SSLContext:
    """The SSL context for the spec's trust settings (see the module docstring)."""
    if tls.insecure:
        warn(f"vCenter {server}: TLS certificate verification is OFF (vsphere.tls.insecure); anyone on the path can "
             "read the vCenter password — set vsphere.tls.thumbprint or ca_file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if tls.thumbprint:
        pinned = _PinnedContext(ssl.PROTOCOL_TLS_CLIENT)
        pinned.check_hostname = False
        pinned.verify_mode = ssl.CERT_NONE  # the pin is checked in wrap_socket instead
        pinned.pin = tls.thumbprint.replace(":", "").lower()
        return pinned
    if tls.ca_file:
        try:
            return ssl.create_default_context(cafile=str(tls.ca_file.expanduser()))
        except (OSError, ssl.SSLError) as err:
            raise ProviderError(f"vsphere.tls.ca_file {tls.ca_file}: cannot load it ({err})",
                                hint="point it at the PEM file of the CA that signed vCenter's certificate") from None
    return ssl.create_default_context()


def presented_thumbprint(host: str, port: int, timeout: float = 10.0) -> str | None:
    """The SHA-256 thumbprint of the certificate the server presents (for error messages only)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                probe.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError:
        return None
    return colon_hex(hashlib.sha256(der).digest()) if der else None


@dataclass
class Session:
    """A logged-in vCenter session. ``requests`` counts SOAP calls (every one, from every thread)."""

    host: str
    port: int
    user: str
    api_version: str
    stub: Any = field(repr=False)
    content: Any = field(repr=False)
    requests: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}" if self.port != 443 else self.host

    def count(self, method: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_method[method] += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a session that is gone already is closed
            self.content.sessionManager.Logout()
        self.stub.DropConnections()

    # ---- bulk reads with the property collector ------------------------------------------

    def retrieve(self, filter_specs: Sequence[Any], page: int = 1000) -> list[Any]:
        """RetrievePropertiesEx and every ContinueRetrievePropertiesEx page: ObjectContent list."""
        from pyVmomi import vmodl

        collector = self.content.propertyCollector
        options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page)
        result = collector.RetrievePropertiesEx(list(filter_specs), options)
        objects: list[Any] = []
        while result is not None:
            objects.extend(result.objects)
            if not result.token:
                break
            result = collector.ContinueRetrievePropertiesEx(result.token)
        return objects

    def read_objects(self, objects: Iterable[Any], paths: Sequence[str]) -> dict[str, dict[str, Any]]:
        """moref → {path: value} for objects of one type (paths missing on an object are absent)."""
        from pyVmomi import vmodl

        pc = vmodl.query.PropertyCollector
        objs = list(objects)
        if not objs:
            return {}
        spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=o) for o in objs],
                             propSet=[pc.PropertySpec(type=type(objs[0]), pathSet=list(paths))])
        return {content.obj._moId: {p.name: p.val for p in content.propSet} for content in self.retrieve([spec])}

    def read_view(self, root: Any, paths_by_type: dict[Any, Sequence[str]]) -> list[tuple[Any, dict[str, Any]]]:
        """Every object of the given types under ``root``, with its properties, in one retrieval."""
        from pyVmomi import vmodl

        pc = vmodl.query.PropertyCollector
        view = self.content.viewManager.CreateContainerView(root, list(paths_by_type), True)
        try:
            traverse = pc.TraversalSpec(name="view", type=type(view), path="view", skip=False)
            spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                                 propSet=[pc.PropertySpec(type=t, pathSet=list(p)) for t, p in paths_by_type.items()])
            return [(c.obj, {p.name: p.val for p in c.propSet}) for c in self.retrieve([spec])]
        finally:
            view.DestroyView()


def _negotiate_version(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str:
    """The newest vim25 API version both pyVmomi and the server speak."""
    from pyVmomi import VmomiSupport

    connection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        connection.request("GET", "/sdk/vimServiceVersions.xml")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise ProviderError(f"{host}:{port} does not serve the vSphere API (/sdk/vimServiceVersions.xml: HTTP "
                            f"{response.status})", hint="check vsphere.server: it must name vCenter")
    offered: set[str] = set()
    for namespace in ET.fromstring(body).iter("namespace"):
        if (namespace.findtext("name") or "").strip() == "urn:vim25":
            offered |= {(v.text or "").strip() for v in namespace.iter("version")}
    for version in VmomiSupport.GetServiceVersions("vim25"):
        if VmomiSupport.GetVersionNamespace(version).split("/", 1)[-1] in offered:
            return version
    raise ProviderError(f"{host}:{port} offers vSphere API versions {', '.join(sorted(offered)) or 'none'}, none of "
                        "which this pyVmomi speaks", hint="upgrade pyvmomi or vCenter")


def connect(host: str, port: int, user: str, password: str, tls: Tls, *, warn: Warn,
            pool_size: int = 10, timeout: float = 60.0) -> Session:
    """Log in to vCenter; every failure is one ProviderError/CredentialsError line with the fix."""
    from pyVmomi import SoapStubAdapter, vim

    where = f"{host}:{port}"
    context = tls_context(tls, server=where, warn=warn)
    try:
        version = _negotiate_version(host, port, context, timeout)
    except PinMismatch as err:
        raise ProviderError(f"vCenter {where} presented a certificate with SHA-256 {err.presented_sha256}, not the "
                            f"pinned vsphere.tls.thumbprint {err.pinned}",
                            hint="if vCenter's certificate was renewed, check the new one out of band and update "
                            "the thumbprint") from None
    except ssl.SSLCertVerificationError as err:
        presented = presented_thumbprint(host, port)
        seen = f"; it presented SHA-256 {presented}" if presented else ""
        trust = f"vsphere.tls.ca_file {tls.ca_file}" if tls.ca_file else "the system's CA certificates"
        raise ProviderError(f"cannot verify the TLS certificate of vCenter {where} against {trust}: "
                            f"{err.verify_message or err.reason}{seen}",
                            hint="set vsphere.tls.ca_file to vCenter's CA (or tls.thumbprint to the SHA-256 above "
                            "once you have checked it); tls.insecure only for a lab") from None
    except (ssl.SSLError, OSError) as err:
        raise ProviderError(f"cannot reach vCenter {where}: {err.strerror or err}",
                            hint="check vsphere.server and that this machine reaches it on that port") from None
    stub = SoapStubAdapter(host=host, port=port, version=version, sslContext=context, poolSize=pool_size,
                           httpConnectionTimeout=timeout, connectionPoolTimeout=-1)
    session_box: list[Session] = []
    invoke = stub.InvokeMethod

    def counted(mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        if session_box:
            session_box[0].count(info.wsdlName)
        return invoke(mo, info, args, outerStub)

    stub.InvokeMethod = counted
    try:
        instance = vim.ServiceInstance("ServiceInstance", stub)
        content = instance.RetrieveContent()
        session = Session(host, port, user, version, stub, content)
        session_box.append(session)
        session.count("RetrieveServiceContent")
        content.sessionManager.Login(user, password)
    except vim.fault.InvalidLogin:
        stub.DropConnections()
        raise CredentialsError(f"vCenter {where} refused the login of {user!r}: wrong user name or password",
                               hint="check the variables named in vsphere.credentials") from None
    except vim.fault.NoPermission as err:
        stub.DropConnections()
        raise CredentialsError(f"vCenter {where}: {user!r} may not log in ({describe_fault(err)})",
                               hint="give the user a role on the vCenter root") from None
    except Exception as err:
        stub.DropConnections()
        raise ProviderError(f"vCenter {where}: login failed: {describe_fault(err) if hasattr(err, 'msg') else err}",
                            hint=f"check that {where} is vCenter and answers the SOAP API at /sdk") from None
    return session


def open_session(spec: Vsphere, secret: Callable[[str, str], str], *, warn: Warn, pool_size: int = 10,
                 timeout: float = 60.0) -> Session:
    """Connect with the spec's server, trust settings and credentials (read from the environment)."""
    host, port = parse_server(spec.server)
    user = secret(spec.credentials.user_env, f"vCenter user for {spec.server}")
    password = secret(spec.credentials.password_env, f"vCenter password of {user}")
    return connect(host, port, user, password, spec.tls, warn=warn, pool_size=pool_size, timeout=timeout)


def wait_until(deadline: float, interval: float) -> bool:
    """Sleeps ``interval`` (never past the deadline); False once the deadline has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    time.sleep(min(interval, remaining))
    return True


def is_fault(err: BaseException, *names: str) -> bool:
    return fault_name(err) in names
