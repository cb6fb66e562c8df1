"""The training DAG of any model spec: plan, build and validate the training set, search, refit,
log, register, gate, approve, promote (and publish the new champion).

``train_model`` and ``train_air_time`` are this one DAG given another model spec
(:class:`mlops.spec.model.ModelSpec`, by registered name or import path), schedule and params form:
each DAG file stays a config file. :func:`training_dag` builds the whole DAG;
:func:`training_tasks` adds the tasks to a DAG being defined (an ``@dag`` body with its own
arguments).

Parse-safe: the spec module is cheap to import (its model name is all the operators need here); the
training run, MLflow, Feast and XGBoost load in the tasks.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Metadata, task
from airflow.sdk.exceptions import AirflowSkipException

from mlops.airflow.assets import retrain_request_asset
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.registry import (
    ApproveModelOperator,
    GateModelOperator,
    PromoteModelOperator,
    RegisterModelOperator,
)
from mlops.airflow.params import TRAIN_PARAMS, check_params
from mlops.airflow.runtime import lake_task

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Asset, Param

    from mlops.spec.model import ModelSpec


def training_dag(
    spec: ModelSpec | str,
    *,
    dag_id: str,
    schedule: Any,
    doc_md: str,
    tags: Sequence[str],
    params: Mapping[str, Param] | None = None,
    champion: Asset | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """The training DAG ``dag_id`` of the model ``spec`` (see :func:`training_tasks`).

    ``schedule`` is any Airflow schedule (a cron timetable, the spec's retrain-request asset, or
    both with ``AssetOrTimeSchedule``); ``params`` the trigger form (default
    :data:`~mlops.airflow.params.TRAIN_PARAMS`); ``champion`` an asset emitted when ``@champion``
    moves. Other keyword arguments override the DAG defaults (start/end date, catchup, timeouts,
    ``max_active_runs``). Assign the result to a module-level name so the DAG processor finds it;
    its ``fileloc`` is the calling file.
    """
    form = dict(TRAIN_PARAMS if params is None else params)
    arguments: dict[str, Any] = {
        "start_date": START_DATE,
        "end_date": END_DATE,
        "catchup": False,
        "default_args": default_args(timeout_minutes=60),
        "max_active_runs": 4,
        "render_template_as_native_obj": True,
        **dag_kwargs,
    }
    with DAG(dag_id, schedule=schedule, params=form, doc_md=doc_md, tags=list(tags), **arguments) as dag:
        training_tasks(spec, form, champion=champion)
    caller = sys._getframe(1)
    dag.fileloc = caller.f_code.co_filename
    return dag


def training_tasks(spec: ModelSpec | str, params: Mapping[str, Param], champion: Asset | None = None) -> Any:
    """Add the training tasks of the model ``spec`` to the DAG being defined. Returns ``promote``.

    A run triggered by the spec's retrain request
    (:func:`mlops.airflow.assets.retrain_request_asset`) trains as of the request's data-time as-of
    and carries its reason to MLflow; other assets' events are no request.

    ``params`` is the DAG's form (``plan`` fails without retry on a conf key it does not declare).
    With ``champion``, a last ``publish_champion`` task emits it (version in the metadata) when the
    champion moved to this run's version.
    """
    from mlops.spec.model import model_spec

    model = model_spec(spec)
    ref, form = model.ref, dict(params)
    retrain_name = retrain_request_asset(model.name).name

    @task(execution_timeout=timedelta(minutes=5))
    def plan(params=None, dag_run=None, data_interval_end=None, triggering_asset_events=None) -> dict:
        """Resolve the as-of date, the window and the params of this run (the TrainingRun)."""
        from mlops.airflow import events
        from mlops.training.run import TrainingRun

        check_params(params, form)  # a misspelt conf key fails here, without retry
        # The spec's own retrain requests only (another model's request is no request for this one).
        request = events.request_context(triggering_asset_events, retrain_name)
        stamps = events.timestamps(triggering_asset_events)
        run_after = getattr(dag_run, "run_after", None)
        return TrainingRun.plan(params, request, stamps, data_interval_end, run_after, spec=ref).as_dict()

    @task(execution_timeout=timedelta(minutes=45))
    def build_training_set(plan: dict) -> dict:
        from mlops.training.run import TrainingRun

        with lake_task():
            return TrainingRun.from_dict(plan).build()

    @task(execution_timeout=timedelta(minutes=10))
    def validate_training_set(plan: dict, built: dict) -> dict:
        """Fails without retry (and trains nothing) when a check fails."""
        from mlops.training.run import TrainingRun
        from mlops.training.validation import TrainingSetInvalid

        with lake_task(fail=(TrainingSetInvalid,)):
            return TrainingRun.from_dict(plan).validate()

    @task(execution_timeout=timedelta(minutes=5))
    def search_space(plan: dict, validation: dict) -> list[dict]:
        from mlops.training.run import TrainingRun

        return TrainingRun.from_dict(plan).candidates()

    @task(execution_timeout=timedelta(minutes=45), max_active_tis_per_dagrun=2)
    def score_candidate(plan: dict, built: dict, candidate: dict) -> dict:
        from mlops.training.run import TrainingRun

        with lake_task():
            return TrainingRun.from_dict(plan).score(candidate)

    @task(execution_timeout=timedelta(minutes=45))
    def refit(plan: dict, built: dict, scores: list[dict]) -> dict:
        from mlops.training.run import TrainingRun

        run = TrainingRun.from_dict(plan)
        with lake_task():
            return run.save_candidate(run.refit(scores))

    @task(execution_timeout=timedelta(minutes=20))
    def log_to_mlflow(
        plan: dict, built: dict, validation: dict, scores: list[dict], fitted: dict, ti=None
    ) -> dict:
        """Log the refit model with its behavioural checks (run once, here; the gate reads them)."""
        from mlops.models import tracking
        from mlops.training.run import TrainingRun, stage_timings

        context = {key: getattr(ti, key) for key in ("dag_id", "run_id", "task_id", "try_number")}
        timings = stage_timings(built, validation, scores, fitted)
        with lake_task():
            run = TrainingRun.from_dict(plan)
            return tracking.log_run(run, fitted, scores, validation, timings, context)

    planned = plan()
    built = build_training_set(planned)
    validation = validate_training_set(planned, built)
    cands = search_space(planned, validation)
    scores = score_candidate.partial(plan=planned, built=built).expand(candidate=cands)
    fitted = refit(planned, built, scores)
    logged = log_to_mlflow(planned, built, validation, scores, fitted)
    version = RegisterModelOperator(
        task_id="register",
        run_id=logged["run_id"],
        model_uri=logged["model_uri"],
        experiment_id=logged["experiment_id"],
        model_name=model.model_name,
        dry_run="{{ params.dry_run }}",
        execution_timeout=timedelta(minutes=10),
    )
    gated = GateModelOperator(
        task_id="gate",
        version=version.output,
        training_run=planned,
        checks=logged["checks"],
        margin="{{ params.promotion_margin }}",
        experiment_id=logged["experiment_id"],
        run_id=logged["run_id"],
        model_name=model.model_name,
        execution_timeout=timedelta(minutes=30),
    )
    approval = ApproveModelOperator(
        task_id="approval",
        decision=gated.output,
        require_approval="{{ params.require_approval }}",
        body="{{ ti.xcom_pull(task_ids='gate', key='model_card') }}",
        execution_timeout=timedelta(minutes=5),
    )
    decision = PromoteModelOperator(
        task_id="promote",
        decision=gated.output,
        approval=approval.output,
        experiment_id=logged["experiment_id"],
        run_id=logged["run_id"],
        execution_timeout=timedelta(minutes=30),
    )
    if champion is not None:
        _publish_champion(champion)(decision.output, logged)
    return decision


def _publish_champion(champion: Asset) -> Any:
    @task(task_id="publish_champion", outlets=[champion], execution_timeout=timedelta(minutes=5))
    def publish_champion(decision: dict, logged: dict):
        """Emit the champion asset only when @champion moved to this run's version."""
        from mlops.models.registry import champion_event

        if not decision["promoted"]:
            raise AirflowSkipException(f"champion unchanged: {decision['reason']}")
        yield Metadata(champion, champion_event(decision, logged["run_id"]))

    return publish_champion
