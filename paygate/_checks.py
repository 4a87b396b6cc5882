"""The checks before any I/O: every argument of every public call, in one place.

A refusal here is an `InvalidRequest` raised before the idempotency key is recorded and
before anything is sent, so bad input can never poison a key. Text must be encodable
(a lone surrogate cannot be sent as UTF-8), sizes are bounded, numbers are numbers.

>>> key("order-1042")
'order-1042'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ._adapter import ChargeRequest
from ._errors import InvalidRequest
from ._models import MethodCapabilities
from ._money import Money

MAX_KEY = 255
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 500
MAX_DESCRIPTION = 255


def key(value: object, param: str = "idempotency_key") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("an idempotency key (non-empty string) is required", param=param)
    if len(value) > MAX_KEY:
        raise InvalidRequest(f"idempotency key longer than {MAX_KEY} characters", param=param)
    if not value.isprintable():
        raise InvalidRequest("idempotency key has non-printable characters", param=param)
    return value


def metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequest("metadata must be a mapping of strings to strings", param="metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidRequest(f"metadata has more than {MAX_METADATA_KEYS} keys", param="metadata")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidRequest(
                "metadata must be flat: string keys and string values", param="metadata"
            )
        if not k or len(k) > MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key must be 1-{MAX_METADATA_KEY} characters", param="metadata"
            )
        if len(v) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata value longer than {MAX_METADATA_VALUE} characters", param="metadata"
            )
        out[k] = v
    encodable(out, "metadata")
    return out


MAX_REASON = 255
MAX_WAIT = 86_400.0 * 60


def text(value: object, param: str, *, limit: int) -> str:
    """A string that every provider and store can carry: UTF-8 encodable, bounded."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{param} must be a string", param=param)
    if len(value) > limit:
        raise InvalidRequest(f"{param} longer than {limit} characters", param=param)
    encodable(value, param)
    return value


def encodable(value: object, param: str) -> None:
    """Refuse text that cannot be sent (a lone surrogate cannot be encoded as UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"{param} has characters that cannot be encoded (lone surrogates)", param=param
            ) from None
    elif isinstance(value, Mapping):
        for k, v in value.items():
            encodable(k, param)
            encodable(v, param)
    elif isinstance(value, list | tuple):
        for item in value:
            encodable(item, param)


def as_sent(req: ChargeRequest, caps: MethodCapabilities) -> ChargeRequest:
    """What goes to the provider: metadata or a description the method cannot carry is
    kept by paygate, not sent (see `MethodCapabilities.metadata`)."""
    if caps.metadata and caps.description:
        return req
    return replace(
        req,
        metadata=req.metadata if caps.metadata else {},
        description=req.description if caps.description else None,
    )


def optional_money(value: object, param: str = "amount") -> Money | None:
    if value is not None and not isinstance(value, Money):
        raise InvalidRequest(f"{param} must be Money (e.g. Money.jpy(500)) or None", param=param)
    return value


def reason(value: object) -> str | None:
    return None if value is None else text(value, "reason", limit=MAX_REASON)


def timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("timeout must be a number of seconds", param="timeout")
    seconds = float(value)
    if not 0 <= seconds <= MAX_WAIT:  # also refuses NaN
        raise InvalidRequest(
            f"timeout must be between 0 and {MAX_WAIT:.0f} seconds", param="timeout"
        )
    return seconds


def webhook_input(headers: object, body: object) -> tuple[dict[str, str], bytes]:
    """The delivery as paygate reads it, or `InvalidRequest` (the endpoint answers 400)."""
    if isinstance(body, bytearray | memoryview):
        body = bytes(body)
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest("webhook body cannot be encoded", param="body") from None
    if not isinstance(body, bytes):
        raise InvalidRequest("webhook body must be bytes", param="body")
    if not isinstance(headers, Mapping):
        raise InvalidRequest("webhook headers must be a mapping", param="headers")
    out: dict[str, str] = {}
    for raw_k, raw_v in headers.items():
        k = raw_k.decode("latin-1") if isinstance(raw_k, bytes) else raw_k
        v = raw_v.decode("latin-1") if isinstance(raw_v, bytes) else raw_v
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidRequest("webhook headers must be strings", param="headers")
        out[k.lower()] = v
    return out, body


def operation_timeout(value: object) -> float | None:
    """An operation's ``timeout=``: None (no bound) or a positive, finite number of seconds.

    >>> operation_timeout(2.5), operation_timeout(None)
    (2.5, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest("timeout must be a number of seconds or None", param="timeout")
    seconds = float(value)
    if not 0 < seconds < float("inf"):  # also refuses NaN
        raise InvalidRequest(
            "timeout must be a positive, finite number of seconds", param="timeout"
        )
    return seconds
