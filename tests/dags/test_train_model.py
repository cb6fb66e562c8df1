"""train_model's wiring: schedule, params form, mapped search, registry operators, extra links."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.dags.conftest import REPO


def test_schedule_is_weekly_or_retrain_request(dagbag):
    dag = dagbag.dags["train_model"]
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert "retrain_request" in repr(timetable.asset_condition)
    assert timetable.timetable.expression == "0 0 * * 1"


def test_params_render_as_a_typed_form(dagbag):
    params = dagbag.dags["train_model"].params
    expected = {
        "window_days": "integer",
        "holdout_days": "integer",
        "n_estimators": "integer",
        "max_depth": "integer",
        "learning_rate": "number",
        "n_candidates": "integer",
        "seed": "integer",
        "promotion_margin": "number",
        "dry_run": "boolean",
        "require_approval": "boolean",
    }
    for name, kind in expected.items():
        param = params.get_param(name)
        assert param.schema["type"] == kind, name
        assert param.schema.get("title"), f"{name} has no title for the form"


def test_search_is_mapped_and_feeds_the_refit(dagbag):
    dag = dagbag.dags["train_model"]
    search = dag.get_task("score_candidate")
    assert type(search).__name__ in {"MappedOperator", "SerializedMappedOperator"} or hasattr(
        search, "expand_input"
    )
    assert "refit" in search.downstream_task_ids


def test_registry_operators_and_the_champion_asset(dagbag):
    dag = dagbag.dags["train_model"]
    register, gate, promote = (dag.get_task(t) for t in ("register", "gate", "promote"))
    assert type(register).__name__ == "RegisterModelOperator"
    assert type(gate).__name__ == "GateModelOperator"
    assert type(promote).__name__ == "PromoteModelOperator"
    for op in (register, gate, promote):
        assert [link.name for link in op.operator_extra_links] == ["MLflow run"]
    assert gate.task_id in register.downstream_task_ids
    publish = dag.get_task("publish_champion")
    assert [a.name for a in publish.outlets] == ["champion_model"]


def test_the_approval_sits_between_the_gate_and_the_alias_move(dagbag):
    """gate (decides, moves nothing) -> approval (human in the loop) -> promote (moves): the only
    path from the gate to the champion goes through the approval task."""
    from datetime import timedelta

    from airflow.providers.standard.operators.hitl import HITLOperator

    dag = dagbag.dags["train_model"]
    gate, approval, promote = (dag.get_task(t) for t in ("gate", "approval", "promote"))
    assert isinstance(approval, HITLOperator)
    assert approval.options == ["promote", "reject"] and approval.defaults == ["reject"]
    assert approval.response_timeout == timedelta(hours=24)
    assert gate.downstream_task_ids == {"approval", "promote"}
    assert "approval" in promote.upstream_task_ids
    assert dag.params["require_approval"] is False  # embedded default (MLOPS_REQUIRE_APPROVAL unset)


def test_operator_module_is_parse_safe():
    code = (
        "import sys, json; import mlops.airflow.operators.registry as m;"
        "print(json.dumps(sorted(x for x in ('mlflow','pandas','xgboost','sklearn') if x in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_retrain_request_sets_the_data_time_as_of_and_the_tags(dagbag):
    """In a replay the request event's wall-clock time is years after the data: the run trains as
    of the request's own ``as_of`` and carries its reason to MLflow."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from airflow.sdk import Asset

    dag = dagbag.dags["train_model"]
    plan = dag.get_task("plan").python_callable
    params = {name: dag.params[name] for name in dag.params}
    event = SimpleNamespace(
        timestamp=datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        extra={"as_of": "2013-07-11", "reason": "feature drift: dep_hour", "request_id": "r1"},
        asset=Asset(name="retrain_request"),
        source_dag_id="monitor_drift",
        source_run_id="scheduled__2013-07-10",
    )
    out = plan(
        params=params,
        dag_run=None,
        data_interval_end=datetime(2026, 11, 23, tzinfo=UTC),
        triggering_asset_events={Asset(name="retrain_request"): [event]},
    )
    assert (out["as_of"], out["as_of_source"]) == ("2013-07-11", "retrain_request")
    assert out["retrain"]["retrain.reason"] == "feature drift: dep_hour"
    assert out["retrain"]["retrain.source"] == "monitor_drift/scheduled__2013-07-10"

    weekly = plan(
        params=params,
        dag_run=None,
        data_interval_end=datetime(2013, 3, 4, tzinfo=UTC),
        triggering_asset_events={},
    )
    assert (weekly["as_of"], weekly["as_of_source"], weekly["retrain"]) == (
        "2013-03-04",
        "data_interval_end",
        {},
    )


def test_the_approval_answers_as_the_promote_task_reads_them(dagbag):
    """A person's answer names them; the timeout's default (reject) names no one; no wait at all
    when approval is off, the gate rejected, or the challenger already is the champion."""
    import copy
    from datetime import UTC, datetime

    task = copy.copy(dagbag.dags["train_model"].get_task("approval"))
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    person = {"chosen_options": ["promote"], "params_input": {}, "responded_at": at}
    person["responded_by_user"] = {"id": "7", "name": "alice"}
    assert task.execute_complete({}, person) == {
        "required": True,
        "chosen": "promote",
        "by": "alice",
        "at": "2026-11-30T12:00:00+00:00",
        "timed_out": False,
    }
    timeout = {
        "chosen_options": ["reject"],
        "params_input": {},
        "responded_at": at,
        "responded_by_user": None,
    }
    out = task.execute_complete({}, {**timeout, "timedout": True})
    assert (out["chosen"], out["by"], out["timed_out"]) == ("reject", None, True)

    eligible = {"eligible": True, "challenger": "3", "champion_before": "2", "model": "m", "reason": "wins"}
    for decision, required, why in (
        (eligible, False, "require_approval is off"),
        ({**eligible, "eligible": False}, True, "the gate did not find it eligible"),
        ({**eligible, "champion_before": "3"}, True, "it is already the champion"),
    ):
        task.decision, task.require_approval = decision, required
        assert task.execute({}) == {
            "required": False,
            "chosen": None,
            "by": None,
            "at": None,
            "timed_out": False,
            "why": why,
        }
