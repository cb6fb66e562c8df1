"""Alerts: tell someone when the pipeline needs a human (issue 18).

Every alert goes to each configured channel; a channel is an Airflow connection, and a channel whose
connection is not defined is off (one info log line per alert, no error):

``mlops_smtp`` (type ``smtp``)
    email through the SMTP provider's ``SmtpNotifier``. Host, port, login/password as usual; extras:
    ``to`` (required: recipients, comma-separated), ``from_email`` (required), and the provider's
    own (``disable_tls``, ``disable_ssl``, ``timeout``, ``retry_limit``), e.g.::

        AIRFLOW_CONN_MLOPS_SMTP='{"conn_type": "smtp", "host": "smtp.example.com", "port": 587,
          "login": "alerts", "password": "...",
          "extra": {"from_email": "mlops@example.com", "to": "oncall@example.com"}}'

``mlops_webhook`` (type ``http``)
    a JSON ``POST`` (:class:`WebhookNotifier`, through the HTTP provider's ``HttpHook``) to the
    connection's URL: the full URL in ``host`` (``https://hooks.example.com/services/T0/B0``) or
    ``schema``/``host``/``port``; login/password become basic auth and the extras become headers::

        AIRFLOW_CONN_MLOPS_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example.com/mlops",
          "extra": {"Authorization": "Bearer ..."}}'

The payload is ``{"kind", "subject", "body", "details", "dag_id", "run_id", "task_id"}``.

Kinds (:data:`KINDS`) and where they are raised:

- ``task_failed``: :func:`task_failed`, the ``on_failure_callback`` of every task
  (:func:`mlops.airflow.defaults.default_args`): a task failed after its retries.
- ``quarantine``: :func:`announce_quarantine`, from ``GXValidateOperator`` when a batch is rejected.
- ``retrain_requested`` / ``retrain_suppressed``: :func:`announce_retrain`, from
  ``monitor_drift.request_retrain`` when a threshold is breached (suppressed: the storm guard said no).
- ``rollback``: :func:`announce` from the rollout guard when ``@champion`` moves back.
- ``deadline_missed``: :func:`deadline_missed`, the ``DeadlineAlert`` callback (:func:`deadline`)
  of ``batch_predict`` and ``materialize_features``; runs in the triggerer.

Delivery never fails the caller: a channel that refuses an alert (server down, bad credentials) is
logged as an error naming the connection and what to check, and the other channels still get it.
Subjects are short and specific, always prefixed ``[mlops]``; bodies are plain text (sent as
``<pre>`` in the email), never rendered as templates.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context, DeadlineAlert

log = logging.getLogger(__name__)

SMTP_CONN_ID = "mlops_smtp"
WEBHOOK_CONN_ID = "mlops_webhook"
PREFIX = "[mlops]"

TASK_FAILED = "task_failed"
QUARANTINE = "quarantine"
RETRAIN_REQUESTED = "retrain_requested"
RETRAIN_SUPPRESSED = "retrain_suppressed"
ROLLBACK = "rollback"
DEADLINE_MISSED = "deadline_missed"
KINDS = frozenset({TASK_FAILED, QUARANTINE, RETRAIN_REQUESTED, RETRAIN_SUPPRESSED, ROLLBACK, DEADLINE_MISSED})


class AlertConfigError(ValueError):
    """A channel's connection exists but cannot deliver as configured (the message says what to set)."""


@dataclass(frozen=True)
class Alert:
    """One alert: what happened (``kind``), a one-line ``subject`` and a plain-text ``body``."""

    kind: str
    subject: str
    body: str
    details: Mapping[str, Any] = field(default_factory=dict)
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "body": self.body,
            "details": dict(self.details),
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
        }


# ---------------------------------------------------------------------------------------- channels


