"""``mlops.dev.timings``: waits and run times from the metadata database's timestamps."""

from __future__ import annotations

import sqlite3

import pytest

from mlops.dev import timings


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "airflow.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE task_instance (dag_id, task_id, run_id, scheduled_dttm, queued_dttm, start_date, end_date)"
        )
        conn.execute("CREATE TABLE task_instance_history (dag_id, task_id, run_id, start_date, end_date)")
        conn.execute("CREATE TABLE dag_run (dag_id, run_id, start_date, end_date)")
        t = "2013-05-01 00:00:{:02d}.000000"
        conn.executemany(
            "INSERT INTO task_instance VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                # a: scheduled at 0, queued at 1, started at 4, ran 10 s; b: 2 s after a ended, 5 s.
                ("d", "a", "r1", t.format(0), t.format(1), t.format(4), t.format(14)),
                ("d", "b", "r1", t.format(14), t.format(15), t.format(16), t.format(21)),
                ("d", "a", "r2", t.format(0), t.format(2), t.format(6), t.format(10)),
                ("d", "c", "r2", t.format(0), None, None, None),  # never ran: left out
            ],
        )
        conn.execute(
            "INSERT INTO task_instance_history VALUES ('d', 'a', 'r2', ?, ?)", (t.format(1), t.format(3))
        )
        conn.executemany(
            "INSERT INTO dag_run VALUES (?, ?, ?, ?)",
            [("d", "r1", t.format(0), t.format(22)), ("d", "r2", t.format(0), t.format(10))],
        )
    return path


def test_task_waits_and_run_times(db):
    by_task = {t.task_id: t for t in timings.task_timings(db)}
    assert set(by_task) == {"a", "b"}
    a = by_task["a"]
    assert (a.tries, a.run_total, a.run_median) == (3, 16.0, 4.0)  # 10 s, 4 s, and the 2 s first try
    assert (a.scheduled_wait_median, a.start_wait_median, a.start_wait_total) == (1.5, 3.5, 7.0)
    assert by_task["b"].start_wait_total == 1.0


def test_idle_is_run_wall_time_without_a_running_task(db):
    (d,) = timings.dag_timings(db)
    # r1: 22 s wall, tasks ran 4-14 and 16-21 -> 7 s idle; r2: 10 s, tries ran 1-3 and 6-10 -> 4 s.
    assert (d.runs, d.wall_total, d.idle_total) == (2, 32.0, 11.0)


def test_missing_database_says_what_to_do(tmp_path, capsys):
    assert timings.main([str(tmp_path)]) == 1
    assert "run `mlops demo`" in capsys.readouterr().err


def test_a_deferred_task_has_no_start_wait(tmp_path):
    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE task_instance (dag_id, task_id, run_id, scheduled_dttm, queued_dttm, start_date, end_date)"
        )
        conn.execute("CREATE TABLE task_instance_history (dag_id, task_id, run_id, start_date, end_date)")
        # Started at 2, deferred, queued again at 40 when its trigger fired, ended at 45.
        t = "2013-05-01 00:00:{:02d}.000000"
        conn.execute(
            "INSERT INTO task_instance VALUES ('d', 's', 'r', ?, ?, ?, ?)",
            (t.format(0), t.format(40), t.format(2), t.format(45)),
        )
    (s,) = timings.task_timings(db)
    assert (s.run_total, s.start_wait_total, s.start_wait_median) == (43.0, 0.0, 0.0)
