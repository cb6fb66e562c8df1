"""The serving sidecar (mlops.serving.sidecar): a real spawned child process, no mocks.

It runs the service's @alias lookups (real MLflow registry in SQLite) and its prediction-log writes
(the same files and rows as the in-thread writer); errors, timeouts and a dead child are clear
errors and the next call starts a new child.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pandas as pd
import pytest

from mlops.serving.logger import LoggedPrediction, PredictionLogger
from mlops.serving.online import FlightRequest, feature_row
from mlops.serving.sidecar import Sidecar, SidecarError


@pytest.fixture
def sidecar():
    car = Sidecar(start_timeout=300)
    yield car
    car.close()


def test_calls_run_in_the_child_and_errors_are_clear(sidecar):
    assert sidecar.call("os:getpid") != os.getpid()
    assert sidecar.call("os.path:join", "a", "b") == os.path.join("a", "b")
    assert sidecar.starts == 1
    with pytest.raises(SidecarError, match=r"os:listdir failed in serving-sidecar: FileNotFoundError"):
        sidecar.call("os:listdir", "/no/such/dir/h5")
    with pytest.raises(SidecarError, match=r"expected '<module>:<function>'"):
        sidecar.call("os.getpid")
    assert sidecar.call("os:getpid") == sidecar.pid  # the same child after errors
    assert sidecar.describe()["failures"] == 2


def test_a_dead_or_stuck_child_fails_the_call_and_is_replaced(sidecar):
    first = sidecar.call("os:getpid")
    os.kill(first, signal.SIGKILL)
    time.sleep(0.5)
    second = sidecar.call("os:getpid")  # a new child
    assert second != first and sidecar.starts == 2
    with pytest.raises(SidecarError, match=r"time:sleep did not answer within 0.5 s"):
        sidecar.call("time:sleep", 30, timeout=0.5)
    assert sidecar.call("os:getpid") not in (first, second)
    assert sidecar.starts == 3
    sidecar.close()
    assert sidecar.pid is None
    with pytest.raises(SidecarError, match="closed"):
        sidecar.call("os:getpid")


def _batch(n: int) -> list[LoggedPrediction]:
    out = []
    for i in range(n):
        day = 12 + i % 2  # two partitions
        flight = FlightRequest(
            "UA", 1000 + i, "EWR", "IAH", datetime(2013, 6, day, 14, i % 60, tzinfo=UTC), None
        )
        out.append(
            LoggedPrediction(
                f"r{i}", 1.7e9 + i, flight, feature_row(flight, {}), i / n, 0.5, "m", "3", f"p{i}-0"
            )
        )
    return out


def test_the_sidecar_writes_the_same_log_as_the_flush_thread(tmp_path, sidecar):
    batch = _batch(300)  # several pickle chunks
    frames = {}
    for name, car in (("thread", None), ("sidecar", sidecar)):
        written: list[tuple[int, str]] = []
        logger = PredictionLogger(
            (tmp_path / name).as_uri(), sidecar=car, on_written=lambda n, u, w=written: w.append((n, u))
        )
        logger.start()
        logger.log(batch)
        logger.close()
        assert [n for n, _ in written] == [150, 150]
        assert all(f"-{os.getpid()}-00000{k}.parquet" in u for k, (_, u) in enumerate(written, 1))
        assert logger.describe()["writer"] == name and logger.written_rows == 300
        files = sorted((tmp_path / name).rglob("*.parquet"))
        assert [f.parent.name for f in files] == ["ds=2013-06-12", "ds=2013-06-13"]
        frames[name] = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    pd.testing.assert_frame_equal(frames["thread"], frames["sidecar"])
    assert sidecar.calls == 2  # the warm-up and the write


def test_a_failed_write_in_the_sidecar_is_retried_then_dropped(tmp_path, sidecar):
    blocker = tmp_path / "lake"
    blocker.write_text("a file where the lake folder should be")
    dropped: list[int] = []
    logger = PredictionLogger(blocker.as_uri(), sidecar=sidecar, on_dropped=dropped.append)
    logger.log(_batch(4))
    assert logger.flush() == 0 and logger.pending == 4
    assert "failed in serving-sidecar" in logger.describe()["last_error"]
    assert logger.flush() == 0 and dropped == [4] and logger.pending == 0


def test_the_holder_resolves_the_alias_in_the_sidecar(tmp_path, sidecar):
    from mlops.config import get_settings
    from mlops.serving.model import ModelHolder

    settings = get_settings({"MLOPS_HOME": str(tmp_path)})
    holder = ModelHolder(settings=settings, sidecar=sidecar, name="no_such_model_h5")
    assert holder.refresh() is False
    assert holder.current is None and holder.alias_version is None
    assert "no_such_model_h5@champion is not set" in holder.last_error
    assert sidecar.calls == 1  # the lookup went to the child (real MLflow on a fresh SQLite)
