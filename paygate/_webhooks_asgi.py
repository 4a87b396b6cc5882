"""The webhook endpoint as an ASGI app (Starlette), mountable in any ASGI framework.

One route per account: ``POST /{account}``. A delivery that fails authentication gets
401 and nothing is recorded; a malformed or oversized body gets 400; a handler failure
gets 500 so the provider delivers again (the event is released, not marked done); an
event being processed by another worker gets 409, which providers also retry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._errors import (
    ConfigurationError,
    IdempotencyInProgress,
    InvalidRequest,
    MalformedResponse,
    NotSupported,
    PaygateError,
    WebhookVerificationError,
)

if TYPE_CHECKING:
    from ._gateway import _GatewayBase

log = logging.getLogger("paygate.webhooks")


async def _read_limited(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_app(gateway: _GatewayBase) -> Starlette:
    """Build the app for ``gateway`` (see `paygate.Gateway.webhooks`)."""
    from ._gateway import AsyncGateway

    async def receive(request: Request) -> JSONResponse:
        account = request.path_params["account"]
        if account not in gateway.accounts:
            return JSONResponse({"error": "unknown account"}, status_code=404)
        body = await _read_limited(request, gateway.webhook_max_body)
        if body is None:
            return JSONResponse({"error": "body too large"}, status_code=400)
        headers = dict(request.headers)
        try:
            if isinstance(gateway, AsyncGateway):
                events = await gateway.webhooks.handle(account, headers, body)
            else:
                from starlette.concurrency import run_in_threadpool

                events = await run_in_threadpool(gateway.webhooks.handle, account, headers, body)
        except WebhookVerificationError:
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        except (InvalidRequest, MalformedResponse):
            return JSONResponse({"error": "malformed delivery"}, status_code=400)
        except NotSupported:
            return JSONResponse(
                {"error": "webhooks not supported for this account"}, status_code=404
            )
        except IdempotencyInProgress:
            return JSONResponse({"error": "event in progress"}, status_code=409)
        except ConfigurationError:
            return JSONResponse({"error": "not configured"}, status_code=500)
        except PaygateError as exc:
            log.warning("webhook for %s failed: %s", account, exc)
            return JSONResponse({"error": exc.code}, status_code=503)
        except Exception as exc:
            # A handler failed: answer 5xx so the provider delivers again.
            log.exception("webhook handler for %s failed: %s", account, type(exc).__name__)
            return JSONResponse({"error": "handler failed"}, status_code=500)
        payload: dict[str, Any] = {
            "received": len(events),
            "duplicates": sum(1 for e in events if e.duplicate),
        }
        return JSONResponse(payload)

    return Starlette(routes=[Route("/{account}", receive, methods=["POST"])])
