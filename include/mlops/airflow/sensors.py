"""Deferrable sensors for the landing zone: one per URI scheme, chosen by :func:`landing_sensor`.

- ``s3://``: the amazon provider's ``S3KeySensor`` in deferrable mode, through the ``aws_default``
  connection (its ``S3KeyTrigger`` needs ``aiobotocore``, the provider's ``aiobotocore`` extra);
- ``file://``: :class:`LandingFileSensor` with :class:`mlops.airflow.triggers.LandingFileTrigger`.

Both check once in the worker first (a file already there costs no deferral), then defer to the
triggerer until the file appears or ``timeout`` passes (the task then fails, and retries).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Defaults: poll every 30 s (S3: 60 s), give up after 6 hours.
FILE_POKE_SECONDS, S3_POKE_SECONDS = 30.0, 60.0
SENSOR_TIMEOUT = timedelta(hours=6)


class LandingFileSensor(BaseSensorOperator):
    """Wait, deferred, for the ``file://`` URI ``uri`` (templated) to exist."""

    template_fields = ("uri",)
    ui_color = "#e6f1f2"

    def __init__(self, *, uri: str, deferrable: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", FILE_POKE_SECONDS)
        kwargs.setdefault("timeout", SENSOR_TIMEOUT)
        super().__init__(**kwargs)
        self.uri = uri
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        from mlops.lake import local_path

        found = local_path(self.uri).is_file()
        self.log.info("%s %s", self.uri, "found" if found else "not there yet")
        return found

    def execute(self, context: Context) -> str:
        if not self.deferrable:
            super().execute(context)
            return self.uri
        if self.poke(context):
            return self.uri
        from mlops.airflow.triggers import LandingFileTrigger

        self.defer(
            trigger=LandingFileTrigger(uri=self.uri, poke_interval=self.poke_interval),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        if not event or event.get("status") != "success":
            raise RuntimeError(f"waiting for {self.uri} failed: {event}")
        return self.uri


def landing_sensor(task_id: str, uri: str, aws_conn_id: str = "aws_default", **kwargs: Any) -> Any:
    """A deferrable sensor waiting for ``uri`` (templated): S3KeySensor or LandingFileSensor."""
    if uri.startswith("s3://"):
        from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor

        kwargs.setdefault("poke_interval", S3_POKE_SECONDS)
        kwargs.setdefault("timeout", SENSOR_TIMEOUT)
        return S3KeySensor(
            task_id=task_id, bucket_key=uri, aws_conn_id=aws_conn_id, deferrable=True, **kwargs
        )
    if uri.startswith("file://"):
        return LandingFileSensor(task_id=task_id, uri=uri, **kwargs)
    raise ValueError(f"no landing sensor for {uri!r}: expected a file:// or s3:// URI")
