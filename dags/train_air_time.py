"""
## Train the air-time model

Weekly (Mondays 02:00 UTC, after `train_model`), backfillable, triggered with params. The same
tasks and operators as `train_model`, given the model spec `air_time`
(`include/mlops/air_time/model.py`, see `docs/specs.md`):

1. **plan** - the *as-of* date (data interval end or the `as_of` param) and the window.
2. **build_training_set** / **validate_training_set** - every curated flight with a known
   `air_time` (minutes, wheels-off to wheels-on), with point-in-time Feast features of the
   service `air_time_v1`; label checks: mean 30-400 minutes, every value 1-900.
3. **score_candidate** / **refit** - an XGBoost regressor (monotone in `distance`), candidates
   ranked by validation MAE.
4. **log_to_mlflow** (experiment `flight-air-time`, behavioural checks: no negative minutes, a
   longer route never predicts a shorter flight) / **register** (`flight_air_time_xgb@challenger`) /
   **gate**: MAE on the same holdout, **lower is better**, by the margin (minutes).
5. **approval** (with `require_approval`) / **promote** `@champion` under the registry lock, recorded
   in the audit trail, independently of the flight-delay model's aliases.

Not yet here: a `retrain_request` of its own (the storm guard's ledger is one per lake) and a
`champion` asset of its own.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, task

from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.registry import (
    ApproveModelOperator,
    GateModelOperator,
    PromoteModelOperator,
    RegisterModelOperator,
)
from mlops.airflow.params import TRAIN_PARAMS, check_params
from mlops.airflow.runtime import lake_task

SPEC = "air_time"
MODEL_NAME = "flight_air_time_xgb"
#: The train_model form, with the margin in the gate metric's unit (the spec's default).
PARAMS = {
    **TRAIN_PARAMS,
    "promotion_margin": Param(
        0.1,
        type="number",
        minimum=0,
        maximum=10,
        title="Promotion margin (minutes of MAE)",
        description="The challenger becomes champion only if its holdout MAE is at least this many "
        "minutes below the champion's on the same holdout (and it passes the behavioural checks).",
    ),
}


@dag(
    schedule=CronTriggerTimetable("0 2 * * 1", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    params=PARAMS,
    doc_md=__doc__,
    tags=["mlops", "training", "air_time"],
    default_args=default_args(timeout_minutes=60),
    max_active_runs=4,
    render_template_as_native_obj=True,
)
def train_air_time():
    @task(execution_timeout=timedelta(minutes=5))
    def plan(params=None, dag_run=None, data_interval_end=None) -> dict:
        """Resolve the as-of date, the window and the params of this run (the TrainingRun)."""
        from mlops.training.run import TrainingRun

        check_params(params, PARAMS)  # a misspelt conf key fails here, without retry
        run_after = getattr(dag_run, "run_after", None)
        return TrainingRun.plan(params, {}, [], data_interval_end, run_after, spec=SPEC).as_dict()

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
        model_name=MODEL_NAME,
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
        model_name=MODEL_NAME,
        execution_timeout=timedelta(minutes=30),
    )
    approval = ApproveModelOperator(
        task_id="approval",
        decision=gated.output,
        require_approval="{{ params.require_approval }}",
        body="{{ ti.xcom_pull(task_ids='gate', key='model_card') }}",
        execution_timeout=timedelta(minutes=5),
    )
    PromoteModelOperator(
        task_id="promote",
        decision=gated.output,
        approval=approval.output,
        experiment_id=logged["experiment_id"],
        run_id=logged["run_id"],
        execution_timeout=timedelta(minutes=30),
    )


train_air_time()

if __name__ == "__main__":
    train_air_time().test()
