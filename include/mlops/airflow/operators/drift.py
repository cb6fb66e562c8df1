"""``DriftCheckOperator``: the daily drift and performance check of a model's ``@champion`` (Evidently).

Thin and parse-safe: ``__init__`` stores plain (templated) arguments and the model spec's name or
import path; the spec, pandas, Evidently, Feast and MLflow are loaded in ``execute()`` through
:func:`mlops.monitoring.check.check`. Usable in any DAG::

    from mlops.airflow.operators.drift import DriftCheckOperator

    DriftCheckOperator(task_id="check_drift", ds="{{ ds }}", spec="air_time", thresholds={"drift_share": 0.5})

``spec`` is a name of :data:`mlops.spec.model.SPECS` or ``package.module:SPEC`` (default: the
flight-delay spec). Its reports, history and MLflow experiment are the spec's own
(:mod:`mlops.monitoring.history`).

Thresholds, windows and sampling come from the DAG's params (``DRIFT_PARAMS``) unless
``thresholds`` overrides them. It returns the check's summary (XCom: drift share, drifted
features with their scores, prediction drift, the spec's performance metric - ROC-AUC and
calibration for a classifier, MAE/RMSE/R² for a regressor -, sample sizes, the breaches and a
``request`` block for the storm guard), and publishes two links on the task instance: the HTML
report (served by the plugin from the spec's ``reports/drift/ds=...``) and the MLflow run. The
drift share, drifted features, breach flag and performance also go out as Airflow metrics
(``mlops.drift.*`` for the flight-delay spec, ``mlops.drift.<spec folder>.*`` for the others;
StatsD when enabled) for the scale-out stack's Grafana dashboard.

No champion yet: the task is skipped (nothing to monitor). A window without rows fails without
retry, naming the days and what to run first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops.airflow.links import (
    DRIFT_REPORT_KEY,
    MLFLOW_RUN_KEY,
    DriftReportLink,
    MLflowRunLink,
    publish,
    report_url,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from mlops.spec.model import ModelSpec


class DriftCheckOperator(BaseOperator):
    """Compare the ``window_days`` days ending with ``ds`` against the champion's reference.

    :param ds: the check's day, ``YYYY-MM-DD`` (templated).
    :param spec: the model spec: a name of ``mlops.spec.model.SPECS``, ``package.module:SPEC`` or a
        ``ModelSpec`` (kept as its name/import path); default the flight-delay spec.
    :param thresholds: overrides of the params (templated), e.g. ``{"drift_share": 0.5}``.
    :param champion_version: monitor this version instead of ``@champion`` (templated).
    :param aws_conn_id: Airflow connection for ``s3://`` lakes.
    """

    template_fields = ("ds", "thresholds", "champion_version", "spec")
    operator_extra_links = (DriftReportLink(), MLflowRunLink())
    ui_color = "#ece4f7"

    def __init__(
        self,
        *,
        ds: str,
        spec: ModelSpec | str = "flight_delay",
        thresholds: Mapping[str, Any] | None = None,
        champion_version: str | None = None,
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        self.spec = spec if isinstance(spec, str) else spec.ref
        self.thresholds = thresholds
        self.champion_version = champion_version
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops.airflow.runtime import lake_task
        from mlops.config import get_settings
        from mlops.monitoring.check import check
        from mlops.monitoring.frames import NoChampion, NoCurrentData
        from mlops.monitoring.params import DriftParams
        from mlops.spec.model import model_spec

        model = model_spec(self.spec)
        values = {**dict(context.get("params") or {}), **dict(self.thresholds or {})}
        params = DriftParams.from_mapping(values)
        ti = context["ti"]
        airflow_context = {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
        }
        with lake_task(self.aws_conn_id, skip=(NoChampion,), fail=(NoCurrentData,)):
            settings = get_settings()
            summary = check(
                str(self.ds),
                params,
                settings,
                airflow_context=airflow_context,
                champion_version=str(self.champion_version) if self.champion_version else None,
                spec=model,
            )
        ctx = summary["context"]
        try:
            publish(context, DRIFT_REPORT_KEY, report_url(ctx["report_uri"], settings.lake_uri))
        except ValueError as error:  # a folder the plugin does not serve (yet): the report is written
            self.log.warning("no Drift report link: %s", error)
        publish(context, MLFLOW_RUN_KEY, ctx["mlflow_run_url"])
        self.log.info(
            "%s ds=%s vs champion v%s: drift share %.3f (%d/%d features), prediction drift %s, %s %s "
            "(holdout %s), calibration error %s; breaches: %s; report %s",
            model.model_name,
            self.ds,
            ctx["champion_version"],
            summary["drift_share"],
            summary["n_drifted"],
            summary["n_features"],
            summary["prediction_drift"],
            summary.get("performance_metric"),
            summary.get("performance"),
            summary.get("performance_reference"),
            summary["calibration_error"],
            [b["message"] for b in summary["breaches"]] or "none",
            ctx["report_uri"],
        )
        _emit_metrics(summary, metric_prefix(model.lake_folder))
        return summary


def metric_prefix(folder: str = "") -> str:
    """``mlops.drift`` for the model whose folder is the lake (the flight-delay spec: the names the
    dashboards know), ``mlops.drift.<folder>`` for the others."""
    return f"mlops.drift.{folder}" if folder else "mlops.drift"


def _emit_metrics(summary: Mapping[str, Any], prefix: str = "mlops.drift") -> None:
    """The check's numbers as Airflow metrics (StatsD when ``[metrics] statsd_on``; else no-op).

    Names (with Airflow's ``statsd_prefix``, ``airflow.``): ``<prefix>.share``,
    ``<prefix>.drifted_features``, ``<prefix>.breached`` (0/1), ``<prefix>.roc_auc`` and
    ``<prefix>.performance`` (the spec's metric) when labels had arrived. For the flight-delay
    spec deploy/statsd/mapping.yml turns ``mlops.drift.*`` into ``mlops_drift_*`` series for
    Prometheus (the dashboard's drift panel and the ``DriftShareHigh`` rule).
    """
    from airflow.sdk.observability import stats

    stats.gauge(f"{prefix}.share", float(summary["drift_share"]))
    stats.gauge(f"{prefix}.drifted_features", float(summary["n_drifted"]))
    stats.gauge(f"{prefix}.breached", 1.0 if summary.get("breaches") else 0.0)
    if summary.get("roc_auc") is not None:
        stats.gauge(f"{prefix}.roc_auc", float(summary["roc_auc"]))
    if summary.get("performance") is not None:
        stats.gauge(f"{prefix}.performance", float(summary["performance"]))
