"""The batch-scoring DAG of any model spec: one builder for ``batch_predict`` and its siblings.

:func:`build_scoring_dag` makes a daily, backfillable DAG with three tasks:

1. **wait_for_features** - a deferrable sensor on the file that says the (last) day can be scored
   (:func:`mlops.serving.scoring.inputs_ready_file`): a Feast-backed spec's last feature table of
   the day, else the curated partition of the spec's first feed (``wait_for_rows``); a spec without
   feeds has nothing to wait for (no sensor).
2. **resolve_model** - the exact version of the spec's registered model to score with: its
   ``@champion`` as of now, or the ``model_version`` param. Resolved once per run and passed on,
   so a retry of ``score`` uses the same version even if the champion moved meanwhile.
3. **score** - :func:`mlops.serving.scoring.score_days` of the day (or ``ds``..``end_ds``) with
   exactly that version, into ``layout.predictions_file(lake, ds, spec.lake_folder)``; emits the
   ``outlet`` asset with :func:`mlops.serving.scoring.event_metadata` (plus ``model_source``,
   ``run_id`` and step ``seconds``).

The params form is :func:`batch_params` (``ds``, ``end_ds``, ``model_version`` and, only for a
spec with a decision, ``threshold``), unless the caller passes its own. A run unfinished 6 h after
its logical date sends a ``deadline_missed`` alert.

Cheap at parse time: only the spec module, :mod:`mlops.layout` and Airflow's SDK are imported
when a DAG file calls the builder; pandas, Feast and MLflow only in the tasks.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, task

from mlops.airflow.alerts import deadline
from mlops.airflow.assets import predictions_asset
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.params import BATCH_PARAMS, LAST_SCORING_DAY, PARTITION, SCORING_MACROS
from mlops.airflow.sensors import SENSOR_TIMEOUT, landing_sensor
from mlops.config import get_settings
from mlops.spec.model import ModelSpec, model_spec

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow.sdk import Asset

#: A day's predictions are due this long after the run's logical date (its data interval).
SCORING_DEADLINE = timedelta(hours=6)
THRESHOLD_PARAM = "threshold"


def _with_description(param: Param, description: str) -> Param:
    return Param(param.value, description=description, **param.schema)


def batch_params(spec: ModelSpec | str) -> dict[str, Param]:
    """The batch-scoring form of ``spec``: :data:`mlops.airflow.params.BATCH_PARAMS` with the
    spec's model named in ``model_version``, and ``threshold`` only when the spec decides
    (:func:`mlops.serving.scoring.decision_column`), described with its columns."""
    from mlops.serving.scoring import decision_column

    s = model_spec(spec)
    form = dict(BATCH_PARAMS)
    form["model_version"] = _with_description(
        BATCH_PARAMS["model_version"],
        f"Score with this registered version of {s.model_name} instead of the current @champion, "
        "e.g. to backfill past days with the model that was champion then. Leave empty: @champion "
        "is resolved when the run starts and recorded on every row.",
    )
    decision = decision_column(s)
    if decision is None:
        form.pop(THRESHOLD_PARAM)
    else:
        form[THRESHOLD_PARAM] = _with_description(
            BATCH_PARAMS[THRESHOLD_PARAM],
            f"{decision} is true for a row whose {s.prediction_column} is at least this.",
        )
    return form


def _check_params(spec: ModelSpec, params: Mapping[str, Any], dag_id: str) -> None:
    """Refuse a form that lacks the scoring params, or whose threshold does not fit the spec."""
    from mlops.serving.scoring import decision_column

    needed = {"ds", "end_ds", "model_version"}
    lacking = sorted(needed - set(params))
    if lacking:
        raise ValueError(f"{dag_id}: the params form lacks {lacking}: start from batch_params(spec)")
    decision = decision_column(spec)
    if decision is not None and THRESHOLD_PARAM not in params:
        raise ValueError(
            f"{dag_id}: model spec {spec.name!r} decides {decision} = prediction >= threshold: "
            f"the form needs a {THRESHOLD_PARAM!r} param (batch_params(spec) has one)"
        )
    if decision is None and THRESHOLD_PARAM in params:
        raise ValueError(
            f"{dag_id}: model spec {spec.name!r} has no decision (no {THRESHOLD_PARAM!r} in its "
            f"batch_columns): drop the {THRESHOLD_PARAM!r} param (batch_params(spec) has none)"
        )


def build_scoring_dag(
    spec: ModelSpec | str,
    *,
    dag_id: str,
    outlet: Asset | None = None,
    schedule: Any = "@daily",
    params: Mapping[str, Param] | None = None,
    doc_md: str | None = None,
    tags: Iterable[str] = (),
    **dag_kwargs: Any,
) -> DAG:
    """The batch-scoring DAG of ``spec`` (a :class:`ModelSpec`, a name of
    :data:`mlops.spec.model.SPECS` or ``package.module:SPEC``), emitting ``outlet`` (default
    :func:`mlops.airflow.assets.predictions_asset` of the spec's name).

    ``params``: the form (default :func:`batch_params`); ``dag_kwargs`` override the defaults
    (``start_date``, ``end_date``, ``catchup=False``, ``max_active_runs=2``, ``default_args``,
    ``deadline``). The DAG's ``fileloc`` is the calling file: keep it at module level,
    ``my_dag = build_scoring_dag(...)``.
    """
    from mlops.serving.scoring import feast_backed, inputs_ready_file

    resolved = model_spec(spec)
    outlet = outlet or predictions_asset(resolved.name)
    ref: ModelSpec | str = spec  # what the tasks resolve (a string stays a string)
    form = dict(params) if params is not None else batch_params(resolved)
    _check_params(resolved, form, dag_id)
    arguments: dict[str, Any] = {
        "start_date": START_DATE,
        "end_date": END_DATE,
        "catchup": False,
        "max_active_runs": 2,
        "user_defined_macros": SCORING_MACROS,
        "default_args": default_args(timeout_minutes=60),
        "deadline": deadline(SCORING_DEADLINE, reference="logical_date"),
        **dag_kwargs,
    }
    ready = inputs_ready_file(resolved, get_settings().lake_uri, LAST_SCORING_DAY)
    with DAG(
        dag_id,
        schedule=schedule,
        params=form,
        doc_md=doc_md or __doc__,
        tags=list(tags) or ["mlops", "scoring", resolved.name],
        **arguments,
    ) as dag:

        @task(execution_timeout=timedelta(minutes=10))
        def resolve_model(params: dict | None = None) -> dict:
            """The registered version that scores this run (recorded in XCom and on every row)."""
            from mlops.airflow.runtime import lake_task
            from mlops.serving.scoring import NoModelToScore, resolve_version

            with lake_task(fail=(NoModelToScore,)):
                return resolve_version((params or {}).get("model_version"), spec=ref)

        @task(outlets=[outlet])
        def score(day: str, model: dict, params: dict | None = None, outlet_events: Any = None) -> dict:
            """Score the day (or `day`..`end_ds`) with exactly `model` and emit the predictions asset."""
            from mlops.airflow.params import scoring_days
            from mlops.airflow.runtime import lake_task
            from mlops.serving import scoring

            params = params or {}
            days = scoring_days(params, day)
            with lake_task(fail=(FileNotFoundError,)):  # days without feature tables: run materialize first
                scoring.require_features(days, spec=ref)
            timings: dict[str, float] = {}
            threshold = params.get(THRESHOLD_PARAM)
            with lake_task():
                results = scoring.score_days(
                    days,
                    model["model_version"],
                    spec=ref,
                    threshold=float(threshold) if threshold is not None else None,
                    model_as_of=model.get("as_of"),
                    timings=timings,
                )
            extra = {
                **scoring.event_metadata(results),
                "model_source": model["source"],
                "run_id": model["run_id"],
                "seconds": {k: round(v, 2) for k, v in timings.items()},
            }
            outlet_events[outlet].extra = extra
            return extra

        model = resolve_model()
        if ready is not None:
            wait = landing_sensor(
                "wait_for_features" if feast_backed(resolved) else "wait_for_rows",
                uri=ready,
                execution_timeout=SENSOR_TIMEOUT,
            )
            wait >> model
        score(PARTITION, model)
    dag.fileloc = sys._getframe(1).f_code.co_filename
    return dag
