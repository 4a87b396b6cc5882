"""Money: integer minor units with an ISO 4217 currency. Never a float."""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from ._errors import InvalidRequest

__all__ = ["Money"]

# Exponent of the minor unit for the currencies paygate's providers accept. Others
# default to 2, which is right for nearly every currency in ISO 4217.
_EXPONENTS: dict[str, int] = {"JPY": 0, "KRW": 0, "TWD": 2, "USD": 2, "EUR": 2, "CNY": 2}


@functools.total_ordering
class Money(BaseModel):
    """An amount of money in integer minor units of one currency.

    Arithmetic and comparison only work between amounts of the same currency; mixing
    currencies raises `InvalidRequest` instead of silently converting.

    >>> Money.jpy(1200) + Money.jpy(300)
    Money.jpy(1500)
    >>> Money.jpy(1200).amount
    1200
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    amount: Annotated[StrictInt, Field(description="Amount in minor units (yen for JPY).")]
    currency: Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")]

    MAX_AMOUNT: ClassVar[int] = 10**15

    @field_validator("amount")
    @classmethod
    def _bounded(cls, value: int) -> int:
        if abs(value) > cls.MAX_AMOUNT:
            raise ValueError("amount out of range")
        return value

    @field_validator("currency", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def __init__(self, amount: int | None = None, currency: str | None = None, **data: Any):
        if amount is not None:
            data["amount"] = amount
        if currency is not None:
            data["currency"] = currency
        if isinstance(data.get("amount"), bool | float):
            raise InvalidRequest("amount must be an integer number of minor units", param="amount")
        try:
            super().__init__(**data)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) or "money" for e in exc.errors()})
            raise InvalidRequest(
                f"invalid Money: {', '.join(fields)} (an integer amount within "
                f"±{self.MAX_AMOUNT:,} and a three-letter ISO 4217 currency)",
                param=fields[0] if len(fields) == 1 else "amount",
            ) from None

    @classmethod
    def jpy(cls, amount: int) -> Self:
        """Japanese yen (JPY has no minor unit: ``Money.jpy(1200)`` is ¥1,200)."""
        return cls(amount=amount, currency="JPY")

    @classmethod
    def zero(cls, currency: str) -> Self:
        """Zero in ``currency``."""
        return cls(amount=0, currency=currency)

    @property
    def exponent(self) -> int:
        """Number of decimal digits of the minor unit (0 for JPY)."""
        return _EXPONENTS.get(self.currency, 2)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidRequest(
                f"currency mismatch: {self.currency} and {other.currency}", param="currency"
            )
        return other

    def __add__(self, other: object) -> Money:
        o = self._same(other)
        return Money(amount=self.amount + o.amount, currency=self.currency)

    def __sub__(self, other: object) -> Money:
        o = self._same(other)
        return Money(amount=self.amount - o.amount, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount=-self.amount, currency=self.currency)

    def __lt__(self, other: object) -> bool:
        return self.amount < self._same(other).amount

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self.amount == other.amount and self.currency == other.currency

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))

    def __bool__(self) -> bool:
        return self.amount != 0

    def __repr__(self) -> str:
        if self.currency == "JPY":
            return f"Money.jpy({self.amount})"
        return f"Money({self.amount}, {self.currency!r})"

    def __str__(self) -> str:
        if self.exponent == 0:
            return f"{self.amount:,} {self.currency}"
        sign = "-" if self.amount < 0 else ""
        major, minor = divmod(abs(self.amount), 10**self.exponent)
        return f"{sign}{major:,}.{minor:0{self.exponent}d} {self.currency}"
