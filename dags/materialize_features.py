"""
## Materialize the flights feature set (the features of both flight models)

Runs whenever `ingest_flights` publishes `curated_flights` or `ingest_weather` publishes
`curated_weather` (several partitions may arrive in one run), or manually with the
`start_ds`/`end_ds` params.

1. **plan** - every `ds` of the triggering `curated_flights` events, and for each `curated_weather`
   day D the days reading it (D and D+1) that have curated flights (or the params' days), plus
   those of events that arrived after the run was queued (Airflow would otherwise strand them: see
   `mlops.airflow.events.partition_days`). Weather that arrives before its day's flights builds
   nothing (the run is skipped): the flights' event builds the day with it.
2. **build_features** - point-in-time feature tables of those days from the curated lake
   (`{lake}/features/<feature_view>/ds=YYYY-MM-DD/data.parquet`, rewritten atomically; days already
   built whose 28-day windows include a new day are rebuilt too). Rules: `mlops.flight_delay.features`,
   the build loop: `mlops.features.compute`.
3. **feast_apply** - `feast apply` of `feature_repo/` (project `flight_delay`, feature service
   `flight_delay_v1`), serialized by a lock (file lock or PostgreSQL advisory lock).
4. **materialize** - `FeastMaterializeOperator` loads the covered event-time interval, with an
   overlap for late rows, into the online store (same lock).
5. **publish** - emits `flight_features` with `{start, end, partitions}`.

Reruns are idempotent: the same curated partitions give the same files and the same online rows.

This file is configuration: the DAG is `mlops.airflow.features_dag.build_features_dag` given the
feature set `flights` (`mlops.spec.features.FEATURE_SETS`), its inputs and its outlet; a team's
feature set gets its own DAG file the same way (docs/specs.md, "Add your own features").

**Deadline:** a run still unfinished 2 h after it was queued sends a `deadline_missed` alert
(Airflow `DeadlineAlert`; asset-triggered runs have no logical date, so the deadline counts from
the arrival of the curated data that queued the run; channels in `mlops.airflow.alerts`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.airflow.assets import CURATED_FLIGHTS, CURATED_WEATHER, FLIGHT_FEATURES
from mlops.airflow.features_dag import FEATURES_DEADLINE, build_features_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

FEATURE_SET = "flights"


def materialize_features() -> DAG:
    """Build the DAG (called below; a function like the ``@dag`` files, so calling it builds it anew)."""
    return build_features_dag(
        FEATURE_SET,
        dag_id="materialize_features",
        inputs=[CURATED_FLIGHTS, CURATED_WEATHER],
        outlet=FLIGHT_FEATURES,
        doc_md=__doc__,
        tags=["mlops", "features", "feast"],
        due_after=FEATURES_DEADLINE,
    )


materialize_features()

if __name__ == "__main__":
    materialize_features().test()
