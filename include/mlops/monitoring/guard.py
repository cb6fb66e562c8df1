"""The storm guard: a breach becomes a retrain request only through :func:`guarded_request`.

One guard per model spec: its own lock (``filelock`` for ``file://`` lakes; a PostgreSQL advisory
lock when ``MLOPS_LOCK_URL`` or the tracking URI is PostgreSQL:
:func:`mlops.models.registry.promotion_lock`, reused under the name ``<model>.retrain-guard``), its
own ledger ``{root}/reports/drift/requests/ledger.json`` (:mod:`mlops.monitoring.history`: the
flight-delay spec's root is the lake, ``{lake}/models/<name>`` for the others) and its own
cooldowns, so two models never block or suppress each other. It suppresses the request when
(:func:`decide`):

1. the same day and data version was already decided by another run (a rerun: no duplicates);
2. the champion was trained as of a date after the window (a backfill of old days);
3. the champion was trained (promoted) less than ``cooldown_days`` before ``ds``;
4. a request was made for a day less than ``cooldown_days`` away from ``ds``;
5. the same drift signature (champion version + drifted features + breach kinds) was already
   requested: retraining on it again would not change the outcome until the champion changes;
6. a run of the spec's training DAG (``train_dag_id``: ``train_model`` for the flight-delay spec)
   is queued or running (counted by the caller through the Task SDK).

Cooldowns count days of *data time* (``ds``), so backfills replay them faithfully. Every
decision, requested or suppressed with its reasons, is written to the ledger atomically before
the lock is released; a retry of the same Airflow run re-emits its own request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops.config import Settings, get_settings
from mlops.monitoring import history
from mlops.params import parse_ds
from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mlops.monitoring.params import DriftParams
    from mlops.spec.model import ModelSpec

log = logging.getLogger(__name__)

#: Suffix of the name under which :func:`mlops.models.registry.promotion_lock` keys a model's guard lock.
GUARD_LOCK_SUFFIX = ".retrain-guard"
LOCK_TIMEOUT_SECONDS = 600
#: The flight-delay spec's training DAG (the default of ``train_dag_id``).
TRAIN_DAG_ID = "train_model"


def guard_lock_name(spec: ModelSpec | str | None = None) -> str:
    """``<registered model>.retrain-guard``: one lock per model (``flight_delay_xgb.retrain-guard``)."""
    return f"{model_spec(spec).model_name}{GUARD_LOCK_SUFFIX}"


@dataclass
class Decision:
    """A retraining decision; ``extra`` is the ``retrain_request`` event metadata when requested."""

    requested: bool
    reason: str
    reasons: list[str]
    entry: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def guard_lock(
    settings: Settings | None = None,
    timeout: float = LOCK_TIMEOUT_SECONDS,
    spec: ModelSpec | str | None = None,
) -> Iterator[dict[str, Any]]:
    """The lock around the spec's ledger and history table (:func:`guard_lock_name`).

    Reuses :func:`mlops.models.registry.promotion_lock` under its own name, so the same ``MLOPS_LOCK_URL``
    rules apply and drift checks never wait for a promotion. Shared stores (an ``s3://`` lake)
    require a PostgreSQL lock (a file lock only serializes one host):
    :func:`mlops.models.registry.require_shared_lock` refuses the file lock.
    """
    from mlops.models import registry

    s = settings or get_settings()
    with registry.promotion_lock(
        s, name=guard_lock_name(spec), timeout=timeout, purpose="the retrain guard's lock"
    ) as info:
        yield info


def drift_signature(champion_version: str, summary: Mapping[str, Any]) -> str:
    """What a repeat looks like: the champion, the drifted features and the kinds of breach."""
    payload = json.dumps(
        {
            "champion": str(champion_version),
            "features": sorted(summary.get("drifted_features", {})),
            "breaches": sorted(b["kind"] for b in summary.get("breaches", [])),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# The rules (pure)
# --------------------------------------------------------------------------------------------------


def _days_between(a: str, b: str) -> int:
    return abs((parse_ds(a) - parse_ds(b)).days)


def decide(
    check: Mapping[str, Any],
    ledger: Sequence[Mapping[str, Any]],
    params: DriftParams,
    *,
    run_id: str,
    active_training_runs: int,
    train_dag_id: str = TRAIN_DAG_ID,
) -> tuple[bool, list[str], Mapping[str, Any] | None]:
    """The guard's rules (pure). ``check`` holds ``ds``, ``data_version``, ``signature``,
    ``champion_version``, ``champion_as_of``, ``window_end`` and ``breached``; ``ledger`` is the
    spec's own (another model's requests never count).

    Returns (request?, reasons it was suppressed, the ledger entry of this same run to re-emit).
    """
    ds = str(check["ds"])
    if not check.get("breached"):
        return False, ["no threshold breached"], None
    reasons = [] if params.allow_retrain else ["allow_retrain is off: check and report only"]
    own = [e for e in ledger if e["ds"] == ds and e.get("run_id") == run_id and e["decision"] == "requested"]
    if own:  # a retry of the run that made the request: emit it again (the event may be lost)
        return True, [], own[-1]
    reasons += _same_data(check, ledger)
    reasons += _champion_too_recent(check, params)
    reasons += _request_too_recent(check, ledger, params)
    reasons += _same_signature(check, ledger)
    if active_training_runs > 0:
        reasons.append(f"{active_training_runs} {train_dag_id} run(s) already queued or running")
    return not reasons, reasons, None


def _same_data(check: Mapping[str, Any], ledger: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rule 1: this day with this data was already decided (by another run)."""
    ds, version = str(check["ds"]), check.get("data_version")
    same = [e for e in ledger if e["ds"] == ds and e.get("data_version") == version]
    if not same:
        return []
    entry = same[-1]
    return [
        f"already decided for ds={ds} with the same data (version {version}) by run "
        f"{entry.get('run_id')}: {entry['decision']}"
    ]


