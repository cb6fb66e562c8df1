"""The Great Expectations suite: no false rejection on any real day of 2013, clear messages.

The detection of each upstream defect of the simulator is tested end to end in ``test_ingest.py``;
the semantic faults of ``benchmarks/validation_faults.py`` (clock fields, rescaled or collapsed
columns, broken relations between columns, truncated days) are injected here, one test each.
"""

from __future__ import annotations

import datetime as dt
import time
import zipfile
from collections import defaultdict

import pandas as pd
import pytest

from benchmarks import validation_faults
from mlops import lake, layout, reference
from mlops.flight_delay import semantics
from mlops.flight_delay import suite as fsuite
from mlops.ingest import simulator, steps, validation
from mlops.ingest.steps import parse_raw

DS = "2013-03-05"  # a Tuesday


@pytest.fixture(scope="module")
def validator() -> validation.SuiteValidator:
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
        assert abs(fsuite.NORMAL_ROWS_BY_WEEKDAY[weekday] - median) <= 1, weekday


def test_supplementary_airports_are_exactly_the_missing_destinations():
    flights = reference.load("flights")
    missing = set(flights["dest"]) - reference.airports()
    assert missing == set(fsuite.SUPPLEMENTARY_AIRPORTS) == {"BQN", "PSE", "SJU", "STT"}
    assert set(flights["dest"]) <= fsuite.known_airports()
    assert set(flights["carrier"]) == fsuite.known_carriers() and len(fsuite.known_carriers()) == 16


@pytest.mark.parametrize(("ds", "hours"), [("2013-03-05", 24), ("2013-03-10", 23), ("2013-11-03", 25)])
def test_day_hours_follow_daylight_saving(ds: str, hours: int):
    values = validation.day_hours_utc(ds)
    assert len(values) == hours and len(set(values)) == hours
    assert values[0] == f"{ds}T05:00:00Z" or values[0] == f"{ds}T04:00:00Z"


def test_volume_bounds_and_allow_partial():
    assert fsuite.volume_bounds("2013-03-05") == (482, 1447, 965)  # a Tuesday
    assert fsuite.volume_bounds("2013-03-09")[2] == 747  # a Saturday
    assert fsuite.volume_bounds("2013-03-05", allow_partial=True)[0] == 1


def test_message_names_column_domain_and_examples(exports_2013, validator):
    raw = parse_raw(exports_2013["2013-03-05"])
    raw = raw.drop_duplicates(["flight", "origin"]).reset_index(drop=True)  # "ZZ" keeps keys unique
    raw.loc[raw.index[:214], "carrier"] = "ZZ"
    outcome = validator.validate(raw, "2013-03-05", allow_partial=True)
    assert not outcome.success
    assert outcome.problems == "domains check: 214 rows with carrier not in the 16 known carriers (e.g. 'ZZ')"
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
    assert checks == sorted(checks, key=fsuite.CHECK_ORDER.index)
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
    suite = fsuite.build_suite()
    families = {e.meta["check"] for e in suite.expectations}
    assert families == set(fsuite.CHECK_ORDER) - {"file"}
    assert families >= {"clock", "consistency", "profile"}
    assert dt.date.fromisoformat("2013-02-09").weekday() == 5  # the blizzard Saturday is covered above


# --- semantic faults (issue 19) -------------------------------------------------------------------

