"""Shared parts for provider adapters: the error map, the webhook token check, a flow
that makes no call, the usual refusals (`only_method`, `whole_refunds_only`),
`capabilities_of` (methods keyed by name) and `matching` (a settings field's pattern).

What stays with each provider: its code tables, where a code sits in a body and how the
body is read (form, JSON, an encrypted envelope). What is shared: the fallbacks by HTTP
status, the ``Retry-After`` reading of the core (delta seconds or an HTTP date) and the
fields every mapped error keeps (the provider's code, message, HTTP status and request id).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._errors import (
    AuthenticationError,
    NotFound,
    NotSupported,
    PaygateError,
    PermissionDenied,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    WebhookVerificationError,
)
from ._flow import Reply
from ._models import Capabilities, MethodCapabilities
from ._retry import retry_after

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ._adapter import ChargeRequest
    from ._flow import Flow

__all__ = [
    "REQUEST_ID_HEADERS",
    "ErrorMap",
    "capabilities_of",
    "check_webhook_token",
    "matching",
    "no_call",
    "only_method",
    "retry_after",
    "status_error",
    "whole_refunds_only",
]

T = TypeVar("T")
M = TypeVar("M")
N = TypeVar("N")

#: Response headers that commonly carry the server's id of a request, read (first one
#: present wins) when a provider does not name its own.
REQUEST_ID_HEADERS: tuple[str, ...] = ("x-request-id", "request-id", "x-amzn-requestid")

_BY_STATUS: Mapping[int, type[ProviderError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    429: RateLimited,
}


def status_error(status: int) -> type[ProviderError]:
    """The shared fallback class for an HTTP status.

    >>> [status_error(s).__name__ for s in (401, 403, 404, 429, 503, 400)]
    ['AuthenticationError', 'PermissionDenied', 'NotFound', 'RateLimited', \
'ProviderUnavailable', 'ProviderRejected']
    """
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    return ProviderUnavailable if status >= 500 else ProviderRejected


@dataclass(frozen=True, slots=True)
class ErrorMap:
    """A provider's error answers mapped onto paygate's error tree.

    ``by_code`` (the provider's own codes) wins, then ``by_status`` (a provider's own
    reading of a status, e.g. PAY.JP's 402), then the shared fallbacks of `status_error`.

    >>> errors = ErrorMap("toypay", by_code={"no_such_card": NotFound})
    >>> err = errors.error(Reply(400, {"x-request-id": "req_1"}, b""), "refused",
    ...                    code="no_such_card", provider_message="No such card")
    >>> type(err).__name__, err.provider_code, err.request_id, err.http_status
    ('NotFound', 'no_such_card', 'req_1', 400)
    >>> errors.error(Reply(429, {"retry-after": "2"}, b""), "slow down").retry_after
    2.0
    """

    provider: str
    by_code: Mapping[str, type[PaygateError]] = field(default_factory=dict)
    by_status: Mapping[int, type[PaygateError]] = field(default_factory=dict)
    request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS

    def error_class(self, status: int | None, code: str | None = None) -> type[PaygateError]:
        """The class for a provider code and HTTP status (no status: `ProviderError`)."""
        if code:
            cls = self.by_code.get(code)
            if cls is not None:
                return cls
        if status is None:
            return ProviderError
        return self.by_status.get(status) or status_error(status)

    def request_id(self, reply: Reply | None) -> str | None:
        """The provider's id of the request from the answer's headers, if it sent one."""
        if reply is None:
            return None
        for name in self.request_id_headers:
            value = reply.header(name)
            if value:
                return value
        return None

    def error(
        self,
        reply: Reply | None,
        message: str,
        *,
        code: str | None = None,
        provider_message: str | None = None,
        cls: type[PaygateError] | None = None,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        provider_ref: str | None = None,
    ) -> PaygateError:
        """The paygate error for an answer; ``cls`` overrides the map's choice.

        ``status`` serves when there is no ``reply`` (an error inside a 2xx envelope);
        ``request_id`` when the provider puts it in the body.
        """
        if status is None and reply is not None:
            status = reply.status
        if cls is None:
            cls = self.error_class(status, code)
        kw: dict[str, Any] = {
            "provider": self.provider,
            "provider_code": code,
            "provider_message": provider_message,
            "http_status": status,
            "request_id": request_id or self.request_id(reply),
            "retryable": retryable,
            "provider_ref": provider_ref,
        }
        if issubclass(cls, RateLimited):
            after = retry_after(reply) if reply is not None else None
            return cls(message, retry_after=after, **kw)
        return cls(message, **kw)


def check_webhook_token(
    headers: Mapping[str, str],
    expected: SecretStr | str | None,
    *,
    header: str,
    provider: str,
    setting: str,
    prefixes: tuple[str, ...] = (),
) -> None:
    """Raise `WebhookVerificationError` unless header ``header`` carries the shared token.

    For providers that sign nothing but echo a configured token. The comparison is in
    constant time; with ``prefixes`` (``("Bearer ",)``) the value is accepted with or
    without one of them (every candidate is compared, so timing does not tell which
    matched). ``setting`` names the configuration key the token comes from. Messages
    never quote the token or what was received.

    >>> check_webhook_token({"X-Toy-Token": "s3cret"}, "s3cret", header="x-toy-token",
    ...                     provider="toypay", setting="webhook_token")
    """
    token = (
        expected if isinstance(expected, str) or expected is None else expected.get_secret_value()
    )
    if not token:
        raise WebhookVerificationError(
            f"no {setting} is configured for this {provider} account", provider=provider
        )
    lowered = header.lower()
    received = next((v for k, v in headers.items() if k.lower() == lowered), None)
    if received is None:
        raise WebhookVerificationError(f"missing {header} header", provider=provider)
    value = received.strip()
    candidates = [value]
    for prefix in prefixes:
        if value[: len(prefix)].lower() == prefix.lower():
            candidates.append(value[len(prefix) :].strip())
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(candidate.encode(), token.encode())
    if not ok:
        raise WebhookVerificationError(
            f"{header} does not match the configured {setting}", provider=provider
        )


def no_call(value: T) -> Flow[T]:
    """A flow that returns ``value`` without yielding: for paths that only validate or
    answer from what is known, where the `Provider` method must still be a flow.

    >>> from paygate.adapter import drive
    >>> drive(no_call(7), lambda call: None)
    7
    """
    yield from ()
    return value


@overload
def only_method(
    req: ChargeRequest,
    kind: type[M],
    /,
    *,
    provider: str,
    reason: str | None = None,
    alternative: str | None = None,
) -> M: ...


@overload
def only_method(
    req: ChargeRequest,
    kind: type[M],
    other: type[N],
    /,
    *,
    provider: str,
    reason: str | None = None,
    alternative: str | None = None,
) -> M | N: ...


def only_method(
    req: ChargeRequest,
    *kinds: type[Any],
    provider: str,
    reason: str | None = None,
    alternative: str | None = None,
) -> Any:
    """The charge's payment method when it is one of ``kinds``; else `NotSupported`.

    For a provider that takes only some kinds of payment method: the refusal names the
    method asked for (``method 'card'``), the ``reason`` and the ``alternative``.

    >>> from paygate import Card, Money, QRCode
    >>> from paygate.adapter import ChargeRequest
    >>> req = ChargeRequest(amount=Money.jpy(500), method=Card(token="tok_1"))
    >>> only_method(req, Card, provider="toypay").type
    'card'
    >>> try:
    ...     only_method(req, QRCode, provider="toypay", alternative="QRCode()")
    ... except NotSupported as error:
    ...     print(error.capability, "|", error.alternative)
    method 'card' | QRCode()
    """
    method = req.method
    if not isinstance(method, kinds):
        raise NotSupported(
            f"method {method.type!r}",
            provider=provider,
            reason=reason,
            alternative=alternative,
        )
    return method


def whole_refunds_only(*, provider: str, reason: str, alternative: str) -> NotSupported:
    """The refusal of a partial refund by a provider that refunds whole charges only.

    Returned, not raised, so that the caller's ``raise`` shows where it refuses.

    >>> error = whole_refunds_only(provider="toypay", reason="toypay refunds whole charges",
    ...                            alternative="refund the whole charge (amount=None)")
    >>> error.capability, error.provider
    ('partial refund', 'toypay')
    """
    return NotSupported("partial refund", provider=provider, reason=reason, alternative=alternative)


def capabilities_of(provider: str, *methods: MethodCapabilities, **fields: Any) -> Capabilities:
    """A provider's `Capabilities` with ``methods`` keyed by their own ``method`` name.

    ``fields`` are the other fields of `Capabilities` (currencies, amounts, webhooks...).

    >>> caps = capabilities_of("toypay", MethodCapabilities(method="card", refund="partial"),
    ...                     currencies=("JPY",))
    >>> list(caps.methods), caps.methods["card"].refund
    (['card'], 'partial')
    """
    return Capabilities(provider=provider, methods={m.method: m for m in methods}, **fields)


def matching(pattern: re.Pattern[str], message: str) -> Callable[[str | None], str | None]:
    """A settings field validator: a value must match ``pattern`` as a whole, else
    ``ValueError(message)``; None (an optional field left out) passes.

    Give it to pydantic's ``field_validator`` in the settings class body.

    >>> from pydantic import BaseModel, ValidationError, field_validator
    >>> class ToySettings(BaseModel):
    ...     store_id: str | None = None
    ...     _store = field_validator("store_id")(
    ...         matching(re.compile(r"[0-9]{1,9}"), "a store id is 1-9 digits"))
    >>> ToySettings(store_id="42").store_id
    '42'
    >>> try:
    ...     ToySettings(store_id="42a")
    ... except ValidationError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, a store id is 1-9 digits
    """

    def check(value: str | None) -> str | None:
        if value is not None and not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return check
