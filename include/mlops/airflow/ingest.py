"""The ingest pipeline of any feed: wait for the landing export, validate it, publish it.

``ingest_flights`` and ``ingest_weather`` are the same three tasks with another feed spec
(:class:`mlops.spec.feed.FeedSpec`, named by its registered name or import path) and another curated
asset. :func:`ingest_tasks` adds them to the DAG being defined; each DAG file stays a config file.
Parse-safe: only the landing URI is built here (the spec module is cheap to import); the suite,
pandas and Great Expectations load in the tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import task

from mlops.airflow.operators.gx import GXValidateOperator
from mlops.airflow.params import PARTITION
from mlops.airflow.sensors import SENSOR_TIMEOUT, landing_sensor

if TYPE_CHECKING:
    from airflow.sdk import Asset


def ingest_tasks(feed: str, curated: Asset) -> Any:
    """``wait_for_landing >> validate >> publish`` for ``feed``'s day (the run's partition), the last
    emitting ``curated`` with the published partition's metadata. Returns the publish task."""
    from mlops.config import get_settings
    from mlops.spec.feed import feed_spec

    spec = feed_spec(feed)
    settings = get_settings()
    wait_for_landing = landing_sensor(
        "wait_for_landing",
        uri=spec.landing_file(settings.landing_uri, PARTITION),
        completeness=settings.landing_completeness,
        execution_timeout=SENSOR_TIMEOUT,
        # file://: the wait starts in the triggerer and ends there, no task process (S3KeySensor
        # starts in a worker and defers as before).
        start_from_trigger=True,
    )
    validate = GXValidateOperator(
        task_id="validate", ds=PARTITION, allow_partial="{{ params.allow_partial }}", feed=spec.ref
    )

    # multiple_outputs=False: one XCom, not one per key of the returned dict (an Execution API
    # write each; the curated asset's event carries the metadata downstream).
    @task(task_id="publish", outlets=[curated], multiple_outputs=False)
    def publish(day: str, validation: dict, outlet_events=None) -> dict:
        """Write the curated partition atomically and emit the feed's curated asset."""
        from mlops.airflow.runtime import lake_task
        from mlops.ingest.steps import publish_partition

        # Permanent errors fail at once: a landing export changed since validation (the validated
        # bytes are gone), a lake that refuses the write (permission denied, read-only, full).
        with lake_task():
            published = publish_partition(day, expected_sha256=validation["source_sha256"], feed=spec.ref)
        metadata = published.metadata(validation=validation)
        outlet_events[curated].extra = metadata
        return metadata

    wait_for_landing >> validate
    return publish(PARTITION, validate.output)
