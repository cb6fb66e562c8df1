"""The materialize DAG of any feature set: one builder for ``materialize_features`` and a team's own.

:func:`build_features_dag` makes an asset-triggered DAG of five tasks for one feature set
(:class:`mlops.spec.features.FeatureSetSpec`, by registered name or import path):

1. **plan** - the days to build: the ``ds`` of the triggering curated-feed events (and of events
   that arrived after the run was queued, :func:`mlops.airflow.events.partition_days`), turned into
   days by :func:`mlops.features.compute.days_to_build` (the driving feed's days; for another
   feed's day ``D`` the days ``D`` .. ``D + reads_after`` that have driving-feed partitions), else
   the ``start_ds``/``end_ds`` params. A run whose only events are of a non-driving feed whose days
   have no driving partition yet is skipped (the driving feed's event builds them).
2. **build_features** - :func:`mlops.features.compute.build_feature_tables` of those days, but
   for the days already built from the same curated data and code (an event an earlier run
   built, since Airflow gives the next run the events its predecessor read after it was queued);
   skipped, and the rest of the run with it, when all of them are.
3. **feast_apply** - ``feast apply`` of the Feast repo (serialized by the registry lock).
4. **materialize** - :class:`~mlops.airflow.operators.feast.FeastMaterializeOperator` of the
   covered event-time interval, with an overlap for late rows.
5. **publish** - emits ``outlet`` with ``{start, end, partitions, rows}``.

Cheap at parse time: ``airflow.sdk`` and mlops.airflow constants; the feature set is resolved in
the tasks (a DAG file names it as a string).
"""

from __future__ import annotations

import functools
import operator
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowSkipException

from mlops.airflow.alerts import deadline
from mlops.airflow.defaults import END_DATE, START_DATE, default_args
from mlops.airflow.operators.feast import FeastMaterializeOperator
from mlops.airflow.params import FEATURE_PARAMS, check_params

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Asset, Param

#: The features of newly curated data are due online this long after the run was queued.
FEATURES_DEADLINE = timedelta(hours=2)


def build_features_dag(
    feature_set: str,
    *,
    dag_id: str,
    inputs: Sequence[Asset],
    outlet: Asset,
    params: Mapping[str, Param] | None = None,
    doc_md: str | None = None,
    tags: Sequence[str] = (),
    due_after: timedelta = FEATURES_DEADLINE,
    timeout_minutes: int = 60,
    **dag_kwargs: Any,
) -> DAG:
    """The materialize DAG ``dag_id`` of ``feature_set`` (a name of
    ``mlops.spec.features.FEATURE_SETS`` or ``package.module:SPEC``).

    ``inputs``: the curated assets of the set's feeds (``curated_<feed>``) that trigger it (any of
    them); ``outlet``: the asset ``publish`` emits. ``params`` default to
    :data:`mlops.airflow.params.FEATURE_PARAMS`; a run unfinished ``due_after`` after it was queued
    sends a ``deadline_missed`` alert. Other keyword arguments go to :class:`airflow.sdk.DAG`. The
    DAG's ``fileloc`` is the calling file: assign the result to a module-level name.
    """
    if not isinstance(feature_set, str) or not feature_set:
        raise TypeError(
            f"feature_set={feature_set!r}: pass the feature set's name or import path (a string), so "
            "the DAG file stays parse-safe and the tasks load the set when they run"
        )
    if not inputs:
        raise ValueError(f"{dag_id}: inputs must name at least one curated asset of the feature set's feeds")
    inputs = tuple(inputs)
    form = dict(params if params is not None else FEATURE_PARAMS)
    with DAG(
        dag_id=dag_id,
        schedule=functools.reduce(operator.or_, inputs),
        start_date=dag_kwargs.pop("start_date", START_DATE),
        end_date=dag_kwargs.pop("end_date", END_DATE),
        catchup=dag_kwargs.pop("catchup", False),
        params=form,
        doc_md=doc_md,
        tags=list(tags) or ["mlops", "features", "feast"],
        default_args=default_args(timeout_minutes=timeout_minutes),
        max_active_runs=dag_kwargs.pop("max_active_runs", 1),
        deadline=dag_kwargs.pop("deadline", deadline(due_after, reference="queued_at")),
        **dag_kwargs,
    ) as dag:
        _tasks(feature_set, inputs, outlet, form)
    dag.fileloc = sys._getframe(1).f_code.co_filename
    return dag


