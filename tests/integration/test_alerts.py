"""Alerts received by a real SMTP server (aiosmtpd) and a real HTTP sink on loopback.

Each alert kind goes through its own path with real Airflow connections (``AIRFLOW_CONN_*``
JSON): a quarantine through ``GXValidateOperator`` on a bad landing export, retrain requested and
suppressed through ``announce_retrain`` with the storm guard's ``Decision``, the deadline callback
as the triggerer awaits it, a rollback through ``announce`` (the rollout guard's call). The failure
callback and the deadline through the real scheduler: test_alerts_scheduler.py (slow).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from tests.integration.alert_sinks import HttpSink, SmtpSink


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch):
    smtp, hook = SmtpSink(), HttpSink()
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SMTP", smtp.connection())
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_WEBHOOK", hook.connection(headers={"X-Token": "t0k"}))
    yield smtp, hook
    smtp.stop()
    hook.stop()


@pytest.fixture
def no_channels(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_SMTP", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MLOPS_WEBHOOK", raising=False)


def _request(breached: bool = True) -> dict:
    return {
        "ds": "2013-06-12",
        "champion_version": "4",
        "report_uri": "file:///lake/reports/drift/ds=2013-06-12/drift.html",
        "breached": breached,
        "breaches": [{"message": "drift share 0.62 > 0.5"}] if breached else [],
        # what the check's request holds: DriftScores.drifted(), {feature: score} highest first
        "drifted_features": {"dep_hour": 0.41, "origin_precip": 0.33},
        "reason": "drift share 0.62 > 0.5" if breached else "",
    }


def test_every_alert_kind_reaches_email_and_webhook(sinks, mlops_home: Path):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops.airflow import alerts
    from mlops.airflow.operators.gx import GXValidateOperator
    from mlops.config import get_settings
    from mlops.ingest import simulator
    from mlops.monitoring.guard import Decision

    smtp, hook = sinks
    # quarantine: the real operator on a batch with unknown carriers
    simulator.export_day("2013-03-05", get_settings().landing_uri, fault="unknown_carrier")
    with pytest.raises(AirflowFailException):
        GXValidateOperator(task_id="validate", ds="2013-03-05").execute(context={})
    # retrain requested, and one the storm guard held back
    assert alerts.announce_retrain(_request(), Decision(True, "drift share 0.62 > 0.5", [], {})) == [
        "email",
        "webhook",
    ]
    cooldown = "cooldown: a request on 2013-06-10 is within 7 days"
    alerts.announce_retrain(  # another model's guard: its own asset, training DAG and ledger
        _request(),
        Decision(False, cooldown, [cooldown], {}),
        asset="air_time_retrain_request",
        train_dag_id="train_air_time",
        ledger="file:///lake/models/air_time/reports/drift/requests/ledger.json",
    )
    # rollback: what the rollout guard calls
    alerts.announce(
        "rollback",
        "champion rolled back v7 -> v6: error rate 0.12 > 0.05",
        "flight_delay_xgb@champion moved back to v6 (@previous).",
        details={"from": "7", "to": "6"},
    )
    # the deadline callback, as the triggerer awaits it (context as the scheduler builds it)
    context = {
        "dag_run": {
            "dag_id": "batch_predict",
            "dag_run_id": "scheduled__2013-06-12T00:00:00+00:00",
            "logical_date": "2013-06-12T00:00:00Z",
            "run_type": "scheduled",
            "state": "running",
        },
        "deadline": {"id": "d1", "deadline_time": "2013-06-12T06:00:00Z"},
    }
    assert asyncio.run(alerts.deadline_missed(interval="6 h", context=context)) == "sent by email, webhook"

    mails = smtp.wait(5)
    subjects = [m.subject for m in mails]
    assert subjects == [
        "[mlops] quarantined flights 2013-03-05: 2 checks failed",
        "[mlops] retrain requested 2013-06-12: drift share 0.62 > 0.5",
        f"[mlops] retrain suppressed 2013-06-12: {cooldown}",
        "[mlops] champion rolled back v7 -> v6: error rate 0.12 > 0.05",
        "[mlops] deadline missed: batch_predict 2013-06-12 not done by 2013-06-12 06:00 UTC",
    ], subjects
    assert [m.kind for m in mails] == [
        "quarantine",
        "retrain_requested",
        "retrain_suppressed",
        "rollback",
        "deadline_missed",
    ]
    assert all(m.recipients == ["oncall@example.com"] and m.sender == "mlops@example.com" for m in mails)
    assert (
        "quarantine/flights/ds=2013-03-05" in mails[0].body
        and "Failed checks: domains, keys" in mails[0].body
    )
    assert "retrain_request emitted: train_model starts on it." in mails[1].body
    assert "models/air_time/reports/drift/requests/ledger.json" in mails[2].body
    assert "trigger train_air_time by hand" in mails[2].body
    assert "Drifted features: dep_hour (0.41), origin_precip (0.33)" in mails[1].body

    posts = hook.wait(5)
    assert [p["subject"] for p in posts] == subjects
    assert posts[3]["details"] == {"from": "7", "to": "6"} and posts[3]["kind"] == "rollback"
    assert posts[4]["dag_id"] == "batch_predict"
    assert all(h.get("X-Token") == "t0k" for h in hook.headers)  # connection extras are headers


def test_no_breach_no_alert_and_backfill_deadlines_are_not_announced(sinks):
    from mlops.airflow import alerts
    from mlops.monitoring.guard import Decision

    smtp, hook = sinks
    assert (
        alerts.announce_retrain(_request(breached=False), Decision(False, "no threshold breached", [], {}))
        == []
    )
    backfill = {
        "dag_run": {"dag_id": "batch_predict", "run_id": "backfill__2013-06-12", "run_type": "backfill"}
    }
    assert (
        asyncio.run(alerts.deadline_missed(interval="6 h", context=backfill)) == "not announced: backfill run"
    )
    alerts.announce("rollback", "probe", "")
    assert [m.subject for m in smtp.wait(1)] == ["[mlops] probe"]  # only the probe arrived


def test_off_when_not_configured(no_channels, caplog: pytest.LogCaptureFixture):
    from mlops.airflow import alerts

    with caplog.at_level(logging.INFO, logger="mlops.airflow.alerts"):
        assert alerts.announce("rollback", "champion rolled back v7 -> v6", "body") == []
    lines = [r for r in caplog.records if r.name == "mlops.airflow.alerts"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "no channel configured" in lines[0].getMessage()
    assert "mlops_smtp" in lines[0].getMessage() and "mlops_webhook" in lines[0].getMessage()


def test_a_broken_channel_is_logged_and_the_other_still_delivers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from mlops.airflow import alerts

    hook = HttpSink(status=500)  # the webhook refuses
    smtp = SmtpSink()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_WEBHOOK", hook.connection())
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SMTP", smtp.connection())
        with caplog.at_level(logging.INFO, logger="mlops.airflow.alerts"):
            assert alerts.announce("rollback", "champion rolled back", "b") == ["email"]
        errors = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.ERROR and r.name == "mlops.airflow.alerts"
        ]
        assert len(errors) == 1 and "NOT sent by webhook" in errors[0] and "'mlops_webhook'" in errors[0]
        assert [m.subject for m in smtp.wait(1)] == ["[mlops] champion rolled back"]

        # an SMTP connection without recipients: the error names the extra to set
        conn = json.loads(smtp.connection())
        del conn["extra"]["to"]
        monkeypatch.setenv("AIRFLOW_CONN_MLOPS_SMTP", json.dumps(conn))
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mlops.airflow.alerts"):
            assert alerts.announce("rollback", "again", "b") == []
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("no recipients: set its extra 'to'" in e for e in errors), errors
    finally:
        smtp.stop()
        hook.stop()


def test_bad_calls_say_what_to_do(no_channels):
    from mlops.airflow import alerts

    with pytest.raises(ValueError, match="unknown alert kind 'rolback': use one of"):
        alerts.announce("rolback", "x", "y")
    with pytest.raises(ValueError, match="needs a subject"):
        alerts.announce("rollback", "  ", "y")
    with pytest.raises(ValueError, match="deadline reference 'start': use one of"):
        alerts.deadline(__import__("datetime").timedelta(hours=1), reference="start")
