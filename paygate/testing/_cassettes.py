"""Cassette settings: scrub secrets and personal data at record time, match requests in
a way that survives a different sandbox port or a real provider host.

Requests are matched on method, the provider-relative path (the ``/<provider>`` prefix
of the sandbox is dropped, so a cassette recorded against the sandbox and one recorded
against the real provider match the same code) and the query string. Bodies are not
matched: they carry timestamps, random IVs (Pokepay) and call ids that differ on every
run; the order of interactions in the cassette is the order of the calls.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from .._redact import redact

__all__ = ["SCRUBBED_HEADERS", "path_matcher", "scrub_request", "scrub_response", "vcr_config"]

SCRUBBED_HEADERS = (
    "authorization",
    "x-payjp-webhook-token",
    "cookie",
    "set-cookie",
    "x-refresh-authorization",
)
PROVIDERS = ("pokepay", "univapay", "elepay", "payjp", "smaregi", "fakepay")
_PREFIX = re.compile(r"^/(?:" + "|".join(PROVIDERS) + r")(?=/|$)")


def provider_path(uri: str) -> str:
    """The request path without the sandbox's ``/<provider>`` mount prefix."""
    path = urlsplit(uri).path
    return _PREFIX.sub("", path) or "/"


def path_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: equal provider-relative paths (raises AssertionError otherwise)."""
    assert provider_path(r1.uri) == provider_path(r2.uri), (r1.uri, r2.uri)


def _scrub_text(body: Any) -> Any:
    if body is None:
        return None
    raw = body if isinstance(body, bytes) else str(body).encode()
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return body
    cleaned = redact(text)
    return cleaned.encode() if isinstance(body, bytes) else cleaned


# Sandbox housekeeping is not part of a flow: never recorded. Customer actions and the
# clock are (a replay answers them from the cassette).
_HOUSEKEEPING = re.compile(
    r"^/_sandbox/(health|reset|faults|credentials|accounts|ledger|webhooks|clock$)"
)


def scrub_request(request: Any) -> Any:
    """Remove credentials and personal data from a request before it is written.

    Returns None (not recorded) for the sandbox's housekeeping calls.
    """
    if _HOUSEKEEPING.match(urlsplit(request.uri).path):
        return None
    for name in list(request.headers):
        if name.lower() in SCRUBBED_HEADERS:
            request.headers[name] = "[redacted]"
    request.body = _scrub_text(request.body)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Remove credentials and personal data from a response before it is written."""
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in SCRUBBED_HEADERS:
            headers[name] = ["[redacted]"]
    body = response.get("body", {})
    if isinstance(body, dict) and "string" in body:
        body["string"] = _scrub_text(body["string"])
    return response


def vcr_config(extra_headers: Iterable[str] = ()) -> dict[str, Any]:
    """The settings paygate's cassette tests use (pytest-recording's ``vcr_config``)."""
    return {
        "filter_headers": [(h, "[redacted]") for h in (*SCRUBBED_HEADERS, *extra_headers)],
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "match_on": ["method", "paygate_path", "query"],
        "decode_compressed_response": True,
    }


def cassette_secrets(cassette_text: str, secrets: Iterable[str]) -> list[str]:
    """Which of ``secrets`` (and which personal-data patterns) appear in a cassette."""
    found = [s for s in secrets if s and s in cassette_text]
    if redact(cassette_text) != cassette_text:
        found.append("personal-data pattern")
    for marker in ("Bearer ", "Basic "):
        if re.search(marker.replace(" ", "[ \t]+") + r"(?!\[redacted\])[A-Za-z0-9]", cassette_text):
            found.append(marker.strip())
    return found
