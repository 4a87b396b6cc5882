"""The cassette hooks: a recording made under another secret replays under the public key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from paygate_pokepay import SANDBOX, EnvelopeCipher
from paygate_pokepay._crypto import decode_client_secret
from paygate_pokepay.testing import cassette_config, request_hook, response_hook

REAL_SECRET = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE"
REAL_CLIENT = "11111111-2222-4333-8444-555555555555"


@dataclass
class FakeRequest:
    body: Any
    headers: dict[str, str]


def real() -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(REAL_SECRET))


def public() -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(SANDBOX.client_secret))


def test_request_is_stored_decrypted_with_the_public_client_id() -> None:
    inner = {"request_data": {"amount": 5}, "timestamp": "t", "partner_call_id": "c"}
    outer = {"partner_client_id": REAL_CLIENT, "data": real().encrypt(json.dumps(inner).encode())}
    request = request_hook(REAL_SECRET)(FakeRequest(json.dumps(outer).encode(), {}))
    stored = json.loads(request.body)
    assert stored == {"partner_client_id": SANDBOX.client_id, "data": inner}
    assert REAL_CLIENT.encode() not in request.body


def test_response_is_re_encrypted_under_the_public_key() -> None:
    body = {"id": "t1", "amount": 5}
    outer = {"response_data": real().encrypt(json.dumps(body).encode()), "timestamp": "t"}
    response = {"body": {"string": json.dumps(outer).encode()}, "headers": {}}
    stored = json.loads(response_hook(REAL_SECRET)(response)["body"]["string"])
    assert json.loads(public().decrypt(stored["response_data"])) == body
    # Recording twice gives the same bytes (fixed IV under the public key).
    again = {"body": {"string": json.dumps(outer).encode()}, "headers": {}}
    assert json.loads(response_hook(REAL_SECRET)(again)["body"]["string"]) == stored


def test_other_bodies_pass_through() -> None:
    request = FakeRequest(b'{"token": "x"}', {})
    assert request_hook()(request).body == b'{"token": "x"}'
    plain = {"body": {"string": b'{"type": "partner_client_not_found"}'}}
    assert response_hook()(plain) == plain
    garbled = {"body": {"string": b'{"response_data": "!!"}'}}
    assert response_hook()(garbled) == garbled
    assert request_hook()(FakeRequest(None, {})).body is None


def test_config_leaves_record_mode_to_the_command_line() -> None:
    config = cassette_config()
    assert "record_mode" not in config
    assert config["match_on"][0] == "method"
