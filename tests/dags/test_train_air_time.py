"""train_air_time: train_model's tasks and registry operators, given the air-time model spec."""

from __future__ import annotations


def test_weekly_after_train_model_or_its_own_retrain_request_and_margin(dagbag):
    dag = dagbag.dags["train_air_time"]
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert dag.timetable.timetable.expression == "0 2 * * 1"
    assert "air_time_retrain_request" in repr(dag.timetable.asset_condition)
    assert "'retrain_request'" not in repr(dag.timetable.asset_condition)  # not the delay model's
    margin = dag.params.get_param("promotion_margin")
    assert margin.value == 0.1 and "MAE" in margin.schema["title"]
    assert set(dag.params) == set(dagbag.dags["train_model"].params)  # the same form otherwise


def test_the_registry_operators_name_the_air_time_model(dagbag):
    dag = dagbag.dags["train_air_time"]
    register, gate = dag.get_task("register"), dag.get_task("gate")
    assert register.model_name == gate.model_name == "flight_air_time_xgb"
    assert type(dag.get_task("promote")).__name__ == "PromoteModelOperator"
    assert "approval" in gate.downstream_task_ids
    search = dag.get_task("score_candidate")
    assert "refit" in search.downstream_task_ids


def test_plan_is_a_training_run_of_the_air_time_spec(dagbag, mlops_home):
    from datetime import UTC, datetime

    dag = dagbag.dags["train_air_time"]
    plan = dag.get_task("plan").python_callable
    params = {name: dag.params[name] for name in dag.params}
    out = plan(params=params, dag_run=None, data_interval_end=datetime(2013, 3, 4, tzinfo=UTC))
    assert out["spec"] == "air_time" and out["as_of"] == "2013-03-04"
    assert out["params"]["promotion_margin"] == 0.1
    assert "/air_time-" in out["training_dir"]
    flight_delay = (
        dagbag.dags["train_model"]
        .get_task("plan")
        .python_callable(
            params={
                name: dagbag.dags["train_model"].params[name] for name in dagbag.dags["train_model"].params
            },
            dag_run=None,
            data_interval_end=datetime(2013, 3, 4, tzinfo=UTC),
            triggering_asset_events={},
        )
    )
    assert flight_delay["spec"] == "flight_delay" and flight_delay["training_dir"] != out["training_dir"]


def test_both_training_dags_are_one_builder_given_another_spec(dagbag):
    """train_model and train_air_time are mlops.airflow.training_dag given another spec: the same
    tasks (train_model also publishes its champion), each DAG's file its own."""
    delay, air_time = dagbag.dags["train_model"], dagbag.dags["train_air_time"]
    assert set(delay.task_ids) - set(air_time.task_ids) == {"publish_champion"}
    assert set(air_time.task_ids) <= set(delay.task_ids)
    assert delay.get_task("register").model_name == "flight_delay_xgb"
    assert delay.fileloc.endswith("/dags/train_model.py")
    assert air_time.fileloc.endswith("/dags/train_air_time.py")
    assert air_time.owner == delay.owner and air_time.max_active_runs == delay.max_active_runs


def test_the_builder_refuses_an_unknown_spec():
    import pytest

    from mlops.airflow.training_dag import training_dag

    with pytest.raises(ValueError, match="unknown model spec 'no_such_model'.*import path"):
        training_dag("no_such_model", dag_id="train_x", schedule=None, doc_md="x" * 50, tags=["t"])


def test_an_air_time_retrain_request_sets_the_as_of_and_the_tags(dagbag, mlops_home):
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from airflow.sdk import Asset

    dag = dagbag.dags["train_air_time"]
    plan = dag.get_task("plan").python_callable
    params = {name: dag.params[name] for name in dag.params}
    asset = Asset(name="air_time_retrain_request")
    event = SimpleNamespace(
        timestamp=datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        extra={"as_of": "2013-07-11", "reason": "prediction drift: air_time", "request_id": "a1"},
        asset=asset,
        source_dag_id="monitor_drift_air_time",
        source_run_id="scheduled__2013-07-10",
    )
    out = plan(
        params=params,
        dag_run=None,
        data_interval_end=datetime(2026, 11, 23, tzinfo=UTC),
        triggering_asset_events={asset: [event]},
    )
    assert out["spec"] == "air_time"
    assert (out["as_of"], out["as_of_source"]) == ("2013-07-11", "retrain_request")
    assert out["retrain"]["retrain.reason"] == "prediction drift: air_time"
    assert out["retrain"]["retrain.source"] == "monitor_drift_air_time/scheduled__2013-07-10"
