"""Cassette settings for Pokepay: envelopes stored under the public sandbox key.

Pokepay bodies are encrypted under the account's client secret with a random IV, and
carry a timestamp and a fresh ``partner_call_id`` on every call. A cassette therefore
stores request envelopes *decrypted* (readable, and never matched: paygate matches on
method and path) and response envelopes *re-encrypted under the public sandbox key*
(``SANDBOX.client_secret``) with a fixed IV. Replays then run with the sandbox
credentials, whatever secret was used while recording, and the real secret never
reaches a cassette.

Use with pytest-recording (``@pytest.mark.vcr``)::

    @pytest.fixture
    def vcr_config():
        return cassette_config(recording_secret=os.environ.get("PAYGATE_POKEPAY_CLIENT_SECRET"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._crypto import CryptoError, EnvelopeCipher, decode_client_secret
from ._emulator import SANDBOX

__all__ = ["cassette_config", "request_hook", "response_hook"]

_FIXED_IV = bytes(16)


def _public() -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(SANDBOX.client_secret), iv_source=lambda: _FIXED_IV)


def _recording(secret: str | None) -> EnvelopeCipher:
    return EnvelopeCipher(decode_client_secret(secret or SANDBOX.client_secret))


def _json(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None


def request_hook(recording_secret: str | None = None) -> Callable[[Any], Any]:
    """A vcrpy ``before_record_request`` that stores the envelope decrypted.

    ``partner_client_id`` becomes the public sandbox client id.
    """
    cipher = _recording(recording_secret)

    def hook(request: Any) -> Any:
        outer = _json(request.body)
        if not isinstance(outer, dict) or not isinstance(outer.get("data"), str):
            return request
        try:
            inner = json.loads(cipher.decrypt(outer["data"]))
        except (CryptoError, ValueError, UnicodeDecodeError):
            return request
        outer["partner_client_id"] = SANDBOX.client_id
        outer["data"] = inner
        request.body = json.dumps(outer, ensure_ascii=False, sort_keys=True).encode()
        return request

    return hook


def response_hook(
    recording_secret: str | None = None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A vcrpy ``before_record_response`` that re-encrypts under the public sandbox key."""
    cipher = _recording(recording_secret)
    public = _public()

    def hook(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body")
        if not isinstance(body, dict):
            return response
        outer = _json(body.get("string"))
        if not isinstance(outer, dict) or not isinstance(outer.get("response_data"), str):
            return response
        try:
            plain = cipher.decrypt(outer["response_data"])
        except CryptoError:
            return response
        outer["response_data"] = public.encrypt(plain)
        text = json.dumps(outer, ensure_ascii=False)
        body["string"] = text.encode() if isinstance(body.get("string"), bytes) else text
        return response

    return hook


def cassette_config(recording_secret: str | None = None) -> dict[str, Any]:
    """paygate's cassette settings plus the Pokepay envelope handling.

    ``recording_secret``: the client secret of the account being recorded (None: the
    sandbox's). The returned settings have no ``record_mode``, so pytest-recording's
    ``--record-mode`` decides (default: replay only).
    """
    from paygate.testing import scrub_request, scrub_response, vcr_config

    config = vcr_config()
    config.pop("record_mode", None)
    to_public = request_hook(recording_secret)
    re_encrypt = response_hook(recording_secret)
    config["before_record_request"] = lambda request: scrub_request(to_public(request))
    config["before_record_response"] = lambda response: scrub_response(re_encrypt(response))
    return config
