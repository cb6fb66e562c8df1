"""The rollout guard's operators: check ``@champion`` live against ``@previous``, roll back on a breach.

Thin and parse-safe: ``__init__`` stores plain (templated) arguments; the work happens in
``execute()`` through :mod:`mlops.monitoring.rollout_check` and :mod:`mlops.monitoring.rollback`::

    check = RolloutCheckOperator(task_id="check_rollout", ds="{{ ds }}")
    RollbackOperator(task_id="roll_back", summary=check.output)

Thresholds come from the DAG's params (:data:`ROLLOUT_PARAMS`); a param left empty takes the
environment's ``MLOPS_ROLLOUT_<NAME>`` or the built-in default
(:class:`mlops.monitoring.rollout.RolloutParams`). The service's ``/metrics`` URL is the
``metrics_url`` param or ``MLOPS_SERVING_METRICS_URL`` (unset: error rate and latency are not
checked, online ROC-AUC still is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops.airflow import params

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

#: The rollout guard's params form, declared with every DAG's params (:mod:`mlops.airflow.params`);
#: kept importable here for DAG files written against this module.
ROLLOUT_PARAMS = params.ROLLOUT_PARAMS


class RolloutCheckOperator(BaseOperator):
    """Scrape the service, gather the window's evidence and judge ``@champion`` against ``@previous``.

    Returns the summary (XCom): ``verdict`` (breaches, notes, both ROC-AUCs, both services'
    numbers), the window, the scrape. Moves nothing.

    :param ds: the check's day, ``YYYY-MM-DD`` (templated).
    :param metrics_url: the service's ``/metrics`` (templated; default: the param, then the environment).
    :param aws_conn_id: Airflow connection for ``s3://`` lakes.
    """

    template_fields = ("ds", "metrics_url")
    ui_color = "#fde8d7"

    def __init__(
        self, *, ds: str, metrics_url: str | None = None, aws_conn_id: str = "aws_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        self.metrics_url = metrics_url
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.airflow.runtime import lake_task
        from mlops.config import get_settings
        from mlops.monitoring import rollout_check
        from mlops.monitoring.rollout import RolloutParams

        params = dict(context.get("params") or {})
        try:  # a bad threshold or URL: fail at once, naming it (a retry cannot fix it)
            rollout = RolloutParams.from_mapping(params)
            url = rollout_check.metrics_url(self.metrics_url or params.get("metrics_url"))
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        with lake_task(self.aws_conn_id):
            summary = rollout_check.check(str(self.ds), rollout, get_settings(), url=url)
        verdict = summary["verdict"]
        self.log.info(
            "ds=%s: @champion %s vs @previous %s: %s",
            self.ds,
            f"v{verdict['champion']}" if verdict["champion"] else "none",
            f"v{verdict['previous']}" if verdict["previous"] else "none",
            verdict["reason"],
        )
        return summary


class RollbackOperator(BaseOperator):
    """On a breach, move ``@champion`` back to ``@previous`` (once) and announce it.

    Skipped when the verdict has no breach, when ``allow_rollback`` is off, or when there is no
    ``@previous``. Returns the outcome (:class:`mlops.monitoring.rollback.Outcome`).

    :param summary: the check's summary (``RolloutCheckOperator``'s XCom).
    """

    template_fields = ("summary",)
    ui_color = "#f7d4d4"

    def __init__(self, *, summary: Any, aws_conn_id: str = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary = summary
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops.airflow import alerts
        from mlops.airflow.runtime import lake_task
        from mlops.config import MODEL_NAME, get_settings
        from mlops.monitoring import rollback
        from mlops.monitoring.rollout import RolloutParams

        summary: Mapping[str, Any] = self.summary or {}
        verdict = summary.get("verdict") or {}
        if not RolloutParams.from_mapping(summary.get("params")).allow_rollback and verdict.get("breached"):
            raise AirflowSkipException(f"breached but allow_rollback is off: {verdict.get('reason')}")
        with lake_task(self.aws_conn_id, skip=(rollback.NothingToRollBack,)):
            outcome = rollback.roll_back(
                verdict, get_settings(), name=summary.get("model") or MODEL_NAME, run_id=context["ti"].run_id
            )
        if not outcome.rolled_back:
            raise AirflowSkipException(outcome.reason)
        subject, body = rollback.announcement(verdict, outcome)
        channels = alerts.announce(alerts.ROLLBACK, subject, body, context=context, details=outcome.as_dict())
        self.log.info("%s (announced by: %s)", outcome.reason, ", ".join(channels) or "no channel configured")
        return {**outcome.as_dict(), "announced": channels}
