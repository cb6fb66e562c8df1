"""Serving latency: ``POST /predict`` over loopback at a fixed request rate, next to the same work
in process, in the same run.

Section ``6 serving`` of ``mlops bench`` (registered with the harness), also runnable alone:

    .venv/bin/python benchmarks/bench_serving.py [--rate 100] [--seconds 60] [--home DIR] [--out FILE]

1. A small real home (tests/e2e/_serving_home.py): a week of June 2013 curated, its feature
   tables, ``feast apply``, a quick model trained on ``get_historical_features`` and promoted to
   ``@champion``, the serving day materialized to the SQLite online store. ``--home`` reuses one.
2. **In process** (the baseline): for each request, exactly the service's work without HTTP:
   parse and validate the JSON body, read the online store (:class:`OnlineFeatureReader`),
   compute the request-time features, score with the booster, serialize the answer. Run on the
   same fixed-rate schedule as the HTTP run, in this process.
3. **HTTP**: ``mlops serve`` (the real CLI: uvicorn, prediction logging on) in its own process;
   an open-loop load generator here sends single-flight requests at ``--rate`` per second for
   ``--seconds`` over keep-alive loopback connections (a new one when all are busy). Latency is
   measured from each request's *scheduled* send time, so a stall counts in full (no coordinated
   omission). Peak RSS of the server is its ``VmHWM``. Several services run side by side
   (:data:`SERVICES`: champion only; the same without the sidecar, i.e. with the ``@alias`` poll
   and the prediction-log writes in the server's own threads, as before issue 20; shadow on; a 10 %
   canary) and the load visits them in turn (:data:`PHASES`), ``--rounds`` times, so each
   comparison is made in the same minutes of a shared machine: ``GET /health`` of the champion-only
   server is the floor (the server's cheapest answer under the same load), shadow on vs off shows
   what the shadow costs the response path, and the canary's metrics give the share of flights
   each alias answered. Percentiles pool every request of the rounds; each round's are kept.
4. For reference: the Feast SDK path in process (``get_online_features`` + ``model_frame`` +
   ``DelayModel.predict``) on a few hundred requests (closed loop).

Results: ``benchmarks/results/serving.json`` (standalone; ``--out`` writes elsewhere, e.g. to compare
two versions of the service without replacing the published figures) or the harness report.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Row

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the home builder lives with the e2e tests
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
SERVE_DAY = "2013-06-12"
AS_OF = "2013-06-12"  # the model never saw the served day
WINDOW, HOLDOUT = 7, 2
log = logging.getLogger("bench_serving")


# --------------------------------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------------------------------


def prepare_home(home: Path) -> dict[str, Any]:
    """Build (or reuse) the home; returns the serving day's curated flights and setup timings."""
    os.environ["MLOPS_HOME"] = str(home)
    from mlops.config import CHALLENGER, CHAMPION, get_settings
    from mlops.features import compute, feature_store
    from mlops.models import registry
    from tests.e2e._serving_home import prepare_lake, shift, train_version

    s = get_settings()
    timings: dict[str, float] = {}
    first = shift(AS_OF, -WINDOW)
    if registry.alias_version(CHAMPION, s) is None:
        prepared = prepare_lake(first, SERVE_DAY, s)
        timings.update(prepared["timings"])
        t = time.perf_counter()
        frame = feature_store.training_frame(first, AS_OF, s)
        timings["training_frame"] = time.perf_counter() - t
        trained = train_version(frame, AS_OF, window_days=WINDOW, holdout_days=HOLDOUT, n_estimators=60)
        timings["train_and_register"] = trained.seconds
        registry.promote(trained.version, trained.holdout, margin=0.0)
        t = time.perf_counter()
        feature_store.materialize(SERVE_DAY, shift(SERVE_DAY, 1), s)
        timings["materialize"] = time.perf_counter() - t
    if registry.alias_version(CHALLENGER, s) == registry.alias_version(CHAMPION, s):
        # A second version for shadow and canary: registering it points @challenger at it.
        t = time.perf_counter()
        frame = feature_store.training_frame(first, AS_OF, s)
        train_version(frame, AS_OF, window_days=WINDOW, holdout_days=HOLDOUT, n_estimators=40, max_depth=4)
        timings["train_challenger"] = time.perf_counter() - t
    flights = compute.read_curated([SERVE_DAY], s)
    return {"settings": s, "flights": flights, "timings": timings}


