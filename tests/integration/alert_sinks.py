"""Real alert receivers on loopback: an SMTP server (aiosmtpd) and an HTTP webhook sink.

Used by tests/integration/test_alerts.py (notifier paths) and test_alerts_scheduler.py (the
failure callback and the deadline through the real scheduler and triggerer). The connections they
print are what a user sets (``AIRFLOW_CONN_MLOPS_SMTP`` / ``AIRFLOW_CONN_MLOPS_WEBHOOK``).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mail:
    subject: str
    sender: str
    recipients: list[str]
    kind: str | None
    body: str


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1; :attr:`mails` as received (parsed)."""

    mails: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                part = msg.get_body(preferencelist=("html", "plain")) if msg.is_multipart() else msg
                sink.mails.append(
                    Mail(
                        subject=str(msg["Subject"]),
                        sender=envelope.mail_from,
                        recipients=list(envelope.rcpt_tos),
                        kind=msg["X-Mlops-Alert"],
                        body=part.get_content() if part is not None else "",
                    )
                )
                return "250 OK"

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP verb
        self.port = _free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def connection(self, to: str = "oncall@example.com") -> str:
        """``AIRFLOW_CONN_MLOPS_SMTP`` for this server (plain SMTP on loopback)."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {
                    "from_email": "mlops@example.com",
                    "to": to,
                    "disable_tls": True,
                    "disable_ssl": True,
                    "retry_limit": 0,
                    "timeout": 10,
                },
            }
        )

    def wait(self, count: int, timeout: float = 30) -> list[Mail]:
        deadline = time.monotonic() + timeout
        while len(self.mails) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.mails)

    def stop(self) -> None:
        self._controller.stop()


class HttpSink:
    """A webhook receiver on 127.0.0.1: every JSON POST in :attr:`posts`; answers ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.posts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.headers.append(dict(self.headers))
                sink.posts.append(json.loads(raw))
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def connection(self, path: str = "/hooks/mlops", headers: dict[str, str] | None = None) -> str:
        """``AIRFLOW_CONN_MLOPS_WEBHOOK`` for this sink: the full URL in host, headers in extra."""
        return json.dumps(
            {"conn_type": "http", "host": f"http://127.0.0.1:{self.port}{path}", "extra": headers or {}}
        )

    def wait(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return list(self.posts)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
