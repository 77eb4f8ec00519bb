"""The one exception the emulator raises, shaped like the error body real NSX sends.

Error codes — where a public source shows the real code it is used, otherwise the code is an
emulator choice (clients should key on the HTTP status and treat these codes as labels):

| status | code    | meaning                                   | source                                   |
|--------|---------|-------------------------------------------|------------------------------------------|
| 400    | 287     | field-level validation (unknown property, | real ("property … is unrecognized");     |
|        |         | wrong JSON type, bad enum, missing field) | wrong type/enum/missing: emulator choice |
| 400    | 500002  | semantic validation ("ANY" not alone,     | emulator choice                          |
|        |         | >15 ports, AND across types, segment      |                                          |
|        |         | update rules, read-only / system objects) |                                          |
| 400    | 500012  | a referenced path does not exist          | emulator choice                          |
| 400    | 500030  | object in use (referenced, or has         | real (nsx-operator's ResourceInUse)      |
|        |         | children)                                 |                                          |
| 400    | 500105  | segment subnets overlap on one gateway    | real code name (NsxOverlapAddresses)     |
| 403    | 403     | bad or missing credentials                | real (nsx-operator's InvalidCredentials) |
| 403    | 98      | bad or expired XSRF token / session       | real (nsx-operator's BadXSRFToken)       |
| 403    | 289     | object owned by a principal identity      | real code and message (public reports    |
|        |         | (_protection REQUIRE_OVERRIDE)            | show it with httpStatus BAD_REQUEST; the |
|        |         |                                           | emulator answers 403 as briefed)         |
| 404    | 600     | object or URI not found                   | real                                     |
| 405    | 405     | method not allowed on this URI            | emulator choice                          |
| 412    | 604     | stale `_revision` on PUT                  | status real, code from memory            |
| 429    | 102     | injected: too many requests               | emulator choice                          |
| 500    | 607     | injected: transaction aborted, retry      | real (nsx-operator APITransactionAborted)|
| 500    | 100     | internal error in the emulator            | emulator choice                          |
| 501    | 501     | a plausible call the emulator does not    | emulator choice                          |
|        |         | implement (never 404: "not there" is a    |                                          |
|        |         | claim about NSX's state)                  |                                          |
| 503    | 503     | injected: service unavailable             | emulator choice                          |
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

FIELD_VALIDATION = 287
INVALID_VALUE = 500002
MISSING_REFERENCE = 500012
RESOURCE_IN_USE = 500030
OVERLAPPING_ADDRESSES = 500105
BAD_CREDENTIALS = 403
BAD_XSRF_TOKEN = 98
PROTECTED_OBJECT = 289
NOT_FOUND = 600
METHOD_NOT_ALLOWED = 405
STALE_REVISION = 604
TOO_MANY_REQUESTS = 102
TRANSACTION_ABORTED = 607
INTERNAL_ERROR = 100
NOT_EMULATED = 501
SERVICE_UNAVAILABLE = 503

MODULE_POLICY = "policy"
MODULE_COMMON = "common-services"


class NsxApiError(Exception):
    """An error answer: HTTP status plus the NSX error body fields."""

    def __init__(
        self,
        status: int,
        error_code: int,
        message: str,
        *,
        module: str = MODULE_POLICY,
        details: str = "",
        related: list[NsxApiError] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.module = module
        self.details = details
        self.related = related or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "httpStatus": HTTPStatus(self.status).name,
            "error_code": self.error_code,
            "module_name": self.module,
            "error_message": self.message,
        }
        if self.details:
            body["details"] = self.details
        body["related_errors"] = [err.body() for err in self.related]
        return body


def field_errors(problems: list[str]) -> NsxApiError:
    """400/287 listing every field-level problem, one related error each (as NSX does)."""
    return NsxApiError(
        400,
        FIELD_VALIDATION,
        "Field level validation errors: {" + ", ".join(problems) + "}",
        module=MODULE_COMMON,
        related=[NsxApiError(400, FIELD_VALIDATION, p, module=MODULE_COMMON) for p in problems],
    )


def invalid(message: str) -> NsxApiError:
    return NsxApiError(400, INVALID_VALUE, message)


def invalid_all(problems: list[str]) -> NsxApiError:
    first = problems[0] if len(problems) == 1 else "; ".join(problems)
    return NsxApiError(400, INVALID_VALUE, first, related=[NsxApiError(400, INVALID_VALUE, p) for p in problems])


def not_found(path: str) -> NsxApiError:
    return NsxApiError(
        404,
        NOT_FOUND,
        f"The requested object : {path} could not be found. Object identifiers are case sensitive.",
    )


def in_use(path: str, reason: str) -> NsxApiError:
    return NsxApiError(
        400,
        RESOURCE_IN_USE,
        f"The object path=[{path}] cannot be deleted as either it has children or it is being "
        f"referenced by other objects: {reason}",
    )
