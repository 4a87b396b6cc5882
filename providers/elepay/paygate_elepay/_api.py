"""Building elepay calls and reading their answers (sans-I/O).

Every call carries HTTP Basic auth with the secret key as the user name (empty
password), as the official SDK does, and elepay's exact media type. Reads are
``Retry.SAFE``; the code create, a refund and a revoke are ``Retry.UNSAFE`` (the flow,
not the driver, decides what to send after a lost answer); closing a code is naturally
idempotent (``Retry.SAFE``). elepay has no idempotency header.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

from paygate import MalformedResponse, QRCode
from paygate.adapter import Call, ChargeRequest, Flow, Reply, Retry, register_secret

from ._charges import NAME
from ._errors import error_from_reply
from ._settings import ElepaySettings
from ._wire import CONTENT_TYPE, dumps

__all__ = ["PAGE", "Api", "code_body", "seg"]

PAGE: Final = 100  # elepay's maximum ``limit``


def seg(value: str) -> str:
    """``value`` as one URL path segment.

    >>> seg("cd/1")
    'cd%2F1'
    """
    return quote(value, safe="")


def code_body(req: ChargeRequest, order_no: str, settings: ElepaySettings) -> dict[str, Any]:
    """The ``POST /codes`` body (``CodeReq``) of a validated charge request.

    >>> from paygate import Money
    >>> code_body(ChargeRequest(amount=Money.jpy(1200), method=QRCode()), "pg-code-1",
    ...           ElepaySettings(secret_key="sk_test_x"))
    {'orderNo': 'pg-code-1', 'amount': 1200, 'currency': 'JPY', 'expiryDuration': 10}
    """
    method = req.method
    assert isinstance(method, QRCode)  # validate_charge refused anything else
    body: dict[str, Any] = {
        "orderNo": order_no,
        "amount": req.amount.amount,
        "currency": req.amount.currency,
    }
    if req.description is not None:
        body["description"] = req.description
    front = method.return_url or settings.front_url
    if front is not None:
        body["frontUrl"] = front
    body["expiryDuration"] = (
        settings.expiry_minutes
        if method.expires_in is None
        else int(method.expires_in.total_seconds() // 60)
    )
    items = [
        {"name": p.name, "price": p.unit_price, "count": p.quantity}
        for p in getattr(method, "products", None) or ()
    ]
    if items:
        body["items"] = items
    if req.metadata:
        body["metadata"] = dict(req.metadata)
    if settings.location_id is not None:
        body["locationId"] = settings.location_id
    return body


class Api:
    """Call factory and answer reader for one elepay application."""

    def __init__(self, base_url: str, secret_key: str) -> None:
        self.base_url = base_url
        token = base64.b64encode(f"{secret_key}:".encode()).decode("ascii")
        register_secret(token)  # the encoded form is as secret as the key itself
        self._authorization = f"Basic {token}"

    def call(
        self,
        method: str,
        path: str,
        *,
        step: str,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, Any]] = (),
        retry: Retry = Retry.SAFE,
    ) -> Call:
        """One request: JSON ``body`` when given, ``query`` appended to the path."""
        url = self.base_url + path
        if query:
            url += "?" + urlencode(list(query))
        headers = {"Authorization": self._authorization, "Accept": CONTENT_TYPE}
        content = None
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE
            content = dumps(body)
        return Call(method, url, headers=headers, content=content, retry=retry, step=step)

    def read(self, reply: Reply, *, action: str) -> dict[str, Any]:
        """The JSON object of a 2xx answer, or the mapped paygate error naming
        ``action``."""
        if not reply.ok:
            raise error_from_reply(reply, action=action)
        return reply.json_object()

    def get_code(self, code_id: str) -> Flow[dict[str, Any]]:
        """``GET /codes/{codeId}``."""
        reply = yield self.call("GET", f"/codes/{seg(code_id)}", step="codes.get")
        return self.read(reply, action="read the code")

    def get_charge(self, charge_id: str) -> Flow[dict[str, Any]]:
        """``GET /charges/{id}``."""
        reply = yield self.call("GET", f"/charges/{seg(charge_id)}", step="charges.get")
        return self.read(reply, action="read the charge")

    def close_code(self, code_id: str) -> Call:
        """``DELETE /codes/{codeId}`` (closing twice ends in the same state)."""
        return self.call("DELETE", f"/codes/{seg(code_id)}", retry=Retry.SAFE, step="codes.close")

    def list_refunds(self, charge_id: str) -> Flow[list[dict[str, Any]]]:
        """``GET /charges/{id}/refunds``: the charge's refunds."""
        reply = yield self.call("GET", f"/charges/{seg(charge_id)}/refunds", step="refunds.list")
        found = self.read(reply, action="list refunds").get("refunds")
        return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []

    def scan_charges(
        self, order_nos: set[str], start: int, *, max_pages: int
    ) -> Flow[tuple[list[dict[str, Any]], bool]]:
        """Charges of ``order_nos`` created since ``start`` (epoch ms), newest first,
        and whether the list was read to its end within ``max_pages`` pages.

        elepay cannot filter the charge list by orderNo: every page is read and filtered
        here, one page call at a time.
        """
        found: list[dict[str, Any]] = []
        for page in range(max_pages):
            reply = yield self.call(
                "GET",
                "/charges",
                query=(
                    ("from", start),
                    ("dateField", "create_time"),
                    ("sort", "create_time"),
                    ("order", "desc"),
                    ("limit", PAGE),
                    ("offset", page * PAGE),
                ),
                step="charges.list",
            )
            body = self.read(reply, action="list charges")
            charges = body.get("charges")
            if not isinstance(charges, list):
                raise MalformedResponse(
                    "charge list without 'charges'", provider=NAME, http_status=reply.status
                )
            found.extend(
                item
                for item in charges
                if isinstance(item, dict) and item.get("orderNo") in order_nos
            )
            total = body.get("total")
            seen = page * PAGE + len(charges)
            if len(charges) < PAGE or (isinstance(total, int) and seen >= total):
                return found, True
        return found, False
