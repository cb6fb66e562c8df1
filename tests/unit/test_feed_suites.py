"""The ingest package is feed-agnostic: a feed's suite, semantic checks and normalization live in its
spec package and reach the platform through the feed spec (issue 16).

The flights' own behaviour and messages are held by ``test_validation.py`` and ``test_ingest.py``;
here: nothing in ``mlops.ingest`` (but the simulator, which replays every feed's upstream) names the
flights, another feed's suite gets generic sentences, the semantic checks hook works for a suite
written outside the platform, and the names older callers import keep working.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from mlops.flight_delay import feed as flights_feed
from mlops.flight_delay import suite as fsuite
from mlops.ingest import expectations, normalize, simulator, steps, validation
from mlops.spec.feed import feed_spec
from tests.unit import _synthetic_spec as machine

INGEST = Path(validation.__file__).parent
DS = "2013-03-05"


def test_the_ingest_package_names_no_feed():
    named = {
        path.name: [n for n, line in enumerate(path.read_text().splitlines(), 1) if "flight" in line.lower()]
        for path in sorted(INGEST.glob("*.py"))
        if path.name != "simulator.py"  # upstream, simulated: replays the flights' own table (H4's)
    }
    assert {name: lines for name, lines in named.items() if lines} == {}
    assert set(named) >= {"validation.py", "expectations.py", "normalize.py", "steps.py", "landing.py"}


def test_the_flights_feed_reaches_its_suite_and_normalization_through_its_spec():
    spec = feed_spec("flights")
    assert spec.suite == "mlops.flight_delay.suite:flights_suite"
    assert spec.build_suite().describers is fsuite.DESCRIBERS
    assert spec.normalize == "mlops.flight_delay.feed:normalize"
    raw = simulator.replay_day(DS)
    curated = normalize.normalize(raw)  # the default feed, as every pre-spec caller meant
    assert curated.equals(flights_feed.normalize(raw)) and curated.equals(normalize.normalize(raw, "flights"))
    assert list(curated.columns) == list(spec.curated_columns) and len(curated) == len(raw)


def test_normalize_dispatches_to_the_feed_it_is_given():
    from mlops.weather import feed as weather

    raw = weather.replay_day(DS)
    assert normalize.normalize(raw, "weather").equals(weather.normalize(raw))
    with pytest.raises((KeyError, ValueError), match="nope"):
        normalize.normalize(raw, "nope")


@functools.cache
def _machine_validator() -> validation.SuiteValidator:
    return validation.SuiteValidator(machine.machine_suite())


def test_a_suite_without_its_own_describers_gets_generic_sentences():
    """The compound key of another feed is a key, not a "flight key"."""
    data = machine.FAULTS["duplicate_runs"][1](machine.replay_runs(DS), DS)
    outcome = _machine_validator().validate(steps.parse_raw(data), DS)
    assert not outcome.success and outcome.suite == "machine_runs_raw_v1" and outcome.title == "Machine runs"
    assert outcome.problems.startswith(
        "keys check: 40 rows share a key (run_id, day) with another row (e.g. 2013-03-05-0000 2013-03-05, "
    )
    assert "flight" not in outcome.problems.lower() and "flight" not in outcome.html_text().lower()


def _hot_findings(frame, limit):
    """A plain-pandas semantic check: no run hotter than ``limit`` while vibrating above 10."""
    bad = frame[(frame["temperature"] > limit) & (frame["vibration"] > 10)]
    examples = [str(r) for r in bad["run_id"].head(3)]
    message = f"{len(bad)} runs above {limit:g} F while vibrating above 10 (e.g. {', '.join(examples)})"
    return {
        "hot_and_shaking": {
            "ok": bad.empty,
            "message": "" if bad.empty else message,
            "unexpected_count": len(bad),
            "examples": examples,
            "column": "temperature",
        }
    }


@functools.cache
def _hot_expectation() -> type:
    """The hook of docs/feeds.md ("Semantic checks"): a findings metric and its expectation."""
    validation.import_gx()
    from great_expectations.expectations.expectation import BatchExpectation

    expectations.findings_metric("table.test_hot_findings", _hot_findings, "limit")

    class ExpectTestMachinesNotHotAndShaking(BatchExpectation):
        """Expect no run both hot and vibrating (a test-only semantic check)."""

        limit: float

        metric_dependencies = ("table.test_hot_findings",)
        success_keys = ("limit",)
        args_keys = ("limit",)

        def _validate(self, metrics, runtime_configuration=None, execution_engine=None):  # type: ignore[no-untyped-def]
            return expectations.findings_result(metrics["table.test_hot_findings"])

    return ExpectTestMachinesNotHotAndShaking


def test_a_suite_written_outside_the_platform_adds_its_own_semantic_check():
    import dataclasses

    base = machine.machine_suite()

    def build(gx=None):
        suite = base.build(gx)
        check = _hot_expectation()(limit=70.0)
        check.meta = {"check": "consistency"}
        suite.add_expectation(check)
        return suite

    suite = dataclasses.replace(
        base,
        name="machine_runs_hot_v1",
        build=build,
        check_order=(*base.check_order, "consistency"),
        describers={"expect_test_machines_not_hot_and_shaking": validation.describe_findings},
    )
    validator = validation.SuiteValidator(suite)
    raw = steps.parse_raw(simulator.to_csv_bytes(machine.replay_runs(DS)))  # as landed and read
    assert validator.validate(raw, DS).success, validator.validate(raw, DS).problems
    hot = raw.copy()
    hot.loc[hot.index[:4], ["temperature", "vibration"]] = [90.0, 12.0]
    outcome = validator.validate(hot, DS)
    assert not outcome.success and [f.check for f in outcome.failures] == ["consistency"]
    failure = outcome.failures[0]
    assert failure.column == "temperature" and failure.unexpected_count == 4
    assert failure.message.startswith(f"4 runs above 70 F while vibrating above 10 (e.g. {DS}-0000, ")


def test_names_older_callers_import_are_forwarded_to_the_default_feeds_suite():
    from mlops.ingest.validation import NORMAL_ROWS_BY_WEEKDAY, NYC_ORIGINS, known_airports

    assert NYC_ORIGINS is fsuite.NYC_ORIGINS and known_airports is fsuite.known_airports
    assert NORMAL_ROWS_BY_WEEKDAY is fsuite.NORMAL_ROWS_BY_WEEKDAY  # the same dict: a benchmark scales it
    with pytest.raises(AttributeError, match="module 'mlops.ingest.validation' has no attribute 'NOPE'"):
        _ = validation.NOPE
    assert validation.default_validator() is validation.default_validator(fsuite.__name__ + ":flights_suite")


def test_an_unreadable_export_is_reported_under_the_suites_name():
    default = validation.ValidationOutcome.unreadable(DS, "the file is empty (0 bytes)")
    assert (default.suite, default.title) == (fsuite.SUITE_NAME, "Flights")
    weather = feed_spec("weather").build_suite()
    outcome = validation.ValidationOutcome.unreadable(DS, "the file is empty", weather.name, weather.title)
    assert outcome.summary()["suite"] == "weather_raw_v1" and "Weather ds=" in outcome.html_text()
