"""An ASGI app that hands each request to whichever app is current.

A loopback server is started once and the app behind it is swapped: the webhook
end-to-end tests point it at the running test's gateway, the chaos run at the current
gateway. It answers the lifespan protocol itself, and 404 while no app is set.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SwitchApp"]


class SwitchApp:
    """Forwards every HTTP request to ``self.app`` (404 while it is None)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                done = message["type"].replace(".startup", ".startup.complete")
                await send({"type": done.replace(".shutdown", ".shutdown.complete")})
                if message["type"] == "lifespan.shutdown":
                    return
        if self.app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.app(scope, receive, send)
