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

Alias moves and the audit trail
-------------------------------
:func:`move_alias` is the one function that moves an alias: under the (re-entrant) promotion lock
it checks the version exists, moves, reads back and records an event in the audit trail
(:mod:`mlops.models.audit`: actor, time, alias, from, to, reason, run id). ``register`` (actor
``register``), :func:`promote` (``gate``), :func:`apply` after an approval (``approver:<name>``)
and :func:`rollback` (``rollback-guard``, ``cli:<user>``) all call it.

The gate in two steps (human approval): :func:`decide` says whether the challenger would replace
the champion (``eligible``) without moving anything; :func:`resolve_approval` records the answer
and, if approved, :func:`apply` moves the aliases under the lock, only if the champion is still
the one the gate compared against. :func:`promote` is both steps in one hold of the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
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

    from mlops.spec.model import ModelSpec
    from mlops.training.run import TrainingRun

log = logging.getLogger(__name__)

LOCK_TIMEOUT_SECONDS = 900
#: The promotion locks this thread holds (model name -> lock facts): the lock is re-entrant.
_held = threading.local()
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
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
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "mae", "rmse", "r2"):
        if key in run.data.metrics:
            c.set_model_version_tag(name, version, f"holdout.{key}", f"{run.data.metrics[key]:.6f}")
    move_alias(
        name,
        CHALLENGER,
        version,
        actor="register",
        reason=f"registered from MLflow run {run_id}",
        settings=settings,
    )
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


def current_aliases(settings: Settings | None = None, name: str = MODEL_NAME) -> dict[str, str]:
    """alias -> version of the registered model ``name``, in one registry call (``{}`` when the
    model is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        model = _client(settings).get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return {}
        raise
    return {str(alias): str(version) for alias, version in (getattr(model, "aliases", None) or {}).items()}


def _champion_and_previous(settings: Settings | None, name: str) -> tuple[str | None, str | None]:
    """``@champion`` and ``@previous`` of ``name`` as one read (the gate and rollback, under the lock)."""
    aliases = current_aliases(settings, name)
    return aliases.get(CHAMPION), aliases.get(PREVIOUS)


def spec_of_version(mv: ModelVersion, settings: Settings | None = None) -> ModelSpec:
    """The model spec of a registered version: its run's ``mlops.spec`` tag (a SPECS name or an
    import path, so a team's spec passed by path works), else the SPECS spec registering its model."""
    from mlops.spec.model import model_spec, spec_for_model

    ref = _client(settings).get_run(mv.run_id).data.tags.get("mlops.spec") if mv.run_id else None
    return model_spec(ref) if ref else spec_for_model(mv.name)


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
    held: dict[str, dict[str, Any]] = _held.__dict__.setdefault("locks", {})
    key = f"{url}#{name}"
    if key in held:  # this thread already holds it (promote -> move_alias): re-enter
        yield held[key]
        return
    info: dict[str, Any] = {"pid": os.getpid()}
    held[key] = info
    try:
        with _acquire(url, name, timeout, info):
            yield info
    finally:
        held.pop(key, None)


@contextlib.contextmanager
def _acquire(url: str, name: str, timeout: float, info: dict[str, Any]) -> Iterator[None]:
    """Take the lock at ``url`` (PostgreSQL advisory lock or file lock); fills ``info``."""
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
                yield
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
            yield
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
    #: The gate's verdict: the challenger may replace the champion (``promoted``: the aliases moved).
    eligible: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    version: str,
    holdout: pd.DataFrame,
    *,
    margin: float,
    as_of: str | None = None,
    checks: list[dict[str, Any]] | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    metric: str | None = None,
) -> Decision:
    """The gate without moving any alias: would ``version`` replace the champion?

    Sets ``eligible`` and ``reason`` (the rules of :func:`promote`); :func:`apply` moves the aliases
    later (after a human approved, :func:`resolve_approval`). The version gets
    ``promotion.decision`` ``awaiting approval`` (eligible) or ``rejected``.
    """
    return _gate(version, holdout, margin, as_of, checks, settings, name, metric, apply_as=None)


