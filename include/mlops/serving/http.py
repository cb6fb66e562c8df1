"""The HTTP server under the service: uvicorn, with a bound on the request head.

uvicorn's fast parser (``httptools``) buffers a request line and headers of any size: a client
that sends a 100 MB ``x-request-id`` costs the server 150 MB before the app sees the request.
:class:`BoundedHttpToolsProtocol` counts the bytes of each request head as they arrive and answers
``431 Request Header Fields Too Large`` (and closes the connection) past :data:`MAX_HEAD_BYTES`;
the body is bounded by the app itself (:func:`mlops.serving.app.read_body`). Without
``httptools``, uvicorn's ``h11`` parser gets the same bound (``h11_max_incomplete_event_size``).

:func:`uvicorn_options` is what ``mlops serve`` passes to ``uvicorn.run``.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

log = logging.getLogger(__name__)

#: Most bytes of one request's line and headers (nginx allows 32 KiB by default, h11 16 KiB).
MAX_HEAD_BYTES = 64 * 1024


def bounded_protocol(max_head_bytes: int = MAX_HEAD_BYTES) -> type | None:
    """uvicorn's ``HttpToolsProtocol`` refusing request heads over ``max_head_bytes`` (None without httptools)."""
    if importlib.util.find_spec("httptools") is None:
        return None
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        """Counts the bytes of each request head as they arrive; 431 and close past the bound."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0  # of the request head being received
            self._heads = 0  # request heads parsed whole so far
            self._in_body = False

        def data_received(self, data: bytes) -> None:
            if self._in_body or self._head_bytes + len(data) <= max_head_bytes:
                if not self._in_body:
                    self._head_bytes += len(data)  # may count body bytes that came along: fine
                super().data_received(data)
                return
            # Feed only what the bound allows: unless a head ends in it, refuse the request.
            room = max_head_bytes - self._head_bytes
            heads = self._heads
            super().data_received(data[:room])
            if self.transport.is_closing():
                return
            if self._heads == heads:
                self._refuse()
                return
            self.data_received(data[room:])  # the rest, counted afresh

        def on_headers_complete(self) -> None:
            self._in_body, self._head_bytes, self._heads = True, 0, self._heads + 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body, self._head_bytes = False, 0
            super().on_message_complete()

        def _refuse(self) -> None:
            msg = f"request line and headers exceed {max_head_bytes} bytes"
            log.warning("%s from %s: refused (431)", msg, self.client)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(msg)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + msg.encode()
            )
            self.transport.close()

    return BoundedHttpToolsProtocol


def uvicorn_options(max_head_bytes: int = MAX_HEAD_BYTES) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments: the bounded protocol, no access log, a graceful stop."""
    protocol = bounded_protocol(max_head_bytes)
    return {
        "http": protocol if protocol is not None else "h11",
        "h11_max_incomplete_event_size": max_head_bytes,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
    }
