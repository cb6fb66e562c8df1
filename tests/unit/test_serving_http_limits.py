"""The service's size limits over real HTTP: uvicorn on 127.0.0.1, the options of ``mlops serve``.

A client streams more than the service will take; the server must refuse it *before reading it
all*, which only a real socket shows (the in-process test client hands the app the whole body).
Measured on the server: the bytes the app read (it says where it stopped) and its peak resident
memory (``VmHWM``); on the client: how much it could push before the server closed.

Before the fix: a 128 MB chunked body was read whole (``await request.body()``) before the 2 MB
limit applied (server peak memory +150 MB per request); a 413 on a declared ``Content-Length``
left the connection open, and the server read and discarded the rest; a body trickled (or never
finished) held its connection and task forever; a 32 MB header was buffered by uvicorn's parser
and answered 200.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from tests.unit._serving_fake import FakeServer
from tests.unit.test_serving_validation import FLIGHT

MB = 2**20
LIMIT = 2_000_000  # MAX_BODY_BYTES, the default of mlops serve
BODY_TIMEOUT = 3.0  # mlops serve --body-timeout-seconds (default 30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = FakeServer(tmp_path_factory.mktemp("limits"), "--body-timeout-seconds", str(BODY_TIMEOUT))
    try:
        srv.wait_ready()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(20):  # warm: the first requests allocate what every request will reuse
                assert c.post("/predict", json=FLIGHT).status_code == 200
        yield srv
    finally:
        srv.stop()


def _push(port: int, head: bytes, chunks, *, timeout: float = 120) -> dict:
    """Send ``head`` then ``chunks`` from a thread while reading the answer; what each side saw."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    seen: dict = {"sent": 0, "send_error": None}

    def writer() -> None:
        try:
            sock.sendall(head)
            for chunk in chunks:
                sock.sendall(chunk)
                seen["sent"] += len(chunk)
        except OSError as exc:  # the server closed: what we wanted to see
            seen["send_error"] = type(exc).__name__

    thread = threading.Thread(target=writer, daemon=True)
    started = time.monotonic()
    thread.start()
    answer = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
            head_end = answer.find(b"\r\n\r\n")
            if head_end >= 0:
                lines = answer[:head_end].split(b"\r\n")
                length = [int(v.split(b":")[1]) for v in lines if v.lower().startswith(b"content-length:")]
                if length and len(answer) - head_end - 4 >= length[0]:
                    break
    except OSError as exc:
        seen["recv_error"] = type(exc).__name__
    seen["seconds"] = time.monotonic() - started
    thread.join(timeout)
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    seen["status"] = int(status_line.split()[1]) if status_line else None
    seen["headers"], _, seen["body"] = rest.partition(b"\r\n\r\n")
    return seen


def _chunked(total: int, size: int = 64 * 1024):
    piece = b"%x\r\n" % size + b" " * size + b"\r\n"
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


POST = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


def test_chunked_body_is_refused_at_the_limit_not_after_reading_it(server):
    before = server.peak_rss_mb()
    seen = _push(server.port, POST + b"Transfer-Encoding: chunked\r\n\r\n", _chunked(128 * MB))
    grown = server.peak_rss_mb() - before
    print(
        f"\nchunked 128 MB: {seen['status']} after {seen['seconds']:.2f}s, client pushed "
        f"{seen['sent'] / MB:.1f} MB ({seen['send_error']}), server peak RSS +{grown:.1f} MB: {seen['body']!r}"
    )
    assert seen["status"] == 413, seen
    assert b"connection: close" in seen["headers"].lower()
    # The app stopped reading at the limit (plus at most one of uvicorn's reads)...
    read = int(seen["body"].split(b"stopped reading at ")[1].split(b" ")[0])
    assert LIMIT < read <= LIMIT + 512 * 1024, seen["body"]
    # ... the server closed: the client could not push the whole body (socket buffers aside) ...
    assert seen["sent"] < 64 * MB and seen["send_error"] is not None, seen
    # ... and held no copy of it.
    assert grown < 32, f"server peak RSS grew by {grown:.0f} MB"
    # The service lives on, and a body just under the limit is still read whole.
    batch = b'{"flights": [' + b",".join([httpx.Request("POST", "/", json=FLIGHT).content] * 1000) + b"]}"
    padded = batch + b" " * (LIMIT - len(batch) - 10)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        resp = c.post("/predict", content=padded, headers={"content-type": "application/json"})
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 1000, resp.text[:500]


def test_declared_length_over_the_limit_closes_without_reading(server):
    """Refused on the header alone, and the connection closed: the rest is never read."""
    head = POST + b"Content-Length: %d\r\n\r\n" % (128 * MB)
    seen = _push(server.port, head, (b" " * (64 * 1024) for _ in range(128 * 16)))
    assert seen["status"] == 413 and b"exceeds 2000000 bytes" in seen["body"], seen
    assert b"connection: close" in seen["headers"].lower()
    assert seen["sent"] < 64 * MB and seen["send_error"] is not None, seen


def test_request_head_is_bounded(server):
    """A 32 MB x-request-id: 431 from the server, not buffered whole and answered 200."""
    before = server.peak_rss_mb()
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: "
    seen = _push(server.port, head, [*(b"A" * (256 * 1024) for _ in range(128)), b"\r\n\r\n"])
    grown = server.peak_rss_mb() - before
    assert seen["status"] == 431, seen
    assert seen["sent"] < 16 * MB and grown < 16, (seen, grown)
    # Ordinary headers, and a long valid one, still pass.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        resp = c.post("/predict", json=FLIGHT, headers={"x-request-id": "r-1", "x-padding": "p" * 30_000})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == "r-1"


def test_trickled_body_is_dropped_after_the_timeout(server):
    """A client that declares 1,000 bytes and sends 12: 408 after the body timeout, closed."""
    seen = _push(server.port, POST + b"Content-Length: 1000\r\n\r\n", [b'{"flights": '], timeout=20)
    assert seen["status"] == 408, seen
    assert b"not complete after 3 s (12 bytes received)" in seen["body"], seen
    assert BODY_TIMEOUT <= seen["seconds"] < BODY_TIMEOUT + 10, seen
    assert b"connection: close" in seen["headers"].lower()
