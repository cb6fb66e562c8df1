"""``mlops serve``: run the prediction service under uvicorn (loopback by default).

    mlops serve --host 127.0.0.1 --port 8000 --threshold 0.5 --poll-seconds 10 [--canary-percent 10]
    mlops serve --spec air_time --port 8001

It serves one model spec (``--spec NAME|package.module:ATTR``, else ``$MLOPS_SERVE_SPEC``, else
``flight_delay``): ``<spec.model_name>@champion`` of the profile's MLflow registry
(``flight_delay_xgb``, ``flight_air_time_xgb``) with features of the spec's feature service from
the profile's Feast online store (``MLOPS_HOME`` / ``MLFLOW_TRACKING_URI`` / ``MLOPS_FEAST_*``),
and logs served predictions under the spec's ``{model root}/predictions_online/``
(:func:`mlops.layout.predictions_online_root`: ``{lake}/predictions_online/`` for flight delay,
``{lake}/models/air_time/predictions_online/`` for air time). ``--threshold`` is for specs with a
decision (the delay classifier); a regressor answers its prediction only. It starts even when no
champion or no feature store exists yet (``/health`` says what is missing and ``/predict`` answers
503) and picks them up when they appear. One process serves one spec: run one per model.

``@challenger`` (when set and not the champion) scores every request in shadow, off the response
path (``--no-shadow`` turns that off), and answers ``--canary-percent`` of items (or
``MLOPS_CANARY_PERCENT``; sticky by item id; default 0): see :mod:`mlops.serving.rollout`.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from mlops.cli import command

if TYPE_CHECKING:
    import argparse

log = logging.getLogger(__name__)

#: Environment variable read by ``mlops serve`` when ``--spec`` is not given.
SPEC_ENV = "MLOPS_SERVE_SPEC"

#: ``sys.setswitchinterval`` of the service, in ms. A thread that wants the GIL waits this long
#: before asking the holder to drop it: with Python's 5 ms, a request arriving while the log flush
#: or a shadow job runs waits up to 5 ms at each of its GIL hand-offs (socket, SQLite, XGBoost).
#: Measured (benchmarks/bench_serving.py, same run, load 8-16): 1 ms gave no better p99 than 5 ms
#: (37.6 vs 25.8 ms), so the default stays Python's; the flag is there to try it on your machine.
SWITCH_INTERVAL_MS = 5.0


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--spec",
        default=None,
        metavar="NAME|MODULE:ATTR",
        help=f"the model spec to serve: a name (flight_delay, air_time) or package.module:SPEC "
        f"(default: ${SPEC_ENV}, else flight_delay)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold on the prediction, for specs with a decision (flight_delay: the "
        "delay probability; default 0.5)",
    )
    p.add_argument(
        "--poll-seconds", type=float, default=10.0, help="how often to re-read @champion (hot swap)"
    )
    p.add_argument(
        "--max-batch", type=int, default=1000, help="most items (e.g. flights) per request (more: 413)"
    )
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
        "--no-sidecar",
        action="store_true",
        help="run the @alias poll and the prediction-log writes in this process's threads, not in "
        "the sidecar child process (which keeps their CPU off the GIL the requests need)",
    )
    p.add_argument(
        "--canary-percent",
        default=None,
        metavar="P",
        help="share of items (0-100, sticky by item id) answered by @challenger "
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
    from mlops.serving.scoring import DEFAULT_THRESHOLD

    try:
        spec, online = resolve_spec(ns.spec)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    if ns.threshold is not None and not online.decision:
        log.error(
            "--threshold: model spec %r answers %s with no decision (a regressor): drop --threshold",
            spec.name,
            spec.prediction_column,
        )
        return 2
    threshold = DEFAULT_THRESHOLD if ns.threshold is None else ns.threshold
    if not 0.0 <= threshold <= 1.0:
        log.error("--threshold %s: must be between 0 and 1", threshold)
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
        spec=spec,
        threshold=threshold,
        poll_seconds=ns.poll_seconds,
        max_batch=ns.max_batch,
        body_timeout_seconds=ns.body_timeout_seconds,
        log_predictions=not ns.no_log_predictions,
        log_flush_seconds=ns.log_flush_seconds,
        shadow=not ns.no_shadow,
        canary_percent=canary,
        sidecar=not ns.no_sidecar,
    )
    sys.setswitchinterval(ns.switch_interval_ms / 1000)
    try:
        app = create_app(config)
    except ValueError as exc:  # the spec cannot be served as configured (e.g. its prediction log)
        log.error("%s", exc)
        return 2
    log.info(
        "serving model spec %s (%s@champion, feature service %s)",
        spec.name,
        spec.model_name,
        spec.feature_service,
    )
    if ns.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding to %s: the service has no authentication; expose it behind a proxy", ns.host)
    uvicorn.run(app, host=ns.host, port=ns.port, log_level=ns.log_level, **uvicorn_options())
    return 0


def resolve_spec(ref: str | None, environ: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The served spec and its online spec: ``ref`` (``--spec``), else ``$MLOPS_SERVE_SPEC``, else
    ``flight_delay``; ``ValueError`` naming the source and what to give when it cannot be served."""
    import os

    from mlops.serving.online import online_spec
    from mlops.spec.model import model_spec

    env = os.environ if environ is None else environ
    source, value = ("--spec", ref) if ref else (SPEC_ENV, env.get(SPEC_ENV, "").strip() or None)
    try:
        spec = model_spec(value)
        return spec, online_spec(spec)
    except ValueError as exc:
        raise ValueError(f"{source}={value!r}: {exc}") from None
