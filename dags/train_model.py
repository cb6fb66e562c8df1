"""
## Train the flight-delay model

Weekly (Mondays 00:00 UTC) **or** whenever `monitor_drift` emits a `retrain_request`.

1. **plan** - the *as-of* date: the data interval end, a `retrain_request`'s data-time as-of (its
   reason and drifted features become MLflow tags) or the `as_of` param. Only curated days before
   it are read, so a backfill over past weeks trains the models that would have been trained then.
2. **build_training_set** / **validate_training_set** - point-in-time Feast features (service
   `flight_delay_v1`) with a manifest of the partitions read (rows, sha256); a failed check
   (volume, day coverage, label balance, nulls) fails the run without retry.
3. **score_candidate** (one mapped task per candidate, scored on the days before the holdout) /
   **refit** (the best one on all training days, scored on the latest `holdout_days`).
4. **log_to_mlflow** (experiment `flight-delay`) / **register** (`flight_delay_xgb@challenger`) /
   **gate**: would it replace the champion (beats it on the same holdout by the margin, passes
   the behavioural checks)? Nothing moves yet; the version's model card is logged to MLflow.
5. **approval** - with `require_approval` on and a challenger the gate would promote: waits in
   *Required Actions* (body: the model card) for *promote* / *reject*; no answer in time rejects.
6. **promote** - moves `@champion` (old one `@previous`) under a cross-process lock, if the gate
   (and the approver) said so and the champion did not change meanwhile; every move and answer
   lands in the audit trail (`mlops audit`).
7. **publish_champion** - emits `champion_model` (version in the metadata) when the champion moved.

Params (trigger form): window, holdout, XGBoost hyperparameters, candidates, seed, margin, dry run,
require approval.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Metadata, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from mlops.airflow.assets import CHAMPION_MODEL, RETRAIN_REQUEST
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.registry import (
    ApproveModelOperator,
    GateModelOperator,
    PromoteModelOperator,
    RegisterModelOperator,
)
from mlops.airflow.params import TRAIN_PARAMS, check_params
from mlops.airflow.runtime import lake_task


@dag(
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 0 * * 1", timezone="UTC"), assets=RETRAIN_REQUEST
    ),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    params=TRAIN_PARAMS,
    doc_md=__doc__,
    tags=["mlops", "training"],
    default_args=default_args(timeout_minutes=60),
    max_active_runs=4,
    render_template_as_native_obj=True,
)
def train_model():
    @task(execution_timeout=timedelta(minutes=5))
    def plan(params=None, dag_run=None, data_interval_end=None, triggering_asset_events=None) -> dict:
        """Resolve the as-of date, the window and the params of this run (the TrainingRun)."""
        from mlops.airflow import events
        from mlops.training.run import TrainingRun

        check_params(params, TRAIN_PARAMS)  # a misspelt conf key fails here, without retry
        request = events.request_context(triggering_asset_events)
        stamps = events.timestamps(triggering_asset_events)
        run_after = getattr(dag_run, "run_after", None)
        return TrainingRun.plan(params, request, stamps, data_interval_end, run_after).as_dict()

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
        """Log the refit model with its behavioural checks (run once, here; ``promote`` reads them)."""
        from mlops.models import tracking
        from mlops.training.run import TrainingRun, stage_timings

        context = {key: getattr(ti, key) for key in ("dag_id", "run_id", "task_id", "try_number")}
        timings = stage_timings(built, validation, scores, fitted)
        with lake_task():
            run = TrainingRun.from_dict(plan)
            return tracking.log_run(run, fitted, scores, validation, timings, context)

    @task(outlets=[CHAMPION_MODEL], execution_timeout=timedelta(minutes=5))
    def publish_champion(decision: dict, logged: dict):
        """Emit ``champion_model`` only when @champion moved to this run's version."""
        from mlops.models.registry import champion_event

        if not decision["promoted"]:
            raise AirflowSkipException(f"champion unchanged: {decision['reason']}")
        yield Metadata(CHAMPION_MODEL, champion_event(decision, logged["run_id"]))

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
    publish_champion(decision.output, logged)


train_model()

if __name__ == "__main__":
    train_model().test()
