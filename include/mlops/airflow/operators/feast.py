"""``FeastMaterializeOperator``: load an interval of feature rows into Feast's online store.

Thin and parse-safe: ``__init__`` stores plain (templated) arguments only; Feast and pandas are
imported in ``execute()``. Usable in any DAG::

    from mlops.airflow.operators.feast import FeastMaterializeOperator

    FeastMaterializeOperator(
        task_id="materialize",
        start="{{ data_interval_start | ds }}",
        end="{{ data_interval_end | ds }}",
    )

The store is the feature set's (``feature_set``: a name of ``mlops.spec.features.FEATURE_SETS`` or an
import path; default the flights set, whose repo is ``feature_repo/``) with the profile's
configuration (:func:`mlops.features.feature_store.get_store`); materialization is serialized with ``feast apply`` by the
registry lock, so concurrent runs never write the registry at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class FeastMaterializeOperator(BaseOperator):
    """Materialize feature rows with event time in [``start`` - ``overlap_hours``, ``end``].

    :param start: interval start: ``YYYY-MM-DD`` (local midnight of that day) or an ISO datetime
        (templated).
    :param end: interval end, same formats (templated).
    :param overlap_hours: extra hours before ``start`` re-materialized to pick up late rows.
    :param apply: run ``feast apply`` first (serialized), e.g. in a user's own DAG.
    :param method: ``"partitions"`` (read only the day partitions of the interval and push the
        latest row per key) or ``"feast"`` (``FeatureStore.materialize``, which reads every partition
        through the file offline store); both give the same online rows.
    :param feature_set: the feature set whose views are materialized (its name or import path;
        ``None``: the default set). Resolved in ``execute()``; an unknown one fails there, naming the
        registered sets.
    :param aws_conn_id: Airflow connection for ``s3://`` lakes (the feature partitions read).
    :returns: (XCom) ``{"start": ISO, "end": ISO, "project": str}``, the interval materialized.
    """

    template_fields = ("start", "end", "overlap_hours", "apply", "method", "feature_set")
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        start: str,
        end: str,
        overlap_hours: float | str = 24,
        apply: bool | str = False,
        method: str = "partitions",
        feature_set: str | None = None,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.overlap_hours = overlap_hours
        self.apply = apply
        self.method = method
        self.feature_set = feature_set
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, str]:
        from datetime import timedelta

        from mlops.airflow.runtime import lake_task
        from mlops.features import feature_store

        if not self.start or not self.end:
            raise ValueError(
                f"{self.task_id}: start={self.start!r} and end={self.end!r} must both be set "
                "(YYYY-MM-DD or ISO datetimes)"
            )
        with lake_task(self.aws_conn_id):
            if str(self.apply).lower() in {"true", "1", "yes"}:
                feature_store.apply(feature_set=self.feature_set)
            lo, hi = feature_store.materialize(
                self.start,
                self.end,
                overlap=timedelta(hours=float(self.overlap_hours)),
                method=self.method,
                feature_set=self.feature_set,
            )
        if lo > hi:
            raise ValueError(f"{self.task_id}: empty interval {lo.isoformat()} .. {hi.isoformat()}")
        project = feature_store.feast_env(feature_set=self.feature_set)["MLOPS_FEAST_PROJECT"]
        self.log.info("materialized %s .. %s into the online store of %s", lo, hi, project)
        return {"start": lo.isoformat(), "end": hi.isoformat(), "project": project}