def promote(
    version: str,
    holdout: pd.DataFrame,
    *,
    margin: float,
    as_of: str | None = None,
    checks: list[dict[str, Any]] | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    metric: str | None = None,
    actor: str = "gate",
) -> Decision:
    """Make ``version`` the champion if it beats the current champion on ``holdout`` by ``margin``.

    ``holdout`` is the challenger's holdout (features and ``is_delayed``); ``checks`` are its
    behavioural checks (:func:`mlops.training.behaviour.behavioural_checks`), all of which must pass.
    Atomic across processes (see the module docstring): :func:`decide` and :func:`apply` under one
    hold of the lock; the moves are recorded in the audit trail as ``actor``. Idempotent
    (re-promoting the champion is a no-op).
    """
    return _gate(version, holdout, margin, as_of, checks, settings, name, metric, apply_as=actor)


def _gate(
    version: str,
    holdout: pd.DataFrame,
    margin: float,
    as_of: str | None,
    checks: list[dict[str, Any]] | None,
    settings: Settings | None,
    name: str,
    metric: str | None,
    apply_as: str | None,
) -> Decision:
    """Score the challenger (outside the lock), then decide under the lock and, with ``apply_as``
    (an audit actor), move the aliases in the same hold of the lock."""
    version = str(version)
    client = _client(settings)
    mv = client.get_model_version(name, version)
    spec = spec_of_version(mv, settings)  # the label, the metrics and the gate's metric and direction
    metric = metric or spec.gate.metric
    checks = list(checks or [])
    labels = holdout[spec.label].astype("float64").to_numpy()
    challenger_metrics = spec.evaluate(labels, predictor(version, settings, name)(holdout))
    failed = [check["name"] for check in checks if not check["passed"]]
    as_of = as_of or mv.tags.get("mlops.as_of")

    with promotion_lock(settings, name) as lock:
        champion, previous = _champion_and_previous(settings, name)
        decision = Decision(
            promoted=False,
            reason="",
            model=name,
            challenger=version,
            champion_before=champion,
            champion_after=champion,
            previous=previous,
            margin=margin,
            challenger_metrics=challenger_metrics,
            checks=checks,
            lock=lock,
            as_of=as_of,
        )
        _decide(decision, failed, client, holdout, labels, settings, metric, spec)
        if apply_as is not None:
            _apply_locked(decision, apply_as, decision.reason, settings)
        _record(client, name, version, decision, pending=apply_as is None)
    log.info("promotion of %s v%s: %s", name, version, decision.reason)
    return decision


def apply(
    decision: Decision | Mapping[str, Any],
    *,
    actor: str,
    reason: str | None = None,
    settings: Settings | None = None,
) -> Decision:
    """Move the aliases of an eligible gate ``decision`` (from :func:`decide`), under the lock.

    The champion is re-read first: if it is no longer the one the gate compared against (another
    run promoted meanwhile), nothing moves and the decision says so (run the gate again). The
    moves are recorded in the audit trail as ``actor`` with ``reason`` (default: the gate's).
    """
    d = decision if isinstance(decision, Decision) else Decision(**dict(decision))
    with promotion_lock(settings, d.model) as lock:
        d.lock = lock
        _apply_locked(d, actor, reason or d.reason, settings)
        _record(_client(settings), d.model, d.challenger, d)
    log.info("apply %s v%s by %s: %s", d.model, d.challenger, actor, d.reason)
    return d


