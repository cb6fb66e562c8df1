"""mlops.airflow.events: the days a materialize_features run builds, the retrain request behind a
train_model run (events as Airflow hands them to a task, or as dicts)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from datetime import UTC, datetime
from types import SimpleNamespace

from mlops.airflow import events

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
Asset = namedtuple("Asset", "name")  # hashable, like airflow.sdk.Asset keys
REQUEST = Asset("retrain_request")
CURATED = Asset("curated_flights")


def request(ds: str, request_id: str) -> dict:
    """A ``retrain_request`` event's metadata, as ``mlops.monitoring`` writes it."""
    return {
        "reason": "5 of 10 features drifted",
        "drifted_features": {"wx_temp": 0.8},
        "report_uri": f"file:///lake/reports/drift/ds={ds}/report.html",
        "window_start": ds,
        "window_end": ds,
        "as_of": "2013-07-11",
        "ds": ds,
        "signature": f"sig-{ds}",
        "data_version": f"data-{ds}",
        "champion_version": "1",
        "request_id": request_id,
    }


def event(extra, ts="2026-01-01T00:00:00+00:00", asset=REQUEST):
    return SimpleNamespace(
        extra=extra, timestamp=ts, source_dag_id="monitor_drift", source_run_id="scheduled__x", asset=asset
    )


def test_request_context_turns_the_event_into_mlflow_tags():
    tags = events.request_context({REQUEST: [event(request("2013-07-10", "r1"))]})
    assert tags["retrain.requested"] == "true" and tags["retrain.reason"] == "5 of 10 features drifted"
    assert tags["retrain.report_uri"].endswith("ds=2013-07-10/report.html")
    assert json.loads(tags["retrain.drifted_features"]) == {"wx_temp": 0.8}
    assert tags["retrain.window"] == "2013-07-10..2013-07-10" and tags["retrain.as_of"] == "2013-07-11"
    assert tags["retrain.source"] == "monitor_drift/scheduled__x" and tags["retrain.events"] == "1"
    assert tags["retrain.request_id"] == "r1" and "retrain.request_ids" not in tags
    assert all(isinstance(v, str) for v in tags.values())


def test_request_context_is_empty_for_other_runs_and_takes_the_latest_of_several():
    assert events.request_context(None) == {} and events.request_context({}) == {}
    other = Asset("flight_features")
    assert events.request_context({other: [SimpleNamespace(extra={"start": "x"}, asset=other)]}) == {}
    older = event(request("2013-07-01", "a"), "2026-01-01T00:00:00+00:00")
    newer = event(request("2013-07-20", "b"), "2026-01-02T00:00:00+00:00")
    tags = events.request_context([newer, older])
    assert tags["retrain.ds"] == "2013-07-20" and json.loads(tags["retrain.request_ids"]) == ["a", "b"]


def test_request_context_reads_dict_events_and_ignores_the_old_request_uri():
    as_dict = {"extra": request("2013-07-10", "r1"), "asset": {"name": "retrain_request"}}
    assert events.request_context([as_dict])["retrain.request_id"] == "r1"
    old = Asset("mlops://requests/retrain")  # the asset's URI before it was declared by name
    assert events.request_context({old: [event(request("2013-07-10", "r1"), asset=old)]}) == {}


class Inlet:
    """``inlet_events[asset]`` as a task sees it: the asset's events, filtered by ``after``."""

    def __init__(self, stored):
        self.stored = stored
        self.asked = []

    def after(self, when: str):
        self.asked.append(when)
        return [e for e in self.stored if e.timestamp > when]


def test_partition_days_adds_the_events_stranded_while_the_run_was_queued():
    run_after = datetime(2026, 1, 1, 12, tzinfo=UTC)
    triggering = {
        CURATED: [event({"ds": "2013-01-02"}, asset=CURATED), event({"ds": "2013-01-01"}, asset=CURATED)]
    }
    late = event({"ds": "2013-01-03"}, "2026-01-01T12:00:05+00:00", CURATED)
    inlet = Inlet([late])
    days = events.partition_days(triggering, {CURATED: inlet}, CURATED, run_after)
    assert days == ["2013-01-01", "2013-01-02", "2013-01-03"]
    assert inlet.asked == [run_after.isoformat()]


