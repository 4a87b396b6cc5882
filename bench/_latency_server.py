"""A provider-latency tier over TLS for the latency benchmark: ``python -m bench._latency_server``.

Why not the sandbox itself: its emulators (uvicorn with h11, Starlette, the emulator's
logic) cost the server about a millisecond of CPU per request, so on a 2-core machine
the sandbox, not the client, would cap a run at a few hundred charges per second. This
benchmark measures the client, so the server must be cheap:

* the real sandbox (`paygate.sandbox.running`, plain http) runs in a thread of this
  process; the first request of each shape (method + path with its ids blanked) is
  passed through to it and its answer recorded;
* every later request of that shape is answered from the recording, with the values
  that must follow the request put back in: ids in the path, values of the request
  body the answer echoes (order numbers, amounts, metadata), and a fresh id for a
  created object (so stores never see the same provider id twice);
* every answer waits ``--latency-ms`` (± ``--jitter-ms``, uniform) with
  ``asyncio.sleep``: the wait costs no CPU;
* TLS with a CA and certificates made at start-up (`paygate.sandbox._server.make_tls`);
  every accepted connection is one full handshake (the clients resume no sessions),
  counted, with the connections open now and at most, at ``GET /_bench/stats``.

It prints one JSON line on stdout (``url``, ``ca_file``, ``accounts``, ``credentials``)
and serves until stdin closes. HTTP/1.1 only, requests with ``Content-Length`` only:
what httpx, requests and urllib3 send.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

__all__ = ["main"]

_ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{8,}$")
_OBJECT_ID = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9_\-]{6,})"')
_HOP = {b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"date"}


class Stats:
    """What the server counts: connections (= TLS handshakes), open now, most open."""

    def __init__(self) -> None:
        self.connections = 0
        self.open = 0
        self.peak = 0
        self.requests = 0
        self.resumed = 0

    def as_json(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "open": self.open,
            "peak_open": self.peak,
            "requests": self.requests,
            "resumed": self.resumed,
        }


def _shape(method: str, path: str) -> tuple[str, str, list[str]]:
    segments = path.split("?", 1)[0].split("/")
    ids = [s for s in segments if _ID_SEGMENT.match(s)]
    shape = "/".join("*" if _ID_SEGMENT.match(s) else s for s in segments)
    return method, shape, ids


def _fields(body: bytes, content_type: str) -> dict[str, str]:
    """The request body's string values, flattened (JSON or form), by field path."""
    out: dict[str, str] = {}
    if not body:
        return out
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            return out

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}", v)
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(f"{prefix}[{i}]", v)
            elif isinstance(value, str | int) and not isinstance(value, bool):
                out[prefix] = str(value)

        walk("", data)
    elif "form" in content_type:
        for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            out[k] = v
    return out


