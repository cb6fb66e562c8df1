"""One builder for every model's drift DAG: ``monitor_drift`` (flight delay), ``monitor_drift_air_time``
(air time), and a team's own model (``docs/specs.md``, "Add your own model").

:func:`build_drift_dag` wires two tasks for one model spec:

1. **check_drift** - :class:`~mlops.airflow.operators.drift.DriftCheckOperator` given the spec (its
   name or import path, so the DAG file stays parse-safe): data drift, prediction drift and the
   spec's performance metric against ``@champion``; reports, history and MLflow run are the
   spec's own (:mod:`mlops.monitoring.history`).
2. **request_retrain** - the spec's storm guard (:func:`mlops.monitoring.guard.guarded_request`:
   its own lock, ledger and cooldowns; it counts the queued or running runs of ``train_dag_id``)
   emits ``retrain_asset`` or skips, saying why. A skipped task emits no asset event.

Cheap at import (stdlib, ``airflow.sdk`` and mlops.airflow constants): DAG files call it at top level.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, task

from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.drift import DriftCheckOperator
from mlops.airflow.params import DRIFT_PARAMS, PARTITION, PARTITION_MACROS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Asset, Param


def build_drift_dag(
    spec: str,
    *,
    dag_id: str,
    retrain_asset: Asset,
    train_dag_id: str,
    schedule: Any = "@daily",
    params: Mapping[str, Param] | None = None,
    doc_md: str | None = None,
    tags: Sequence[str] = (),
    timeout_minutes: int = 45,
    max_active_runs: int = 4,
    **dag_kwargs: Any,
) -> DAG:
    """The daily drift DAG of the model spec ``spec`` (a name of ``mlops.spec.model.SPECS`` or
    ``package.module:SPEC``): ``check_drift`` >> ``request_retrain`` (outlet ``retrain_asset``).

    ``train_dag_id``: the spec's training DAG, whose queued or running runs suppress a request.
    ``params`` default to :data:`mlops.airflow.params.DRIFT_PARAMS` (keys = ``DriftParams``
    fields, plus ``ds``). Other keyword arguments go to :class:`airflow.sdk.DAG`.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(
            f"spec={spec!r}: pass the model spec's name or import path (a string), so the DAG file "
            "stays parse-safe and the task loads the spec when it runs"
        )
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=dag_kwargs.pop("start_date", START_DATE),
        end_date=dag_kwargs.pop("end_date", END_DATE),
        catchup=dag_kwargs.pop("catchup", False),
        max_active_runs=max_active_runs,
        params=dict(params if params is not None else DRIFT_PARAMS),
        user_defined_macros=PARTITION_MACROS,
        default_args=default_args(timeout_minutes=timeout_minutes),
        doc_md=doc_md,
        tags=list(tags) or ["mlops", "monitoring", "drift"],
        **dag_kwargs,
    ) as dag:
        check = DriftCheckOperator(
            task_id="check_drift", ds=PARTITION, spec=spec
        )  # refuses unknown conf keys
        _request_retrain(spec, retrain_asset, train_dag_id)(check.output)
    return dag


def _request_retrain(spec: str, retrain_asset: Asset, train_dag_id: str) -> Any:
    """The ``request_retrain`` task: the spec's storm guard emits ``retrain_asset`` or skips."""

    @task(task_id="request_retrain", outlets=[retrain_asset], execution_timeout=timedelta(minutes=15))
    def request_retrain(summary: dict, params=None, ti=None, outlet_events=None) -> dict:
        """Emit the retrain request through the model's storm guard, or skip (no event) and say why."""
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.airflow import alerts
        from mlops.airflow.runtime import lake_task
        from mlops.monitoring import guard, history
        from mlops.monitoring.params import DriftParams

        with lake_task():
            decision = guard.guarded_request(
                summary["request"],
                DriftParams.from_mapping(params),
                run_id=ti.run_id,
                active_training_runs=lambda: ti.get_dr_count(
                    dag_id=train_dag_id, states=["queued", "running"]
                ),
                spec=spec,
                train_dag_id=train_dag_id,
            )
        alerts.announce_retrain(  # breached: requested or suppressed
            summary["request"],
            decision,
            {"ti": ti},
            asset=retrain_asset.name,
            train_dag_id=train_dag_id,
            ledger=history.ledger_uri(spec=spec),
        )
        if not decision.requested:
            raise AirflowSkipException(f"no {retrain_asset.name}: {decision.reason}")
        outlet_events[retrain_asset].extra = decision.extra
        return decision.extra

    return request_retrain
