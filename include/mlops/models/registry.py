"""The model registry: register challengers, gate them against the champion, promote atomically.

Aliases of ``flight_delay_xgb`` (never the deprecated stages):

* ``@challenger`` - the latest registered candidate;
* ``@champion``  - what scoring and serving load (``models:/flight_delay_xgb@champion``);
* ``@previous``  - the champion before the last promotion (rollback: :func:`rollback`).

Atomic promotion
----------------
MLflow has no compare-and-set on aliases, and backfills run several ``train_model`` runs at once,
so "read champion, compare, move aliases" must not interleave. :func:`promote` does all of it
inside :func:`promotion_lock`, a lock shared by every process that may promote:

* a PostgreSQL session advisory lock (``pg_advisory_lock``) when a lock URL is PostgreSQL: the
  ``MLOPS_LOCK_URL`` environment variable, or the tracking URI itself when MLflow's backend store
  is used directly. It works across hosts (Celery workers) and is released by the server if the
  holder dies;
* otherwise a ``filelock`` at ``$MLOPS_HOME/locks/promotion-flight_delay_xgb.lock`` (or the
  ``file://`` directory ``MLOPS_LOCK_URL`` names): the embedded profile, one host. The OS releases
  it if the holder dies. A file lock serializes one host only, so it is refused when the stores
  are shared by several hosts (an ``s3://`` lake, an MLflow that is not a local SQLite/file
  store): :func:`require_shared_lock`, the one rule the promotion lock and the retrain guard's
  lock (:func:`mlops.monitoring.guard.guard_lock`) both apply.

Inside the lock the champion is re-read (never trusted from before the lock), the champion is
scored on the challenger's holdout, and the aliases move only if the challenger wins by the
margin; after moving them the champion alias is read back and checked (an optimistic re-check
that catches a writer that bypassed the lock). A challenger trained as of an earlier date than the
champion is never promoted over it (a backfill of old weeks finishing late cannot roll the
champion back in time), which also keeps the comparison leak-free: the champion's training days
all precede the challenger's holdout.

Every decision is written on the challenger's version as ``promotion.*`` tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.config import CHALLENGER, CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from mlops.training.run import TrainingRun

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 900
#: The optional lock location (PostgreSQL URL or file:// directory) for multi-host promoters.
LOCK_URL_ENV = "MLOPS_LOCK_URL"


def _client(settings: Settings | None = None) -> MlflowClient:
    from mlops.models.tracking import client

    return client(settings)


# --------------------------------------------------------------------------------------------------
# Register and read aliases
# --------------------------------------------------------------------------------------------------


def register(
    run_id: str,
    model_uri: str,
    *,
    tags: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
) -> str:
    """Register the run's model as a new version (idempotent per run) and point ``@challenger`` at it."""
    import mlflow

    c = _client(settings)
    existing = c.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if existing:
        version = str(max(int(v.version) for v in existing))
        log.info("run %s is already registered as %s version %s", run_id, name, version)
    else:
        mv = mlflow.register_model(model_uri, name, tags=dict(tags or {}))
        version = str(mv.version)
        _wait_ready(c, name, version)
    run = c.get_run(run_id)
    for key in ("mlops.as_of", "mlops.data_hash", "mlops.partitions_digest", "mlops.feature_service"):
        if key in run.data.tags:
            c.set_model_version_tag(name, version, key, run.data.tags[key])
    for key in ("roc_auc", "pr_auc", "log_loss", "brier"):
        if key in run.data.metrics:
            c.set_model_version_tag(name, version, f"holdout.{key}", f"{run.data.metrics[key]:.6f}")
    c.set_registered_model_alias(name, CHALLENGER, version)
    return version


