"""mlops.ingest.steps: every upstream defect is caught and quarantined; good days publish atomically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.errors import PermanentError, TransientError
from mlops.ingest import simulator, steps, validation
from mlops.ingest.landing import LandingIncomplete

DS = "2013-03-05"  # a Tuesday

#: fault -> words the failure message must contain (besides the partition and the next step).
EXPECTED = {
    "missing_column": "columns differ from the raw export contract: missing ['dest']",
    "extra_column": "columns differ from the raw export contract: unexpected ['gate']",
    "type_changed": "column flight has type object, expected int64",
    "nulls_beyond_threshold": "with null arr_delay (at most 65% allowed",
    "out_of_range": "rows with dep_delay outside [-180, 2880] (e.g.",
    "unknown_carrier": "rows with carrier not in the 16 known carriers (e.g. 'ZZ')",
    "unknown_airport": "rows with dest not in the 1462 known airports (e.g. 'QQX')",
    "duplicate_keys": "share a flight key (carrier, flight, origin) with another row (e.g.",
    "empty_file": "unreadable export: the file is empty (0 bytes)",
    "header_only": "0 rows, outside the normal volume for a Tuesday [482, 1447]",
    "truncated_file": "unreadable export: the file does not end with a newline",
    "corrupt_file": "unreadable export: not UTF-8 text",
    "other_date_rows": "40 rows with day not of the partition day 2013-03-05 (e.g. 4)",
    "volume_collapse": "outside the normal volume for a Tuesday [482, 1447] (2013 median 965); "
    "if the day is known to be partial, rerun with allow_partial=true",
}


@pytest.fixture
def settings(mlops_home: Path):
    return get_settings()


def curated_files(settings) -> list[str]:
    return list(lake.list_uris(lake.join(settings.lake_uri, "curated")))


def test_every_fault_has_an_expectation():
    assert set(EXPECTED) == set(simulator.FAULTS)


@pytest.mark.parametrize("fault", sorted(simulator.FAULTS))
def test_fault_is_detected_and_quarantined(fault: str, settings):
    export = simulator.export_day(DS, settings.landing_uri, fault=fault)
    result = steps.validate_partition(DS)

    assert not result.success
    message = result.message
    assert message.startswith(f"ds={DS}: "), message
    assert EXPECTED[fault] in message, message
    assert f"batch moved to quarantine/flights/ds={DS}" in message
    assert message.endswith("fix upstream and clear the task")
    # Nothing curated, the batch and its report in quarantine, the landing copy moved away.
    assert curated_files(settings) == []
    quarantine = sorted(u.rsplit("/", 1)[-1] for u in lake.list_uris(result.partition.quarantine))
    assert quarantine == ["flights.csv", "validation.html", "validation.json"]
    assert lake.read_bytes(lake.join(result.partition.quarantine, "flights.csv")) == simulator.inject_fault(
        fault, simulator.replay_day(DS), DS
    )
    assert not lake.exists(export.uri) and not lake.exists(export.marker)  # moved: marker too
    report = lake.read_text(lake.join(result.partition.quarantine, "validation.json"))
    assert '"success": false' in report and result.source_sha256 in report
    assert not list(lake.list_uris(lake.join(settings.lake_uri, "reports")))


def test_good_day_publishes_and_rerun_is_identical(settings):
    simulator.export_day(DS, settings.landing_uri)
    validated = steps.validate_partition(DS)
    assert validated.success, validated.message
    summary = validated.summary()
    assert summary["success"] and summary["rows"] > 900 and summary["evaluated"] >= 13
    reports = sorted(u.rsplit("/", 1)[-1] for u in lake.list_uris(validated.partition.reports))
    assert reports == ["validation.html", "validation.json"]

    first = steps.publish_partition(DS, expected_sha256=summary["source_sha256"])
    data = lake.read_bytes(first.uri)
    assert first.uri == f"{settings.lake_uri}/curated/flights/ds={DS}/data.parquet"
    assert first.rows == summary["rows"] and first.content_hash.startswith("sha256:")

    # Rerun both steps: same bytes, same hash, still one file (replaced, not duplicated).
    simulator.export_day(DS, settings.landing_uri)
    again_summary = steps.validate_partition(DS).summary()
    again = steps.publish_partition(DS, expected_sha256=again_summary["source_sha256"])
    assert again == first and lake.read_bytes(again.uri) == data
    assert curated_files(settings) == [first.uri]

    # The hash is of the rows: recomputed from the file, and stored in its footer.
    frame = lake.read_parquet(first.uri)
    assert steps.content_hash(frame) == first.content_hash
    assert steps.read_curated_metadata(first.uri) == {
        "mlops.content_hash": first.content_hash,
        "mlops.rows": str(first.rows),
        "mlops.ds": DS,
        "mlops.source_sha256": first.source_sha256,
    }
    assert set(frame["ds"]) == {DS} and frame["flight_id"].is_unique
    metadata = first.metadata(validation=summary)
    assert metadata["validation"]["success"] and set(metadata) >= {"ds", "uri", "rows", "content_hash"}


def test_replayed_future_day_validates_and_publishes(settings):
    simulator.export_day("2024-03-05", settings.landing_uri)  # a Tuesday, replays 2013-03-05
    assert steps.validate_partition("2024-03-05").success
    published = steps.publish_partition("2024-03-05")
    assert set(lake.read_parquet(published.uri)["ds"]) == {"2024-03-05"}


def test_allow_partial_accepts_a_short_day_but_nothing_else(settings):
    simulator.export_day(DS, settings.landing_uri, fault="volume_collapse")
    assert steps.validate_partition(DS, allow_partial=True).success
    simulator.export_day(DS, settings.landing_uri, fault="unknown_carrier")
    assert not steps.validate_partition(DS, allow_partial=True).success


def test_publish_refuses_a_landing_file_changed_after_validation(settings):
    simulator.export_day(DS, settings.landing_uri)
    summary = steps.validate_partition(DS).summary()
    simulator.export_day(DS, settings.landing_uri, fault="duplicate_keys")
    with pytest.raises(steps.LandingChanged, match="changed since it was validated"):
        steps.publish_partition(DS, expected_sha256=summary["source_sha256"])
    assert curated_files(settings) == []


def test_fixed_redelivery_after_quarantine_passes(settings):
    simulator.export_day(DS, settings.landing_uri, fault="other_date_rows")
    assert not steps.validate_partition(DS).success
    simulator.export_day(DS, settings.landing_uri)  # upstream fixed it
    assert steps.validate_partition(DS).success


# --- landing completeness: the marker, a file still being written, quarantine of a changed file ---


def _cut_at_a_line_boundary(uri: str, share: float) -> bytes:
    """Rewrite the landing file in place with its first ``share`` of lines, as a writer part way
    through (every line whole, so it parses)."""
    lines = lake.read_bytes(uri).splitlines(keepends=True)
    cut = b"".join(lines[: int(len(lines) * share)])
    lake.local_path(uri).write_bytes(cut)
    return cut


def test_an_export_cut_at_a_line_boundary_is_not_read_as_a_short_day(settings):
    export = simulator.export_day(DS, settings.landing_uri)
    full_rows = export.rows
    cut = _cut_at_a_line_boundary(export.uri, 0.7)  # upstream rewriting the day, 70% written
    assert 482 <= cut.count(b"\n") - 1 < full_rows  # inside the weekday's volume band: GX would pass it

    for step in (steps.validate_partition, steps.publish_partition):
        with pytest.raises(LandingIncomplete) as info:
            step(DS)
        message = str(info.value)
        assert isinstance(info.value, TransientError) and not isinstance(info.value, PermanentError)
        assert message.startswith(f"ds={DS}: the landing export {export.uri} has {len(cut)} bytes where")
        assert "upstream is still writing it" in message and "the task retries" in message
    # Nothing read as the day: no curated partition, no quarantine, no report; the file untouched.
    assert curated_files(settings) == []
    assert not list(lake.list_uris(settings.lake_uri))
    assert lake.read_bytes(export.uri) == cut

    simulator.export_day(DS, settings.landing_uri)  # upstream finishes: the whole day passes
    validated = steps.validate_partition(DS)
    assert validated.success and validated.outcome.rows == full_rows
    assert steps.publish_partition(DS, expected_sha256=validated.source_sha256).rows == full_rows


def test_a_marker_with_another_hash_is_refused_and_an_empty_marker_is_enough(settings):
    export = simulator.export_day(DS, settings.landing_uri)
    other = simulator.export_day("2013-03-06", settings.landing_uri)
    lake.write_bytes(export.marker, lake.read_bytes(other.marker))  # another day's size and hash
    with pytest.raises(LandingIncomplete, match=r"has (\d+ bytes|hash sha256:\w+) where its marker says"):
        steps.validate_partition(DS)
    lake.write_bytes(export.marker, b"")  # Hadoop/Spark style: "complete", nothing to compare
    assert steps.validate_partition(DS).success
    lake.write_bytes(export.marker, b'{"bytes": 12')  # a marker itself half written
    with pytest.raises(LandingIncomplete, match="is not readable"):
        steps.validate_partition(DS)


def test_without_a_marker_validation_waits_when_markers_are_required(settings):
    data = simulator.to_csv_bytes(simulator.replay_day(DS))
    lake.write_bytes(layout.landing_file(settings.landing_uri, DS), data)  # no _SUCCESS
    with pytest.raises(LandingIncomplete, match="has no _SUCCESS marker beside it"):
        steps.validate_partition(DS, require_marker=True)
    assert not list(lake.list_uris(settings.lake_uri))
    assert steps.validate_partition(DS).success  # checked only when present by default


class UpstreamRedeliversDuringValidation:
    """The real validator; upstream re-delivers the day while it runs (the bytes change after
    they were read)."""

    def __init__(self, redeliver):
        self.inner = validation.default_validator()
        self.redeliver = redeliver

    def validate(self, frame, ds, allow_partial):
        outcome = self.inner.validate(frame, ds, allow_partial)
        self.redeliver()
        return outcome


def test_quarantine_keeps_a_landing_file_that_changed_since_it_was_read(settings):
    bad = simulator.export_day(DS, settings.landing_uri, fault="unknown_carrier")
    bad_bytes = lake.read_bytes(bad.uri)
    fixed = {}
    validator = UpstreamRedeliversDuringValidation(
        lambda: fixed.setdefault("export", simulator.export_day(DS, settings.landing_uri))
    )
    result = steps.validate_partition(DS, validator=validator)

    assert not result.success and result.source_sha256 == bad.sha256
    # The batch that was validated is in quarantine; upstream's new delivery is left in place.
    quarantine = lake.join(result.partition.quarantine, "flights.csv")
    assert lake.read_bytes(quarantine) == bad_bytes
    assert lake.read_bytes(bad.uri) == lake.read_bytes(fixed["export"].uri) != bad_bytes
    assert lake.exists(fixed["export"].marker)
    assert f"batch copied to quarantine/flights/ds={DS} (the landing export changed" in result.message
    assert f"so {bad.uri} was left in place" in result.message
    assert result.message.endswith("fix upstream and clear the task")
    # Clearing the task validates the new delivery.
    assert steps.validate_partition(DS).success


def test_quarantine_keeps_a_file_replaced_between_the_check_and_the_delete(settings, monkeypatch):
    """delete_if_unchanged renames the file aside before hashing it: a replacement that lands
    after the rename is never the one deleted."""
    export = simulator.export_day(DS, settings.landing_uri)
    real_rename = os.rename
    replacement = b"year,month\n2013,3\n"

    def rename_then_upstream_replaces(src, dst):
        real_rename(src, dst)
        if Path(src) == lake.local_path(export.uri):
            Path(src).write_bytes(replacement)  # upstream's new file lands right after

    monkeypatch.setattr(os, "rename", rename_then_upstream_replaces)
    assert lake.delete_if_unchanged(export.uri, export.sha256)  # the validated bytes: removed
    assert lake.read_bytes(export.uri) == replacement  # the new file stays
    assert lake.delete_if_unchanged(export.uri, export.sha256) is False  # changed: kept
    assert lake.read_bytes(export.uri) == replacement
    assert sorted(p.name for p in lake.local_path(export.uri).parent.iterdir()) == ["_SUCCESS", "flights.csv"]


def test_missing_landing_file_is_a_retryable_error(settings):
    with pytest.raises(FileNotFoundError):
        steps.validate_partition(DS)


def test_bad_partition_date_is_refused(settings):
    with pytest.raises(ValueError, match="not a YYYY-MM-DD date"):
        steps.partition("2013-3-5x")


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mlops.ingest import steps

    marker = Path(sys.argv[2])
    real_replace = os.replace

    def replace_then_hang(src, dst):
        marker.write_text(str(src))  # the temporary file is complete, the rename not done yet
        time.sleep(120)
        real_replace(src, dst)

    os.replace = replace_then_hang
    steps.publish_partition(sys.argv[1])
    """
)


@pytest.mark.parametrize("existing", [False, True], ids=["first-write", "rewrite"])
def test_writer_killed_mid_write_leaves_no_partial_file(existing: bool, settings, tmp_path: Path):
    simulator.export_day(DS, settings.landing_uri)
    before = steps.publish_partition(DS) if existing else None
    marker = tmp_path / "in-write"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, DS, str(marker)], env=dict(os.environ), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, "the writer exited before reaching the rename"
            assert time.monotonic() < deadline, "the writer never reached the rename"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)  # killed between writing the bytes and the rename
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    curated = steps.partition(DS).curated
    if before is None:
        assert not lake.exists(curated), "a reader would see a partial partition"
        assert curated_files(settings) == []  # the orphaned temp file is hidden (dot-file)
    else:
        assert steps.read_curated_metadata(curated)["mlops.content_hash"] == before.content_hash
        assert steps.content_hash(lake.read_parquet(curated)) == before.content_hash
    # A rerun repairs it, with the same content hash as any other run of that day.
    after = steps.publish_partition(DS)
    assert curated_files(settings) == [curated]
    if before is not None:
        assert after == before
