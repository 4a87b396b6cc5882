"""Documented-response tests: feed an adapter the provider's published answers.

A case is one JSON file written from the provider's own documents (reference pages,
guides, official SDK models and tests), never from paygate's emulator::

    {
      "source": "https://pay.jp/docs/api/#charge-object (refund guide, step 2)",
      "description": "a partial refund leaves refunded=true and the sum in amount_refunded",
      "exchanges": [
        {"request": {"method": "POST", "path": "/v1/charges/ch_1/refund",
                     "body": {"amount": "1000"}},
         "response": {"status": 200, "body": {"id": "ch_1", "refunded": true, ...}}}
      ],
      "expect": {"status": "partially_refunded", "amount_refunded": 1000}
    }

``request`` says what paygate must send: the method, the path (matched as a suffix of
the URL path, so the base URL does not matter) and a subset of the body (JSON or form)
and query. `ScriptedTransport` answers each request with the next exchange and checks
it; the test module then asserts ``expect`` on what the gateway returned or raised.

`assert_shape` checks that another answer (the emulator's, for the same request) has
every key and JSON type of the documented one, so the sandbox cannot drift from the
documents unnoticed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx

from .._flow import Call
from ._kit import ScriptedResponder

__all__ = [
    "DocumentedCase",
    "Exchange",
    "ScriptedTransport",
    "assert_shape",
    "documented_outcome",
    "load_cases",
    "request_body",
]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One documented request and the provider's documented answer to it."""

    method: str
    path: str
    body: Mapping[str, Any] | None
    query: Mapping[str, Any] | None
    status: int
    response_body: Any
    response_headers: Mapping[str, str] = field(default_factory=dict)
    # Raw bytes to answer with instead of JSON (an empty 429, an HTML error page).
    response_text: str | None = None

    def reply(self) -> httpx.Response:
        """The documented answer as an httpx response."""
        headers = dict(self.response_headers)
        if self.response_text is not None:
            return httpx.Response(self.status, headers=headers, content=self.response_text)
        if self.response_body is None:
            return httpx.Response(self.status, headers=headers)
        headers.setdefault("content-type", "application/json")
        return httpx.Response(
            self.status, headers=headers, content=json.dumps(self.response_body).encode()
        )


@dataclass(frozen=True, slots=True)
class DocumentedCase:
    """One documented case: its source, the exchanges and the expected outcome."""

    name: str
    source: str
    description: str
    exchanges: tuple[Exchange, ...]
    expect: Mapping[str, Any]
    data: Mapping[str, Any]

    def __str__(self) -> str:
        return self.name


def _exchange(item: Mapping[str, Any], where: str) -> Exchange:
    request = item.get("request")
    response = item.get("response")
    if not isinstance(request, Mapping) or not isinstance(response, Mapping):
        raise ValueError(f"{where}: each exchange needs a 'request' and a 'response' object")
    method, path = request.get("method"), request.get("path")
    if not isinstance(method, str) or not isinstance(path, str):
        raise ValueError(f"{where}: request needs 'method' and 'path'")
    status = response.get("status")
    if not isinstance(status, int):
        raise ValueError(f"{where}: response needs an integer 'status'")
    return Exchange(
        method=method.upper(),
        path=path,
        body=request.get("body"),
        query=request.get("query"),
        status=status,
        response_body=response.get("body"),
        response_headers=dict(response.get("headers") or {}),
        response_text=response.get("text"),
    )


def load_cases(directory: str | Path) -> list[DocumentedCase]:
    """Every ``*.json`` case in ``directory``, sorted by name.

    A case without a ``source`` is refused: a documented-response test states where
    the provider says so.
    """
    cases = []
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        source = data.get("source")
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"{path.name}: every documented case names its 'source'")
        if "exchanges" in data:
            raw = data["exchanges"]
        else:
            raw = [{"request": data.get("request"), "response": data.get("response")}]
        exchanges = tuple(_exchange(item, path.name) for item in raw)
        cases.append(
            DocumentedCase(
                name=path.stem,
                source=source,
                description=str(data.get("description", "")),
                exchanges=exchanges,
                expect=dict(data.get("expect") or {}),
                data=data,
            )
        )
    if not cases:
        raise ValueError(f"no documented cases in {directory}")
    return cases


def request_body(request: httpx.Request) -> dict[str, Any]:
    """A request body as a flat mapping: JSON objects as they are, forms as strings."""
    content = request.content
    if not content:
        return {}
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        data = json.loads(content)
        return data if isinstance(data, dict) else {"": data}
    return dict(parse_qsl(content.decode(), keep_blank_values=True))


