"""Deferrable sensors for the landing zone: one per URI scheme, chosen by :func:`landing_sensor`.

- ``s3://``: the amazon provider's ``S3KeySensor`` in deferrable mode, through the ``aws_default``
  connection (its ``S3KeyTrigger`` needs ``aiobotocore``, the provider's ``aiobotocore`` extra);
- ``file://``: :class:`LandingFileSensor` with :class:`mlops.airflow.triggers.LandingFileTrigger`.

Both check once in the worker first (a file already there costs no deferral), then defer to the
triggerer until the file is complete or ``timeout`` passes (the task then fails, and retries).

What "complete" means is ``completeness`` (:class:`mlops.ingest.landing.Completeness`, set by
``MLOPS_LANDING_COMPLETENESS``; docs/landing-contract.md): ``marker`` waits for upstream's
``_SUCCESS`` marker beside the data file (S3: both keys), never for the data file alone, which
exists while upstream still writes it; ``stable:SECONDS`` waits until the file's size and
modification time stayed the same that long (S3: the object exists, since a PUT is atomic).
Without it (``None``) the sensor waits for the file to exist (outputs this platform writes
atomically, e.g. feature tables).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops.ingest.landing import Completeness, FileWatch

#: Defaults: poll every 5 s (a local file: a stat and a marker read; at 30 s, a demo's ingestion
#: sensors waited 59 s median in the triggerer), S3 every 60 s (a request each); give up after 6 hours.
FILE_POKE_SECONDS, S3_POKE_SECONDS = 5.0, 60.0
SENSOR_TIMEOUT = timedelta(hours=6)


class LandingFileSensor(BaseSensorOperator):
    """Wait, deferred, for the ``file://`` URI ``uri`` (templated) to be complete.

    :param uri: the data file.
    :param completeness: ``"marker"``, ``"stable:SECONDS"`` or ``None`` (the file exists).
        ``stable`` compares observations of one sensor instance: deferrable (the default) or
        ``poke`` mode; in ``reschedule`` mode each try starts over.
    :param start_from_trigger: (deferrable only) the task starts in the triggerer, not in a
        worker: the scheduler hands it to the triggerer, which renders ``uri`` and waits, and the
        trigger ends the task itself when the file is complete (``TaskSuccessEvent``, the URI as
        its XCom). No task process at all, where a check in the worker costs one (0.9 CPU-s, about
        a ninth of a day's ingestion) and a deferral a second one when it resumes. On timeout the
        task fails in a worker and is retried like any other.
    """

    template_fields = ("uri",)
    ui_color = "#e6f1f2"

    def __init__(
        self,
        *,
        uri: str,
        completeness: str | None = None,
        deferrable: bool = True,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", FILE_POKE_SECONDS)
        kwargs.setdefault("timeout", SENSOR_TIMEOUT)
        super().__init__(**kwargs)
        self.uri = uri
        self.completeness = completeness
        self.deferrable = deferrable
        self._watch: FileWatch | None = None
        if deferrable and start_from_trigger:
            from airflow.triggers.base import StartTriggerArgs

            self.start_from_trigger = True
            # An instance attribute, not the class's: other sensors keep starting in a worker.
            self.start_trigger_args = StartTriggerArgs(
                trigger_cls="mlops.airflow.triggers.LandingFileTrigger",
                trigger_kwargs={
                    "uri": uri,  # rendered in the triggerer (LandingFileTrigger.render_template_fields)
                    "poke_interval": float(self.poke_interval),
                    "completeness": completeness,
                    "end_task": True,
                },
                next_method="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )

    def poke(self, context: Context) -> bool:
        from mlops.ingest.landing import FileWatch

        if self._watch is None or self._watch.data_uri != self.uri:  # kept across pokes (stability)
            self._watch = FileWatch(self.uri, self.completeness)
        complete, why = self._watch.check()
        self.log.info("%s: %s", self.uri, why)
        return complete

    def execute(self, context: Context) -> str:
        if not self.deferrable:
            super().execute(context)
            return self.uri
        if self.poke(context):
            return self.uri
        from mlops.airflow.triggers import LandingFileTrigger

        self.defer(
            trigger=LandingFileTrigger(
                uri=self.uri, poke_interval=self.poke_interval, completeness=self.completeness
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if not event or event.get("status") != "success":
            raise RuntimeError(f"waiting for {self.uri} failed: {event}")
        return self.uri


def landing_sensor(
    task_id: str,
    uri: str,
    aws_conn_id: str = "aws_default",
    completeness: Completeness | str | None = None,
    start_from_trigger: bool = False,
    **kwargs: Any,
) -> Any:
    """A deferrable sensor waiting for ``uri`` (templated) to be complete: S3KeySensor or
    LandingFileSensor. ``completeness``: see the module docstring (``None``: the file exists).
    ``start_from_trigger``: a ``file://`` sensor starts and ends in the triggerer, no task process
    (:class:`LandingFileSensor`); the S3 sensor starts in a worker either way."""
    from mlops.ingest.landing import Completeness, marker_uri

    if isinstance(completeness, str):
        completeness = Completeness.parse(completeness)
    if uri.startswith("s3://"):
        from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

        kwargs.setdefault("poke_interval", S3_POKE_SECONDS)
        kwargs.setdefault("timeout", SENSOR_TIMEOUT)
        marker = completeness is not None and completeness.mode == "marker"
        keys: str | list[str] = [uri, marker_uri(uri)] if marker else uri
        return S3KeySensor(
            task_id=task_id, bucket_key=keys, aws_conn_id=aws_conn_id, deferrable=True, **kwargs
        )
    if uri.startswith("file://"):
        return LandingFileSensor(
            task_id=task_id,
            uri=uri,
            completeness=None if completeness is None else str(completeness),
            start_from_trigger=start_from_trigger,
            **kwargs,
        )
    raise ValueError(f"no landing sensor for {uri!r}: expected a file:// or s3:// URI")