def resolve_approval(
    decision: Decision | Mapping[str, Any],
    *,
    approved: bool,
    actor: str,
    comment: str = "",
    context: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
) -> Decision:
    """A human's (or the timeout's) answer on an eligible ``decision``: recorded in the audit trail
    (an ``approval`` event by ``actor``), then :func:`apply` if ``approved``, else the champion is
    left as it is and the version is marked ``rejected``."""
    from mlops.models import audit

    d = decision if isinstance(decision, Decision) else Decision(**dict(decision))
    if not d.eligible:
        raise ValueError(
            f"{d.model} v{d.challenger}: the gate did not find it eligible ({d.reason}); "
            "there is nothing to approve"
        )
    answer = "promote" if approved else "reject"
    why = f"{answer} v{d.challenger} (gate: {d.reason})" + (f"; comment: {comment}" if comment else "")
    run_id = _client(settings).get_model_version(d.model, d.challenger).run_id
    context = {**audit.airflow_context(), **dict(context or {})}
    with promotion_lock(settings, d.model):
        if not _answer_recorded(d, answer, actor, context, settings):  # a task retry records it once
            audit.record(
                audit.APPROVAL,
                actor=actor,
                reason=why,
                model=d.model,
                version=d.challenger,
                decision=answer,
                run_id=run_id,
                context=context,
                settings=settings,
            )
        if approved:
            return apply(d, actor=actor, reason=f"approved by {actor}: {d.reason}", settings=settings)
        d.promoted, d.champion_after = False, alias_version(CHAMPION, settings, d.model)
        d.reason = f"rejected by {actor}" + (f": {comment}" if comment else "") + f" (gate: {d.reason})"
        _record(_client(settings), d.model, d.challenger, d)
    log.info("approval of %s v%s: %s", d.model, d.challenger, d.reason)
    return d


def _answer_recorded(
    d: Decision, answer: str, actor: str, context: Mapping[str, Any], settings: Settings | None
) -> bool:
    """An approval event with this answer, approver and Airflow run is already in the trail."""
    from mlops.models import audit

    if not context.get("dag_run_id"):
        return False
    return any(
        e.kind == audit.APPROVAL
        and (e.version, e.decision, e.actor) == (d.challenger, answer, actor)
        and e.context.get("dag_run_id") == context["dag_run_id"]
        for e in audit.read(d.model, settings, limit=200)
    )


def _apply_locked(d: Decision, actor: str, reason: str, settings: Settings | None) -> None:
    """Under the promotion lock: move the aliases if ``d`` is eligible and the champion is still
    the one it was compared with. Sets ``promoted``, ``champion_after``, ``previous``, ``reason``."""
    champion = alias_version(CHAMPION, settings, d.model)
    if not d.eligible:
        d.promoted, d.champion_after = False, champion
    elif champion == d.challenger:
        d.promoted, d.champion_after = True, champion
        if d.champion_before != d.challenger:
            d.reason = f"already champion: {d.reason}"
    elif champion != d.champion_before:
        d.promoted, d.champion_after = False, champion
        d.reason = (
            f"champion changed from {_v(d.champion_before)} to {_v(champion)} since the gate decided: "
            "nothing moved; train again (or trigger train_model) to gate against the new champion"
        )
    else:
        _move_aliases(d, actor, reason, settings)
        d.promoted = True


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def _decide(
    decision: Decision,
    failed: list[str],
    client: MlflowClient,
    holdout: pd.DataFrame,
    labels: np.ndarray,
    settings: Settings | None,
    metric: str,
    spec: ModelSpec,
) -> None:
    """Set ``eligible`` and ``reason`` (under the promotion lock): a retry of the champion is a
    no-op success, failed behavioural checks reject, no champion promotes, else compare."""
    champion, version = decision.champion_before, decision.challenger
    if champion == version:
        decision.eligible, decision.reason = True, "already champion (retry): nothing to do"
    elif failed:
        decision.reason = f"behavioural checks failed: {failed}"
    elif champion is None:
        decision.eligible, decision.reason = True, "no champion yet"
    else:
        _compare_with_champion(decision, client, holdout, labels, settings, metric, spec)