def _connection(conn_id: str) -> Any | None:
    """The Airflow connection ``conn_id``, or None when it is not defined (the channel is off)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def _recipients(conn: Any) -> list[str]:
    extra = conn.extra_dejson
    raw = extra.get("to")
    if isinstance(raw, str):
        to = [a.strip() for a in raw.replace(";", ",").split(",") if a.strip()]
    elif isinstance(raw, list):
        to = [str(a).strip() for a in raw if str(a).strip()]
    else:
        to = []
    if not to:
        raise AlertConfigError(
            f"connection {SMTP_CONN_ID!r} has no recipients: set its extra 'to' to one or more "
            'comma-separated addresses, e.g. {"to": "oncall@example.com", "from_email": "mlops@example.com"}'
        )
    if not extra.get("from_email"):
        raise AlertConfigError(
            f"connection {SMTP_CONN_ID!r} has no sender: set its extra 'from_email', "
            'e.g. {"from_email": "mlops@example.com"}'
        )
    return to


def email_notifier(alert: Alert, conn: Any) -> BaseNotifier:
    """The SMTP provider's ``SmtpNotifier`` for ``alert`` on connection ``conn`` (``mlops_smtp``)."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    return SmtpNotifier(
        to=_recipients(conn),
        from_email=conn.extra_dejson["from_email"],
        subject=alert.subject,
        html_content=f"<pre>{html.escape(alert.body)}</pre>",
        smtp_conn_id=SMTP_CONN_ID,
        custom_headers={"X-Mlops-Alert": alert.kind},
    )


class WebhookNotifier(BaseNotifier):
    """POST an alert as JSON to the URL of an ``http`` connection (generic webhook).

    Usable as any Airflow notifier (``on_failure_callback=WebhookNotifier(subject=..., body=...)``;
    ``subject`` and ``body`` are templated there); :func:`announce` calls :meth:`notify` with the
    text as it is.
    """

    template_fields = ("subject", "body")

    def __init__(
        self,
        *,
        subject: str,
        body: str = "",
        kind: str = "notification",
        details: Mapping[str, Any] | None = None,
        http_conn_id: str = WEBHOOK_CONN_ID,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.subject = subject
        self.body = body
        self.kind = kind
        self.details = dict(details or {})
        self.http_conn_id = http_conn_id
        self.timeout = timeout

    def notify(self, context: Context) -> None:
        from airflow.providers.http.hooks.http import HttpHook

        ids = _ids(context)
        alert = Alert(self.kind, self.subject, self.body, self.details, **ids)
        hook = HttpHook(method="POST", http_conn_id=self.http_conn_id)
        hook.run(
            endpoint=None,
            json=alert.payload(),
            headers={"Content-Type": "application/json"},
            extra_options={"timeout": self.timeout},
        )


def _ids(context: Mapping[str, Any] | None) -> dict[str, str | None]:
    """dag_id / run_id / task_id from an Airflow context (task, deadline or none)."""
    if not context:
        return {"dag_id": None, "run_id": None, "task_id": None}
    ti = context.get("ti") or context.get("task_instance")
    if ti is not None:
        return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id}
    run = context.get("dag_run")
    if isinstance(run, Mapping):  # a deadline callback's context: the run as JSON
        return {
            "dag_id": run.get("dag_id"),
            "run_id": run.get("run_id") or run.get("dag_run_id"),
            "task_id": None,
        }
    if run is not None:
        return {"dag_id": run.dag_id, "run_id": run.run_id, "task_id": None}
    return {"dag_id": None, "run_id": None, "task_id": None}


