"""The Partner API envelope: building Pokepay calls and opening their answers (sans-I/O).

Requests: one JSON object ``{partner_client_id, data, request_method}`` sent with POST,
where ``data`` encrypts ``{request_data, timestamp, partner_call_id}``. Two official SDKs
(Python and Java) send every operation this way, the logical method travelling in
``request_method``; paygate does the same so that no GET or DELETE carries a body.

Responses: ``{response_data, timestamp, partner_call_id}`` with ``response_data``
encrypted; errors come encrypted the same way or as a plain ``{type, message}``.

Retry: the driver re-sends the very same envelope, so the same ``partner_call_id``.
``partner_request_expired`` refuses the envelope before anything is done: `Api.send`
rebuilds it once (fresh timestamp, IV and call id) and sends it again.
``partner_request_already_done`` (a re-sent envelope was processed before) is left to
the flows, except for reads: `Api.read` reads again under a fresh envelope.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Generator, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from paygate import PaygateError, ProviderError, QRCode, Wallet
from paygate.adapter import Call, ChargeRequest, Effect, OpContext, Reply, Retry

from ._crypto import CryptoError, EnvelopeCipher
from ._errors import error_from
from ._settings import PokepaySettings
from ._wire import Answer, as_time, malformed

__all__ = [
    "ALREADY_DONE",
    "EXPIRED",
    "Api",
    "cashtray_params",
    "legacy_request_id",
    "payment_params",
    "payment_request_id",
    "request_id",
]

ALREADY_DONE = "partner_request_already_done"
EXPIRED = "partner_request_expired"


def payment_request_id(ctx: OpContext) -> str:
    """The ``request_id`` of the wallet payment of ``ctx``'s idempotency key.

    Documented as "UUID V4 format": the bytes of paygate's UUIDv5 of the key carry the
    v4 version and variant bits, so the id stays deterministic for the key (a re-send
    after a crash sends the same id) and is an RFC-valid v4 UUID.

    >>> ctx = OpContext(account="wallet", provider="pokepay", idempotency_key="order-7")
    >>> uuid.UUID(payment_request_id(ctx)).version
    4
    """
    return str(uuid.UUID(bytes=ctx.key_uuid("payment").bytes, version=4))


def request_id(ctx: OpContext) -> str:
    """`payment_request_id`, or `InvalidRequest` when the operation has no key (from
    `OpContext.key_uuid`)."""
    return payment_request_id(ctx)


def legacy_request_id(ctx: OpContext) -> str:
    """The ``request_id`` earlier paygate versions sent: the UUIDv5 itself.

    A payment started then is still found under it on recovery.
    """
    return str(ctx.key_uuid("payment"))


def payment_params(
    req: ChargeRequest, method: Wallet, request_id: str, settings: PokepaySettings
) -> dict[str, Any]:
    """The ``request_data`` of CreatePaymentTransaction (``POST /transactions/payment``)."""
    params: dict[str, Any] = {
        "shop_id": settings.shop_id,
        "customer_id": method.customer_id,
        "private_money_id": method.private_money_id or settings.private_money_id,
        "amount": req.amount.amount,
        "request_id": request_id,
    }
    strategy = getattr(method, "strategy", None) or settings.strategy
    if strategy is not None:
        params["strategy"] = strategy
    if req.description:
        params["description"] = req.description
    if req.metadata:
        params["metadata"] = json.dumps(dict(req.metadata), ensure_ascii=False, sort_keys=True)
    if method.products:
        params["products"] = [
            {
                "name": p.name,
                "unit_price": p.unit_price,
                "price": p.unit_price * p.quantity,
                "quantity": p.quantity,
                "is_discounted": False,
                **({"jan_code": p.code} if p.code else {}),
            }
            for p in method.products
        ]
    return params


def cashtray_params(
    req: ChargeRequest, method: QRCode, settings: PokepaySettings
) -> dict[str, Any]:
    """The ``request_data`` of CreateCashtray (``POST /cashtrays``)."""
    params: dict[str, Any] = {
        "private_money_id": settings.private_money_id,
        "shop_id": settings.shop_id,
        # Negative: a payment from the customer (positive would top the wallet up).
        "amount": -req.amount.amount,
    }
    if req.description:
        params["description"] = req.description
    if method.expires_in is not None:
        params["expires_in"] = max(1, math.floor(method.expires_in.total_seconds()))
    return params


class Api:
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
            raise malformed("response_data is not a string", status)
        try:
            plain = self.cipher.decrypt(text)
        except CryptoError as exc:
            raise malformed(f"response_data cannot be decrypted ({exc})", status) from None
        try:
            data = json.loads(plain.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise malformed("response_data does not decrypt to JSON", status) from None
        if not isinstance(data, dict):
            raise malformed("response_data is not a JSON object", status)
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

    def send(
        self,
        ctx: OpContext,
        method: str,
        path: str,
        params: Mapping[str, Any],
        *,
        step: str,
        retry: Retry,
    ) -> Generator[Effect, Any, Answer]:
        """Send one operation and open its answer (an expired envelope is rebuilt once)."""
        reply = yield self.call(ctx, method, path, params, step=step, retry=retry)
        try:
            return self.open(reply)
        except ProviderError as exc:
            if exc.provider_code != EXPIRED:
                raise
        # The envelope was refused as too old, before anything was done: build a fresh
        # one (new timestamp, IV and partner_call_id) and send it once more. A second
        # refusal is raised (Outcome.RETRYABLE: check the clock, then retry).
        reply = yield self.call(ctx, method, path, params, step=step, retry=retry)
        return self.open(reply)

    def read(
        self, ctx: OpContext, path: str, step: str, params: Mapping[str, Any] | None = None
    ) -> Generator[Effect, Any, Answer]:
        """A GET; a retried envelope refused as a replay is read again under a fresh one."""
        try:
            return (
                yield from self.send(ctx, "GET", path, params or {}, step=step, retry=Retry.SAFE)
            )
        except ProviderError as exc:
            if exc.provider_code != ALREADY_DONE:
                raise
        return (yield from self.send(ctx, "GET", path, params or {}, step=step, retry=Retry.SAFE))
