"""Smaregi wire conventions: JST date-times, numbers as strings, the objects paygate reads.

Smaregi sends numbers as JSON strings (a JSON integer is tolerated on reading) and
date-times as ISO 8601 with the ``+09:00`` offset (a time without offset is JST). Lists
come as a bare JSON array; `items` also reads a wrapping object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from paygate import MalformedResponse

__all__ = [
    "JST",
    "PROVIDER",
    "AppPaymentMethod",
    "format_jst",
    "items",
    "parse_datetime",
    "parse_int",
]

PROVIDER = "smaregi"

JST = timezone(timedelta(hours=9), "JST")


def format_jst(moment: datetime) -> str:
    """``YYYY-MM-DDThh:mm:ss+09:00``: Smaregi reads times as JST.

    >>> from datetime import UTC
    >>> format_jst(datetime(2024, 5, 1, 1, 2, 3, tzinfo=UTC))
    '2024-05-01T10:02:03+09:00'
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(JST).replace(microsecond=0).isoformat()


def parse_datetime(value: Any) -> datetime | None:
    """A Smaregi date-time (a time without offset is JST), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JST)


def parse_int(value: Any, *, field: str) -> int:
    """A Smaregi number (sent as a string; tolerate a JSON integer) as int."""
    if isinstance(value, bool):
        raise MalformedResponse(f"{field} is not a number", provider=PROVIDER)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise MalformedResponse(f"{field} is not a number", provider=PROVIDER)


def items(data: Any, *keys: str) -> list[Any]:
    """A list from a bare JSON array (what Smaregi returns) or a wrapping object.

    >>> items([{"a": 1}]), items({"data": [1, 2]}, "data"), items({"a": 1}, "data")
    ([{'a': 1}], [1, 2], [{'a': 1}])
    """
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, list):
                return value
        return [data]
    return []


@dataclass(frozen=True, slots=True)
class AppPaymentMethod:
    """The app's own payment method (個別アプリ専用支払方法) on one contract.

    ``payment_method_id`` is what sales reference in ``depositOthers``.

    >>> AppPaymentMethod.from_wire({"paymentMethodId": 101, "paymentMethodName": "app"})
    AppPaymentMethod(payment_method_id='101', name='app', app_payment_method_id=None, code=None)
    """

    payment_method_id: str
    name: str | None = None
    app_payment_method_id: str | None = None
    code: str | None = None

    @property
    def id(self) -> str:
        """The ``paymentMethodId`` (what sales reference)."""
        return self.payment_method_id

    def to_cache(self) -> dict[str, str | None]:
        """The entity-cache value."""
        return {
            "paymentMethodId": self.payment_method_id,
            "paymentMethodName": self.name,
            "appPaymentMethodId": self.app_payment_method_id,
            "appPaymentCode": self.code,
        }

    @classmethod
    def from_wire(cls, item: Any) -> AppPaymentMethod | None:
        """Read a Smaregi (or cached) object; None when it carries no paymentMethodId."""
        if not isinstance(item, Mapping):
            return None
        pm_id = item.get("paymentMethodId")
        if isinstance(pm_id, bool) or not isinstance(pm_id, str | int) or pm_id == "":
            return None

        def text(key: str) -> str | None:
            value = item.get(key)
            return str(value) if isinstance(value, str | int) and value != "" else None

        return cls(
            payment_method_id=str(pm_id),
            name=text("paymentMethodName"),
            app_payment_method_id=text("appPaymentMethodId"),
            code=text("appPaymentCode"),
        )

    @classmethod
    def all_from_wire(cls, data: Any) -> list[AppPaymentMethod]:
        """Every method in a GET answer (O-S1: an array, an object or a wrapper)."""
        found = (cls.from_wire(item) for item in items(data, "appPaymentMethods", "data"))
        return [pm for pm in found if pm is not None]

    @staticmethod
    def pick(found: list[AppPaymentMethod], *, code: str | None, name: str) -> AppPaymentMethod:
        """Ours among several (one per client id is the rule): by code, then name."""
        for pm in found:
            if code is not None and pm.code == code:
                return pm
        for pm in found:
            if pm.name == name:
                return pm
        return found[0]
