"""
## Train the flight-delay model

Weekly (Mondays 00:00 UTC) **or** whenever `monitor_drift` emits a `retrain_request`.

1. **plan** - the run's *as-of* date: the data interval end for scheduled, manual and backfill
   runs, the request's data-time as-of for runs a `retrain_request` triggered (its reason, drifted
   features and report become tags of the MLflow run), or the `as_of` param. The run sees only the
   curated days before it, so `airflow backfill create --dag-id train_model` over past weeks
   trains the models that would have been trained then.
2. **build_training_set** - labelled flights of the window with point-in-time features from Feast
   (`get_historical_features`, feature service `flight_delay_v1`), saved with a manifest of every
   curated partition read (rows, sha256).
3. **validate_training_set** - volume, day coverage, label balance, null rates; fails without
   retrying and trains nothing if a check fails.
4. **score_candidate** - a small hyperparameter search, one mapped task per candidate, scored on
   the days just before the holdout; **refit** - the best candidate on all training days, scored
   on the holdout (the latest `holdout_days`).
5. **log_to_mlflow** - experiment `flight-delay`: params, metrics, plots, lineage, the model.
6. **register** / **promote** - version of `flight_delay_xgb` as `@challenger`; promoted to
   `@champion` (old one kept as `@previous`) only if it beats the champion on the same holdout by
   the margin and passes the behavioural checks, under a cross-process lock.
7. **publish_champion** - emits `champion_model` (version in the metadata) when the champion moved.

Params (trigger form): window, holdout, XGBoost hyperparameters, candidates, seed, margin, dry run.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Metadata, dag, task

from mlops.airflow.assets import CHAMPION_MODEL, RETRAIN_REQUEST
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops.airflow.params import TRAIN_PARAMS, check_params


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
        """Resolve the as-of date, the window and the params of this run."""
        from mlops import monitoring
        from mlops import training as T

        check_params(params, TRAIN_PARAMS)  # a misspelt conf key fails here, without retry
        p = T.TrainParams.from_mapping(params)
        # A retrain request carries its data-time as-of (the day after the drifted window): in
        # a replay of 2013 the event's wall-clock timestamp would be years after the data.
        request = monitoring.request_context(triggering_asset_events)
        as_of, source = T.resolve_as_of(
            params.get("as_of") or request.get("retrain.as_of") or None,
            [e.timestamp for evs in (triggering_asset_events or {}).values() for e in evs],
            data_interval_end,
            getattr(dag_run, "run_after", None),
        )
        if request and not params.get("as_of"):
            source = "retrain_request"
        window = T.Window.of(as_of, p)
        return {
            "as_of": as_of.isoformat(),
            "as_of_source": source,
            "retrain": request,
            "window": window.as_dict(),
            "params": p.as_dict(),
            "training_dir": T.training_dir(window, p),
        }

    @task(execution_timeout=timedelta(minutes=45))
    def build_training_set(plan: dict) -> dict:
        import time

        from mlops import training as T
        from mlops.models.tracking import partitions_digest

        started = time.perf_counter()
        p = T.TrainParams.from_mapping(plan["params"])
        frame, manifest = T.build_training_set(T.Window.of(plan["as_of"], p))
        uri = T.save_training_set(frame, manifest, plan["training_dir"])
        return {
            "uri": uri,
            "rows": manifest["rows"],
            "data_hash": manifest["data_hash"],
            "partitions_digest": partitions_digest(manifest["partitions"]),
            "seconds": round(time.perf_counter() - started, 3),
        }

    @task(execution_timeout=timedelta(minutes=10))
    def validate_training_set(plan: dict, built: dict) -> dict:
        import json
        import time

        from airflow.sdk.exceptions import AirflowFailException

        from mlops import lake
        from mlops import training as T

        started = time.perf_counter()
        p = T.TrainParams.from_mapping(plan["params"])
        window = T.Window.of(plan["as_of"], p)
        manifest = json.loads(lake.read_text(lake.join(plan["training_dir"], "manifest.json")))
        report = T.validate_training_set(T.load_training_set(built["uri"]), window, p, manifest)
        report["seconds"] = round(time.perf_counter() - started, 3)
        lake.write_text(lake.join(plan["training_dir"], "validation.json"), json.dumps(report, indent=2))
        try:
            T.require_valid(report, window)
        except T.TrainingSetInvalid as exc:
            raise AirflowFailException(str(exc)) from exc
        return report

    @task(execution_timeout=timedelta(minutes=5))
    def search_space(plan: dict, validation: dict) -> list[dict]:
        from mlops import training as T

        return T.candidates(T.TrainParams.from_mapping(plan["params"]))

    @task(execution_timeout=timedelta(minutes=45), max_active_tis_per_dagrun=2)
    def score_candidate(plan: dict, built: dict, candidate: dict) -> dict:
        from mlops import training as T

        p = T.TrainParams.from_mapping(plan["params"])
        frame = T.load_training_set(built["uri"])
        return T.score_candidate(frame, T.Window.of(plan["as_of"], p), p, candidate)

    @task(execution_timeout=timedelta(minutes=45))
    def refit(plan: dict, built: dict, scores: list[dict]) -> dict:
        from mlops import lake
        from mlops import training as T

        p = T.TrainParams.from_mapping(plan["params"])
        best = T.best_candidate(list(scores))
        result = T.refit(T.load_training_set(built["uri"]), T.Window.of(plan["as_of"], p), p, best)
        booster, meta = result.model.to_bytes()
        out = lake.join(plan["training_dir"], f"candidate={best['candidate']}")
        lake.write_bytes(lake.join(out, "booster.ubj"), booster)
        lake.write_text(lake.join(out, "meta.json"), meta)
        lake.write_parquet(lake.join(out, "holdout_predictions.parquet"), result.holdout_predictions)
        return {"dir": out, "best": best, "metrics": result.metrics, "seconds": result.timings["refit"]}

    @task(execution_timeout=timedelta(minutes=20))
    def log_to_mlflow(
        plan: dict, built: dict, validation: dict, scores: list[dict], fitted: dict, ti=None
    ) -> dict:
        import json
        import time

        from mlops import lake, monitoring
        from mlops import training as T
        from mlops.models.tracking import log_training

        started = time.perf_counter()
        p = T.TrainParams.from_mapping(plan["params"])
        window = T.Window.of(plan["as_of"], p)
        model = T.DelayModel.from_bytes(
            lake.read_bytes(lake.join(fitted["dir"], "booster.ubj")),
            lake.read_text(lake.join(fitted["dir"], "meta.json")),
        )
        frame = T.load_training_set(built["uri"])
        _, holdout = T.split(frame, window)
        result = T.Result(
            model=model,
            window=window,
            params=p,
            best=fitted["best"],
            scores=list(scores),
            metrics=fitted["metrics"],
            holdout_predictions=lake.read_parquet(lake.join(fitted["dir"], "holdout_predictions.parquet")),
        )
        manifest = json.loads(lake.read_text(lake.join(plan["training_dir"], "manifest.json")))
        checks = T.behavioural_checks(model.predict, holdout, model.features, seed=p.seed)
        timings = {
            "build_training_set": built["seconds"],
            "validate": validation["seconds"],
            "search_candidates_total": round(sum(s["seconds"] for s in scores), 3),
            "refit": fitted["seconds"],
        }
        airflow_ctx = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "as_of_source": plan["as_of_source"],
        }
        logged = log_training(
            result,
            example_frame=holdout,
            manifest=manifest,
            validation=validation,
            airflow_context=airflow_ctx,
            stage_timings=timings,
            checks=checks,
        )
        monitoring.tag_training_run(logged["run_id"], plan.get("retrain") or {})
        logged["seconds"] = round(time.perf_counter() - started, 3)
        return logged

    @task(outlets=[CHAMPION_MODEL], execution_timeout=timedelta(minutes=5))
    def publish_champion(decision: dict, logged: dict):
        """Emit ``champion_model`` only when @champion moved to this run's version."""
        from airflow.sdk.exceptions import AirflowSkipException

        if not decision["promoted"]:
            raise AirflowSkipException(f"champion unchanged: {decision['reason']}")
        yield Metadata(
            CHAMPION_MODEL,
            {
                "version": decision["challenger"],
                "run_id": logged["run_id"],
                "metrics": {k: round(v, 6) for k, v in decision["challenger_metrics"].items()},
                "previous_version": decision["previous"],
                "as_of": decision["as_of"],
            },
        )

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
    decision = PromoteModelOperator(
        task_id="promote",
        version=version.output,
        training_set_uri=built["uri"],
        as_of=planned["as_of"],
        params_json=planned["params"],
        margin="{{ params.promotion_margin }}",
        experiment_id=logged["experiment_id"],
        run_id=logged["run_id"],
        execution_timeout=timedelta(minutes=30),
    )
    version >> decision
    publish_champion(decision.output, logged)


train_model()

if __name__ == "__main__":
    train_model().test()