def test_partition_days_is_empty_for_a_manual_run_and_skips_events_without_ds():
    inlet = Inlet([event({"ds": "2013-01-03"}, "2030-01-01", CURATED)])
    assert events.partition_days({}, {CURATED: inlet}, CURATED, datetime(2026, 1, 1)) == []
    assert inlet.asked == []  # not asset-triggered: the params say which days
    assert events.partition_days({CURATED: [event({"rows": 3}, asset=CURATED)]}) == []


def test_timestamps_lists_every_triggering_event():
    triggering = {REQUEST: [event({}, "t1")], CURATED: [event({}, "t2", CURATED)]}
    assert events.timestamps(triggering) == ["t1", "t2"] and events.timestamps(None) == []


def test_importing_events_is_cheap():
    code = (
        "import sys, json; import mlops.airflow.events;"
        "print(json.dumps(sorted(m for m in ('pandas','mlflow','airflow') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _airflow_event(asset_name: str, extra: dict, ts: str, dag_id: str):
    """An event as Airflow 3 hands it to a task: ``AssetEventDagRunReferenceResult``."""
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    return AssetEventDagRunReferenceResult.model_validate(
        {
            "asset": {"name": asset_name, "uri": asset_name, "extra": {}},
            "extra": extra,
            "source_task_id": "guard",
            "source_dag_id": dag_id,
            "source_run_id": f"scheduled__{ts}",
            "source_map_index": -1,
            "source_aliases": [],
            "timestamp": ts,
        }
    )


def test_request_context_reads_the_request_asset_of_the_model_it_is_given():
    """A ``train_air_time`` run gets its tags from ``air_time_retrain_request`` (Airflow's own
    accessor and event classes), and never from the flight-delay model's request or another asset."""
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from mlops.airflow.assets import retrain_request_asset

    air_time = retrain_request_asset("air_time")
    accessor = TriggeringAssetEventsAccessor.build(
        [
            _airflow_event(
                air_time.name,
                request("2013-07-10", "air-1"),
                "2026-01-01T00:00:00Z",
                "monitor_drift_air_time",
            ),
            _airflow_event(
                air_time.name,
                request("2013-07-12", "air-2"),
                "2026-01-02T00:00:00Z",
                "monitor_drift_air_time",
            ),
            _airflow_event(
                "retrain_request", request("2013-07-11", "delay-1"), "2026-01-03T00:00:00Z", "monitor_drift"
            ),
            _airflow_event("curated_flights", {"ds": "2013-07-12"}, "2026-01-04T00:00:00Z", "ingest_flights"),
        ]
    )
    for asset in (air_time, air_time.name):  # the Asset or its name
        tags = events.request_context(accessor, asset)
        assert tags["retrain.request_id"] == "air-2" and tags["retrain.ds"] == "2013-07-12"
        assert tags["retrain.source"] == "monitor_drift_air_time/scheduled__2026-01-02T00:00:00Z"
        assert tags["retrain.events"] == "2" and json.loads(tags["retrain.request_ids"]) == ["air-1", "air-2"]
    # The flight-delay model's run (the default asset) sees only its own request.
    delay = events.request_context(accessor)
    assert delay["retrain.request_id"] == "delay-1" and delay["retrain.events"] == "1"
    # A run of a third model that nothing requested records no retrain tags.
    assert events.request_context(accessor, retrain_request_asset("third")) == {}
    assert events.request_context(accessor, "curated_weather") == {}


def test_request_context_refuses_an_asset_without_a_name():
    import pytest

    with pytest.raises(ValueError, match="has no name; pass the request asset or its name"):
        events.request_context({}, SimpleNamespace(uri="x"))
