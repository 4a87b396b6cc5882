"""Run an `AsyncGateway` from blocking code, so one test body covers both drivers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from .._gateway import AsyncGateway


class BlockingAsyncGateway:
    """An `AsyncGateway` whose coroutine methods run to completion on a private loop.

    >>> gw = BlockingAsyncGateway(AsyncGateway(...))  # doctest: +SKIP
    >>> gw.charge("card", ...)  # runs the async driver
    """

    def __init__(self, gateway: AsyncGateway) -> None:
        self.gateway = gateway
        self._runner = asyncio.Runner()
        self._closed = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("gateway", "_runner", "_closed"):
            raise AttributeError(name)
        attr = getattr(self.gateway, name)
        if name == "webhooks":
            return _BlockingWebhooks(attr, self._runner)
        if asyncio.iscoroutinefunction(attr):
            return _blocking(attr, self._runner)
        return attr

    def close(self) -> None:
        """Close the gateway and the loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._runner.run(self.gateway.aclose())
        self._runner.close()


class _BlockingWebhooks:
    def __init__(self, webhooks: Any, runner: asyncio.Runner) -> None:
        self._webhooks = webhooks
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_webhooks", "_runner"):
            raise AttributeError(name)
        attr = getattr(self._webhooks, name)
        if asyncio.iscoroutinefunction(attr):
            return _blocking(attr, self._runner)
        return attr


def _blocking(
    fn: Callable[..., Coroutine[Any, Any, Any]], runner: asyncio.Runner
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return runner.run(fn(*args, **kwargs))

    return call