#: fault -> words the message must contain: the check's sentence and the offending values.
SEMANTIC_EXPECTED = {
    "clock_decimal_hours": "clock check: 434 rows with dep_time not a time of day hhmm (whole minutes, "
    "minutes 00-59, at most 2400) (e.g. 562, 565, 585)",
    "clock_minutes_past_59": "clock check: 3 rows with dep_time not a time of day hhmm (whole minutes, "
    "minutes 00-59, at most 2400) (e.g. 565, 568, 587): a clock written in another format",
    "clock_minutes_of_day": "clock check: 338 rows with arr_time not a time of day hhmm",
    "clock_fields_in_utc": "consistency check: 965 rows with time_hour not the UTC start of the row's local "
    "(New York) hour (e.g. hour=10 time_hour='2013-03-05T10:00:00Z' expected '2013-03-05T15:00:00Z'",
    "time_hour_local": "rows with time_hour not the UTC start of the row's local (New York) hour (e.g. "
    "hour=5 time_hour='2013-03-05T05:00:00Z' expected '2013-03-05T10:00:00Z'",
    "hour_from_actual_departure": "900 rows with hour/minute not the hour and minute of sched_dep_time "
    "(e.g. sched_dep_time=500 hour=5 minute=5",
    "delays_in_hours": "830 rows with dep_delay not dep_time - sched_dep_time (in minutes, modulo 24 h) "
    "(e.g. dep_time=505 sched_dep_time=500 dep_delay=0.08",
    "delays_clipped_at_zero": "673 rows with arr_delay not arr_time - sched_arr_time (in minutes, modulo "
    "24 h) (e.g. arr_time=757 sched_arr_time=812 arr_delay=0",
    "dep_arr_time_swapped": "934 rows with dep_delay not dep_time - sched_dep_time",
    "missing_delays_as_zero": "32 rows with a null pattern no real flight has",
    "arr_delay_nulled": "188 rows with a null pattern no real flight has",
    "distance_in_km": "963 rows with distance more than 3% + 10 miles off the route's great-circle "
    "distance (e.g. origin='EWR' dest='CLT' distance=851 great circle 528 mi",
    "distance_constant": "957 rows with distance more than 3% + 10 miles off the route's great-circle distance",
    "dest_shifted_one_row": "897 rows with distance more than 3% + 10 miles off the route's great-circle "
    "distance (e.g. origin='EWR' dest='ORD' distance=529 great circle 717 mi",
    "dest_copied_from_origin": "20 rows with dest equal to origin (e.g. carrier='US' flight=1843 "
    "origin='EWR' dest='EWR'",
    "air_time_is_block_time": "933 rows (100.0% of 933 flown; at most 1% allowed) where arr_time is not "
    "dep_time + air_time + 1-300 minutes of taxi on the destination's clock (e.g. origin='EWR' dest='CLT' "
    "dep_time=505 arr_time=650 air_time=105 -> taxi 0 min",
    "air_time_constant": "318 rows (34.1% of 933 flown; at most 1% allowed) where arr_time is not",
    "arrivals_on_new_york_clock": "the median taxi time (arr_time - dep_time - air_time, on the "
    "destination's clock) is 206 min to the 103 flights 3 h behind New York",
    "tailnum_lowercase": "domains check: 950 rows with tailnum not matching ^[A-Z0-9]{2,7}$ (an upper-case "
    "registration mark, 2-7 letters or digits) (e.g. 'n563uw', 'n826ua', 'n37252')",
    "tailnum_constant": "profile check: column tailnum has 1 distinct value (e.g. 'N14228'), expected at "
    "least 106",
    "truncated_at_1800": "profile check: 0.0% of the day's 747 flights are scheduled from 2000 (latest "
    "1759), expected at least 1.5%",
    "file_cut_at_80pct": "0.0% of the day's 772 flights are scheduled from 2000 (latest 1900)",
    "origin_feed_missing": "profile check: origin LGA has 0 of the day's 663 flights (0.0%), expected "
    "15%-60%",
    "carrier_lowercase": "domains check: 965 rows with carrier not in the 16 known carriers (e.g. 'us'",
    "rows_doubled": "keys check: 1930 rows share a flight key",
    "dated_by_utc": "partition check: 160 rows with day not of the partition day 2013-03-05",
}


def test_every_semantic_fault_has_an_expectation():
    assert set(SEMANTIC_EXPECTED) == set(validation_faults.FAULTS)


@pytest.mark.parametrize("fault", sorted(validation_faults.FAULTS))
def test_semantic_fault_is_rejected_by_its_check(fault: str, validator):
    """Each fault kind, injected into a real day, is rejected by the check made for it, and the
    message names the check, the offending values and a likely cause."""
    spec = validation_faults.FAULTS[fault]
    frame = validation_faults.landed(DS, fault)
    assert frame is not None, f"{fault} changes nothing on {DS}"
    outcome = validator.validate(frame, DS)
    assert not outcome.success, f"{fault} passed validation"
    assert spec.check in outcome.summary()["failed_checks"], outcome.problems
    assert SEMANTIC_EXPECTED[fault] in outcome.problems, outcome.problems


def test_profile_is_skipped_for_a_partial_day(validator):
    """A day known to be partial (allow_partial) is not held to a whole day's shape."""
    frame = validation_faults.landed(DS, "truncated_at_1800")
    rejected = validator.validate(frame, DS)
    assert rejected.summary()["failed_checks"] == ["profile"]
    assert rejected.problems.endswith("if the day is known to be partial, rerun with allow_partial=true")
    assert validator.validate(frame, DS, allow_partial=True).success


def test_profile_is_skipped_when_the_volume_check_fails(validator):
    """A tenth of a day is a volume problem; its shape is not reported on top."""
    data = simulator.inject_fault("volume_collapse", simulator.replay_day(DS), DS)
    outcome = validator.validate(parse_raw(data), DS)
    assert outcome.summary()["failed_checks"] == ["volume"], outcome.problems


def test_relations_skip_values_other_checks_report(validator):
    """A clock value that is not a time of day, or a delay out of range, is reported by its own
    check, not a second time as a broken relation."""
    raw = parse_raw(simulator.to_csv_bytes(simulator.replay_day(DS)))
    departed = raw.index[raw["dep_time"].notna()]
    raw.loc[departed[:2], "dep_time"] = 1275.0  # a clock reading that is no time of day
    raw.loc[departed[2:4], "dep_delay"] = 9000.0  # out of range
    outcome = validator.validate(raw, DS)
    assert [f.check for f in outcome.failures] == ["ranges", "clock"], outcome.problems
    assert "clock check: 2 rows with dep_time not a time of day hhmm" in outcome.problems
    assert "(e.g. 1275)" in outcome.problems
    assert "consistency" not in outcome.problems


