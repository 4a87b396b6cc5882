"""The Partner API envelope on the wire, and readers for Pokepay's objects.

Requests: one JSON object ``{partner_client_id, data, request_method}`` sent with POST,
where ``data`` encrypts ``{request_data, timestamp, partner_call_id}``. Two official SDKs
(Python and Java) send every operation this way, the logical method travelling in
``request_method``; paygate does the same so that no GET or DELETE carries a body.

Responses: ``{response_data, timestamp, partner_call_id}`` with ``response_data``
encrypted; errors come encrypted the same way or as a plain ``{type, message}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from paygate import MalformedResponse, PaygateError
from paygate.adapter import Call, OpContext, Reply, Retry

from ._crypto import CryptoError, EnvelopeCipher
from ._errors import PROVIDER, error_from

__all__ = ["Answer", "Wire", "as_amount", "as_time", "field"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A decrypted successful answer and the server's clock at the time."""

    data: dict[str, Any]
    server_time: datetime | None


def _malformed(message: str, status: int | None) -> MalformedResponse:
    return MalformedResponse(f"pokepay: {message}", provider=PROVIDER, http_status=status)


def as_amount(value: Any, what: str) -> int:
    """A whole-yen amount from a JSON number (Pokepay may write ``1200.0``)."""
    if isinstance(value, bool):
        raise _malformed(f"{what} is not a number", None)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _malformed(f"{what} is not a number", None) from None
        if number.is_integer():
            return int(number)
    raise _malformed(f"{what} is not a whole amount", None)


def as_time(value: Any) -> datetime | None:
    """An aware datetime from an ISO-8601 string (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Pokepay writes offsets; a bare time is read as Japan time, the service's zone.
        parsed = parsed.replace(tzinfo=ZoneInfo("Asia/Tokyo"))
    return parsed


def field(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]`` or `MalformedResponse`."""
    if name not in data or data[name] is None:
        raise _malformed(f"answer lacks {name!r}", None)
    return data[name]


class Wire:
    """Builds envelope `Call`s and opens replies for one account."""

    def __init__(
        self,
        *,
        cipher: EnvelopeCipher,
        client_id: str,
        base_url: str,
        zone: ZoneInfo,
        accept_language: str | None = None,
    ) -> None:
        self.cipher = cipher
        self.client_id = client_id
        self.base_url = base_url.rstrip("/")
        self.zone = zone
        self.accept_language = accept_language

    def call(
        self,
        ctx: OpContext,
        method: str,
        path: str,
        params: Mapping[str, Any],
        *,
        step: str,
        retry: Retry,
    ) -> Call:
        """The `Call` for one operation: ``params`` become the encrypted ``request_data``."""
        inner = {
            "request_data": dict(params),
            "timestamp": ctx.now().astimezone(self.zone).isoformat(),
            "partner_call_id": str(ctx.new_uuid()),
        }
        plaintext = json.dumps(inner, ensure_ascii=False, separators=(",", ":")).encode()
        outer = {
            "partner_client_id": self.client_id,
            "data": self.cipher.encrypt(plaintext),
            "request_method": method,
        }
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.accept_language:
            headers["accept-language"] = self.accept_language
        return Call(
            "POST",
            self.base_url + path,
            headers=headers,
            content=json.dumps(outer, separators=(",", ":")).encode(),
            retry=retry,
            step=step,
        )

    def decrypt_object(self, text: Any, status: int | None) -> dict[str, Any]:
        """Decrypt ``response_data`` into a JSON object, or `MalformedResponse`."""
        if not isinstance(text, str):
            raise _malformed("response_data is not a string", status)
        try:
            plain = self.cipher.decrypt(text)
        except CryptoError as exc:
            raise _malformed(f"response_data cannot be decrypted ({exc})", status) from None
        try:
            data = json.loads(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _malformed("response_data does not decrypt to JSON", status) from None
        if not isinstance(data, dict):
            raise _malformed("response_data is not a JSON object", status)
        return data

    def open(self, reply: Reply) -> Answer:
        """The decrypted object of a 2xx reply; raise the mapped error otherwise."""
        if not reply.ok:
            raise self.error(reply)
        outer = reply.json_object()
        server_time = as_time(outer.get("timestamp"))
        if "response_data" in outer:
            return Answer(self.decrypt_object(outer["response_data"], reply.status), server_time)
        # Only /ping answers in clear; tolerate a plain object rather than fail on it.
        return Answer(outer, server_time)

    def error(self, reply: Reply) -> PaygateError:
        """The paygate error of a non-2xx reply (encrypted or plain body)."""
        try:
            outer = json.loads(reply.content) if reply.content else None
        except (ValueError, UnicodeDecodeError):
            outer = None
        body: Mapping[str, Any] | None = None
        if isinstance(outer, dict):
            if "response_data" in outer:
                body = self.decrypt_object(outer["response_data"], reply.status)
            else:
                body = outer
        return error_from(body, status=reply.status, reply=reply)
