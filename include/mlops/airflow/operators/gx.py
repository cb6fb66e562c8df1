"""``GXValidateOperator``: validate a landing partition with Great Expectations, or quarantine it.

Why not the Great Expectations provider (``airflow-provider-great-expectations``, 1.0.0, the
latest release when this was written): it cannot be installed with Airflow 3.3. It pins
``structlog<25.5.0`` while ``apache-airflow-core`` 3.3 requires ``structlog>=26.1.0``; the resolver
can only satisfy it by downgrading Airflow to 3.3.0 (upstream issue #242). It is not parse-safe
either: ``great_expectations_provider.operators.validate_dataframe`` imports
``great_expectations`` at module top level, and ``GXValidateDataFrameOperator.__init__`` calls
``configure_dataframe()``, so the dataframe is built at DAG parse time. Its operators subclass
``airflow.models.BaseOperator`` rather than the Task SDK's, and a failed validation raises an
ordinary (retryable) ``AirflowException``.

This operator keeps the provider's good idea (an ephemeral GX context built in ``execute``) and
fixes the rest: ``__init__`` stores plain arguments only, Great Expectations is imported inside
``execute``, the suite and the quarantine logic live in plain ``mlops`` code
(:func:`mlops.ingest.steps.validate_partition`), and bad data fails with ``AirflowFailException``:
retrying the same bad bytes is pointless, and the message says what to do instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops.airflow.links import VALIDATION_REPORT_KEY, ValidationReportLink, publish, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context


def as_bool(value: Any) -> bool:
    """A templated boolean (``True``, ``"True"``, ``"true"``, ``"1"``...) as a ``bool``."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


class GXValidateOperator(BaseOperator):
    """Validate ``feed``'s day ``ds`` landing export with the feed's GX suite.

    On success, writes the report (HTML + JSON) to the feed's report folder
    (``{lake}/reports/validation/ds=.../`` for the flights) and returns the validation summary
    (XCom). On failure, copies the batch and its report to ``{lake}/quarantine/<feed>/ds=.../``
    (removing the landing export only if upstream has not changed it since) and fails without
    retry, naming the partition, the failed checks, example values and the next step. A landing
    export that does not match upstream's ``_SUCCESS`` marker (or has none, with markers) is still
    being written: a retryable error.

    :param ds: partition date ``YYYY-MM-DD`` (templated).
    :param allow_partial: accept a row count below the weekday's normal volume (templated).
    :param feed: the feed spec, by name (``flights``, ``weather``: :data:`mlops.spec.feed.FEEDS`) or
        import path ``package.module:SPEC``; resolved in ``execute`` (parse-safe).
    :param aws_conn_id: Airflow connection for ``s3://`` URIs.
    """

    template_fields = ("ds", "allow_partial", "feed")
    ui_color = "#fff3d6"
    #: "Validation report" on the task instance: the accepted batch's report, or the quarantined one's.
    operator_extra_links = (ValidationReportLink(),)

    def __init__(
        self,
        *,
        ds: str,
        allow_partial: bool | str = False,
        feed: str = "flights",
        aws_conn_id: str = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ds = ds
        self.allow_partial = allow_partial
        self.feed = feed
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from mlops.airflow.runtime import lake_task
        from mlops.config import get_settings
        from mlops.ingest.landing import Completeness
        from mlops.ingest.steps import validate_partition
        from mlops.spec.feed import feed_spec

        try:
            spec = feed_spec(str(self.feed))
        except ValueError as exc:  # a misspelt feed: retrying cannot help
            raise AirflowFailException(f"{self.task_id}: {exc}") from None
        # With markers, an export without one is not complete (upstream re-delivering after the
        # sensor fired): LandingIncomplete, retried. A lake that refuses the report or the
        # quarantine copy (permission denied, read-only, full) fails at once.
        completeness = Completeness.parse(get_settings().landing_completeness)
        with lake_task(self.aws_conn_id):
            result = validate_partition(
                str(self.ds),
                allow_partial=as_bool(self.allow_partial),
                require_marker=completeness.mode == "marker",
                feed=spec,
            )
        self._publish_report(context, result.report_uri)
        if not result.success:
            from mlops.airflow.alerts import announce_quarantine

            announce_quarantine(result.summary(), result.message, context)  # email/webhook, if configured
            raise AirflowFailException(result.message)
        return result.summary()  # (validate_partition has logged the outcome and the report)

    def _publish_report(self, context: Context, report_uri: str) -> None:
        from mlops.config import get_settings

        if not context or "ti" not in context:  # called outside Airflow (tests)
            return
        try:
            publish(context, VALIDATION_REPORT_KEY, report_url(report_uri, get_settings().lake_uri))
        except ValueError as exc:  # a report outside the served folders: no link, still validate
            self.log.warning("no validation report link: %s", exc)