def _wait_ready(c: MlflowClient, name: str, version: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.get_model_version(name, version).status
        if status == "READY":
            return
        if status == "FAILED_REGISTRATION":
            raise RuntimeError(f"{name} version {version}: registration failed")
        time.sleep(0.5)
    raise TimeoutError(f"{name} version {version} not READY after {timeout}s")


def alias_version(alias: str, settings: Settings | None = None, name: str = MODEL_NAME) -> str | None:
    """The version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    c = _client(settings)
    try:
        return str(c.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def version_info(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> ModelVersion:
    return _client(settings).get_model_version(name, str(version))


def load_model(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> Any:
    """The pyfunc of ``name`` version ``version``."""
    import mlflow.pyfunc

    _client(settings)
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def predictor(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> Any:
    """A ``frame -> probabilities`` callable for a registered version (the raw booster wrapper).

    It takes training frames as they are (categoricals as ``category``), the same inputs the
    challenger was scored with, so the champion and the challenger are compared like for like.
    """
    import numpy as np

    pyfunc = load_model(version, settings, name)
    inner = pyfunc.unwrap_python_model()
    return lambda frame: np.asarray(inner.model.predict(frame), dtype="float64")


# --------------------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------------------


def lock_url(settings: Settings | None = None) -> str:
    """Where the promotion lock lives (see the module docstring)."""
    s = settings or get_settings()
    explicit = os.environ.get(LOCK_URL_ENV)
    if explicit:
        return explicit
    if s.mlflow_tracking_uri.startswith(("postgresql://", "postgresql+")):
        return s.mlflow_tracking_uri
    return (s.home / "locks").resolve().as_uri()


def shared_stores(settings: Settings) -> list[str]:
    """The stores of ``settings`` that several hosts share (a host-local lock cannot guard them)."""
    from urllib.parse import urlsplit

    from mlops import lake

    shared = []
    if lake.is_s3(settings.lake_uri):
        shared.append(f"the lake is {settings.lake_uri}")
    uri = settings.mlflow_tracking_uri
    if "://" in uri and not uri.startswith(("sqlite:", "file:")):
        parts = urlsplit(uri)
        if parts.password:  # never print a database password in an error
            uri = uri.replace(f":{parts.password}@", ":***@", 1)
        shared.append(f"MLflow is {uri}")
    return shared


def require_shared_lock(url: str, settings: Settings, purpose: str) -> None:
    """Refuse a host-local lock (``url`` not PostgreSQL) when the stores are shared across hosts.

    ``purpose`` names the lock in the error (the promotion lock, the retrain guard's lock).
    """
    if url.startswith("postgresql"):
        return
    shared = shared_stores(settings)
    if shared:
        raise RuntimeError(
            f"{' and '.join(shared)} (shared by every worker) but {purpose} would be a host-local "
            f"file lock ({url}); set {LOCK_URL_ENV}=postgresql://... (e.g. the Airflow or MLflow "
            "metadata database) for every worker, then clear this task"
        )


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"mlops-promotion:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def promotion_lock(
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    purpose: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Hold the promotion lock of model ``name``; yields facts about it (kind, wait, times).

    Refuses a host-local lock on shared stores (:func:`require_shared_lock`); ``purpose`` names the
    lock in that error (default: the promotion lock of ``name``).
    """
    s = settings or get_settings()
    url = lock_url(s)
    require_shared_lock(url, s, purpose or f"the promotion lock of {name}")
    info: dict[str, Any] = {"pid": os.getpid()}
    started = time.monotonic()
    if url.startswith("postgresql"):
        import psycopg

        scheme, rest = url.split("://", 1)
        conn_url = f"{scheme.split('+', 1)[0]}://{rest}"
        key = _lock_key(name)
        with psycopg.connect(conn_url, autocommit=True) as conn:
            # SET cannot take a bound parameter (psycopg 3 binds server-side): use set_config.
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(timeout * 1000)}ms",))
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            info.update(kind="pg_advisory_lock", key=key, waited_s=round(time.monotonic() - started, 3))
            info["acquired_at"] = time.time()
            try:
                yield info
            finally:
                info["released_at"] = time.time()
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return
    from filelock import FileLock

    from mlops import lake

    directory = lake.local_path(url) if url.startswith("file://") else None
    if directory is None:
        raise ValueError(f"{LOCK_URL_ENV}={url!r}: use postgresql://... or file:///absolute/dir")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"promotion-{name}.lock"
    with FileLock(str(path), timeout=timeout):
        info.update(kind="filelock", path=str(path), waited_s=round(time.monotonic() - started, 3))
        info["acquired_at"] = time.time()
        try:
            yield info
        finally:
            info["released_at"] = time.time()


# --------------------------------------------------------------------------------------------------
# Gate and promote
# --------------------------------------------------------------------------------------------------


@dataclass
class Decision:
    """The outcome of a promotion attempt (also written on the version as ``promotion.*`` tags)."""

    promoted: bool
    reason: str
    model: str
    challenger: str
    champion_before: str | None
    champion_after: str | None
    previous: str | None
    margin: float
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    lock: dict[str, Any] = field(default_factory=dict)
    as_of: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(
    version: str,
    holdout: pd.DataFrame,
    *,
    margin: float,
    as_of: str | None = None,
    checks: list[dict[str, Any]] | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    metric: str = "roc_auc",
) -> Decision:
    """Make ``version`` the champion if it beats the current champion on ``holdout`` by ``margin``.

    ``holdout`` is the challenger's holdout (features and ``is_delayed``); ``checks`` are its
    behavioural checks (:func:`mlops.training.behaviour.behavioural_checks`), all of which must pass.
    Atomic across processes (see the module docstring); idempotent (re-promoting the champion
    is a no-op).
    """
    from mlops.schema import LABEL
    from mlops.training.metrics import evaluate

    version = str(version)
    checks = list(checks or [])
    labels = holdout[LABEL].astype("float64").to_numpy()
    challenger_metrics = evaluate(labels, predictor(version, settings, name)(holdout))
    failed = [check["name"] for check in checks if not check["passed"]]
    client = _client(settings)
    as_of = as_of or client.get_model_version(name, version).tags.get("mlops.as_of")

    with promotion_lock(settings, name) as lock:
        champion = alias_version(CHAMPION, settings, name)
        decision = Decision(
            promoted=False,
            reason="",
            model=name,
            challenger=version,
            champion_before=champion,
            champion_after=champion,
            previous=alias_version(PREVIOUS, settings, name),
            margin=margin,
            challenger_metrics=challenger_metrics,
            checks=checks,
            lock=lock,
            as_of=as_of,
        )
        _decide(decision, failed, client, holdout, labels, settings, metric)
        if decision.promoted and champion != version:
            _move_aliases(decision, client, settings)
        _record(client, name, version, decision)
    log.info("promotion of %s v%s: %s", name, version, decision.reason)
    return decision


def _decide(
    decision: Decision,
    failed: list[str],
    client: MlflowClient,
    holdout: pd.DataFrame,
    labels: np.ndarray,
    settings: Settings | None,
    metric: str,
) -> None:
    """Set ``promoted`` and ``reason`` (under the promotion lock): a retry of the champion is a
    no-op success, failed behavioural checks reject, no champion promotes, else compare."""
    champion, version = decision.champion_before, decision.challenger
    if champion == version:
        decision.promoted, decision.reason = True, "already champion (retry): nothing to do"
    elif failed:
        decision.reason = f"behavioural checks failed: {failed}"
    elif champion is None:
        decision.promoted, decision.reason = True, "no champion yet"
    else:
        _compare_with_champion(decision, client, holdout, labels, settings, metric)


def _compare_with_champion(
    decision: Decision,
    client: MlflowClient,
    holdout: pd.DataFrame,
    labels: np.ndarray,
    settings: Settings | None,
    metric: str,
) -> None:
    """Score the champion on the challenger's holdout and decide (under the promotion lock): a
    champion trained as of a later date is never replaced; otherwise the challenger must win on
    ``metric`` by the margin. Sets ``champion_metrics``, ``promoted`` and ``reason``."""
    from mlops.training.metrics import evaluate

    name, champion, as_of = decision.model, decision.champion_before, decision.as_of
    champion_as_of = client.get_model_version(name, champion).tags.get("mlops.as_of")
    decision.champion_metrics = evaluate(labels, predictor(champion, settings, name)(holdout))
    ours, theirs = decision.challenger_metrics[metric], decision.champion_metrics[metric]
    margin = decision.margin
    if champion_as_of and as_of and champion_as_of > as_of:
        decision.reason = (
            f"stale: champion v{champion} was trained as of {champion_as_of}, after this "
            f"challenger's {as_of}; a model never replaces a newer one"
        )
    elif ours >= theirs + margin:
        decision.promoted = True
        decision.reason = f"{metric} {ours:.4f} >= champion v{champion} {theirs:.4f} + margin {margin}"
    else:
        decision.reason = (
            f"{metric} {ours:.4f} < champion v{champion} {theirs:.4f} + margin {margin}: champion kept"
        )


def _move_aliases(decision: Decision, client: MlflowClient, settings: Settings | None) -> None:
    """Under the promotion lock: the champion becomes ``@previous``, the challenger ``@champion``;
    then ``@champion`` is read back (a writer that bypassed the lock is an error)."""
    name, version, champion = decision.model, decision.challenger, decision.champion_before
    if champion is not None:
        client.set_registered_model_alias(name, PREVIOUS, champion)
        decision.previous = champion
    client.set_registered_model_alias(name, CHAMPION, version)
    after = alias_version(CHAMPION, settings, name)
    if after != version:
        raise RuntimeError(
            f"{name}: @champion is v{after} right after moving it to v{version} under the "
            "promotion lock: another writer bypassed the lock; check MLOPS_LOCK_URL is the same "
            "for every worker"
        )
    decision.champion_after = version


def _record(c: MlflowClient, name: str, version: str, d: Decision) -> None:
    tags = {
        "promotion.decision": "promoted" if d.promoted else "rejected",
        "promotion.reason": d.reason[:4000],
        "promotion.champion_before": d.champion_before or "",
        "promotion.at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "promotion.challenger_metrics": json.dumps({k: round(v, 6) for k, v in d.challenger_metrics.items()}),
        "promotion.champion_metrics": json.dumps({k: round(v, 6) for k, v in d.champion_metrics.items()}),
        "promotion.checks": json.dumps({ch["name"]: bool(ch["passed"]) for ch in d.checks}, sort_keys=True)[
            :4000
        ],
    }
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)


