"""S3 access for tasks through the Airflow connection ``aws_default`` (amazon provider).

:func:`use_airflow_connection` installs an :mod:`mlops.lake` S3 client factory built from
``S3Hook(aws_conn_id=...)``: credentials, region and an ``endpoint_url`` in the connection's extra
(MinIO or any S3-compatible endpoint) all come from the connection, e.g.
``AIRFLOW_CONN_AWS_DEFAULT='{"conn_type": "aws", "extra": {"endpoint_url": "http://minio:9000"}}'``.
Nothing here holds credentials. The hook is built lazily, on the first S3 access, so tasks that
only touch ``file://`` URIs never look the connection up.
"""

from __future__ import annotations

from typing import Any

AWS_CONN_ID = "aws_default"


def s3_client_from_connection(conn_id: str = AWS_CONN_ID) -> Any:
    """A boto3 S3 client configured from the Airflow connection ``conn_id``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def use_airflow_connection(conn_id: str = AWS_CONN_ID) -> None:
    """Make :mod:`mlops.lake` build its S3 client from the Airflow connection ``conn_id``.

    Call it at the start of a task (custom operators here do it in ``execute``).
    """
    from mlops import lake

    lake.set_s3_client_factory(lambda: s3_client_from_connection(conn_id))