def _subset(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            raise AssertionError(f"{where}: expected an object, paygate sent {actual!r}")
        for key, value in expected.items():
            if value == "<absent>":
                if key in actual:
                    raise AssertionError(f"{where}.{key}: must not be sent")
                continue
            if key not in actual:
                raise AssertionError(f"{where}.{key}: missing from what paygate sent")
            if value == "<any>":
                continue
            _subset(value, actual[key], f"{where}.{key}")
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            raise AssertionError(f"{where}: {len(actual)} items sent, {len(expected)} documented")
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _subset(e, a, f"{where}[{i}]")
        return
    if expected != actual and str(expected) != str(actual):
        raise AssertionError(f"{where}: paygate sent {actual!r}, the document says {expected!r}")


class ScriptedTransport(ScriptedResponder):
    """Answers requests with a documented case's exchanges, in order, checking each.

    Usable by `Gateway` and `AsyncGateway` (``transport=``) and by `drive` (a
    `ScriptedResponder` whose script is the exchanges). ``requests`` keeps what was
    sent; `assert_done` fails when an exchange was never asked for.

    >>> from paygate.testing import ScriptedTransport  # doctest: +SKIP
    >>> gw = Gateway(config, transport=ScriptedTransport(case.exchanges))  # doctest: +SKIP
    """

    def __init__(self, exchanges: Sequence[Exchange], *, provider: str | None = None) -> None:
        super().__init__(*exchanges, provider=provider)

    def unscripted(self, where: str) -> AssertionError:
        return AssertionError(
            f"unexpected request {where}: the documented case has no more exchanges"
        )

    def next_answer(self, request: httpx.Request | Call, where: str) -> Any:
        ex = super().next_answer(request, where)
        if isinstance(request, Call):
            request = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.content
            )
        if request.method != ex.method or not request.url.path.endswith(ex.path):
            raise AssertionError(
                f"paygate sent {where}; the documented case expects {ex.method} ...{ex.path}"
            )
        if ex.body is not None:
            _subset(ex.body, request_body(request), f"{where} body")
        if ex.query is not None:
            _subset(ex.query, dict(request.url.params), f"{where} query")
        return ex.reply()

    def assert_done(self) -> None:
        """Fail if a documented exchange was not used."""
        if self.answers:
            left = ", ".join(f"{ex.method} {ex.path}" for ex in self.answers)
            raise AssertionError(f"documented exchanges never requested: {left}")


T = TypeVar("T")


def documented_outcome(expect: Mapping[str, Any], run: Callable[[], T]) -> T | None:
    """Run ``run`` and hold it to a case's ``expect`` when that names an error.

    With ``"error"`` in ``expect``, ``run`` must raise a `paygate.PaygateError` of that
    class name, with the ``provider_code`` and ``retryable`` the case gives (if any), and
    None is returned; otherwise ``run``'s result is returned for the caller's checks::

        result = documented_outcome(case.expect, lambda: gw.status("card", charge.id))
        if "error" not in case.expect:
            assert str(result.status) == case.expect["status"]
    """
    if "error" not in expect:
        return run()
    import pytest

    from .._errors import PaygateError

    with pytest.raises(PaygateError) as raised:
        run()
    error = raised.value
    assert type(error).__name__ == expect["error"], error
    if "provider_code" in expect:
        assert error.provider_code == expect["provider_code"]
    if "retryable" in expect:
        assert error.retryable is expect["retryable"]
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _shape_errors(documented: Any, actual: Any, where: str) -> Iterator[str]:
    if documented is None:
        return  # a documented null says nothing about the type
    dtype, atype = _type_name(documented), _type_name(actual)
    if dtype != atype:
        if atype == "null":
            # null where the document shows a value: allowed only when the document
            # itself could be null there, which a single example cannot show.
            yield f"{where}: documented {dtype}, got null"
        else:
            yield f"{where}: documented {dtype}, got {atype}"
        return
    if isinstance(documented, dict):
        for key, value in documented.items():
            if key not in actual:
                yield f"{where}.{key}: missing"
                continue
            yield from _shape_errors(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented and actual:
        for item in actual:
            yield from _shape_errors(documented[0], item, f"{where}[]")


def assert_shape(documented: Any, actual: Any, *, ignore: Sequence[str] = ()) -> None:
    """Fail unless ``actual`` has every key and JSON type of ``documented``.

    Values may differ (ids, times); extra keys in ``actual`` are allowed. A documented
    ``null`` accepts any type. ``ignore`` lists paths (``$.card.fingerprint``) to skip,
    for fields the emulator deliberately leaves out; name them in the provider's
    Assumptions table.

    >>> assert_shape({"id": "ch_1", "amount": 100}, {"id": "ch_9", "amount": 5, "x": 1})
    """
    errors = [
        e
        for e in _shape_errors(documented, actual, "$")
        if not any(e.startswith(p + ":") or e.startswith(p + ".") for p in ignore)
    ]
    if errors:
        raise AssertionError("shape differs from the documented body:\n  " + "\n  ".join(errors))
