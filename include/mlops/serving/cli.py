"""``mlops serve``: run the prediction service under uvicorn (loopback by default).

    mlops serve --host 127.0.0.1 --port 8000 --threshold 0.5 --poll-seconds 10 [--canary-percent 10]

It serves ``flight_delay_xgb@champion`` of the profile's MLflow registry with features from the
profile's Feast online store (``MLOPS_HOME`` / ``MLFLOW_TRACKING_URI`` / ``MLOPS_FEAST_*``), and
logs served predictions under ``{lake}/predictions_online/``. It starts even when no champion or
no feature store exists yet (``/health`` says what is missing and ``/predict`` answers 503) and
picks them up when they appear.

``@challenger`` (when set and not the champion) scores every request in shadow, off the response
path (``--no-shadow`` turns that off), and answers ``--canary-percent`` of flights (or
``MLOPS_CANARY_PERCENT``; sticky by flight; default 0): see :mod:`mlops.serving.rollout`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from mlops.cli import command

if TYPE_CHECKING:
    import argparse

log = logging.getLogger(__name__)

#: ``sys.setswitchinterval`` of the service, in ms. A thread that wants the GIL waits this long
#: before asking the holder to drop it: with Python's 5 ms, a request arriving while the log flush
#: or a shadow job runs waits up to 5 ms at each of its GIL hand-offs (socket, SQLite, XGBoost).
#: Measured (benchmarks/bench_serving.py, same run, load 8-16): 1 ms gave no better p99 than 5 ms
#: (37.6 vs 25.8 ms), so the default stays Python's; the flag is there to try it on your machine.
SWITCH_INTERVAL_MS = 5.0


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold on the delay probability")
    p.add_argument(
        "--poll-seconds", type=float, default=10.0, help="how often to re-read @champion (hot swap)"
    )
    p.add_argument("--max-batch", type=int, default=1000, help="most flights per request (more: 413)")
    p.add_argument(
        "--body-timeout-seconds",
        type=float,
        default=30.0,
        help="longest wait for a whole request body (slower: 408, connection closed)",
    )
    p.add_argument(
        "--no-log-predictions", action="store_true", help="do not log served predictions to the lake"
    )
    p.add_argument(
        "--log-flush-seconds", type=float, default=5.0, help="how often served predictions are written"
    )
    p.add_argument(
        "--no-shadow", action="store_true", help="do not score @challenger in shadow (off the response path)"
    )
    p.add_argument(
        "--canary-percent",
        default=None,
        metavar="P",
        help="share of flights (0-100, sticky by flight) answered by @challenger "
        "(default: $MLOPS_CANARY_PERCENT, else 0)",
    )
    p.add_argument(
        "--switch-interval-ms",
        type=float,
        default=SWITCH_INTERVAL_MS,
        help="longest a background thread (prediction-log flush, shadow scoring, @alias poll) holds "
        f"the GIL while a request waits (default {SWITCH_INTERVAL_MS:g}; Python's own is 5)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


@command("serve", "run the online prediction service (POST /predict, /health, /metrics, /docs)", _args)
def _serve(ns: argparse.Namespace) -> int:
    import uvicorn

    from mlops.serving.app import ServeConfig, create_app
    from mlops.serving.http import uvicorn_options
    from mlops.serving.rollout import canary_percent_from_env, parse_canary_percent

    if not 0.0 <= ns.threshold <= 1.0:
        log.error("--threshold %s: must be between 0 and 1", ns.threshold)
        return 2
    if ns.poll_seconds <= 0 or ns.max_batch < 1 or ns.body_timeout_seconds <= 0:
        log.error("--poll-seconds and --body-timeout-seconds must be > 0, --max-batch >= 1")
        return 2
    if not 0.05 <= ns.switch_interval_ms <= 100:
        log.error(
            "--switch-interval-ms %s: must be between 0.05 and 100 (default %g)",
            ns.switch_interval_ms,
            SWITCH_INTERVAL_MS,
        )
        return 2
    try:
        canary = (
            canary_percent_from_env()
            if ns.canary_percent is None
            else parse_canary_percent(ns.canary_percent)
        )
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    config = ServeConfig(
        threshold=ns.threshold,
        poll_seconds=ns.poll_seconds,
        max_batch=ns.max_batch,
        body_timeout_seconds=ns.body_timeout_seconds,
        log_predictions=not ns.no_log_predictions,
        log_flush_seconds=ns.log_flush_seconds,
        shadow=not ns.no_shadow,
        canary_percent=canary,
    )
    sys.setswitchinterval(ns.switch_interval_ms / 1000)
    app = create_app(config)
    if ns.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding to %s: the service has no authentication; expose it behind a proxy", ns.host)
    uvicorn.run(app, host=ns.host, port=ns.port, log_level=ns.log_level, **uvicorn_options())
    return 0