def _compare_with_champion(
    decision: Decision,
    client: MlflowClient,
    holdout: pd.DataFrame,
    labels: np.ndarray,
    settings: Settings | None,
    metric: str,
    spec: ModelSpec,
) -> None:
    """Score the champion on the challenger's holdout and decide (under the promotion lock): a
    champion trained as of a later date is never replaced; otherwise the challenger must win on
    ``metric`` by the margin (``spec``'s direction). Sets ``champion_metrics``, ``eligible`` and
    ``reason``."""
    name, champion, as_of = decision.model, decision.champion_before, decision.as_of
    champion_as_of = client.get_model_version(name, champion).tags.get("mlops.as_of")
    decision.champion_metrics = spec.evaluate(labels, predictor(champion, settings, name)(holdout))
    ours, theirs = decision.challenger_metrics[metric], decision.champion_metrics[metric]
    margin = decision.margin
    wins, loses, sign = (">=", "<", "+") if spec.gate.higher_is_better else ("<=", ">", "-")
    versus = f"champion v{champion} {theirs:.4f} {sign} margin {margin}"
    if champion_as_of and as_of and champion_as_of > as_of:
        decision.reason = (
            f"stale: champion v{champion} was trained as of {champion_as_of}, after this "
            f"challenger's {as_of}; a model never replaces a newer one"
        )
    elif spec.gate.better(ours, theirs, margin):
        decision.eligible = True
        decision.reason = f"{metric} {ours:.4f} {wins} {versus}"
    else:
        decision.reason = f"{metric} {ours:.4f} {loses} {versus}: champion kept"


def _move_aliases(d: Decision, actor: str, reason: str, settings: Settings | None) -> None:
    """Under the promotion lock: the champion becomes ``@previous``, the challenger ``@champion``
    (each move checked and recorded by :func:`move_alias`)."""
    name, version, champion = d.model, d.challenger, d.champion_before
    if champion is not None:
        move_alias(
            name,
            PREVIOUS,
            champion,
            actor=actor,
            reason=f"replaced by v{version}: {reason}",
            settings=settings,
        )
        d.previous = champion
    move_alias(name, CHAMPION, version, actor=actor, reason=reason, settings=settings)
    d.champion_after = version