def _champion_too_recent(check: Mapping[str, Any], params: DriftParams) -> list[str]:
    """Rules 2 and 3: the champion is newer than the window, or was trained within the cooldown."""
    ds, as_of, version = str(check["ds"]), check.get("champion_as_of"), check.get("champion_version")
    if not as_of:
        return []
    if as_of > str(check.get("window_end", ds)):
        return [
            f"stale check: champion v{version} was trained as of {as_of}, after this window "
            f"(ends {check.get('window_end')}); retraining cannot help an older window"
        ]
    days = _days_between(ds, as_of)
    if days < params.cooldown_days:
        return [
            f"cooldown after promotion: champion v{version} was trained as of {as_of}, "
            f"{days} day(s) before ds={ds} (< cooldown_days={params.cooldown_days})"
        ]
    return []


def _request_too_recent(
    check: Mapping[str, Any], ledger: Sequence[Mapping[str, Any]], params: DriftParams
) -> list[str]:
    """Rule 4: another day within the cooldown already requested retraining."""
    ds = str(check["ds"])
    recent = [
        e
        for e in ledger
        if e["decision"] == "requested"
        and e["ds"] != ds
        and _days_between(e["ds"], ds) < params.cooldown_days
    ]
    if not recent:
        return []
    entry = max(recent, key=lambda e: e["ds"])
    return [
        f"cooldown after request: retraining was requested for ds={entry['ds']} "
        f"({_days_between(entry['ds'], ds)} day(s) from ds={ds}, < cooldown_days={params.cooldown_days}) "
        f"by run {entry.get('run_id')}"
    ]


def _same_signature(check: Mapping[str, Any], ledger: Sequence[Mapping[str, Any]]) -> list[str]:
    """Rule 5: the same drift (champion, drifted features, breach kinds) was already requested."""
    signature = check.get("signature")
    repeat = [e for e in ledger if e["decision"] == "requested" and e.get("signature") == signature]
    if not repeat:
        return []
    return [
        f"same drift signature {signature} (champion v{check.get('champion_version')}, same "
        f"drifted features and breaches) was already requested for ds={repeat[-1]['ds']}"
    ]


# --------------------------------------------------------------------------------------------------
# The decision, recorded
# --------------------------------------------------------------------------------------------------


