"""Spans: one operation span, one child per HTTP attempt, nothing personal in attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paygate import Card, Money

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
trace.set_tracer_provider(_provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def test_operation_span_with_one_child_per_attempt(
    gateway_factory: Any, fake_sandbox: Any, spans: Any
) -> None:
    gw = gateway_factory()
    fake_sandbox.fault("fakepay", "status", path="^/charges$", method="POST", status=503, count=2)
    gw.charge(
        "fake",
        amount=Money.jpy(1200),
        method=Card(token="tok_secret_card_token"),
        idempotency_key="span-1",
        metadata={"customer_email": "taro@example.com"},
    )
    finished = spans.get_finished_spans()
    ops = [s for s in finished if s.name == "paygate.charge"]
    assert len(ops) == 1
    op = ops[0]
    children = [
        s for s in finished if s.parent is not None and s.parent.span_id == op.context.span_id
    ]
    attempts = [s for s in children if s.attributes.get("paygate.step") == "charges.create"]
    assert [s.attributes["paygate.retry.attempt"] for s in attempts] == [1, 2, 3]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert op.attributes["paygate.account"] == "fake"
    text = repr([dict(s.attributes or {}) for s in finished])
    for secret in (
        "tok_secret_card_token",
        "taro@example.com",
        "fk_test_0123456789abcdef",
        "span-1",
    ):
        assert secret not in text


def test_error_spans_carry_codes_not_messages(gateway_factory: Any, spans: Any) -> None:
    gw = gateway_factory()
    with pytest.raises(Exception):  # noqa: B017
        gw.charge("fake", amount=Money.jpy(666), method=Card(token="tok"), idempotency_key="span-2")
    op = next(s for s in spans.get_finished_spans() if s.name == "paygate.charge")
    assert op.attributes["paygate.error.code"] == "payment_declined"
    assert op.attributes["paygate.error.provider_code"] == "card_declined"
    assert not op.status.is_ok
