"""Building UnivaPay calls and reading their answers (sans-I/O).

Every call carries ``Authorization: Bearer {secret}.{jwt}``. Reads are `Retry.SAFE`;
every POST carries an ``Idempotency-Key`` header and is `Retry.KEYED`: UnivaPay keeps
a key for 24 hours (`KEY_WINDOW`) and replays the first answer for the same request.
Bodies are JSON with sorted keys, so the same request always encodes to the same
bytes. Lists are paged with ``limit`` / ``cursor`` (the last item's id) until
``has_more`` is false.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from paygate._models import Konbini
from paygate._money import Money
from paygate.adapter import Call, Flow, Reply, Retry

from ._errors import check_reply
from ._validate import normalize_phone
from ._wire import normalize_store, whole_days

__all__ = [
    "KEY_WINDOW",
    "LONG_POLL_READ_TIMEOUT",
    "Api",
    "encode",
    "konbini_token_body",
    "refund_body",
]

KEY_WINDOW = timedelta(hours=24)
# UnivaPay does not document how long ``polling=true`` holds a request; the Node SDK
# re-polls every second for up to 10 minutes, which suggests a hold well under a
# minute. paygate assumes at most 30 seconds and reads for up to 60.
LONG_POLL_READ_TIMEOUT = 60.0
PAGE_LIMIT = 100
MAX_PAGES = 20

_REFUND_REASONS = {
    "duplicate": "duplicate",
    "fraud": "fraud",
    "fraudulent": "fraud",
    "customer_request": "customer_request",
    "requested_by_customer": "customer_request",
}


def encode(body: Mapping[str, Any]) -> bytes:
    """The JSON body of a POST, keys sorted.

    Sorted keys: the same request always encodes to the same bytes, so a replay after a
    crash matches UnivaPay's stored request and cassettes stay stable.

    >>> encode({"b": 1, "a": "x"})
    b'{"a":"x","b":1}'
    """
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def konbini_token_body(method: Konbini) -> dict[str, Any]:
    """The ``POST /tokens`` body of a konbini payment (a validated request).

    >>> body = konbini_token_body(Konbini(store="lawson", customer_name="山田 太郎",
    ...                                   phone="03-6441-3400"))
    >>> body["data"]["phone_number"]
    {'country_code': '81', 'local_number': '0364413400'}
    """
    country_code, local_number = normalize_phone(method.phone)
    data: dict[str, Any] = {
        "customer_name": method.customer_name.strip(),
        "convenience_store": normalize_store(method.store),
        "phone_number": {"country_code": country_code, "local_number": local_number},
    }
    if method.expires_in is not None:
        # UnivaPay deadlines are whole days (application day + period, 23:59).
        data["expiration_period"] = f"P{whole_days(method.expires_in)}D"
    body: dict[str, Any] = {"payment_type": "konbini", "type": "one_time", "data": data}
    if method.email:
        body["email"] = method.email
    return body


def refund_body(amount: Money, reason: str | None) -> dict[str, Any]:
    """The ``POST …/refunds`` body: UnivaPay's reason when one fits, else
    ``customer_request`` with the merchant's text as ``message``.

    >>> refund_body(Money.jpy(500), "fraudulent")
    {'amount': 500, 'currency': 'JPY', 'reason': 'fraud'}
    """
    body: dict[str, Any] = {"amount": amount.amount, "currency": amount.currency}
    if reason:
        mapped = _REFUND_REASONS.get(reason.strip().lower())
        if mapped:
            body["reason"] = mapped
        else:
            body["reason"] = "customer_request"
            body["message"] = reason[:255]
    return body


class Api:
    """Call factory and answer reader for one UnivaPay store.

    >>> api = Api("https://api.univapay.com", "Bearer s.j", store_id="st")
    >>> api.url(api.charge_path("ch"), {"polling": "true"})
    'https://api.univapay.com/stores/st/charges/ch?polling=true'
    """

    def __init__(self, base_url: str, authorization: str, *, store_id: str) -> None:
        self.base_url = base_url
        self.store_id = store_id
        self._authorization = authorization

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The absolute URL of an API path, with its query string."""
        url = f"{self.base_url}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    def headers(self, key: str | None = None, *, body: bool = False) -> dict[str, str]:
        """Authorization and Accept; Content-Type for a body; the idempotency key."""
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    @property
    def charges_path(self) -> str:
        """``/stores/{storeId}/charges``."""
        return f"/stores/{self.store_id}/charges"

    def charge_path(self, charge_id: str) -> str:
        """``/stores/{storeId}/charges/{id}``."""
        return f"{self.charges_path}/{charge_id}"

    def get_call(
        self,
        path: str,
        *,
        step: str,
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Call:
        """A read (retried freely)."""
        return Call(
            "GET",
            self.url(path, query),
            headers=self.headers(),
            retry=Retry.SAFE,
            step=step,
            timeout=timeout,
        )

    def post(self, path: str, body: Mapping[str, Any], *, key: str, step: str) -> Flow[Any]:
        """POST ``body`` under ``key``; the answer's JSON (``{}`` for an empty body)."""
        call = Call(
            "POST",
            self.url(path),
            headers=self.headers(key, body=True),
            content=encode(body),
            retry=Retry.KEYED,
            step=step,
        )
        reply: Reply = yield call
        check_reply(reply, step=step)
        return reply.json() if reply.content.strip() else {}

    def get(
        self,
        path: str,
        *,
        step: str,
        query: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Flow[dict[str, Any]]:
        """GET ``path``; the answer's JSON object."""
        reply: Reply = yield self.get_call(path, step=step, query=query, timeout=timeout)
        check_reply(reply, step=step)
        return reply.json_object()

    def poll(self, path: str, *, step: str) -> Flow[dict[str, Any]]:
        """A held read (``?polling=true``): UnivaPay answers once the object leaves
        ``pending``."""
        return self.get(path, step=step, query={"polling": "true"}, timeout=LONG_POLL_READ_TIMEOUT)

    def paged(
        self, path: str, *, step: str, query: Mapping[str, str] | None = None
    ) -> Flow[list[dict[str, Any]]]:
        """Every item of a list endpoint (at most `MAX_PAGES` pages), one page at a time."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"limit": str(PAGE_LIMIT), **(query or {})}
            if cursor:
                params["cursor"] = cursor
            page = yield from self.get(path, step=step, query=params)
            batch = [i for i in page.get("items") or [] if isinstance(i, dict)]
            items.extend(batch)
            if not page.get("has_more") or not batch:
                break
            cursor = str(batch[-1].get("id"))
        return items
