"""ASGI guards in front of the app: who may talk to it (Host header) and how much (body size).

* Host: a web page the user visits can make its own host name resolve to 127.0.0.1 (DNS
  rebinding) and then reach this backend's open routes (/v1/health, /docs, /openapi.json) as
  same-origin. Requests whose ``Host`` is not a loopback name or the address the backend was
  bound to are refused (400). A backend bound to every interface (0.0.0.0, ::) accepts any Host:
  the token is then its only protection (see docs/protocol.md).
* Body: a request body above ``limit`` bytes is refused with 413 before it is read into memory.
"""

from __future__ import annotations

import json
from typing import Awaitable, Callable

from starlette.exceptions import HTTPException

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]

MAX_BODY_BYTES = 1 << 20  # a job spec is a few hundred bytes; 1 MB leaves room for long path lists
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def allowed_hosts(bound_host: str) -> frozenset[str] | None:
    """Host names (without port) a request may carry; None: any (bound to every interface)."""
    if bound_host in WILDCARD_HOSTS:
        return None
    return frozenset(LOOPBACK_NAMES + (bound_host.strip("[]").lower(),))


def host_name(header: str) -> str:
    """``example.com:8765`` -> ``example.com``; ``[::1]:8765`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """Refuse requests whose Host header names another machine (see the module docstring)."""

    def __init__(self, app: ASGIApp, bound_host: str) -> None:
        self.app, self.allowed = app, allowed_hosts(bound_host)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            host = _header(scope, b"host")
            if host_name(host) not in self.allowed:
                return await _answer(send, 400, f"Host {host!r} is not this backend's: connect to "
                                                f"http://127.0.0.1:<port> (or the address it was started on)")
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies above ``limit`` bytes (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body over {self.limit} bytes; a job spec is far smaller"
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.limit:
            return await _answer(send, 413, message)
        received = 0

        async def limited() -> dict:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.limit:
                    raise HTTPException(413, detail=message)
            return event

        await self.app(scope, limited, send)


def add_guards(app, bound_host: str) -> None:
    """Put both guards in front of ``app`` (a Starlette/FastAPI app)."""
    app.add_middleware(BodyLimit)
    app.add_middleware(HostCheck, bound_host=bound_host)


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


async def _answer(send: Callable, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
