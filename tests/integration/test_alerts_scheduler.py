"""The failure alert and the deadline alert through the real scheduler, dag-processor and triggerer.

The repo's own DAGs, embedded Airflow (SQLite, LocalExecutor), the alert connections as
``AIRFLOW_CONN_*`` in every component's environment, a real SMTP server and HTTP sink on loopback:

* ``materialize_features`` triggered with a misspelt conf key: ``plan`` fails without retry, and
  the task's ``on_failure_callback`` (default_args) mails ``[mlops] task failed: ...``.
* ``ingest_flights`` for a day whose export has unknown carriers: ``validate`` quarantines it and
  mails ``[mlops] quarantined flights ...``, and the failure that follows is not mailed twice.
* ``batch_predict`` triggered for yesterday: its ``wait_for_features`` sensor waits (no feature
  tables), the ``DeadlineAlert`` (logical date + 6 h) is already past, so the scheduler records
  the miss and the triggerer runs ``alerts.deadline_missed``, which mails
  ``[mlops] deadline missed: batch_predict <day> ...``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.alert_sinks import HttpSink, SmtpSink

pytestmark = pytest.mark.slow


@pytest.mark.timeout(1800)
def test_failure_and_deadline_alerts_through_the_scheduler(mlops_home: Path):
    from mlops.config import get_settings
    from mlops.dev import embedded
    from mlops.ingest import simulator

    smtp, hook = SmtpSink(), HttpSink()
    env = embedded.environment(get_settings(), port=embedded.free_port())
    env["AIRFLOW_CONN_MLOPS_SMTP"] = smtp.connection()
    env["AIRFLOW_CONN_MLOPS_WEBHOOK"] = hook.connection()
    env["MLOPS_SCHEDULE_END"] = "2013-12-31"  # unpausing creates no scheduled run of today
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = yesterday.strftime("%Y-%m-%d")
    simulator.export_day("2013-03-05", get_settings().landing_uri, fault="unknown_carrier")
    embedded.init_db(env)
    embedded.reserialize(env)
    embedded.trigger("batch_predict", env, logical_date=yesterday.isoformat(), run_id="late_scoring")
    embedded.trigger("materialize_features", env, conf={"start_dss": "2013-01-02"}, run_id="misspelt_conf")
    embedded.trigger("ingest_flights", env, logical_date="2013-03-05T00:00:00+00:00", run_id="bad_batch")
    svc = embedded.Services(env=env).start()
    try:
        t0 = time.monotonic()
        embedded.unpause(["batch_predict", "materialize_features", "ingest_flights"], env)
        smtp.wait(3, timeout=900)
        wall = time.monotonic() - t0
        failed = embedded.wait_for_runs("materialize_features", env, 1, timeout=300, services=svc)
        ingest = embedded.wait_for_runs("ingest_flights", env, 1, timeout=300, services=svc)
        time.sleep(10)  # a second alert for the quarantine would arrive right after the first
        mails = list(smtp.mails)
    finally:
        svc.stop()
        smtp.stop()
        hook.stop()

    subjects = sorted(m.subject for m in mails)
    print(f"\nalerts received in {wall:.0f}s: {subjects}")
    assert failed[0]["state"] == "failed", failed
    assert ingest[0]["state"] == "failed", ingest
    assert len(subjects) == 3, subjects  # no "task failed: ingest_flights.validate" besides the quarantine
    deadline_subject, quarantine_subject, failure_subject = subjects
    assert quarantine_subject == "[mlops] quarantined flights 2013-03-05: 2 checks failed"
    assert deadline_subject.startswith(f"[mlops] deadline missed: batch_predict {day} not done by ")
    assert deadline_subject.endswith(f"{(yesterday + timedelta(hours=6)).strftime('%Y-%m-%d %H:%M')} UTC")
    assert failure_subject.startswith("[mlops] task failed: materialize_features.plan ")
    assert "start_dss" in failure_subject
    failure = next(m for m in mails if m.kind == "task_failed")
    assert "misspelt_conf" in failure.body and "clear the task" in failure.body
    kinds = sorted(p["kind"] for p in hook.wait(3, timeout=30))
    assert kinds == ["deadline_missed", "quarantine", "task_failed"]