def guarded_request(
    check: Mapping[str, Any],
    params: DriftParams,
    *,
    run_id: str,
    active_training_runs: Callable[[], int],
    settings: Settings | None = None,
    now: Callable[[], str] | None = None,
    spec: ModelSpec | str | None = None,
    train_dag_id: str = TRAIN_DAG_ID,
) -> Decision:
    """Decide under the spec's guard lock, record the decision in its ledger and history row.

    ``check`` is what :func:`mlops.monitoring.check.check` returned (its ``request`` block).
    ``active_training_runs`` is called inside the lock (it asks Airflow how many runs of
    ``train_dag_id``, the spec's training DAG, are queued or running). ``spec`` defaults to the
    one the check names (``check["spec"]``), else the flight-delay spec.
    """
    spec = model_spec(spec or check.get("spec"))
    s = settings or get_settings()
    ds = str(check["ds"])
    if not check.get("breached"):
        return Decision(False, "no threshold breached", ["no threshold breached"], {})
    # decided_at is informational (wall clock); every rule works on data time.
    stamp = (now or (lambda: datetime.now().astimezone().isoformat(timespec="seconds")))()
    with guard_lock(s, spec=spec) as lock:
        ledger = history.read_ledger(s, spec)
        requested, reasons, own = decide(
            check,
            ledger,
            params,
            run_id=run_id,
            active_training_runs=active_training_runs(),
            train_dag_id=train_dag_id,
        )
        if own is not None:
            entry = dict(own)
            reason = f"retry of run {run_id}: re-emitting its request"
        else:
            reason = check.get("reason", "") if requested else "; ".join(reasons)
            entry = _ledger_entry(check, requested, reason, reasons, run_id, stamp, lock)
            ledger.append(entry)
            history.write_ledger(ledger, s, spec)
            history.mark_day(ds, ledger, s, spec)
    extra = request_extra(check, entry) if requested else {}
    log.info(
        "%s ds=%s: retraining %s: %s", spec.model_name, ds, "requested" if requested else "suppressed", reason
    )
    return Decision(requested, reason, reasons, entry, extra)


def _ledger_entry(
    check: Mapping[str, Any],
    requested: bool,
    reason: str,
    reasons: list[str],
    run_id: str,
    stamp: str,
    lock: Mapping[str, Any],
) -> dict[str, Any]:
    ds = str(check["ds"])
    return {
        "ds": ds,
        "model_name": check.get("model_name"),
        "decision": "requested" if requested else "suppressed",
        "reason": reason,
        "reasons": reasons,
        "signature": check.get("signature"),
        "data_version": check.get("data_version"),
        "champion_version": check.get("champion_version"),
        "drifted_features": check.get("drifted_features", {}),
        "report_uri": check.get("report_uri"),
        "window_start": check.get("window_start"),
        "window_end": check.get("window_end"),
        "run_id": run_id,
        "request_id": f"{ds}:{check.get('data_version')}:{check.get('signature')}",
        "decided_at": stamp,
        "lock": {k: lock.get(k) for k in ("kind", "waited_s")},
    }


def request_extra(check: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The retrain request's event metadata (see :mod:`mlops.airflow.assets`)."""
    end = str(check["window_end"])
    return {
        "spec": check.get("spec"),
        "model_name": check.get("model_name"),
        "reason": check.get("reason"),
        "drifted_features": dict(check.get("drifted_features", {})),
        "breaches": [{k: b[k] for k in ("kind", "value", "threshold")} for b in check.get("breaches", [])],
        "report_uri": check.get("report_uri"),
        "window_start": check.get("window_start"),
        "window_end": end,
        #: Train as of the day after the window: the data the request is about, not the wall clock.
        "as_of": (parse_ds(end) + timedelta(days=1)).isoformat(),
        "ds": check.get("ds"),
        "signature": check.get("signature"),
        "data_version": check.get("data_version"),
        "champion_version": check.get("champion_version"),
        "request_id": entry.get("request_id"),
        "mlflow_run_id": check.get("mlflow_run_id"),
    }