def _tasks(ref: str, inputs: tuple[Asset, ...], outlet: Asset, form: Mapping[str, Param]) -> None:
    @task(inlets=list(inputs), execution_timeout=timedelta(minutes=5))
    def plan(params=None, triggering_asset_events=None, inlet_events=None, dag_run=None) -> list[str]:
        """The days to build: the triggering events' ds (and the stranded ones), else the params' range."""
        from mlops.airflow import events
        from mlops.features.compute import day_range, days_to_build
        from mlops.spec.features import feature_set
        from mlops.spec.feed import feed_spec

        check_params(params, form)  # a misspelt conf key fails here, without retry
        fs = feature_set(ref)
        feed_of = {feed_spec(feed).asset: feed for feed in fs.feeds}
        unknown = [asset.name for asset in inputs if asset.name not in feed_of]
        if unknown:
            raise ValueError(
                f"feature set {fs.name!r}: the inputs {unknown} are not curated assets of its feeds "
                f"({sorted(feed_of)}): fix the DAG's inputs or FeatureSetSpec.feeds"
            )
        run_after = getattr(dag_run, "run_after", None)
        new = {
            feed_of[asset.name]: events.partition_days(
                events.events_of(triggering_asset_events, asset.name), inlet_events, asset, run_after
            )
            for asset in inputs
        }
        days = days_to_build(new, feature_set=fs)
        others = sorted({ds for feed, got in new.items() if feed != fs.driving for ds in got})
        if not days and others and not new.get(fs.driving):
            driving = feed_spec(fs.driving).asset
            raise AirflowSkipException(
                f"{', '.join(f for f in new if f != fs.driving)} of {', '.join(others)} curated before "
                f"their {fs.driving}: nothing to rebuild; {driving} of those days builds them with it"
            )
        if not days and params and params.get("start_ds"):
            days = day_range(params["start_ds"], params.get("end_ds") or params["start_ds"])
        if not days:
            raise ValueError(
                f"no partition to build: this run has no {' or '.join(a.name for a in inputs)} event "
                "with a 'ds' in its extra; trigger it with params start_ds (and end_ds), e.g. "
                '{"start_ds": "2013-01-01", "end_ds": "2013-01-31"}'
            )
        return days

    # multiple_outputs=False: a dict return is one XCom (the template below indexes it), not one per key.
    @task(multiple_outputs=False)
    def build_features(days: list[str]) -> dict:
        """Build the feature tables of ``days`` (idempotent) and return the covered interval."""
        from mlops.airflow.runtime import lake_task
        from mlops.features.compute import build_feature_tables
        from mlops.spec.features import feature_set
        from mlops.spec.feed import feed_spec

        fs = feature_set(ref)
        with lake_task():
            result = build_feature_tables(days, feature_set=fs, skip_current=True)
        if not result.partitions and result.current:
            raise AirflowSkipException(
                f"{', '.join(result.current)}: built from the same curated data and code already "
                "(an earlier run built these events' days): nothing to build or materialize"
            )
        if not result.partitions:
            raise FileNotFoundError(
                f"no curated {fs.driving} partition for any of {days}: nothing to build; ingest them "
                f"first ({feed_spec(fs.driving).dag_id}) and clear this task"
            )
        return result.as_dict()

    @task(multiple_outputs=False)
    def feast_apply() -> dict:
        """``feast apply`` of the Feast repo, serialized across runs and processes."""
        from mlops.airflow.runtime import lake_task
        from mlops.features import feature_store

        with lake_task():
            return feature_store.apply(feature_set=ref)

    materialize = FeastMaterializeOperator(
        task_id="materialize",
        start="{{ ti.xcom_pull(task_ids='build_features')['start'] }}",
        end="{{ ti.xcom_pull(task_ids='build_features')['end'] }}",
        overlap_hours="{{ params.overlap_hours }}",
        feature_set=ref,
    )

    @task(outlets=[outlet], execution_timeout=timedelta(minutes=5), multiple_outputs=False)
    def publish(built: dict, materialized: dict, outlet_events=None) -> dict:
        """Emit the outlet asset with the materialized interval and the partitions."""
        extra = {
            "start": materialized["start"],
            "end": materialized["end"],
            "partitions": built["partitions"],
            "rows": built["rows"],
        }
        outlet_events[outlet].extra = extra
        return extra

    days = plan()
    built = build_features(days)
    applied = feast_apply()
    built >> applied >> materialize
    publish(built, materialize.output)
