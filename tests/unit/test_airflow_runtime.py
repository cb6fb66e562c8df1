"""mlops.airflow.runtime.lake_task: the S3 connection rule and domain errors -> fail / skip."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops import lake
from mlops.airflow.runtime import lake_task
from mlops.errors import PermanentError, TransientError


class NothingToDo(Exception):
    pass


class BadInput(Exception):
    pass


@pytest.fixture(autouse=True)
def _reset_factory():
    yield
    lake.set_s3_client_factory(None)


def test_installs_the_connection_factory_lazily():
    lake.set_s3_client_factory(None)
    with lake_task("some_conn"):
        assert lake._s3_factory is not None  # built from the connection on first S3 access only


def test_permanent_error_fails_without_retry_with_its_message():
    with pytest.raises(AirflowFailException, match="read-only file system: free it"):
        with lake_task():
            raise PermanentError("read-only file system: free it")


def test_listed_domain_errors_fail_or_skip():
    with pytest.raises(AirflowFailException, match="bad day"):
        with lake_task(fail=(BadInput,), skip=(NothingToDo,)):
            raise BadInput("bad day")
    with pytest.raises(AirflowSkipException, match="no champion"):
        with lake_task(fail=(BadInput,), skip=(NothingToDo,)):
            raise NothingToDo("no champion")


def test_other_errors_are_left_to_airflow_retries():
    with pytest.raises(TransientError):
        with lake_task(fail=(BadInput,)):
            raise TransientError("upstream still writing")
    with pytest.raises(NothingToDo):  # not listed: retried as before
        with lake_task():
            raise NothingToDo("x")


def test_returns_pass_through():
    def body() -> int:
        with lake_task():
            return 3

    assert body() == 3
