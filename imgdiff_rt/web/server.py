"""Serving the app with uvicorn: a connection that never finishes its request headers is closed, a request
uvicorn cannot parse gets the API's JSON error, and SIGINT and SIGTERM take one shutdown path (uvicorn's
graceful stop, then the caller's cleanup), so neither leaves the spool folder or open model sessions behind."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def raw_json_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, written below h11 (which cannot answer a
    connection whose request never arrived)."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for request headers (uvicorn has none: a client sending one
    header byte a second would hold its connection forever) and JSON for unparseable requests."""

    header_timeout_s = 10.0  # set per server by :func:`protocol_class`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request on a kept-alive connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_overdue)

    def _headers_overdue(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return  # a request is in (its body has its own deadline) or the connection is gone
        self.transport.write(raw_json_response(
            408, "Request Timeout", f"request headers did not arrive within {self.header_timeout_s:g} s"))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_json_response(400, "Bad Request", f"malformed HTTP request ({msg})"))
        self.transport.close()


def protocol_class(header_timeout_s: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


class _Stop(Exception):
    pass


def serve(app, host: str, port: int, header_timeout_s: float, cleanup: Callable[[], None]) -> str | None:
    """Serve until SIGINT or SIGTERM, then run ``cleanup``; returns the stopping signal's name (None when the
    server ended on its own). uvicorn re-raises the signal it stopped on once it is done; with the default
    SIGTERM disposition that would kill the process before any ``finally`` ran, so both signals raise here."""
    import uvicorn

    caught: list[int] = []

    def stop(signum: int, _frame) -> None:
        caught.append(signum)
        raise _Stop

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        http=protocol_class(header_timeout_s))
        except _Stop:
            pass
        finally:
            for sig in STOP_SIGNALS:  # a second signal must not cut the cleanup short
                signal.signal(sig, lambda signum, _frame: caught.append(signum))
            cleanup()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return signal.Signals(caught[0]).name if caught else None
