"""Webhook delivery to a local receiver, with retries on the sandbox clock."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paygate.sandbox import Sandbox, WebhookAttempt, serve_app

pytestmark = pytest.mark.usefixtures("hooked")


@dataclass
class Receiver:
    """A merchant's webhook endpoint that fails the first ``fail`` deliveries."""

    fail: int = 0
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.received.append((request.url.path, dict(request.headers), await request.body()))
        if self.fail > 0:
            self.fail -= 1
            return Response("not now", status_code=500)
        return Response(status_code=204)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks/{name}", self.handle, methods=["POST"])])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    rec = Receiver()
    with serve_app(rec.app()) as url:
        yield rec, url


@pytest.fixture
def hooked(sandbox: Sandbox, receiver: tuple[Receiver, str]) -> Iterator[Receiver]:
    rec, url = receiver
    rec.fail = 0
    rec.received.clear()
    sandbox.set_webhook_url(url + "/hooks/default")
    yield rec
    sandbox.set_webhook_url(None)
    sandbox.set_webhook_url(None, provider="otherpay")


@pytest.fixture
def schedule(sandbox: Sandbox) -> tuple[timedelta, ...]:
    return tuple(sandbox.host.emulator("toypay").webhook_schedule)  # type: ignore[attr-defined]


def pay(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], provider: str = "toypay"
) -> str:
    charge = http.post(
        sandbox.base_url(provider) + "/v1/charges", json={"amount": 500}, headers=auth
    ).json()
    return sandbox.control(provider, "pay", charge_id=charge["id"])["event_id"]


def test_webhook_reaches_the_receiver_with_the_providers_headers(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], hooked: Receiver
) -> None:
    event_id = pay(sandbox, http, auth)
    [attempt] = sandbox.flush_webhooks()
    assert (attempt.provider, attempt.event_id, attempt.attempt) == ("toypay", event_id, 1)
    assert (attempt.status_code, attempt.outcome, attempt.next_attempt_at) == (
        204,
        "delivered",
        None,
    )
    [(path, headers, body)] = hooked.received
    assert path == "/hooks/default"
    assert headers["x-toy-signature"] == f"sig-{event_id}"
    assert headers["x-toy-event"] == "charge.succeeded"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["data"]["status"] == "succeeded"
    assert sandbox.webhook_log() == [attempt]


def test_a_failing_receiver_is_retried_on_the_sandbox_clock(
    sandbox: Sandbox,
    http: httpx.Client,
    auth: dict[str, str],
    hooked: Receiver,
    schedule: tuple[timedelta, ...],
) -> None:
    hooked.fail = 3
    pay(sandbox, http, auth)
    [first] = sandbox.flush_webhooks()
    assert (first.status_code, first.outcome) == (500, "retrying")
    assert first.next_attempt_at == first.at + schedule[0]
    assert len(sandbox.pending_webhooks()) == 1

    sandbox.advance(timedelta(seconds=30))  # not due yet
    assert len(sandbox.flush_webhooks()) == 1
    assert len(hooked.received) == 1

    sandbox.advance(timedelta(seconds=31))  # past the first delay
    log = sandbox.flush_webhooks()
    assert [(a.attempt, a.outcome) for a in log] == [(1, "retrying"), (2, "retrying")]
    assert log[1].at == first.at + schedule[0]

    sandbox.advance(timedelta(minutes=10))  # attempt 3 is due (and fails); 4 is not yet
    log = sandbox.flush_webhooks()
    assert [a.attempt for a in log] == [1, 2, 3]
    assert log[2].next_attempt_at == first.at + sum(schedule[:3], timedelta())

    sandbox.advance(timedelta(minutes=1))
    log = sandbox.flush_webhooks()
    assert [(a.attempt, a.outcome) for a in log][-1] == (4, "delivered")
    assert sandbox.pending_webhooks() == []
    assert len(hooked.received) == 4
    assert len({h["x-toy-signature"] for _, h, _ in hooked.received}) == 1


def test_one_big_advance_makes_every_retry_in_between(
    sandbox: Sandbox,
    http: httpx.Client,
    auth: dict[str, str],
    hooked: Receiver,
    schedule: tuple[timedelta, ...],
) -> None:
    hooked.fail = 100
    pay(sandbox, http, auth)
    sandbox.flush_webhooks()
    sandbox.advance(timedelta(hours=1))
    log: list[WebhookAttempt] = sandbox.flush_webhooks()
    assert [(a.attempt, a.outcome) for a in log] == [
        (1, "retrying"),
        (2, "retrying"),
        (3, "retrying"),
        (4, "failed"),
    ]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(log)]
    assert gaps == list(schedule)
    assert sandbox.pending_webhooks() == []


def test_webhook_url_per_provider(
    sandbox: Sandbox,
    http: httpx.Client,
    auth: dict[str, str],
    receiver: tuple[Receiver, str],
    hooked: Receiver,
) -> None:
    _, url = receiver
    sandbox.set_webhook_url(url + "/hooks/other", provider="otherpay")
    pay(sandbox, http, auth, "otherpay")
    pay(sandbox, http, auth, "toypay")
    log = sandbox.flush_webhooks()
    assert {a.provider: a.url for a in log} == {
        "otherpay": url + "/hooks/other",
        "toypay": url + "/hooks/default",
    }
    assert sorted(path for path, _, _ in hooked.received) == ["/hooks/default", "/hooks/other"]


def test_without_a_url_nothing_is_sent(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], hooked: Receiver
) -> None:
    sandbox.set_webhook_url(None)
    pay(sandbox, http, auth)
    [attempt] = sandbox.flush_webhooks()
    assert attempt.outcome == "no_url"
    assert hooked.received == []


def test_unreachable_receiver_counts_as_a_failure(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str]
) -> None:
    with serve_app(Starlette()) as gone:
        pass  # the port is free again: nothing listens there now
    sandbox.set_webhook_url(gone + "/hooks")
    pay(sandbox, http, auth)
    [attempt] = sandbox.flush_webhooks()
    assert attempt.status_code is None
    assert attempt.error == "ConnectError"
    assert attempt.outcome == "retrying"


def test_reset_drops_queued_retries_and_the_log(
    sandbox: Sandbox, http: httpx.Client, auth: dict[str, str], hooked: Receiver
) -> None:
    hooked.fail = 100
    pay(sandbox, http, auth)
    pay(sandbox, http, auth, "otherpay")
    sandbox.flush_webhooks()
    assert len(sandbox.pending_webhooks()) == 2
    sandbox.reset("toypay")
    assert [p["provider"] for p in sandbox.pending_webhooks()] == ["otherpay"]
    assert [a.provider for a in sandbox.webhook_log()] == ["otherpay"]
    sandbox.reset()
    assert sandbox.pending_webhooks() == []
    assert sandbox.webhook_log() == []
    sandbox.advance(timedelta(hours=1))
    assert sandbox.flush_webhooks() == []


def test_webhook_config_is_validated(sandbox: Sandbox) -> None:
    from paygate.sandbox import SandboxError

    with pytest.raises(SandboxError) as bad_url:
        sandbox.set_webhook_url("ftp://example.invalid/")
    assert bad_url.value.status == 400
    with pytest.raises(SandboxError) as bad_provider:
        sandbox.set_webhook_url("http://127.0.0.1:1/", provider="nopay")
    assert bad_provider.value.status == 404
