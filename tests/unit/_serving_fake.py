"""The prediction service on a fake model and online store, under the real uvicorn, on loopback.

For the tests that need real HTTP (a chunked body, a closed connection) without MLflow or Feast:

    python -m tests.unit._serving_fake --port 8123 --home /tmp/x [--max-body-bytes N] [--body-timeout-seconds S]

The app is :func:`mlops.serving.app.create_app` with the fakes of ``test_serving_validation``;
uvicorn runs with the options of ``mlops serve`` (:func:`mlops.serving.http.uvicorn_options`).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def make_app(home: Path, **cfg: Any) -> Any:
    from mlops.config import get_settings
    from mlops.serving.app import ServeConfig, create_app
    from mlops.serving.model import ModelHolder
    from tests.unit.test_serving_validation import FakeReader, fake_model

    holder = ModelHolder(resolve=lambda: "7", load=lambda v: fake_model(v), poll_seconds=3600)
    config = ServeConfig(
        poll_seconds=3600,
        log_predictions=False,
        settings=get_settings({"MLOPS_HOME": str(home)}),
        **cfg,
    )
    return create_app(config, holder=holder, reader_factory=FakeReader)


class FakeServer:
    """``python -m tests.unit._serving_fake`` in a subprocess on a free loopback port."""

    def __init__(self, home: Path, *args: str) -> None:
        from tests.e2e._serving_home import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"fake-serve-{self.port}.log"
        self._log = self.log_path.open("wb")
        cmd = [
            sys.executable,
            "-m",
            "tests.unit._serving_fake",
            "--port",
            str(self.port),
            "--home",
            str(home),
        ]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [*cmd, *args], cwd=str(REPO), env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"fake server not ready after {timeout}s:\n{self.tail()}")

    def peak_rss_mb(self) -> float:
        """The server's peak resident memory so far (``VmHWM``)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
        return int(line.split()[1]) / 1024

    def tail(self, n: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()


def main() -> int:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--home", type=Path, required=True)
    p.add_argument("--max-body-bytes", type=int, default=None)
    p.add_argument("--body-timeout-seconds", type=float, default=None)
    p.add_argument("--plain-uvicorn", action="store_true", help="uvicorn's defaults, not mlops serve's")
    ns = p.parse_args()
    cfg: dict[str, Any] = {}
    if ns.max_body_bytes is not None:
        cfg["max_body_bytes"] = ns.max_body_bytes
    if ns.body_timeout_seconds is not None:
        cfg["body_timeout_seconds"] = ns.body_timeout_seconds
    app = make_app(ns.home, **cfg)
    options: dict[str, Any] = {"access_log": False}
    if not ns.plain_uvicorn:
        from mlops.serving.http import uvicorn_options

        options = uvicorn_options()
    uvicorn.run(app, host="127.0.0.1", port=ns.port, log_level="warning", **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
