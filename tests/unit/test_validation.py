"""The Great Expectations suite: no false rejection on any real day of 2013, clear messages.

The detection of each upstream defect is tested end to end in ``test_ingest.py``.
"""

from __future__ import annotations

import datetime as dt
import time
import zipfile
from collections import defaultdict

import pandas as pd
import pytest

from mlops import reference, validation
from mlops.ingest import parse_raw


@pytest.fixture(scope="module")
def validator() -> validation.FlightsValidator:
    return validation.default_validator()


@pytest.fixture(scope="module")
def exports_2013() -> dict[str, bytes]:
    """Every day of 2013 as the landing export bytes (the simulator's identity replay)."""
    text = zipfile.ZipFile(reference.data_dir() / "flights.csv.zip").read("flights.csv").decode()
    header, *lines = text.splitlines(keepends=True)
    by_day: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        y, m, d = line.split(",", 3)[:3]
        by_day[f"{y}-{int(m):02d}-{int(d):02d}"].append(line)
    return {ds: (header + "".join(day)).encode() for ds, day in sorted(by_day.items())}


def test_zero_false_rejections_across_2013(exports_2013, validator, record_property):
    """All 365 real days pass: the Feb 8-9 blizzard, Thanksgiving, Christmas and the DST days too."""
    assert len(exports_2013) == 365
    t0, cpu0 = time.perf_counter(), time.process_time()
    rejected = {}
    for ds, data in exports_2013.items():
        outcome = validator.validate(parse_raw(data), ds)
        if not outcome.success:
            rejected[ds] = outcome.problems
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    record_property("validate_365_days_seconds", round(seconds, 1))
    record_property("validate_365_days_cpu_seconds", round(cpu, 1))
    print(f"\nvalidated 365 days in {seconds:.1f}s wall, {cpu:.1f}s CPU ({1000 * seconds / 365:.0f} ms/day)")
    assert not rejected, f"{len(rejected)} real days rejected: {dict(list(rejected.items())[:5])}"


def test_weekday_volume_profile_is_the_2013_median():
    flights = reference.load("flights")
    counts = pd.to_datetime(flights[["year", "month", "day"]]).value_counts()
    medians = counts.groupby(counts.index.dayofweek).median()
    for weekday, median in medians.items():
        assert abs(validation.NORMAL_ROWS_BY_WEEKDAY[weekday] - median) <= 1, weekday


def test_supplementary_airports_are_exactly_the_missing_destinations():
    flights = reference.load("flights")
    missing = set(flights["dest"]) - reference.airports()
    assert missing == set(validation.SUPPLEMENTARY_AIRPORTS) == {"BQN", "PSE", "SJU", "STT"}
    assert set(flights["dest"]) <= validation.known_airports()
    assert set(flights["carrier"]) == validation.known_carriers() and len(validation.known_carriers()) == 16


@pytest.mark.parametrize(("ds", "hours"), [("2013-03-05", 24), ("2013-03-10", 23), ("2013-11-03", 25)])
def test_day_hours_follow_daylight_saving(ds: str, hours: int):
    values = validation.day_hours_utc(ds)
    assert len(values) == hours and len(set(values)) == hours
    assert values[0] == f"{ds}T05:00:00Z" or values[0] == f"{ds}T04:00:00Z"


def test_volume_bounds_and_allow_partial():
    assert validation.volume_bounds("2013-03-05") == (482, 1447, 965)  # a Tuesday
    assert validation.volume_bounds("2013-03-09")[2] == 747  # a Saturday
    assert validation.volume_bounds("2013-03-05", allow_partial=True)[0] == 1


def test_message_names_column_domain_and_examples(exports_2013, validator):
    raw = parse_raw(exports_2013["2013-03-05"])
    raw = raw.drop_duplicates(["flight", "origin"]).reset_index(drop=True)  # "ZZ" keeps keys unique
    raw.loc[raw.index[:214], "carrier"] = "ZZ"
    outcome = validator.validate(raw, "2013-03-05", allow_partial=True)
    assert not outcome.success
    assert outcome.problems == "214 rows with carrier not in the 16 known carriers (e.g. 'ZZ')"
    assert outcome.summary()["failed_checks"] == ["domains"]
    html = outcome.html_text()
    assert "FAILED" in html and "carrier not in the 16 known carriers (e.g. &#x27;ZZ&#x27;)" in html
    data = outcome.to_json()
    assert data["failures"][0]["examples"] == ["ZZ"] and data["statistics"]["evaluated_expectations"] >= 13


def test_failures_are_reported_once_and_in_check_order(exports_2013, validator):
    raw = parse_raw(exports_2013["2013-03-05"]).drop(columns=["dest"])
    raw["flight"] = raw["flight"].astype(str) + "x"
    raw = raw.iloc[:50]
    outcome = validator.validate(raw, "2013-03-05")
    checks = [f.check for f in outcome.failures]
    assert checks == sorted(checks, key=validation.CHECK_ORDER.index)
    text = outcome.problems
    assert "missing ['dest']" in text and "column flight has type object, expected int64" in text
    assert "could not run" not in text, "checks on a missing or mistyped column are not repeated"
    assert "50 rows, outside the normal volume for a Tuesday [482, 1447]" in text
    assert "allow_partial=true" in text


def test_unreadable_outcome():
    outcome = validation.ValidationOutcome.unreadable("2013-03-05", "the file is empty (0 bytes)")
    assert not outcome.success and outcome.summary()["failed_checks"] == ["file"]
    assert "unreadable export: the file is empty" in outcome.problems
    assert "FAILED" in outcome.html_text() and '"success": false' in outcome.json_text()


def test_suite_has_every_family_of_checks():
    suite = validation.build_suite()
    families = {e.meta["check"] for e in suite.expectations}
    assert families == {"schema", "nulls", "ranges", "domains", "keys", "volume", "partition"}
    assert dt.date.fromisoformat("2013-02-09").weekday() == 5  # the blizzard Saturday is covered above
