"""The web app's limits: the request body cap (enforced while the body streams in, not after it is spooled), the
time a body may take to arrive, and the bounded number of concurrent jobs (the next one is refused with a 429,
never queued without bound)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

# Form fields that are not files (option values, the JSON options part) are small; the cap keeps them so.
MAX_FIELD_BYTES = 64 * 1024
MAX_FORM_FIELDS = 32


@dataclass(frozen=True)
class WebLimits:
    max_upload_bytes: int = 20 * 1024 * 1024  # per image file
    max_jobs: int = 2  # pairs processed at once; one more gets 429
    keep_s: float = 600.0  # how long a result's pictures can be fetched
    keep_bytes: int = 256 * 1024 * 1024  # pixels and drawn pictures kept, all results together
    body_timeout_s: float = 60.0  # a request body must have arrived this long after its headers
    header_timeout_s: float = 10.0  # a connection must have sent a request's headers this long after it opened

    @property
    def max_body_bytes(self) -> int:
        """Two image files plus the small fields and the multipart framing around them."""
        return 2 * self.max_upload_bytes + MAX_FORM_FIELDS * 1024 + MAX_FIELD_BYTES


class BodyTooLarge(Exception):
    """Raised from the wrapped ``receive`` once a request body passes the cap."""

    def __init__(self, limit: int):
        super().__init__(f"request body is over the {limit / 2**20:.3g} MiB cap")
        self.limit = limit


class BodyTimeout(Exception):
    """Raised from the wrapped ``receive`` once a request body is still incomplete at its deadline: a client
    trickling bytes must not hold a connection, memory or spool space for long."""

    def __init__(self, seconds: float):
        super().__init__(f"request body did not arrive within {seconds:g} s")
        self.seconds = seconds


class BodyLimitMiddleware:
    """ASGI middleware: a declared Content-Length over the cap is refused before any byte is read; a body
    without one (chunked) is counted as it arrives and stops at the cap (``BodyTooLarge`` in the handler); a
    body still incomplete ``timeout_s`` after the request began stops there (``BodyTimeout``)."""

    def __init__(self, app, limit: int, refuse, timeout_s: float = WebLimits.body_timeout_s):
        self.app, self.limit, self.refuse, self.timeout_s = app, limit, refuse, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self.refuse(scope, receive, send, BodyTooLarge(self.limit))
        seen, complete = 0, False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s

        async def counted_receive():
            nonlocal seen, complete
            if complete:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BodyTimeout(self.timeout_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return await self.app(scope, counted_receive, send)


class JobSlots:
    """At most ``n`` jobs at once; ``try_take`` never waits (the caller answers 429 instead)."""

    def __init__(self, n: int):
        self.n = n
        self.running = 0
        self._lock = threading.Lock()

    def try_take(self) -> bool:
        with self._lock:
            if self.running >= self.n:
                return False
            self.running += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.running -= 1