def announce(
    kind: str,
    subject: str,
    body: str,
    context: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[str]:
    """Send an alert to every configured channel; return the channels that took it.

    :param kind: one of :data:`KINDS` (``"rollback"``, ``"quarantine"``, ...).
    :param subject: one line, specific (``"champion rolled back v7 -> v6: error rate 12% > 5%"``);
        ``[mlops]`` is prefixed when missing.
    :param body: plain text: what happened, the numbers, where to look, what to do.
    :param context: the Airflow context when called from a task (adds dag/run/task ids), else None.
    :param details: JSON-able facts for the webhook payload.
    :returns: ``["email", "webhook"]``, a part of it, or ``[]`` (nothing configured or delivered).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}: use one of {sorted(KINDS)}")
    if not subject or not subject.strip():
        raise ValueError("an alert needs a subject (one line saying what happened)")
    subject = " ".join(subject.split())  # one line: mail headers and chat titles break on newlines
    if not subject.startswith(PREFIX):
        subject = f"{PREFIX} {subject}"
    alert = Alert(kind, subject, body, dict(details or {}), **_ids(context))
    delivered: list[str] = []
    off: list[str] = []
    for channel, conn_id in (("email", SMTP_CONN_ID), ("webhook", WEBHOOK_CONN_ID)):
        conn = _connection(conn_id)
        if conn is None:
            off.append(f"{channel} (no connection {conn_id!r})")
            continue
        try:
            if channel == "email":
                email_notifier(alert, conn).notify(dict(context or {}))
            else:
                WebhookNotifier(
                    subject=alert.subject, body=alert.body, kind=alert.kind, details=alert.details
                ).notify(dict(context or {}))
        except Exception as exc:  # an alert that cannot be sent never fails the work it reports on
            log.error(
                "alert %r NOT sent by %s: %s: %s; check the connection %r (host, port, credentials, extras)",
                alert.subject,
                channel,
                type(exc).__name__,
                exc,
                conn_id,
            )
            continue
        delivered.append(channel)
    if off and not delivered:
        log.info("alert not sent, no channel configured (%s): %s", ", ".join(off), alert.subject)
    else:
        log.info("alert sent by %s: %s", ", ".join(delivered) or "no channel", alert.subject)
    return delivered


# ------------------------------------------------------------------------------------ alert kinds


def _day(context: Mapping[str, Any]) -> str:
    """The run's day (``ds``), else its run id: manual runs may have no logical date."""
    ds = context.get("ds")
    if ds:
        return str(ds)
    run = context.get("dag_run")
    return str(getattr(run, "run_id", "") or context.get("run_id") or "")


#: Task tries whose failure was already announced by a specific alert (a quarantine): the
#: failure callback runs in the same process right after and does not repeat it.
_ANNOUNCED: set[tuple[str, str, str, int]] = set()


def _try_key(context: Mapping[str, Any] | None) -> tuple[str, str, str, int] | None:
    ti = (context or {}).get("ti")
    if ti is None:
        return None
    return (ti.dag_id, ti.run_id, ti.task_id, int(getattr(ti, "try_number", 0) or 0))


def task_failed(context: Context) -> None:
    """``on_failure_callback``: a task failed after its retries (set on every task by default_args).

    A failure already announced by a specific alert of the same try (a quarantined batch) is not
    announced twice.
    """
    ti = context["ti"]
    if _try_key(context) in _ANNOUNCED:
        log.info("task %s.%s failed: already announced (quarantine), no second alert", ti.dag_id, ti.task_id)
        return
    exc = context.get("exception")
    error = f"{type(exc).__name__}: {exc}" if exc is not None else "no exception recorded"
    first_line = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else error
    if len(first_line) > 120:
        first_line = first_line[:117] + "..."
    tries = getattr(ti, "try_number", None)
    max_tries = getattr(ti, "max_tries", None)
    attempts = f"try {tries}" + (f" of {max_tries + 1}" if isinstance(max_tries, int) else "")
    log_url = getattr(ti, "log_url", None)
    body = "\n".join(
        [
            f"Task {ti.dag_id}.{ti.task_id} failed ({attempts}) in run {ti.run_id}.",
            f"Error: {error}",
            f"Log: {log_url}" if log_url else "",
            "Fix the cause, then clear the task in the Airflow UI to rerun it.",
        ]
    ).replace("\n\n", "\n")
    announce(
        TASK_FAILED,
        f"task failed: {ti.dag_id}.{ti.task_id} {_day(context)}: {first_line}",
        body,
        context,
        {"try_number": tries, "error": error, "log_url": log_url},
    )


def announce_quarantine(
    summary: Mapping[str, Any], message: str, context: Mapping[str, Any] | None = None
) -> list[str]:
    """A rejected batch went to quarantine. ``summary`` is ``ValidationResult.summary()``."""
    ds = str(summary.get("ds", "?"))
    feed = str(summary.get("feed") or _feed_from_uri(str(summary.get("report_uri", ""))) or "batch")
    failed_checks = list(summary.get("failed_checks") or [])
    evaluated = summary.get("evaluated")
    failed = len(failed_checks) or (int(evaluated) - int(summary.get("successful", 0)) if evaluated else 0)
    what = f"{failed} check{'s' if failed != 1 else ''} failed" if failed else "unreadable batch"
    body = "\n".join(
        [
            message,
            f"Failed checks: {', '.join(map(str, failed_checks)) or 'none listed'}",
            f"Report: {summary.get('report_uri', '?')}",
        ]
    )
    key = _try_key(context)
    if key is not None:
        _ANNOUNCED.add(key)
    return announce(
        QUARANTINE,
        f"quarantined {feed} {ds}: {what}",
        body,
        context,
        {k: summary.get(k) for k in ("ds", "rows", "evaluated", "successful", "failed_checks", "report_uri")},
    )


def _feed_from_uri(uri: str) -> str | None:
    """``.../quarantine/<feed>/ds=.../validation.html`` -> ``<feed>``."""
    parts = uri.rstrip("/").split("/")
    for i, part in enumerate(parts):
        if part.startswith("ds=") and i > 0:
            return parts[i - 1]
    return None


def announce_retrain(
    request: Mapping[str, Any],
    decision: Any,
    context: Mapping[str, Any] | None = None,
    **target: str,
) -> list[str]:
    """:func:`_announce_retrain`, never raising: the request it reports must still be emitted."""
    try:
        return _announce_retrain(request, decision, context, **target)
    except Exception:
        log.exception("retrain alert of %s not sent (the request itself is unaffected)", request.get("ds"))
        return []


def _announce_retrain(
    request: Mapping[str, Any],
    decision: Any,
    context: Mapping[str, Any] | None = None,
    *,
    asset: str = "retrain_request",
    train_dag_id: str = "train_model",
    ledger: str = "{lake}/reports/drift/requests/ledger.json",
) -> list[str]:
    """A drift check breached a threshold: say whether a retrain was requested or suppressed.

    ``request`` is the check's ``request`` block; ``decision`` the storm guard's
    :class:`mlops.monitoring.guard.Decision` (``requested``, ``reason``). ``asset``,
    ``train_dag_id`` and ``ledger`` name the monitored model's own retrain request, training DAG
    and guard ledger (the defaults are the flight-delay model's). Nothing is sent when no
    threshold was breached.
    """
    if not request.get("breached"):
        return []
    ds = str(request.get("ds", "?"))
    breaches = "; ".join(str(b.get("message", b)) for b in request.get("breaches") or []) or str(
        request.get("reason", "")
    )
    features = request.get("drifted_features") or {}
    if isinstance(features, Mapping):  # the check's request: {feature: score}, highest first
        names = ", ".join(f"{name} ({float(score):.2f})" for name, score in list(features.items())[:8])
    else:
        names = ", ".join(str(name) for name in list(features)[:8])
    body_lines = [
        f"Drift check of {ds} against champion v{request.get('champion_version', '?')}: {breaches}.",
        f"Drifted features: {names or 'none'}",
        f"Report: {request.get('report_uri', '?')}",
    ]
    if decision.requested:
        kind, subject = RETRAIN_REQUESTED, f"retrain requested {ds}: {breaches}"
        body_lines.append(f"{asset} emitted: {train_dag_id} starts on it.")
    else:
        kind, subject = RETRAIN_SUPPRESSED, f"retrain suppressed {ds}: {decision.reason}"
        body_lines.append(
            f"The storm guard held the request back: {decision.reason}. "
            f"Ledger: {ledger}; trigger {train_dag_id} by hand if needed."
        )
    if len(subject) > 160:
        subject = subject[:157] + "..."
    return announce(
        kind,
        subject,
        "\n".join(body_lines),
        context,
        {"ds": ds, "breaches": request.get("breaches"), "reason": decision.reason},
    )


# -------------------------------------------------------------------------------------- deadlines


def deadline(interval: timedelta, *, reference: str = "logical_date") -> DeadlineAlert:
    """A ``DeadlineAlert`` whose miss is announced by :func:`deadline_missed` (in the triggerer).

    :param interval: how long after the reference the run must be finished.
    :param reference: ``"logical_date"`` (the data interval a scheduled run covers) or
        ``"queued_at"`` (asset-triggered runs have no logical date: they are due ``interval``
        after they were queued).
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    references = {
        "logical_date": DeadlineReference.DAGRUN_LOGICAL_DATE,
        "queued_at": DeadlineReference.DAGRUN_QUEUED_AT,
    }
    if reference not in references:
        raise ValueError(f"deadline reference {reference!r}: use one of {sorted(references)}")
    return DeadlineAlert(
        reference=references[reference],
        interval=interval,
        callback=AsyncCallback(
            deadline_missed,
            kwargs={"interval": _human(interval), "reference": reference},
        ),
    )


def _human(interval: timedelta) -> str:
    minutes = int(interval.total_seconds() // 60)
    if minutes % 60:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)[:16].replace("T", " ") + " UTC" if value else "?"


def deadline_message(
    interval: str, reference: str, context: Mapping[str, Any] | None
) -> tuple[str, str, dict[str, Any]] | None:
    """Subject, body and details of a missed deadline; None for a backfill run (old data: no alert)."""
    run = dict((context or {}).get("dag_run") or {})
    due = (context or {}).get("deadline") or {}
    dag_id = run.get("dag_id", "?")
    run_id = run.get("dag_run_id") or run.get("run_id") or "?"
    if run.get("run_type") == "backfill":
        return None
    logical = run.get("logical_date")
    day = str(logical)[:10] if logical else run_id
    subject = f"deadline missed: {dag_id} {day} not done by {_when(due.get('deadline_time'))}"
    body = "\n".join(
        [
            f"Run {run_id} of {dag_id} was due {interval} after its {reference.replace('_', ' ')} "
            f"({_when(logical or run.get('queued_at'))}) and is still {run.get('state', 'running')}.",
            "Look at its running or queued tasks (a sensor still waiting for data, a full pool, "
            "no worker) in the Airflow UI.",
        ]
    )
    details = {"dag_id": dag_id, "run_id": run_id, "deadline_time": str(due.get("deadline_time"))}
    return subject, body, details


async def deadline_missed(
    interval: str, reference: str = "logical_date", context: Mapping[str, Any] | None = None
) -> str:
    """``DeadlineAlert`` callback (the triggerer awaits it): announce the missed deadline.

    Backfill runs are not announced (their logical dates are in the past, so their deadlines are
    missed by construction): one info line says so. Returns what happened, as text: Airflow stores
    it as the callback's output (a string column).
    """
    message = deadline_message(interval, reference, context)
    if message is None:
        run = dict((context or {}).get("dag_run") or {})
        log.info(
            "deadline of backfill run %s of %s passed: no alert (old data)",
            run.get("run_id"),
            run.get("dag_id"),
        )
        return "not announced: backfill run"
    subject, body, details = message
    run = dict((context or {}).get("dag_run") or {})
    ids_context = {"dag_run": {"dag_id": details["dag_id"], "run_id": details["run_id"], **run}}
    # Delivery is blocking I/O (SMTP, HTTP): off the triggerer's event loop.
    channels = await asyncio.to_thread(announce, DEADLINE_MISSED, subject, body, ids_context, details)
    return f"sent by {', '.join(channels)}" if channels else "not sent: no channel configured or delivered"