def move_alias(
    name: str,
    alias: str,
    version: str,
    *,
    actor: str,
    reason: str,
    settings: Settings | None = None,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """Point ``name@alias`` at ``version`` and record the move in the audit trail.

    The ONLY function that moves an alias (a test holds this module to it). Takes the promotion
    lock (re-entrant: callers that hold it, like :func:`promote`, stay inside one hold). Refuses
    a version that does not exist; a move to the version the alias already has is a no-op (no
    event; returns None). ``@alias`` is read back after the move (a writer that bypassed the lock
    is an error). If the event cannot be written the alias is put back, so no move goes
    unrecorded. Returns the :class:`mlops.models.audit.Event`.
    """
    from mlflow.exceptions import MlflowException

    from mlops.models import audit

    audit.check_actor(actor)
    if not (reason or "").strip():
        raise ValueError(f"moving {name}@{alias} to v{version}: a reason is required (say why)")
    if not _ALIAS.match(alias or ""):
        raise ValueError(f"alias {alias!r}: lower-case letters, digits, '-' or '_' (e.g. champion)")
    version, c = str(version), _client(settings)
    with promotion_lock(settings, name):
        try:
            run_id = c.get_model_version(name, version).run_id
        except MlflowException as exc:
            raise ValueError(
                f"{name} has no version {version}: @{alias} not moved (list them: mlops audit, or the "
                "MLflow UI)"
            ) from exc
        before = alias_version(alias, settings, name)
        if before == version:
            return None
        c.set_registered_model_alias(name, alias, version)
        after = alias_version(alias, settings, name)
        if after != version:
            raise RuntimeError(
                f"{name}: @{alias} is v{after} right after moving it to v{version} under the "
                "promotion lock: another writer bypassed the lock; check MLOPS_LOCK_URL is the same "
                "for every worker"
            )
        try:
            return audit.record(
                audit.ALIAS_MOVED,
                actor=actor,
                reason=reason,
                model=name,
                alias=alias,
                from_version=before,
                to_version=version,
                run_id=run_id,
                context=dict(context or {}),
                settings=settings,
            )
        except BaseException:
            if before is None:
                c.delete_registered_model_alias(name, alias)
            else:
                c.set_registered_model_alias(name, alias, before)
            log.error("%s@%s put back to %s: its audit event could not be written", name, alias, before)
            raise


def _record(c: MlflowClient, name: str, version: str, d: Decision, *, pending: bool = False) -> None:
    """Write ``d`` on the version as ``promotion.*`` tags (``pending``: eligible, awaiting approval)."""
    decision = "promoted" if d.promoted else "awaiting approval" if pending and d.eligible else "rejected"
    tags = {
        "promotion.decision": decision,
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


def rollback(
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    *,
    actor: str,
    reason: str,
    expected_champion: str | None = None,
) -> Decision:
    """Point ``@champion`` back at ``@previous`` (under the lock); ``@previous`` takes the old champion.

    Both moves are recorded in the audit trail as ``actor`` (``rollback-guard``, ``cli:<user>``...)
    with ``reason``. With ``expected_champion``, nothing moves unless ``@champion`` is still that
    version (a second rollback for the same breach is a no-op: the returned decision has
    ``promoted`` false and says why). Raises if there is no ``@previous`` or its version is gone.
    """
    from mlops.models import audit

    audit.check_actor(actor)
    if not (reason or "").strip():
        raise ValueError(f"rollback of {name}: a reason is required (say why)")
    with promotion_lock(settings, name) as lock:
        champion, previous = _champion_and_previous(settings, name)
        decision = Decision(
            promoted=False,
            reason="",
            model=name,
            challenger=previous or "",
            champion_before=champion,
            champion_after=champion,
            previous=previous,
            margin=0.0,
            lock=lock,
        )
        if expected_champion is not None and champion != str(expected_champion):
            decision.reason = (
                f"rollback skipped: @champion is {_v(champion)}, not v{expected_champion} (already rolled "
                "back or promoted since)"
            )
            return decision
        if previous is None:
            raise RuntimeError(f"{name}: no @previous version to roll back to (@champion is {_v(champion)})")
        why = f"rollback from {_v(champion)} to v{previous}: {reason}"
        move_alias(name, CHAMPION, previous, actor=actor, reason=why, settings=settings)
        if champion is not None:
            move_alias(name, PREVIOUS, champion, actor=actor, reason=why, settings=settings)
        decision.promoted, decision.eligible, decision.reason = True, True, why
        decision.champion_after, decision.previous = previous, champion
    log.info("%s", decision.reason)
    return decision


def champion_history(settings: Settings | None = None, name: str = MODEL_NAME) -> list[dict[str, Any]]:
    """Every version with its as-of date, holdout metrics and promotion decision (oldest first)."""
    c = _client(settings)
    versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    aliases: dict[str, list[str]] = {}
    for alias, v in (current_aliases(settings, name) if versions else {}).items():
        aliases.setdefault(v, []).append(alias)
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
    return _run_gate(promote, version, run, checks, margin, settings, name)


def gate(
    version: str,
    run: TrainingRun,
    *,
    checks: list[dict[str, Any]],
    margin: float | None = None,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
) -> dict[str, Any]:
    """:func:`decide` (no alias moves) for the registered ``version`` of training ``run`` on the
    run's holdout; the arguments as for :func:`gate_and_promote`. ``train_model``'s ``gate`` task."""
    return _run_gate(decide, version, run, checks, margin, settings, name)


def _run_gate(
    step: Any,
    version: str,
    run: TrainingRun,
    checks: list[dict[str, Any]],
    margin: float | None,
    settings: Settings | None,
    name: str,
) -> dict[str, Any]:
    decision = step(
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
