"""elepay's errorCode catalogue maps to typed paygate errors that keep code and message."""

from __future__ import annotations

import json

import pytest

from paygate import (
    AuthenticationError,
    NotFound,
    PaymentDeclined,
    PermissionDenied,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from paygate.adapter import ChargeRef, Reply, RetryDecision, TransportFailure, drive
from paygate_elepay._emulator import SECRET_KEY
from paygate_elepay._errors import CATALOGUE, error_from_reply, read_error

EXPECTED = {
    "M001000": PermissionDenied,
    "M001001": ProviderRejected,
    "M001002": ProviderRejected,
    "M001003": ProviderRejected,
    "M001004": ProviderRejected,
    "M002001": ProviderRejected,
    "M002002": ProviderRejected,
    "M002003": NotFound,
    "M002004": ProviderRejected,
    "M002005": ProviderRejected,
    "M002006": ProviderRejected,
    "M002007": ProviderRejected,
    "M002009": ProviderRejected,
    "M002010": ProviderRejected,
    "M002012": ProviderRejected,
    "M003000": ProviderRejected,
    "M004001": AuthenticationError,
    "M004002": AuthenticationError,
    "M004003": PermissionDenied,
    "M005000": RateLimited,
    "M006000": ProviderRejected,
    "M006001": ProviderRejected,
    "M006002": ProviderRejected,
    "M006003": ProviderRejected,
    "M006004": ProviderRejected,
    "10001": PermissionDenied,
    "10002": PermissionDenied,
    "10003": ProviderRejected,
    "10101": PaymentDeclined,
    "10102": ProviderRejected,
    "10108": ProviderRejected,
    "10109": ProviderRejected,
}


def reply(body, status=400, **headers):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, {k.replace("_", "-"): v for k, v in headers.items()}, content)


def test_catalogue_is_complete():
    assert set(CATALOGUE) == set(EXPECTED)
    assert all(info.http_status == 400 for code, info in CATALOGUE.items() if code[0] == "M")


@pytest.mark.parametrize(("code", "cls"), sorted(EXPECTED.items()))
def test_every_code_maps_and_keeps_provider_details(code, cls):
    message = "注文番号は既に支払済みです"
    err = error_from_reply(
        reply({"code": 400, "errorCode": code, "message": message}, x_request_id="req-1"),
        action="create the code",
    )
    assert type(err) is cls
    assert err.provider == "elepay"
    assert err.provider_code == code
    assert err.provider_message == message
    assert err.http_status == 400
    assert err.request_id == "req-1"
    assert err.message.startswith("elepay could not create the code: ")
    assert code in str(err)


def test_retryable_codes():
    assert error_from_reply(reply({"errorCode": "M005000"}), action="x").retryable
    assert error_from_reply(reply({"errorCode": "M006001"}), action="x").retryable
    assert not error_from_reply(reply({"errorCode": "M002007"}), action="x").retryable


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("M009999", ProviderRejected),
        ("U001001", PaymentDeclined),
        ("S000001", ProviderUnavailable),
    ],
)
def test_undocumented_codes_fall_back_on_their_category(code, cls):
    err = error_from_reply(reply({"errorCode": code, "message": "m"}, status=402), action="x")
    assert type(err) is cls
    assert err.provider_code == code
    assert err.http_status == 402


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"code": 400, "errorCode": "M002007", "message": "paid"}, "M002007", "paid"),
        ({"code": "M002007", "message": "paid"}, "M002007", "paid"),  # legacy shape
        ({"type": "invalid_request_error", "code": 10108, "message": "m"}, "10108", "m"),
        ({"code": 400, "message": "bad"}, None, "bad"),  # HTTP status in "code"
        ({"errorCode": 5}, None, None),
        ([1, 2], None, None),
        (b"<html>oops</html>", None, None),
    ],
)
def test_error_body_shapes_are_read_tolerantly(body, code, message):
    assert read_error(reply(body)) == (code, message)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (409, ProviderRejected),
    ],
)
def test_codeless_errors_map_by_status(status, cls):
    err = error_from_reply(reply(b"", status=status), action="x")
    assert type(err) is cls
    assert err.provider_code is None


def test_rate_limit_keeps_retry_after():
    err = error_from_reply(reply({"errorCode": "M005000"}, retry_after="3"), action="x")
    assert isinstance(err, RateLimited)
    assert err.retry_after == 3.0


def test_classify_retries_m005000_only(provider):
    assert provider.classify(reply({"errorCode": "M005000"})) == RetryDecision(retry=True)
    assert provider.classify(reply({"errorCode": "M005000"}, retry_after="2")) == RetryDecision(
        retry=True, after=2.0
    )
    assert provider.classify(reply({"errorCode": "M002007"})) is None
    assert provider.classify(reply({"errorCode": "M005000"}, status=200)) is None
    assert provider.classify(reply(b"not json")) is None


def test_secrets_never_reach_messages(provider):
    err = error_from_reply(
        reply({"errorCode": "M004001", "message": f"key {SECRET_KEY} is invalid"}), action="x"
    )
    assert SECRET_KEY not in str(err)
    assert SECRET_KEY not in repr(err)
    assert SECRET_KEY not in json.dumps(err.to_dict())


def test_transport_failure_propagates_out_of_the_flow(provider, make_ctx):
    def down(call):
        raise TransportFailure("connection reset", sent=True, step=call.step)

    ref = ChargeRef(charge_id="c", provider_ref="code:cd_1", method="qr")
    with pytest.raises(TransportFailure) as info:
        drive(provider.status(ref, make_ctx()), down)
    assert info.value.step == "codes.get"


def test_malformed_success_body_is_a_typed_error(provider, make_ctx):
    from paygate import MalformedResponse

    ref = ChargeRef(charge_id="c", provider_ref="code:cd_1", method="qr")
    with pytest.raises(MalformedResponse):
        drive(provider.status(ref, make_ctx()), lambda call: Reply(200, {}, b"[]"))
    with pytest.raises(MalformedResponse):
        drive(provider.status(ref, make_ctx()), lambda call: Reply(200, {}, b'{"status":"x"}'))


def test_every_error_is_a_provider_error():
    assert all(issubclass(cls, ProviderError) for cls in EXPECTED.values())