def test_semantic_findings_ignore_missing_and_mistyped_columns():
    """The schema check reports a missing or mistyped column; the semantic checks skip what needs it."""
    raw = parse_raw(simulator.to_csv_bytes(simulator.replay_day(DS))).drop(columns=["dest", "hour"])
    raw["dep_time"] = raw["dep_time"].astype(str)
    ranges = {c: tuple(v) for c, v in fsuite.RANGES.items()}
    findings = {
        **semantics.clock_findings(raw, ranges),
        **semantics.consistency_findings(raw, ranges),
        **semantics.profile_findings(raw, fsuite.NYC_ORIGINS),
    }
    assert all(f["ok"] for f in findings.values()), {
        k: f["message"] for k, f in findings.items() if not f["ok"]
    }
    assert "dep_time" not in findings and "dep_delay" not in findings and "taxi" not in findings
    assert "route_distance" not in findings and "hour_minute" not in findings


def test_quarantine_message_names_partition_check_values_and_next_step(mlops_home):
    """The ingest error for a semantic fault: partition, check, examples, likely cause, next step."""
    from mlops.config import get_settings

    settings = get_settings()
    frame = validation_faults.clock_minutes_past_59(simulator.replay_day(DS), DS)
    lake.write_bytes(layout.landing_file(settings.landing_uri, DS), simulator.to_csv_bytes(frame))
    result = steps.validate_partition(DS, settings=settings)
    assert not result.success
    message = result.message
    assert message.startswith(
        f"ds={DS}: clock check: 3 rows with dep_time not a time of day hhmm (whole minutes, minutes 00-59, "
        "at most 2400) (e.g. 565, 568, 587): a clock written in another format (decimal hours, minutes "
        "after midnight, hhmmss)?; batch moved to quarantine/flights/ds=2013-03-05"
    ), message
    assert message.endswith("fix upstream and clear the task"), message


def test_supplementary_airports_have_locations():
    assert set(semantics.SUPPLEMENTARY_AIRPORT_LOCATIONS) == set(fsuite.SUPPLEMENTARY_AIRPORTS)
    assert set(semantics.CLOCK_LATEST) == set(semantics.CLOCK_COLUMNS)
    locations = semantics.airport_locations()
    assert set(reference.load("flights")["dest"]) | set(fsuite.NYC_ORIGINS) <= set(locations)


def test_semantic_thresholds_keep_their_margin_on_2013(exports_2013):
    """The figures each threshold's comment quotes, re-derived from every day of 2013, and the margin
    each bound keeps from them."""
    ranges = {c: tuple(v) for c, v in fsuite.RANGES.items()}
    distinct: dict[str, list[int]] = defaultdict(list)
    shares: dict[str, list[float]] = defaultdict(list)
    zone_medians: list[float] = []
    speeds: list[float] = []
    taxi_min, taxi_max, miles_off, night = float("inf"), float("-inf"), 0.0, 0
    for data in exports_2013.values():
        raw = parse_raw(data)
        relations = semantics.consistency_findings(raw, ranges)
        profile = semantics.profile_findings(raw, fsuite.NYC_ORIGINS)
        taxi = relations["taxi"]["observed"]
        taxi_min, taxi_max = min(taxi_min, taxi["min"]), max(taxi_max, taxi["max"])
        miles_off = max(miles_off, relations["route_distance"]["observed"]["max_miles_off"])
        zone_medians += relations["taxi_median"]["observed"].values()
        speeds.append(relations["speed_median"]["observed"])
        for name, finding in profile.items():
            if name.startswith("distinct_"):
                distinct[finding["column"]].append(finding["observed"])
            elif name != "night_departures":
                shares[name].append(finding["observed"])
        night += profile["night_departures"]["unexpected_count"]
    assert {c: min(v) for c, v in distinct.items()} == semantics.DISTINCT_2013_LOW
    assert 8.8 < miles_off < 9.0 < semantics.ROUTE_TOLERANCE_MILES
    assert (taxi_min, taxi_max) == (5, 235)
    low, high = semantics.TAXI_MINUTES
    assert low < taxi_min and taxi_max < high
    assert (min(zone_medians), max(zone_medians)) == (21, 71)
    assert semantics.TAXI_MEDIAN_MINUTES[0] < 21 and 71 < semantics.TAXI_MEDIAN_MINUTES[1]
    assert 349 < min(speeds) < 350 and 457 < max(speeds) < 458
    assert semantics.SPEED_MEDIAN_MPH[0] < 349 and 458 < semantics.SPEED_MEDIAN_MPH[1]
    lo, hi = semantics.ORIGIN_SHARE
    for origin in fsuite.NYC_ORIGINS:
        values = shares[f"origin_share_{origin}"]
        assert lo < min(values) and max(values) < hi, origin
    assert (
        round(min(shares["origin_share_LGA"]), 3) == 0.248
        and round(max(shares["origin_share_JFK"]), 3) == 0.421
    )
    assert round(min(shares["morning_departures"]), 3) == 0.035 > semantics.MORNING_SHARE_MIN
    assert round(min(shares["evening_departures"]), 3) == 0.028 > semantics.EVENING_SHARE_MIN
    assert night == 1
