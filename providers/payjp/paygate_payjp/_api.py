"""Building PAY.JP calls and reading their answers (sans-I/O).

Every call carries HTTP Basic auth with the secret key (empty password). Reads are
``Retry.SAFE``; every POST carries an ``Idempotency-Key`` header and is
``Retry.KEYED``, except refunds, captures, voids and ``tds_finish`` (``Retry.UNSAFE``:
v1 documents no key semantics for them). Lists are paged lazily with ``limit`` /
``offset`` until ``has_more`` is false: one page call is yielded at a time, so a flow
stops fetching as soon as it has what it needs.
"""

from __future__ import annotations

import base64
import hashlib
import string
from collections.abc import Mapping
from typing import Any

from paygate._errors import InvalidRequest, MalformedResponse
from paygate.adapter import Call, Flow, OpContext, Reply, Retry, register_secret

from ._errors import error_from_reply
from ._wire import encode_form, list_data, query

__all__ = ["Api", "idempotency_key"]

PAGE_SIZE = 100  # PAY.JP's maximum ``limit``
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_KEY_MAX = 255


def idempotency_key(ctx: OpContext, scope: str) -> str:
    """The ``Idempotency-Key`` for ``scope`` derived from the merchant's key.

    PAY.JP documents no v1 key syntax; its v2 API allows 255 characters of
    ``[A-Za-z0-9_-]``, which is what is sent. A merchant key outside that alphabet is
    hashed rather than character-replaced, so two different merchant keys never map
    to the same provider key.

    >>> idempotency_key(OpContext(account="card", provider="payjp",
    ...                           idempotency_key="order-7"), "charge")
    'pg-charge-order-7'
    """
    if ctx.idempotency_key is None:
        raise InvalidRequest("an idempotency key is required", param="idempotency_key")
    merchant = ctx.idempotency_key
    if merchant and set(merchant) <= _KEY_CHARS:
        key = ctx.provider_key(scope, max_len=_KEY_MAX)
        if set(key) <= _KEY_CHARS:
            return key
    digest = hashlib.sha256(f"{scope}\0{merchant}".encode()).hexdigest()
    return f"pg-{scope}-h{digest[:48]}"


class Api:
    """Call factory and answer reader for one PAY.JP account."""

    def __init__(self, base_url: str, secret_key: str, *, provider: str = "payjp") -> None:
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{secret_key}:".encode()).decode("ascii")
        # The encoded form is as secret as the key itself.
        register_secret(token)
        self._auth = f"Basic {token}"
        self.provider = provider

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``/v1/...``)."""
        return f"{self.base_url}{path}"

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, step: str) -> Call:
        """A read (retried freely)."""
        return Call(
            "GET",
            self.url(path) + query(params or {}),
            headers={"Authorization": self._auth, "Accept": "application/json"},
            retry=Retry.SAFE,
            step=step,
        )

    def post(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str,
        step: str,
        retry: Retry = Retry.KEYED,
    ) -> Call:
        """A write carrying ``key`` as ``Idempotency-Key``.

        ``retry``: `Retry.KEYED` (the driver re-sends with the same key) where PAY.JP's
        SDKs rely on the key (charge creation); `Retry.UNSAFE` where v1 documents no key
        semantics (refund, capture, void, ``tds_finish``): only a request that surely
        never arrived is re-sent, anything else goes to the operation's lookup.
        """
        return Call(
            "POST",
            self.url(path),
            headers={
                "Authorization": self._auth,
                "Accept": "application/json",
                "Content-Type": "application/x-www-form-urlencoded",
                "Idempotency-Key": key,
            },
            content=encode_form(params or {}),
            retry=retry,
            step=step,
        )

    def read(self, reply: Reply, kind: str | None = None) -> dict[str, Any]:
        """The JSON object of a 2xx answer (checking ``object`` when ``kind`` is given),
        or the mapped paygate error."""
        if not reply.ok:
            raise error_from_reply(reply)
        obj = reply.json_object()
        if kind is not None and obj.get("object") != kind:
            raise MalformedResponse(
                f"expected a {kind} object, got {obj.get('object')!r}",
                provider=self.provider,
                http_status=reply.status,
            )
        return obj

    def paged(
        self,
        path: str,
        params: Mapping[str, Any],
        *,
        step: str,
        max_items: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Flow[list[dict[str, Any]]]:
        """Every object of a list endpoint, one page call at a time.

        Stops at ``has_more == false``, at an empty page, or once ``max_items`` objects
        are in hand. Objects seen on an earlier page are skipped: offset paging over a
        list that grows while it is read may repeat an object.
        """
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            page_params = {**params, "limit": page_size, "offset": offset}
            reply = yield self.get(path, page_params, step=step)
            envelope = self.read(reply, "list")
            data = list_data(envelope)
            for obj in data:
                oid = str(obj.get("id", ""))
                if oid and oid in seen:
                    continue
                seen.add(oid)
                out.append(obj)
                if max_items is not None and len(out) >= max_items:
                    return out
            if not envelope.get("has_more") or not data:
                return out
            offset += len(data)
