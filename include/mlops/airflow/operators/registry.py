"""Operators for the model registry: register a trained run, gate it, ask a human, promote it.

``register`` -> ``gate`` (decide, no alias moves; logs the model card) -> ``approval`` (a
human-in-the-loop task, waiting only when the run's ``require_approval`` is on and the gate would
promote) -> ``promote`` (moves the aliases under the promotion lock, recorded in the audit trail).

Each stores only plain arguments in ``__init__`` (templated, so XComArgs and Jinja resolve at run
time) and imports MLflow inside ``execute()``; the registry ones carry an extra link to the
MLflow run.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator

from mlops.airflow.links import MLFLOW_RUN_KEY, MLflowRunLink, mlflow_run_url, publish

if TYPE_CHECKING:
    from airflow.sdk import Context


def _skip(message: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(message)


class RegisterModelOperator(BaseOperator):
    """Register the model logged by MLflow run ``run_id`` as a new version of ``model_name`` and
    point ``@challenger`` at it. Idempotent (a retry finds the run's version). Returns the version.

    With ``dry_run`` true the task is skipped (and so is everything after it).
    """

    template_fields = ("run_id", "model_uri", "experiment_id", "dry_run")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d5e8f7"

    def __init__(
        self,
        *,
        run_id: str,
        model_uri: str,
        experiment_id: str,
        model_name: str = "flight_delay_xgb",
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.model_uri = model_uri
        self.experiment_id = experiment_id
        self.model_name = model_name
        self.dry_run = dry_run

    def execute(self, context: Context) -> str:
        url = mlflow_run_url(str(self.experiment_id), str(self.run_id))
        publish(context, MLFLOW_RUN_KEY, url)
        from mlops.params import parse_bool

        if parse_bool(self.dry_run, "dry_run"):
            _skip(f"dry run: MLflow run {self.run_id} logged, not registered ({url})")
        from mlops.models.registry import register

        tags = {"airflow.dag_id": context["dag"].dag_id, "airflow.run_id": context["run_id"]}
        version = register(self.run_id, self.model_uri, tags=tags, name=self.model_name)
        self.log.info("registered %s version %s from run %s (%s)", self.model_name, version, self.run_id, url)
        return version


class GateModelOperator(BaseOperator):
    """Gate ``version`` against the current ``@champion`` on the challenger's own holdout, WITHOUT
    moving any alias (:func:`mlops.models.registry.gate`), and log the version's model card
    (:mod:`mlops.models.card`: MLflow artifacts ``model_card.md``/``.json``; the Markdown is also
    pushed as the XCom ``model_card``, the approval's body).

    ``training_run`` is the run's :class:`mlops.training.run.TrainingRun` as ``plan`` returned it
    (the holdout is re-read from its training set); ``checks`` are the behavioural checks
    ``log_to_mlflow`` ran on the model (read, not run again). Returns the decision (a dict with
    ``eligible``); never fails on a rejection.
    """

    template_fields = ("version", "training_run", "checks", "margin", "experiment_id", "run_id")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#f7e3d5"

    def __init__(
        self,
        *,
        version: str,
        training_run: dict[str, Any],
        checks: list[dict[str, Any]],
        margin: float | str,
        experiment_id: str,
        run_id: str,
        model_name: str = "flight_delay_xgb",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.training_run = training_run
        self.checks = checks
        self.margin = margin
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from mlops.airflow.runtime import lake_task
        from mlops.models import card
        from mlops.models.registry import gate
        from mlops.training.run import TrainingRun

        publish(context, MLFLOW_RUN_KEY, mlflow_run_url(str(self.experiment_id), str(self.run_id)))
        with lake_task():  # the holdout is read from the lake
            decision = gate(
                str(self.version),
                TrainingRun.from_dict(self.training_run),
                checks=list(self.checks),
                margin=float(self.margin),
                name=self.model_name,
            )
        self.log.info("gate decision: %s", json.dumps(decision, default=str))
        markdown = card.log(card.build(str(self.version), decision, name=self.model_name))
        context["ti"].xcom_push(key=MODEL_CARD_XCOM, value=markdown)
        return decision


#: The XCom (of the ``gate`` task) holding the version's model card in Markdown.
MODEL_CARD_XCOM = "model_card"
#: How long a promotion waits for a human before the default answer (reject) applies.
APPROVAL_TIMEOUT_ENV = "MLOPS_APPROVAL_TIMEOUT_MINUTES"
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=24)


def approval_timeout() -> timedelta:
    """``MLOPS_APPROVAL_TIMEOUT_MINUTES`` (default 24 hours): the approval's ``response_timeout``."""
    import os

    raw = os.environ.get(APPROVAL_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_APPROVAL_TIMEOUT
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if minutes <= 0:
        raise ValueError(f"{APPROVAL_TIMEOUT_ENV}={raw!r}: a positive number of minutes (e.g. 1440)")
    return timedelta(minutes=minutes)


class ApproveModelOperator(HITLOperator):
    """A human approves or rejects the promotion the gate decided (Airflow's Required Actions).

    Waits only when ``require_approval`` is true AND the gate found the challenger ``eligible``
    (and it is not already the champion); otherwise it returns at once (``required`` false). The
    body is the model card (Markdown); options ``promote`` / ``reject``; after
    ``response_timeout`` the default, ``reject``, applies. Returns ``required``, ``chosen``, ``by``
    (the responder's name; None on a timeout), ``at`` and ``timed_out``: the ``promote`` task
    records them in the audit trail and acts on them.
    """

    PROMOTE, REJECT = "promote", "reject"
    template_fields = ("subject", "body", "decision", "require_approval")
    ui_color = "#fbe9a6"

    def __init__(
        self,
        *,
        decision: dict[str, Any] | str,
        require_approval: bool | str,
        body: str,
        response_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            subject="Promote the challenger to @champion?",
            body=body,
            options=[self.PROMOTE, self.REJECT],
            defaults=[self.REJECT],
            multiple=False,
            response_timeout=response_timeout or approval_timeout(),
            **kwargs,
        )
        self.decision = decision
        self.require_approval = require_approval

    def execute(self, context: Context) -> Any:
        from mlops.params import parse_bool

        decision = dict(self.decision or {})
        required = parse_bool(self.require_approval, "require_approval")
        already = decision.get("champion_before") == decision.get("challenger")
        if not required or not decision.get("eligible") or already:
            why = (
                "require_approval is off"
                if not required
                else "the gate did not find it eligible"
                if not decision.get("eligible")
                else "it is already the champion"
            )
            self.log.info("no approval needed: %s (%s)", why, decision.get("reason"))
            return {"required": False, "chosen": None, "by": None, "at": None, "timed_out": False, "why": why}
        champion = decision.get("champion_before")
        now = f"now v{champion}" if champion else "no champion yet"
        self.subject = f"Promote {decision['model']} v{decision['challenger']} to @champion ({now})?"
        self.log.info("waiting for approval: %s", self.subject)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        answer = super().execute_complete(context=context, event=event)
        user = answer.get("responded_by_user") or {}
        at = answer.get("responded_at")
        result = {
            "required": True,
            "chosen": answer["chosen_options"][0],
            "by": user.get("name") or user.get("id") or None,
            "at": at.isoformat() if hasattr(at, "isoformat") else at,
            "timed_out": bool(event.get("timedout")) or not user,
        }
        self.log.info("approval answer: %s", result)
        return result


class PromoteModelOperator(BaseOperator):
    """Act on the gate's ``decision`` and the ``approval`` answer: move ``@champion`` (and
    ``@previous``) under the promotion lock, or leave the champion as it is.

    Without a required approval the gate's verdict applies (audit actor ``gate``); with one, the
    answer is recorded first (actor ``approver:<name>``, or ``timeout``) and only ``promote``
    moves the aliases (:func:`mlops.models.registry.resolve_approval`). Either way the champion is
    re-read under the lock: if another run moved it since the gate, nothing moves. Returns the
    final decision (a dict); never fails on a rejection.
    """

    template_fields = ("decision", "approval", "experiment_id", "run_id")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#f7e3d5"

    def __init__(
        self,
        *,
        decision: dict[str, Any] | str,
        approval: dict[str, Any] | str | None,
        experiment_id: str,
        run_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.decision = decision
        self.approval = approval
        self.experiment_id = experiment_id
        self.run_id = run_id

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from mlops.models import registry

        publish(context, MLFLOW_RUN_KEY, mlflow_run_url(str(self.experiment_id), str(self.run_id)))
        decision, approval = dict(self.decision), dict(self.approval or {})
        if approval.get("required"):
            timed_out = bool(approval.get("timed_out"))
            actor = "timeout" if timed_out else f"approver:{approval.get('by')}"
            comment = (
                "no answer before the approval timed out: the default (reject) applies"
                if timed_out
                else f"answered {approval.get('chosen')} at {approval.get('at')}"
            )
            result = registry.resolve_approval(
                decision,
                approved=approval.get("chosen") == ApproveModelOperator.PROMOTE and not timed_out,
                actor=actor,
                comment=comment,
            )
        else:
            result = registry.apply(decision, actor="gate")
        out = result.as_dict()
        self.log.info("promotion decision: %s", json.dumps(out, default=str))
        return out
