"""The prediction service on a fake model and online store, under the real uvicorn, on loopback.

For the tests that need real HTTP (a chunked body, a closed connection) without MLflow or Feast:

    python -m tests.unit._serving_fake --port 8123 --home /tmp/x [--max-body-bytes N] [--body-timeout-seconds S]
        [--challenger VERSION [--challenger-fails] [--challenger-delay S]] [--canary-percent P] [--log-predictions]

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


def make_app(
    home: Path,
    *,
    challenger: str | None = None,
    challenger_fails: bool = False,
    challenger_delay: float = 0.0,
    **cfg: Any,
) -> Any:
    """The app on the fake champion v7 (and a fake ``@challenger`` when given: its probabilities
    differ from the champion's; ``challenger_fails``: its booster raises; ``challenger_delay``:
    it takes that many seconds per call)."""
    from mlops.config import CHALLENGER, get_settings
    from mlops.serving.app import ServeConfig, create_app
    from mlops.serving.model import ModelHolder
    from tests.unit.test_serving_validation import FakeReader, fake_model

    holder = ModelHolder(resolve=lambda: "7", load=lambda v: fake_model(v), poll_seconds=3600)
    rival = None
    if challenger is not None:
        rival = ModelHolder(
            alias=CHALLENGER,
            resolve=lambda: challenger,
            load=lambda v: fake_model(v, offset=1.0, delay=challenger_delay, fails=challenger_fails),
            poll_seconds=3600,
        )
    config = ServeConfig(
        **{
            "poll_seconds": 3600,
            "log_predictions": False,
            "settings": get_settings({"MLOPS_HOME": str(home)}),
            **cfg,
        }
    )
    return create_app(config, holder=holder, reader_factory=FakeReader, challenger=rival)


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
    p.add_argument("--challenger", help="a fake @challenger of this version (scores differ from v7's)")
    p.add_argument("--challenger-fails", action="store_true", help="the challenger's booster raises")
    p.add_argument("--challenger-delay", type=float, default=0.0, help="seconds per challenger call")
    p.add_argument("--canary-percent", type=float, default=0.0)
    p.add_argument("--no-shadow", action="store_true")
    p.add_argument(
        "--log-predictions", action="store_true", help="log to the home's lake (flush every 0.2 s)"
    )
    ns = p.parse_args()
    cfg: dict[str, Any] = {
        "challenger": ns.challenger,
        "challenger_fails": ns.challenger_fails,
        "challenger_delay": ns.challenger_delay,
        "canary_percent": ns.canary_percent,
        "shadow": not ns.no_shadow,
    }
    if ns.log_predictions:
        cfg.update(log_predictions=True, log_flush_seconds=0.2)
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
