"""The S3 path end to end against an S3 endpoint on loopback (moto's server), through the
``aws_default`` Airflow connection with ``endpoint_url`` in its extra: the same code path as
AWS S3 or MinIO. Nothing here is S3-specific test plumbing in the code under test: the simulator,
the amazon ``S3KeySensor`` and its async ``S3KeyTrigger`` (aiobotocore), ``GXValidateOperator``
and publication all reach S3 only through the connection.

- simulator -> deferred S3KeySensor -> S3KeyTrigger fires once the `_SUCCESS` marker is there
  (not on the data object alone) -> validate -> publish (+ rerun);
- a bad delivery quarantined in S3; a landing object upstream replaced meanwhile is kept;
- an export that does not match its marker is refused as "still writing" (transient);
- a write to a bucket that does not exist fails as a permanent error naming the path.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.errors import PermanentError
from mlops.ingest import simulator, steps, validation
from mlops.ingest.landing import LandingIncomplete

LANDING_BUCKET, LAKE_BUCKET = "mlops-landing", "mlops-lake"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def s3_env(mlops_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A moto S3 server on 127.0.0.1, the aws_default connection pointing at it, S3 lake URIs."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        # moto keeps its state per process, across servers: start every test from empty buckets.
        import urllib.request

        urllib.request.urlopen(  # noqa: S310 (loopback)
            urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"), timeout=30
        ).close()
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # Test-only dummy keys for the local fake endpoint (moto accepts any).
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": "us-east-1"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("MLOPS_LANDING_URI", f"s3://{LANDING_BUCKET}")
        monkeypatch.setenv("MLOPS_LAKE_URI", f"s3://{LAKE_BUCKET}/lake")

        from mlops.airflow.storage import s3_client_from_connection, use_airflow_connection

        client = s3_client_from_connection()
        for bucket in (LANDING_BUCKET, LAKE_BUCKET):
            client.create_bucket(Bucket=bucket)
        use_airflow_connection()
        yield get_settings()
    finally:
        lake.set_s3_client_factory(None)
        server.stop()


def test_s3_sensor_trigger_validate_publish(s3_env):
    from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from mlops.airflow.operators.gx import GXValidateOperator
    from mlops.airflow.sensors import landing_sensor

    settings = s3_env
    ds = "2013-02-08"
    uri = layout.landing_file(settings.landing_uri, ds)
    assert uri == f"s3://{LANDING_BUCKET}/flights/ds={ds}/flights.csv"

    # Upstream has written the data object, not its marker: the amazon sensor checks once (both
    # keys), then defers to its async trigger.
    data = simulator.to_csv_bytes(simulator.replay_day(ds))
    lake.write_bytes(uri, data)
    sensor = landing_sensor("wait_for_landing", uri=uri, poke_interval=1, completeness="marker")
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={})
    trigger = info.value.trigger
    assert isinstance(trigger, S3KeyTrigger)

    # Upstream finishes (data again, then the marker last) while the trigger polls S3 through
    # aiobotocore and aws_default: it fires on the marker, not before.
    timer = threading.Timer(3.0, simulator.export_day, args=(ds, settings.landing_uri))
    t0 = time.monotonic()
    timer.start()
    try:
        event = asyncio.run(asyncio.wait_for(anext(trigger.run()), timeout=120))
    finally:
        timer.join()
    assert time.monotonic() - t0 >= 3.0, "fired on the data object, before the marker"
    assert event.payload["status"] == "success", event.payload
    sensor.execute_complete(context={}, event=event.payload)

    summary = GXValidateOperator(task_id="validate", ds=ds).execute(context={})
    assert summary["success"] and summary["report_uri"].startswith(f"s3://{LAKE_BUCKET}/lake/reports/")
    published = steps.publish_partition(ds, expected_sha256=summary["source_sha256"])
    assert published.uri == f"s3://{LAKE_BUCKET}/lake/curated/flights/ds={ds}/data.parquet"
    assert steps.content_hash(lake.read_parquet(published.uri)) == published.content_hash
    assert steps.read_curated_metadata(published.uri)["mlops.content_hash"] == published.content_hash

    # Rerun: same content hash, one object.
    simulator.export_day(ds, settings.landing_uri)
    again = steps.publish_partition(ds, expected_sha256=steps.validate_partition(ds).source_sha256)
    assert again == published
    assert list(lake.list_uris(f"s3://{LAKE_BUCKET}/lake/curated")) == [published.uri]


def test_s3_bad_delivery_is_quarantined(s3_env):
    settings = s3_env
    ds = "2013-02-09"
    export = simulator.export_day(ds, settings.landing_uri, fault="duplicate_keys")
    result = steps.validate_partition(ds)
    assert not result.success and "share a flight key" in result.message
    assert not lake.exists(export.uri) and not lake.exists(export.marker)
    names = sorted(u.rsplit("/", 1)[-1] for u in lake.list_uris(f"s3://{LAKE_BUCKET}/lake/quarantine"))
    assert names == ["flights.csv", "validation.html", "validation.json"]
    assert not list(lake.list_uris(f"s3://{LAKE_BUCKET}/lake/curated"))


def test_s3_export_that_does_not_match_its_marker_is_refused_as_still_writing(s3_env):
    settings = s3_env
    ds = "2013-02-11"
    export = simulator.export_day(ds, settings.landing_uri)
    lines = lake.read_bytes(export.uri).splitlines(keepends=True)
    cut = b"".join(lines[: int(len(lines) * 0.7)])
    lake.write_bytes(export.uri, cut)  # upstream re-delivering, 70% uploaded, old marker still there
    with pytest.raises(LandingIncomplete, match=f"has {len(cut)} bytes where its marker says"):
        steps.validate_partition(ds)
    assert not list(lake.list_uris(f"s3://{LAKE_BUCKET}/lake"))


def test_s3_quarantine_keeps_a_landing_object_replaced_meanwhile(s3_env):
    settings = s3_env
    ds = "2013-02-12"
    bad = simulator.export_day(ds, settings.landing_uri, fault="unknown_carrier")
    bad_bytes = lake.read_bytes(bad.uri)

    class RedeliverDuringValidation:
        def validate(self, frame, day, allow_partial):
            outcome = validation.default_validator().validate(frame, day, allow_partial)
            simulator.export_day(ds, settings.landing_uri)  # upstream's fixed delivery lands
            return outcome

    result = steps.validate_partition(ds, validator=RedeliverDuringValidation())
    assert not result.success and "was left in place" in result.message
    assert lake.read_bytes(lake.join(result.partition.quarantine, "flights.csv")) == bad_bytes
    assert lake.exists(bad.uri) and lake.read_bytes(bad.uri) != bad_bytes and lake.exists(bad.marker)
    assert steps.validate_partition(ds).success


def test_s3_write_to_a_missing_bucket_is_permanent(s3_env):
    uri = "s3://no-such-bucket/lake/curated/flights/ds=2013-02-13/data.parquet"
    with pytest.raises(PermanentError) as info:
        lake.write_bytes(uri, b"x")
    message = str(info.value)
    assert message.startswith(f"ds=2013-02-13: cannot write {uri}: S3 NoSuchBucket. Not retried"), message
    assert "create bucket no-such-bucket, or fix MLOPS_LAKE_URI" in message