class Recording:
    """One recorded answer and what to substitute into it."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        path_ids: list[str],
        echoed: dict[str, str],
        idem_key: str | None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.path_ids = path_ids
        self.echoed = echoed  # request field path -> value as recorded
        self.idem_key = idem_key
        found = _OBJECT_ID.search(body)
        self.object_id = found.group(1).decode() if found else None

    def render(self, path_ids: list[str], fields: dict[str, str], idem_key: str | None) -> bytes:
        body = self.body
        swaps: list[tuple[str, str]] = []
        for old, new in zip(self.path_ids, path_ids, strict=False):
            if old != new:
                swaps.append((old, new))
        for name, old in self.echoed.items():
            new = fields.get(name)
            if new is not None and new != old:
                swaps.append((old, new))
        if self.idem_key and idem_key and self.idem_key != idem_key:
            swaps.append((self.idem_key, idem_key))
        if self.object_id and self.object_id not in self.path_ids:
            # A created object: a fresh id of the same length and prefix.
            prefix = self.object_id.split("_", 1)[0] + "_" if "_" in self.object_id else ""
            fresh = (prefix + uuid.uuid4().hex * 2)[: len(self.object_id)]
            if "-" in self.object_id and not prefix:
                fresh = str(uuid.uuid4())[: len(self.object_id)]
            swaps.append((self.object_id, fresh))
        for old, new in swaps:
            body = body.replace(old.encode(), new.encode())
        return body


class Tier:
    """The recordings, the upstream sandbox and the latency."""

    def __init__(self, upstream: str, latency: float, jitter: float) -> None:
        self.upstream = httpx.AsyncClient(base_url=upstream, timeout=30)
        self.latency = latency
        self.jitter = jitter
        self.recordings: dict[tuple[str, str], Recording] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.stats = Stats()

    def delay(self) -> float:
        if self.jitter:
            return max(0.0, self.latency + random.uniform(-self.jitter, self.jitter))
        return self.latency

    async def answer(
        self, method: str, path: str, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if path == "/_bench/stats":
            return (
                200,
                [(b"content-type", b"application/json")],
                json.dumps(self.stats.as_json()).encode(),
            )
        await asyncio.sleep(self.delay())
        key_method, shape, ids = _shape(method, path)
        key = (key_method, shape)
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        fields = _fields(body, ctype)
        idem = headers.get(b"idempotency-key")
        idem_key = idem.decode() if idem else None
        recording = self.recordings.get(key)
        if recording is None:
            lock = self.locks.setdefault(key, asyncio.Lock())
            async with lock:
                recording = self.recordings.get(key)
                if recording is None:
                    return await self._pass(key, method, path, headers, body, ids, fields, idem_key)
        return recording.status, recording.headers, recording.render(ids, fields, idem_key)

    async def _pass(
        self,
        key: tuple[str, str],
        method: str,
        path: str,
        headers: dict[bytes, bytes],
        body: bytes,
        ids: list[str],
        fields: dict[str, str],
        idem_key: str | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        sent = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in headers.items()
            if k not in (b"host", b"content-length", b"connection")
        }
        response = await self.upstream.request(method, path, headers=sent, content=body)
        out_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response.headers.multi_items()
            if k.encode("latin-1").lower() not in _HOP and k.lower() != "content-encoding"
        ]
        text = response.content
        if response.status_code < 400:
            echoed = {
                name: value
                for name, value in fields.items()
                if len(value) >= 3 and value.encode() in text
            }
            self.recordings[key] = Recording(
                response.status_code, out_headers, text, ids, echoed, idem_key
            )
        return response.status_code, out_headers, text


_REASONS = {200: b"OK", 201: b"Created", 202: b"Accepted", 204: b"No Content"}


async def _serve_connection(
    tier: Tier, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    stats = tier.stats
    stats.connections += 1
    stats.open += 1
    stats.peak = max(stats.peak, stats.open)
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is not None and ssl_object.session_reused:
        stats.resumed += 1
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return
            lines = head.split(b"\r\n")
            method_b, target, _version = lines[0].split(b" ", 2)
            headers: dict[bytes, bytes] = {}
            for line in lines[1:]:
                if not line:
                    continue
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            body = await reader.readexactly(length) if length else b""
            stats.requests += 1
            status, out_headers, payload = await tier.answer(
                method_b.decode(), target.decode("latin-1"), headers, body
            )
            close = headers.get(b"connection", b"").lower() == b"close"
            parts = [
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Status")),
                *(k + b": " + v + b"\r\n" for k, v in out_headers),
                b"content-length: %d\r\n" % len(payload),
                b"connection: close\r\n\r\n" if close else b"\r\n",
                payload,
            ]
            writer.write(b"".join(parts))
            await writer.drain()
            if close:
                return
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        stats.open -= 1
        writer.close()


async def _serve(args: dict[str, Any]) -> None:
    import ssl

    from paygate.sandbox import discover_emulators, running
    from paygate.sandbox._server import make_tls

    from ._fake import fake_classes

    found, _skipped = discover_emulators(None)
    emulators = list(found.values())
    fake = fake_classes()
    if fake is not None:
        emulators.append(fake[1])
    started = threading.Event()
    stop = threading.Event()
    box: dict[str, Any] = {}

    def upstream() -> None:
        with running(emulators=emulators) as sandbox:
            box["url"] = sandbox.url
            box["accounts"] = sandbox.accounts()
            box["credentials"] = sandbox.credentials()
            started.set()
            stop.wait()

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    await asyncio.to_thread(started.wait)
    with tempfile.TemporaryDirectory(prefix="paygate-bench-tls-") as directory:
        tls = make_tls(Path(directory))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.server_file))
        tier = Tier(box["url"], args["latency_ms"] / 1000, args["jitter_ms"] / 1000)
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(tier, r, w),
            "127.0.0.1",
            0,
            ssl=context,
            backlog=4096,
            limit=1 << 20,
        )
        port = server.sockets[0].getsockname()[1]
        url = f"https://127.0.0.1:{port}"
        upstream_url = box["url"]

        def rebase(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace(upstream_url, url)
            if isinstance(value, dict):
                return {k: rebase(v) for k, v in value.items()}
            if isinstance(value, list):
                return [rebase(v) for v in value]
            return value

        accounts = rebase(box["accounts"])
        for table in accounts.values():
            if isinstance(table, dict):
                table["ca_bundle"] = str(tls.ca_file)
        print(
            json.dumps(
                {
                    "url": url,
                    "ca_file": str(tls.ca_file),
                    "accounts": accounts,
                    "credentials": rebase(box["credentials"]),
                }
            ),
            flush=True,
        )
        async with server:
            await asyncio.to_thread(sys.stdin.read)
        stop.set()


def main() -> None:
    """Serve until the parent closes stdin."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(_serve(vars(args)))


if __name__ == "__main__":
    main()
