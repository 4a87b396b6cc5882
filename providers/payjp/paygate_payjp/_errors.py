"""PAY.JP error answers mapped onto paygate's error tree.

PAY.JP v1 answers errors as ``{"error": {"status", "type", "code", "message", "param",
"charge"}}``. Every code of the published catalogue is listed here, with
``three_d_secure_expired`` (added 2024-11-21, https://pay.jp/info/2024/11/08/110000/);
an unknown code falls back on the HTTP status (400 rejected, 401 authentication, 402
declined, 404 not found, 429 rate limited, 5xx unavailable). The provider's code and
message are always kept on the error, and the charge a 402 created (``error.charge``,
a failed charge) as ``provider_ref``.

`OUTCOMES` says what a code means for the merchant's idempotency key (see
`paygate.adapter.Outcome`).
"""

from __future__ import annotations

from typing import Any

from paygate._errors import (
    AuthenticationError,
    IdempotencyConflict,
    IdempotencyInProgress,
    MalformedResponse,
    NotFound,
    PaygateError,
    PaymentDeclined,
    PermissionDenied,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from paygate._flow import Reply
from paygate.adapter import ErrorMap, Outcome

__all__ = ["CODE_MAP", "OUTCOMES", "error_from_reply", "provider_ref_of"]

PROVIDER = "payjp"

# The card itself was refused: the customer must use another card (or fix the data).
_DECLINED = (
    "invalid_number",
    "invalid_cvc",
    "invalid_expiration_date",
    "incorrect_card_data",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "expired_card",
    "card_declined",
    "card_flagged",
    "processing_error",
    "missing_card",
    "unacceptable_brand",
    "invalid_card",
    # Whether this names a decline or an operation on a charge that failed earlier is
    # not stated in any official text found; either way the key's outcome is a refusal.
    "failed_payment",
    "three_d_secure_failed",
    "unverified_token",
)
# The request was well-formed for paygate but PAY.JP refused it: bad or unsupported
# parameters paygate could not check (or did not), and state conflicts.
_REJECTED = (
    "invalid_plan",
    "invalid_expiry_days",
    "unnecessary_expiry_days",
    "invalid_flexible_id",
    "invalid_timestamp",
    "invalid_trial_end",
    "invalid_string_length",
    "invalid_country",
    "invalid_currency",
    "invalid_address_zip",
    "invalid_amount",
    "invalid_plan_amount",
    "invalid_card_name",
    "invalid_card_country",
    "invalid_card_address_zip",
    "invalid_card_address_state",
    "invalid_card_address_city",
    "invalid_card_address_line",
    "invalid_customer",
    "invalid_boolean",
    "invalid_email",
    "no_allowed_param",
    "no_param",
    "invalid_querystring",
    "missing_param",
    "invalid_param_key",
    "no_payment_method",
    "payment_method_duplicate",
    "payment_method_duplicate_including_customer",
    "invalid_refund_amount",
    "already_refunded",
    "invalid_amount_to_not_captured",
    "refund_amount_gt_net",
    "capture_amount_gt_net",
    "invalid_refund_reason",
    "already_captured",
    "cant_capture_refunded_charge",
    "cant_reauth_refunded_charge",
    "charge_expired",
    "already_exist_id",
    "token_already_used",
    "already_have_card",
    "dont_has_this_card",
    "doesnt_have_card",
    "already_have_the_same_card",
    "invalid_interval",
    "invalid_trial_days",
    "invalid_billing_day",
    "billing_day_for_non_monthly_plan",
    "exist_subscribers",
    "already_subscribed",
    "already_canceled",
    "already_paused",
    "subscription_worked",
    "cannot_change_prorate_status",
    "too_many_metadata_keys",
    "invalid_metadata_key",
    "invalid_metadata_value",
    "invalid_apple_pay_token",
    "test_card_on_livemode",
    "not_allowed_method",
    "refund_limit_exceeded",
    "cannot_prorated_refund_of_subscription",
    "not_in_three_d_secure_flow",
    "three_d_secure_expired",
    "invalid_owner_type",
    "invalid_idempotency_key",
)

CODE_MAP: dict[str, type[PaygateError]] = {
    **dict.fromkeys(_DECLINED, PaymentDeclined),
    **dict.fromkeys(_REJECTED, ProviderRejected),
    "invalid_id": NotFound,
    "not_found": NotFound,
    "no_api_key": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "not_activated_account": PermissionDenied,
    "apple_pay_disabled_in_livemode": PermissionDenied,
    "over_capacity": RateLimited,
    "payjp_wrong": ProviderUnavailable,
    "pg_wrong": ProviderUnavailable,
    # The v1 reference does not document these; PAY.JP's v2 API answers them and the
    # sandbox emulator uses the same names for a reused key.
    "idempotency_conflict": IdempotencyConflict,
    "idempotency_timeout": IdempotencyInProgress,
    "idempotency_infrastructure_error": ProviderUnavailable,
    # 3-D Secure not completed yet: the customer may still complete it, so nothing is
    # final (retryable).
    "three_d_secure_incompleted": ProviderRejected,
}

_RETRYABLE_CODES = frozenset({"three_d_secure_incompleted"})

#: What a PAY.JP refusal means for the merchant's key. A refusal that a re-sent
#: refund or capture gets when the first attempt went through is MAYBE_DONE: paygate
#: then reads the charge before deciding.
OUTCOMES: dict[str, Outcome] = {
    "already_refunded": Outcome.MAYBE_DONE,
    "refund_amount_gt_net": Outcome.MAYBE_DONE,
    "already_captured": Outcome.MAYBE_DONE,
    "three_d_secure_incompleted": Outcome.RETRYABLE,
    "over_capacity": Outcome.RETRYABLE,
}

_BY_STATUS: dict[int, type[PaygateError]] = {
    400: ProviderRejected,
    401: AuthenticationError,
    402: PaymentDeclined,
    403: PermissionDenied,
    404: NotFound,
    405: ProviderRejected,
    409: ProviderRejected,
    429: RateLimited,
}

_ERRORS = ErrorMap(PROVIDER, by_code=CODE_MAP, by_status=_BY_STATUS)


def _error_body(reply: Reply) -> dict[str, Any] | None:
    try:
        data = reply.json()
    except MalformedResponse:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"]  # type: ignore[no-any-return]
    return None


def provider_ref_of(error: BaseException) -> str | None:
    """The charge PAY.JP named in an error answer (``error.charge``), if any."""
    value = getattr(error, "provider_ref", None)
    return value if isinstance(value, str) else None


def error_from_reply(reply: Reply) -> PaygateError:
    """The paygate error for a non-2xx PAY.JP answer.

    >>> err = error_from_reply(Reply(402, {}, b'{"error": {"code": "card_declined",'
    ...     b' "message": "Card declined", "status": 402, "type": "card_error"}}'))
    >>> type(err).__name__, err.provider_code
    ('PaymentDeclined', 'card_declined')
    >>> provider_ref_of(error_from_reply(Reply(402, {}, b'{"error": {"code": "card_declined",'
    ...     b' "status": 402, "charge": "ch_1"}}')))
    'ch_1'
    """
    body = _error_body(reply)
    code = str(body["code"]) if body and body.get("code") else None
    message = str(body["message"]) if body and body.get("message") else None
    # No error object and a status PAY.JP does not use: not an answer of PAY.JP's API.
    unreadable = body is None and reply.status < 500 and reply.status not in _BY_STATUS
    cls: type[PaygateError] | None = MalformedResponse if unreadable else None
    kind = body.get("type") if body else None
    text = f"PAY.JP answered HTTP {reply.status}"
    if code:
        text += f" {code}"
    if kind:
        text += f" ({kind})"
    if body and body.get("param"):
        text += f" on parameter {body['param']}"
    charge = body.get("charge") if body else None
    ref = charge if isinstance(charge, str) and charge else None
    if ref:
        text += f" (charge {ref})"
    return _ERRORS.error(
        reply,
        text,
        code=code,
        provider_message=message,
        cls=cls,
        retryable=True if code in _RETRYABLE_CODES else None,
        provider_ref=ref,  # the failed charge a 402 created
    )
