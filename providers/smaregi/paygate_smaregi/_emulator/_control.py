"""The Smaregi emulator's control actions (``POST /_sandbox/smaregi/<action>``): what a
clerk does at the register, what the real sandbox cannot do (delete the app payment
method), and the knobs that make races, rate limits and undocumented readings
reproducible."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate.sandbox import ControlError

from ._state import READING_CHOICES, Contract, SmaregiState

__all__ = ["SmaregiControl"]


class SmaregiControl(SmaregiState):
    """The ``control_<action>`` methods (the base `Emulator.control` dispatches)."""

    def control_reset(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Forget everything and restore the seed data."""
        self.reset()
        return {}

    def control_delete_payment_method(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Delete the app payment method (``client_id``, ``contract_id`` optional).

        The real sandbox cannot; this re-tests first use.
        """
        client_id = str(params.get("client_id") or self.CLIENT_ID)
        contract = self._contract(params)
        removed = contract.app_methods.pop(client_id, None)
        return {
            "deleted": removed is not None,
            "paymentMethodId": removed["paymentMethodId"] if removed else None,
        }

    def control_rate_limit(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Per-second quotas: ``reads``, ``writes`` (null = unlimited)."""
        for kind, key in (("read", "reads"), ("write", "writes")):
            value = params.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ControlError(f"{key} must be a positive integer or null")
            self._limits[kind] = value
        self._hits.clear()
        return {"reads": self._limits["read"], "writes": self._limits["write"]}

    def control_expire_tokens(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every issued access token stops working (the next call gets 401)."""
        count = len(self._tokens)
        self._tokens.clear()
        return {"expired": count}

    def control_void_transaction(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A clerk voids the sale at the POS (取消) (``transaction_head_id``).

        The transaction's ``cancelDivision`` becomes 1.
        """
        contract = self._contract(params)
        head = contract.transactions.get(str(params.get("transaction_head_id", "")))
        if head is None:
            raise ControlError("unknown transaction_head_id", status=404)
        if head["cancelDivision"] == "1":
            raise ControlError("the transaction is voided already", status=409)
        self._void(head)
        return {"transactionHeadId": head["transactionHeadId"], "cancelDivision": "1"}

    def control_dispose_transaction(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A clerk reverses the sale at the POS by 返品取消 (``transaction_head_id``).

        The original gets ``disposeDivision`` 1, plus an offsetting record.
        """
        contract = self._contract(params)
        head = contract.transactions.get(str(params.get("transaction_head_id", "")))
        if head is None:
            raise ControlError("unknown transaction_head_id", status=404)
        if head["cancelDivision"] == "1" or head["disposeDivision"] != "0":
            raise ControlError("the transaction is reversed already", status=409)
        offset = self._dispose(contract, head)
        return {
            "transactionHeadId": head["transactionHeadId"],
            "disposeDivision": "1",
            "disposeServerTransactionHeadId": offset["transactionHeadId"],
        }

    def control_configure(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Play one reading of an undocumented fact; answers the readings in force.

        The readings (see the package docstring): ``payment_method_name``,
        ``sum_division``, ``transaction_uuid_filter``, ``cancel_time``,
        ``token_lifetime``, ``token_calls_count``.
        """
        for key, value in params.items():
            if key in READING_CHOICES:
                if value not in READING_CHOICES[key]:
                    choices = ", ".join(READING_CHOICES[key])
                    raise ControlError(f"{key} is one of: {choices}")
            elif key == "token_lifetime":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ControlError("token_lifetime must be a positive number of seconds")
            elif key == "token_calls_count":
                if not isinstance(value, bool):
                    raise ControlError("token_calls_count must be true or false")
            else:
                raise ControlError(f"unknown reading {key!r}")
            self._readings[key] = value
        return dict(self._readings)

    def control_slow_reads(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The next ``count`` app payment method GETs are answered ``seconds`` late.

        With the state as it was when they arrived (to make first-use races
        reproducible).
        """
        seconds, count = params.get("seconds", 1.0), params.get("count", 1)
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 30:
            raise ControlError("seconds must be between 0 and 30")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError("count must be a non-negative integer")
        self._slow_reads = (float(seconds), count)
        return {"seconds": float(seconds), "count": count}

    def control_stale_reads(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The next ``count`` app payment method GETs answer as if none existed.

        What a process sees when another registers the method between its GET and its
        POST (the POST then gets the 403).
        """
        count = params.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ControlError("count must be a non-negative integer")
        self._stale_reads = count
        return {"count": count}

    def control_stats(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Counters: token requests, app payment method POSTs and creations, transactions."""
        s = self._stats
        return {
            "token_requests": s.token_requests,
            "app_payment_method_posts": s.app_payment_method_posts,
            "app_payment_methods_created": s.app_payment_methods_created,
            "transactions_created": s.transactions_created,
        }

    def _contract(self, params: Mapping[str, Any]) -> Contract:
        contract_id = str(params.get("contract_id") or self.CONTRACT_ID)
        contract = self._contracts.get(contract_id)
        if contract is None:
            raise ControlError(f"unknown contract {contract_id!r}", status=404)
        return contract
