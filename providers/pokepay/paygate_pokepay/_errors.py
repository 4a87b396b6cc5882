"""Pokepay error types mapped to paygate's error tree.

Pokepay answers errors as ``{"type": ..., "message": ...}`` (sometimes with
``errors`` or ``object``), either in clear or encrypted in ``response_data``. The
``type`` decides the paygate class; the HTTP status decides when the type is blank or
unknown. Every error keeps ``provider_code`` = type and ``provider_message`` = message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paygate import (
    AuthenticationError,
    IdempotencyConflict,
    NotFound,
    PaygateError,
    PaymentDeclined,
    PermissionDenied,
    ProviderRejected,
    ProviderUnavailable,
)
from paygate.adapter import ErrorMap, Reply

__all__ = ["ERROR_TYPES", "PROVIDER", "error_from"]

PROVIDER = "pokepay"

# type -> (class, paygate's own wording). The types are those documented for the
# operations paygate uses: the envelope, payment and topup, refund, transaction and
# request-id lookups, Cashtray create/get/cancel/scan, accounts and private moneys.
ERROR_TYPES: Mapping[str, tuple[type[PaygateError], str]] = {
    # The envelope and the partner client.
    "partner_client_not_found": (AuthenticationError, "unknown client id"),
    "partner_decryption_failed": (
        AuthenticationError,
        "the request could not be decrypted (wrong client secret?)",
    ),
    "partner_request_expired": (
        ProviderRejected,
        "the request timestamp is too old (check the clock)",
    ),
    # The envelope was processed before and its answer was lost: whatever it did stands,
    # so the outcome is unknown here (the gateway then looks the request up), never a
    # refusal to be replayed.
    "partner_request_already_done": (
        ProviderUnavailable,
        "this partner call was already processed; its answer was lost",
    ),
    "invalid_parameters": (ProviderRejected, "the provider refused the parameters"),
    "unpermitted_admin_user": (PermissionDenied, "the client may not do this"),
    "forbidden": (PermissionDenied, "the client may not do this"),
    "unpermitted_private_money": (PermissionDenied, "this private money is not available"),
    "temporarily_unavailable": (ProviderUnavailable, "the provider is temporarily unavailable"),
    # Payment refusals: the customer's wallet cannot pay.
    "account_balance_not_enough": (PaymentDeclined, "insufficient wallet balance"),
    "account_transfer_limit_exceeded": (PaymentDeclined, "amount above the per-payment limit"),
    "account_balance_exceeded": (PaymentDeclined, "the wallet balance limit would be exceeded"),
    "account_money_topup_transfer_limit_exceeded": (
        PaymentDeclined,
        "amount above the per-topup limit",
    ),
    "account_total_topup_limit_range": (PaymentDeclined, "topup total limit reached"),
    "account_total_topup_limit_entire_period": (PaymentDeclined, "topup total limit reached"),
    "account_suspended": (PaymentDeclined, "the wallet is suspended"),
    "account_closed": (PaymentDeclined, "the wallet is closed"),
    "account_pre_closed": (PaymentDeclined, "the wallet is being closed"),
    "account_restricted": (PaymentDeclined, "the wallet may only pay specific shops"),
    "account_not_accessible": (PermissionDenied, "the wallet is not accessible to this client"),
    "c2c_transfer_not_allowed": (PaymentDeclined, "transfers are not allowed for this money"),
    "account_currency_mismatch": (ProviderRejected, "the wallets hold different moneys"),
    "same_account_transaction": (ProviderRejected, "payer and payee are the same wallet"),
    "account_can_not_topup": (ProviderRejected, "this shop cannot top up"),
    # Unknown objects.
    "customer_account_not_found": (NotFound, "the customer has no wallet for this money"),
    "customer_user_not_found": (NotFound, "unknown customer"),
    "shop_account_not_found": (NotFound, "the shop has no wallet for this money"),
    "shop_user_not_found": (NotFound, "unknown shop"),
    "account_not_found": (NotFound, "wallet not found"),
    "private_money_not_found": (NotFound, "unknown private money"),
    "organization_not_found": (NotFound, "unknown organization"),
    "transaction_not_found": (NotFound, "transaction not found"),
    "cashtray_not_found": (NotFound, "Cashtray not found"),
    "coupon_not_found": (NotFound, "coupon not found"),
    "notfound": (NotFound, "not found"),
    # Requests the provider refused for reasons paygate could not check in advance.
    "private_money_closed": (ProviderRejected, "the private money is closed"),
    "request_id_conflict": (
        IdempotencyConflict,
        "the request id is already used by another transaction",
    ),
    "invalid_metadata": (ProviderRejected, "the provider refused the metadata"),
    "reserved_word_can_not_specify_to_metadata": (
        ProviderRejected,
        "the metadata uses a reserved key",
    ),
    "transaction_invalid_amount": (ProviderRejected, "the amount is not acceptable"),
    "transaction_invalid_done_at": (ProviderRejected, "invalid transaction time"),
    "transaction_has_done": (ProviderRejected, "the transaction is already complete"),
    "terminal_is_invalidated": (ProviderRejected, "the terminal is invalidated"),
    "transaction_already_refunded": (ProviderRejected, "the transaction is already refunded"),
    "not_refundable_transaction_type": (
        ProviderRejected,
        "only payments and topups can be refunded",
    ),
    "can_not_refund_bank_transaction": (ProviderRejected, "bank transactions cannot be refunded"),
    "cashtray_already_proceed": (ProviderRejected, "the Cashtray was already used"),
    "cashtray_expired": (ProviderRejected, "the Cashtray has expired"),
    "cashtray_already_canceled": (ProviderRejected, "the Cashtray was already canceled"),
    "invalid_parameter_both_point_and_money_are_zero": (
        ProviderRejected,
        "money and point amounts are both zero",
    ),
    "credit_session_money_topup_requires_credit_card": (
        ProviderRejected,
        "this money tops up by credit card only",
    ),
    "credit_session_not_found": (NotFound, "credit session not found"),
    "cannot_topup_during_cvs_authorization_pending": (
        ProviderRejected,
        "a convenience-store payment is pending",
    ),
    "not_applicable_transaction_type_for_account_topup_quota": (
        ProviderRejected,
        "topup quota not applicable",
    ),
    "private_money_topup_quota_not_available": (ProviderRejected, "topup quota not available"),
    "account_topup_quota_not_splittable": (ProviderRejected, "topup quota not splittable"),
    "topup_amount_exceeding_topup_quota_usable_amount": (
        ProviderRejected,
        "topup above the usable quota",
    ),
    "account_topup_quota_inactive": (ProviderRejected, "topup quota inactive"),
    "account_topup_quota_not_within_applicable_period": (
        ProviderRejected,
        "topup quota outside its period",
    ),
    "account_topup_quota_not_found": (NotFound, "topup quota not found"),
    "veritrans_api_error": (ProviderUnavailable, "the card service is temporarily unavailable"),
}

_BY_STATUS: Mapping[int, type[PaygateError]] = {
    409: ProviderRejected,
    422: ProviderRejected,
}

_ERRORS = ErrorMap(PROVIDER, by_status=_BY_STATUS)


def _class_for(kind: str | None, status: int | None) -> tuple[type[PaygateError], str | None]:
    if kind == "api_error":
        # The NotFound schema's example type, but nothing says it means only "not
        # found": the HTTP status decides (a 5xx stays ProviderUnavailable).
        if status == 404 or status is None:
            return NotFound, "not found"
        kind = None
    if kind:
        if kind in ERROR_TYPES:
            return ERROR_TYPES[kind]
        if kind.startswith("invalid_parameter"):
            return ProviderRejected, "the provider refused the parameters"
        if kind.startswith("coupon_"):
            return ProviderRejected, "the coupon cannot be used"
    return _ERRORS.error_class(status), None


def error_from(
    body: Mapping[str, Any] | None,
    *,
    status: int | None,
    reply: Reply | None = None,
) -> PaygateError:
    """The paygate error for a Pokepay error body (decrypted or plain) and HTTP status.

    ``reply`` (when the body came from one) gives ``Retry-After`` and a request id.

    >>> err = error_from({"type": "account_balance_not_enough",
    ...                   "message": "The account balance is not enough"}, status=422)
    >>> type(err).__name__, err.provider_code
    ('PaymentDeclined', 'account_balance_not_enough')
    """
    body = body or {}
    raw_type = body.get("type")
    kind = raw_type if isinstance(raw_type, str) and raw_type else None
    raw_message = body.get("message")
    provider_message = raw_message if isinstance(raw_message, str) and raw_message else None
    cls, wording = _class_for(kind, status)
    if wording is None:
        wording = f"pokepay answered HTTP {status}" if status is not None else "pokepay error"
    # partner_request_expired: the envelope was refused, nothing was done: a fresh
    # envelope (new timestamp) may well be accepted (the adapter rebuilds it once;
    # Outcome.RETRYABLE after).
    expired = cls is ProviderRejected and kind == "partner_request_expired"
    return _ERRORS.error(
        reply,
        f"pokepay: {wording}",
        code=kind,
        provider_message=provider_message,
        cls=cls,
        status=status,
        retryable=True if expired else None,
    )