def rollback(settings: Settings | None = None, name: str = MODEL_NAME) -> Decision:
    """Point ``@champion`` back at ``@previous`` (under the lock); ``@previous`` takes the old champion."""
    c = _client(settings)
    with promotion_lock(settings, name) as lock:
        champion, previous = alias_version(CHAMPION, settings, name), alias_version(PREVIOUS, settings, name)
        if previous is None:
            raise RuntimeError(f"{name}: no @previous version to roll back to")
        c.set_registered_model_alias(name, CHAMPION, previous)
        if champion is not None:
            c.set_registered_model_alias(name, PREVIOUS, champion)
    return Decision(
        promoted=True,
        reason=f"rollback from v{champion} to v{previous}",
        model=name,
        challenger=previous,
        champion_before=champion,
        champion_after=previous,
        previous=champion,
        margin=0.0,
        lock=lock,
    )


def champion_history(settings: Settings | None = None, name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every version with its as-of date, holdout metrics and promotion decision (oldest first)."""
    c = _client(settings)
    versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, v in (c.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(v), []).append(alias)
    out = []
    for v in versions:
        tags = v.tags or {}
        out.append(
            {
                "version": str(v.version),
                "as_of": tags.get("mlops.as_of"),
                "roc_auc": tags.get("holdout.roc_auc"),
                "decision": tags.get("promotion.decision", "pending"),
                "champion_before": tags.get("promotion.champion_before"),
                "reason": tags.get("promotion.reason", ""),
                "at": tags.get("promotion.at"),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "run_id": v.run_id,
            }
        )
    return out


def gate_and_promote(
    version: str,
    run: TrainingRun,
    *,
    checks: list[dict[str, Any]],
    margin: float | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
) -> dict[str, Any]:
    """:func:`promote` the registered ``version`` of training ``run`` on the run's holdout.

    ``checks`` are the behavioural checks the run already ran on this model (``log_to_mlflow``,
    :mod:`mlops.training.behaviour`): the gate reads their outcome, it does not run them again.
    ``margin`` defaults to the run's ``promotion_margin``.
    """
    decision = promote(
        version,
        run.holdout(),
        margin=run.params.promotion_margin if margin is None else margin,
        as_of=run.as_of,
        checks=checks,
        settings=settings,
        name=name,
    )
    return decision.as_dict()


def champion_event(decision: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The metadata of a ``champion_model`` event for a promotion ``decision`` (:meth:`Decision.as_dict`)."""
    return {
        "version": decision["challenger"],
        "run_id": run_id,
        "metrics": {k: round(v, 6) for k, v in decision["challenger_metrics"].items()},
        "previous_version": decision["previous"],
        "as_of": decision["as_of"],
    }