def bodies(flights: Any, n: int, seed: int = 0) -> list[bytes]:
    from tests.e2e._serving_home import request_body

    sample = flights.sample(min(n, len(flights)), random_state=seed)
    return [json.dumps(request_body(r)).encode() for _, r in sample.iterrows()]


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p * (len(ordered) - 1))))]

    return {
        "n": len(values),
        "p50_ms": round(q(0.50) * 1e3, 3),
        "p90_ms": round(q(0.90) * 1e3, 3),
        "p99_ms": round(q(0.99) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
        "mean_ms": round(statistics.fmean(values) * 1e3, 3),
    }


# --------------------------------------------------------------------------------------------------
# In process
# --------------------------------------------------------------------------------------------------


def in_process_handler(settings: Any) -> Any:
    """The service's per-request work, minus HTTP (same reader, same model, same code)."""
    from mlops.config import CHAMPION
    from mlops.models import registry
    from mlops.serving.app import score_request
    from mlops.serving.metrics import ServiceMetrics
    from mlops.serving.model import load_version
    from mlops.serving.online import load_reader
    from mlops.serving.schemas import parse_request, vocabulary

    vocabulary()
    reader = load_reader(settings)
    model = load_version(registry.alias_version(CHAMPION, settings), settings)
    metrics = ServiceMetrics()

    def handle(body: bytes) -> bytes:
        flights = parse_request(body)
        return score_request(model, reader, flights, "bench", threshold=0.5, metrics=metrics)[0]

    return handle, model


def run_in_process(handle: Any, payloads: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    """The same fixed-rate schedule, called directly: latency from the scheduled time."""
    n = int(rate * seconds)
    for body in payloads[:20]:
        handle(body)  # warm
    latencies: list[float] = []
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        handle(payloads[i % len(payloads)])
        latencies.append(time.perf_counter() - due)
    return {**percentiles(latencies), "achieved_rps": round(n / (time.perf_counter() - start), 1)}


def response_path_cpu(settings: Any, payloads: list[bytes], blocks: int = 5) -> dict[str, Any]:
    """CPU of the request's own thread (``time.thread_time``) per request: shadow off, shadow on,
    10 % canary, in alternating blocks of ``payloads``. The shadow thread's work is not in it: what
    the answer pays for the shadow is the hand-over only. Closed loop, so load changes wall times,
    not this CPU figure much."""
    from mlops.config import CHALLENGER, CHAMPION
    from mlops.models import registry
    from mlops.serving.app import score_request
    from mlops.serving.metrics import ServiceMetrics
    from mlops.serving.model import load_version
    from mlops.serving.online import load_reader
    from mlops.serving.rollout import ShadowScorer
    from mlops.serving.schemas import parse_request, vocabulary

    vocabulary()
    reader = load_reader(settings)
    champion = load_version(registry.alias_version(CHAMPION, settings), settings)
    challenger = load_version(registry.alias_version(CHALLENGER, settings), settings)
    metrics = ServiceMetrics()
    shadow = ShadowScorer(metrics)
    shadow.start()
    parsed = [parse_request(b) for b in payloads]
    modes: dict[str, dict[str, Any]] = {
        "shadow_off": {},
        "shadow_on": {"challenger": challenger, "shadow": shadow},
        "canary_10": {"challenger": challenger, "shadow": shadow, "canary_percent": 10.0},
    }

    def block(kwargs: dict[str, Any]) -> float:
        t = time.thread_time()
        for flights in parsed:
            score_request(champion, reader, flights, "bench", threshold=0.5, metrics=metrics, **kwargs)
        spent = time.thread_time() - t
        shadow.wait_idle(120)
        return spent / len(parsed) * 1e3

    for kwargs in modes.values():
        block(kwargs)  # warm
    runs: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(blocks):
        for name, kwargs in modes.items():
            runs[name].append(round(block(kwargs), 4))
    shadow.close()
    return {
        **{f"{name}_cpu_ms": statistics.median(v) for name, v in runs.items()},
        "blocks_cpu_ms": runs,
        "requests_per_block": len(parsed),
        "shadow": shadow.describe(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def background_cpu(settings: Any, rows: int = 500, repeats: int = 10) -> dict[str, Any]:
    """CPU of the *server process* (``time.process_time``: every thread) per ``@alias`` lookup and
    per prediction-log flush of ``rows`` rows (5 s at 100 req/s), in the server's threads vs with
    the sidecar (:mod:`mlops.serving.sidecar`). That CPU holds the GIL the requests need; what the
    sidecar does in its own process is not in it. Medians of ``repeats``; load changes wall times,
    not these figures much."""
    from datetime import UTC, datetime

    from mlops.serving.logger import LoggedPrediction, PredictionLogger
    from mlops.serving.model import ModelHolder
    from mlops.serving.online import FlightRequest, feature_row
    from mlops.serving.sidecar import Sidecar

    def timed(fn: Any) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return (time.process_time() - cpu) * 1e3, (time.perf_counter() - wall) * 1e3

    def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
        return {
            "server_cpu_ms": round(statistics.median(c for c, _ in samples), 3),
            "max_server_cpu_ms": round(max(c for c, _ in samples), 3),
            "wall_ms": round(statistics.median(w for _, w in samples), 3),
        }

    sidecar = Sidecar()
    out: dict[str, Any] = {}
    flight = FlightRequest("UA", 1545, "EWR", "IAH", datetime(2013, 6, 12, 14, 15, tzinfo=UTC), "N14228")
    row = feature_row(flight, {})
    batch = [
        LoggedPrediction(f"r{i}", time.time(), flight, dict(row), 0.3, 0.5, "bench", "1", f"p{i}-0")
        for i in range(rows)
    ]
    try:
        for name, car in (("thread", None), ("sidecar", sidecar)):
            holder = ModelHolder(settings=settings, sidecar=car)
            holder.refresh()  # loads the champion; the timed polls only resolve the alias
            out[f"alias_lookup_{name}"] = summary([timed(holder.refresh) for _ in range(repeats)])
            with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
                logger = PredictionLogger(Path(tmp).as_uri(), sidecar=car)
                logger.log(batch)
                logger.flush()  # warm
                samples = []
                for _ in range(repeats):
                    logger.log(batch)
                    samples.append(timed(logger.flush))
                out[f"flush_{rows}_rows_{name}"] = summary(samples)
    finally:
        sidecar.close()
    out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return out


def run_feast_sdk(settings: Any, flights: Any, n: int = 200) -> dict[str, Any]:
    """Reference: the Feast SDK online path + pandas model_frame + DelayModel.predict, per request."""
    from mlops.config import CHAMPION
    from mlops.features import compute, feature_store
    from mlops.models import registry

    store = feature_store.get_store(settings)
    predict = registry.predictor(registry.alias_version(CHAMPION, settings), settings)
    cols = ["carrier", "flight", "origin", "dest", "sched_dep_ts", "tailnum"]
    sample = flights.sample(min(n, len(flights)), random_state=3)[cols]
    rows = [sample.iloc[[i]] for i in range(len(sample))]
    predict(compute.model_frame(rows[0], feature_store.online_values(rows[0], settings, store)))
    latencies = []
    for row in rows:
        t = time.perf_counter()
        predict(compute.model_frame(row, feature_store.online_values(row, settings, store)))
        latencies.append(time.perf_counter() - t)
    return percentiles(latencies)


# --------------------------------------------------------------------------------------------------
# Over HTTP: an open-loop load generator
# --------------------------------------------------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection to the service (blocking socket, minimal parsing)."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def request(self, head: bytes, body: bytes) -> int:
        self.sock.sendall(head + body)
        status_line = self.file.readline()
        if not status_line:  # the server closed an idle keep-alive connection
            raise ConnectionResetError("connection closed")
        length = 0
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length and len(self.file.read(length)) != length:
            raise ConnectionResetError("short body")
        return int(status_line.split()[1])

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def load(
    port: int, payloads: list[bytes], rate: float, seconds: float, path: str = "/predict"
) -> dict[str, Any]:
    """Open-loop load: ``rate`` requests/s for ``seconds``; latency from each scheduled send time.

    ``path`` ``/predict`` posts ``payloads`` in turn; any other path is a ``GET`` (``/health``: the
    floor, the server's own cost of an HTTP answer under the same load).

    A scheduler thread sleeps until each request's due time (``time.sleep``, as the in-process
    run) and hands it to an idle sender thread, each with its own keep-alive connection; when all
    are busy (the service is behind) a new sender and connection are added, so a stall delays the
    requests that arrive during it and is counted in full (no coordinated omission).
    """
    import queue
    import threading

    clock = time.perf_counter
    n = int(rate * seconds)
    records: list[tuple[int, float, float, float, int]] = []  # (i, due, sent, done, status)
    lock = threading.Lock()
    jobs: queue.SimpleQueue[tuple[int, float] | None] = queue.SimpleQueue()
    idle = [0]
    senders: list[threading.Thread] = []

    def head(body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()

    if path == "/predict":
        heads = [head(b) for b in payloads]
    else:
        payloads = [b""]
        heads = [f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()]

    def sender() -> None:
        conn: _Connection | None = None
        while True:
            with lock:
                idle[0] += 1
            job = jobs.get()
            with lock:
                idle[0] -= 1
            if job is None:
                break
            i, due = job
            k = i % len(payloads)
            status, sent = -1, clock()
            for _attempt in range(2):  # a pooled connection may have been closed: retry once
                reused = conn is not None
                try:
                    if conn is None:
                        conn = _Connection(port)
                    sent = clock()
                    status = conn.request(heads[k], payloads[k])
                    break
                except (OSError, ValueError, IndexError):
                    if conn is not None:
                        conn.close()
                    conn, status = None, -1
                    if not reused:
                        break
            done = clock()
            with lock:
                records.append((i, due, sent, done, status))
        if conn is not None:
            conn.close()

    def add_sender() -> None:
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        senders.append(t)

    for _ in range(4):
        add_sender()
    # Warm-up (not measured): a few requests through every sender.
    for i in range(20):
        jobs.put((i, clock()))
    while True:
        with lock:
            if len(records) >= 20:
                break
        time.sleep(0.01)
    records.clear()
    start = clock() + 0.1
    for i in range(n):
        due = start + i / rate
        delay = due - clock()
        if delay > 0:
            time.sleep(delay)
        with lock:
            busy = idle[0] == 0
        if busy:
            add_sender()
        jobs.put((i, due))
    for _ in senders:
        jobs.put(None)
    for t in senders:
        t.join(120)
    elapsed = max(r[3] for r in records) - start
    latencies = [done - due for _, due, _, done, _ in records]
    service = [done - sent for _, _, sent, done, _ in records]
    lag = [sent - due for _, due, sent, _, _ in records]
    statuses: dict[int, int] = {}
    for *_, status in records:
        statuses[status] = statuses.get(status, 0) + 1
    slowest = sorted(records, key=lambda r: r[1] - r[3])[:10]
    return {
        **percentiles(latencies),
        "service_time": percentiles(service),
        "send_lag": percentiles(lag),
        "slowest": [
            {"at_s": round(due - start, 3), "ms": round((done - due) * 1e3, 2), "status": status}
            for _, due, _, done, status in slowest
        ],
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": sum(v for k, v in statuses.items() if k != 200),
        "connections": len(senders),
        "achieved_rps": round(len(records) / elapsed, 1),
        "_latencies": latencies,  # pooled over rounds by run_http, then dropped
    }


#: The services compared in one run: name -> ``mlops serve`` arguments.
SERVICES: dict[str, tuple[str, ...]] = {
    "champion_only": ("--no-shadow",),
    # The @alias poll and the log writes in the server's threads (before mlops.serving.sidecar).
    "no_sidecar": ("--no-shadow", "--no-sidecar"),
    "shadow": (),
    "canary": ("--canary-percent", "10"),
}
#: The load phases of a round: (label, service, path). ``health`` is the floor: the same server's
#: cheapest answer under the same load, measured in the same round.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("health", "champion_only", "/health"),
    ("predict", "champion_only", "/predict"),
    ("predict_no_sidecar", "no_sidecar", "/predict"),
    ("predict_shadow", "shadow", "/predict"),
    ("predict_canary", "canary", "/predict"),
)


def _cli_has(flag: str) -> bool:
    """Whether ``mlops serve`` takes ``flag`` (read from its source: no import, no subprocess)."""
    import importlib.util

    spec = importlib.util.find_spec("mlops.serving.cli")
    return bool(spec and spec.origin and f'"{flag}"' in Path(spec.origin).read_text())


def default_phases() -> tuple[tuple[str, str, str], ...]:
    """:data:`PHASES`, without the services this ``mlops serve`` cannot run (an older CLI)."""
    return tuple(p for p in PHASES if p[1] != "no_sidecar" or _cli_has("--no-sidecar"))


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next((line for line in status.splitlines() if line.startswith("VmHWM")), "VmHWM: 0 kB")
    return round(int(hwm.split()[1]) / 1024, 1)


def _per_model(metrics: str, name: str = "mlops_serving_model_predictions_total") -> dict[str, float]:
    """``{alias/role: value}`` of a per-model counter in a ``/metrics`` text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == name:
                key = f"{sample.labels['alias']}/v{sample.labels['model_version']}/{sample.labels['role']}"
                out[key] = out.get(key, 0.0) + sample.value
    return out


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Percentiles over every request of the rounds, and each round's p50/p99."""
    latencies = [x for r in runs for x in r.pop("_latencies")]
    return {
        **percentiles(latencies),
        "rounds_p50_ms": [r["p50_ms"] for r in runs],
        "rounds_p99_ms": [r["p99_ms"] for r in runs],
        "median_round_p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
        "errors": sum(r["errors"] for r in runs),
        "achieved_rps": round(statistics.fmean(r["achieved_rps"] for r in runs), 1),
        "service_time_p99_ms": [r["service_time"].get("p99_ms") for r in runs],
        "slowest": sorted((x for r in runs for x in r["slowest"]), key=lambda x: -x["ms"])[:5],
        "loadavg": [r["loadavg"] for r in runs],
    }


def run_http(
    home: Path,
    payloads: list[bytes],
    rate: float,
    seconds: float,
    rounds: int = 3,
    phases: tuple[tuple[str, str, str], ...] | None = None,
) -> dict[str, Any]:
    """Every service of ``phases`` up at once; ``rounds`` rounds of each phase in turn
    (``seconds / rounds`` each), so a load spike on the shared machine hits every phase alike."""
    import httpx

    from tests.e2e._serving_home import Server

    phases = default_phases() if phases is None else phases
    wanted = list(dict.fromkeys(service for _, service, _ in phases))
    servers = {name: Server(home, "--log-level", "warning", *SERVICES[name]) for name in wanted}
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in phases}
    try:
        for server in servers.values():
            server.wait_ready()
            for body in payloads[:50]:
                httpx.post(f"{server.url}/predict", content=body, timeout=30)
        for r in range(rounds):
            for label, service, path in phases:
                before = os.getloadavg()[0]
                out = load(servers[service].port, payloads, rate, seconds / rounds, path=path)
                out["loadavg"] = [round(before, 2), round(os.getloadavg()[0], 2)]
                runs[label].append(out)
                log.info(
                    "round %d %s: p50 %.2f ms, p99 %.2f ms, load %s",
                    r,
                    label,
                    out["p50_ms"],
                    out["p99_ms"],
                    out["loadavg"],
                )
        result: dict[str, Any] = {label: _pooled(outs) for label, outs in runs.items()}
        for name, server in servers.items():
            metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
            health = httpx.get(f"{server.url}/health", timeout=30).json()
            result.setdefault("services", {})[name] = {
                "args": list(SERVICES[name]),
                "peak_rss_mb": _peak_rss_mb(server.proc.pid),
                # The sidecar child's own peak (None without one): the memory the tail fix costs.
                "sidecar_peak_rss_mb": _peak_rss_mb(pid)
                if (pid := (health.get("sidecar") or {}).get("pid"))
                else None,
                "sidecar": health.get("sidecar"),
                "flights_by_model": _per_model(metrics),
                "shadow": health.get("shadow"),
                "challenger": {k: health["challenger"].get(k) for k in ("version", "active", "reason")},
            }
    finally:
        for server in servers.values():
            server.stop()
    return result


def canary_share(result: dict[str, Any]) -> dict[str, Any]:
    """Share of the canary service's answered flights per alias (from its metrics)."""
    served = {
        k: v for k, v in result["services"]["canary"]["flights_by_model"].items() if k.endswith("/served")
    }
    total = sum(served.values())
    return {
        "flights": total,
        "share": {k: round(v / total, 4) for k, v in served.items()} if total else {},
        "asked_percent": float(SERVICES["canary"][1]),
    }


# --------------------------------------------------------------------------------------------------


def measure(
    home: Path | None = None,
    rate: float = 100.0,
    seconds: float = 60.0,
    sdk_requests: int = 200,
    rounds: int = 3,
) -> dict[str, Any]:
    tmp = None
    if home is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-serving-")
        home = Path(tmp.name)
    try:
        started = time.perf_counter()
        prep = prepare_home(home)
        setup_s = time.perf_counter() - started
        payloads = bodies(prep["flights"], 2000)
        handle, model = in_process_handler(prep["settings"])
        out: dict[str, Any] = {
            "rate_per_s": rate,
            "seconds": seconds,
            "model_version": model.version,
            "setup_s": round(setup_s, 1),
            "setup_timings_s": {k: round(v, 1) for k, v in prep["timings"].items()},
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        }
        # As the service does after start-up: the ~300k objects loaded so far (MLflow, Feast,
        # pandas) out of the collector's way, or a full collection stalls the timed loop.
        gc.collect()
        gc.freeze()
        before = [round(x, 2) for x in os.getloadavg()]
        out["in_process"] = run_in_process(handle, payloads, rate, seconds)
        out["in_process"]["loadavg_before_after"] = [before, [round(x, 2) for x in os.getloadavg()]]
        log.info("in process: %s", out["in_process"])
        phases = run_http(home, payloads, rate, seconds, rounds)
        out["services"] = phases.pop("services")
        out["http"] = phases.pop("predict")  # champion only, no shadow: the service as before
        out.update(phases)  # health (the floor), predict_shadow, predict_canary
        h, p, floor = out["http"], out["in_process"], out["health"]
        out["http_over_in_process"] = {
            "p50": round(h["p50_ms"] / p["p50_ms"], 2),
            "p99": round(h["p99_ms"] / p["p99_ms"], 2),
        }
        out["predict_over_health"] = {
            name: {
                "p50": round(out[name]["p50_ms"] / floor["p50_ms"], 2),
                "p99": round(out[name]["p99_ms"] / floor["p99_ms"], 2),
            }
            for name in ("http", "predict_no_sidecar", "predict_shadow", "predict_canary")
            if name in out
        }
        out["canary_share"] = canary_share(out)
        if sdk_requests:
            out["feast_sdk_in_process"] = run_feast_sdk(prep["settings"], prep["flights"], sdk_requests)
            log.info("feast sdk: %s", out["feast_sdk_in_process"])
        out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """The table rows of a :func:`measure` result (or of ``results/serving.json``, its saved form)."""
    from benchmarks.harness import Row

    h, p, sdk = result["http"], result["in_process"], result.get("feast_sdk_in_process")
    note = f"{result['rate_per_s']:.0f} req/s x {result['seconds']:.0f} s, 1 flight/request, loopback"
    out = [
        Row(
            "6 serving",
            "POST /predict p50 (HTTP, from scheduled send)",
            h["p50_ms"],
            "in-process p50 (same lookup + model)",
            p["p50_ms"],
            unit="ms",
            spread=f"n={h['n']}, errors={h['errors']}, {h['achieved_rps']} req/s",
            peak_rss_mb=_rss(result, "champion_only", h),
            note=note,
        ),
        Row(
            "6 serving",
            "POST /predict p99 (HTTP, from scheduled send)",
            h["p99_ms"],
            "in-process p99 (same lookup + model)",
            p["p99_ms"],
            unit="ms",
            spread=f"max {h['max_ms']} ms",
            peak_rss_mb=_rss(result, "champion_only", h),
            note=note,
        ),
    ]
    out += _sidecar_rows(result, note)
    out += _rollout_rows(result, note)
    if sdk is None:
        return out
    return [
        *out,
        Row(
            "6 serving",
            "Feast SDK path p50 (get_online_features + model_frame)",
            sdk["p50_ms"],
            "direct online read + single-row path p50",
            p["p50_ms"],
            unit="ms",
            spread=f"p99 {sdk['p99_ms']} ms (n={sdk['n']}, closed loop)",
            note="why the service reads the online store directly",
        ),
    ]


def _rss(result: dict[str, Any], service: str, run: dict[str, Any]) -> float | None:
    return result.get("services", {}).get(service, {}).get("peak_rss_mb", run.get("server_peak_rss_mb"))


def _sidecar_rows(result: dict[str, Any], note: str) -> list[Row]:
    """With the sidecar (the @alias poll and the log writes in a child process) vs without (in the
    server's threads, as before issue 20), same rounds; results from before the sidecar: none."""
    from benchmarks.harness import Row

    if "predict_no_sidecar" not in result:
        return []
    h, before = result["http"], result["predict_no_sidecar"]
    child = result["services"]["champion_only"].get("sidecar_peak_rss_mb")
    return [
        Row(
            "6 serving",
            "POST /predict p99 with the sidecar (alias poll + log writes in a child process)",
            h["p99_ms"],
            "without: in the server's threads (same rounds)",
            before["p99_ms"],
            unit="ms",
            spread=f"p50 {h['p50_ms']} vs {before['p50_ms']} ms; round p99s {h['rounds_p99_ms']} vs "
            f"{before['rounds_p99_ms']}; sidecar peak RSS {child} MB",
            peak_rss_mb=_rss(result, "champion_only", h),
            note=note,
        )
    ]


def _rollout_rows(result: dict[str, Any], note: str) -> list[Row]:
    """The floor, shadow on vs off and the canary's share (results from before they existed: none)."""
    from benchmarks.harness import Row

    if "health" not in result:
        return []
    h, floor, shadow = result["http"], result["health"], result["predict_shadow"]
    share = result["canary_share"]
    challenger = next((k for k in share["share"] if k.startswith("challenger/")), "challenger")
    return [
        Row(
            "6 serving",
            "POST /predict p99 / GET /health p99 (same server, same rounds)",
            h["p99_ms"],
            "GET /health p99 (the floor)",
            floor["p99_ms"],
            unit="ms",
            spread=f"p50 {h['p50_ms']} vs {floor['p50_ms']} ms; round p99s {h['rounds_p99_ms']} vs {floor['rounds_p99_ms']}",
            note=note,
        ),
        Row(
            "6 serving",
            "POST /predict p99 with @challenger in shadow",
            shadow["p99_ms"],
            "shadow off (same rounds)",
            h["p99_ms"],
            unit="ms",
            spread=f"p50 {shadow['p50_ms']} vs {h['p50_ms']} ms; dropped {result['services']['shadow']['shadow']['dropped']}",
            peak_rss_mb=_rss(result, "shadow", shadow),
            note=note,
        ),
        Row(
            "6 serving",
            f"canary {share['asked_percent']:g} %: share of flights answered by {challenger}",
            round(100 * share["share"].get(challenger, 0.0), 2),
            "asked (sticky by flight)",
            share["asked_percent"],
            unit="%",
            spread=f"{share['flights']:.0f} flights; p99 {result['predict_canary']['p99_ms']} ms",
            note=note,
        ),
    ]


def _harness_sections() -> None:
    try:
        from benchmarks import harness
    except ImportError:  # run as a script
        return

    @harness.register(
        "serving",
        results=RESULTS / "serving.json",
        rows=rows,
        command=".venv/bin/python benchmarks/bench_serving.py",
    )
    def bench_serving(report: Any, **_: Any) -> None:
        m = measure()
        report.rows += rows(m)
        report.details["serving"] = m


_harness_sections()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="requests per second")
    p.add_argument("--seconds", type=float, default=60.0, help="duration of each fixed-rate run")
    p.add_argument("--home", type=Path, help="MLOPS_HOME to build or reuse (default: a temporary one)")
    p.add_argument(
        "--sdk-requests", type=int, default=200, help="Feast SDK reference requests (0: skip that part)"
    )
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds of the HTTP phases (each seconds/rounds long)"
    )
    p.add_argument("--out", type=Path, default=RESULTS / "serving.json", help="where to write the results")
    p.add_argument(
        "--path-cpu-only",
        action="store_true",
        help="only the response-path CPU per request, shadow off/on/canary (needs --home; prints, writes nothing)",
    )
    p.add_argument(
        "--background-cpu-only",
        action="store_true",
        help="only the server-process CPU per @alias lookup and per log flush, threads vs sidecar "
        "(needs --home; prints, writes nothing)",
    )
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("feast", "alembic", "mlflow", "urllib3", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if ns.home:
        ns.home.mkdir(parents=True, exist_ok=True)
    if ns.path_cpu_only:
        if not ns.home:
            p.error("--path-cpu-only needs --home (a home built by an earlier run)")
        prep = prepare_home(ns.home)
        print(json.dumps(response_path_cpu(prep["settings"], bodies(prep["flights"], 1000)), indent=2))
        return 0
    if ns.background_cpu_only:
        if not ns.home:
            p.error("--background-cpu-only needs --home (a home built by an earlier run)")
        prep = prepare_home(ns.home)
        print(json.dumps(background_cpu(prep["settings"]), indent=2))
        return 0
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # noted on the collected rows
    out = {"started": started, **measure(ns.home, ns.rate, ns.seconds, ns.sdk_requests, ns.rounds)}
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(out, indent=2, default=str))
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
